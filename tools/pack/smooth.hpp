// SmoothQuant's per-channel smoothing (Xiao et al., 2022), folded at pack time into an int8 blob.
//
// Per-token int8 activations lose the small channels of a token whose other channels are outliers.
// For a GEMM Y = X W whose input X is a LayerNorm's output (gamma * xhat + beta), each input channel k
// can be divided by s_k in the norm (gamma_k / s_k, beta_k / s_k) and multiplied back into row k of W
// (W[k][:] * s_k): the float32 function is unchanged up to rounding, but X's channels are flatter and
// W's rows take the range (SmoothQuant: s_k = max|X_k|^alpha / max|W_k|^(1 - alpha)).
#pragma once
#include <string>
#include <vector>

#include "artifacts.hpp"
#include "packed_model.hpp"

namespace vitcc::pack {

// The factors s_k of one site at alpha (1 where a channel's activation or weight row is all zero).
// `tensors` holds the site's gemm_b16 weights; throws PackError naming a missing or misshapen tensor.
std::vector<float> smoothing_factors(const std::vector<BlobTensor>& tensors, const SmoothSite& site, double alpha);

// A copy of `tensors` (float32, before convert_precision) with every site smoothed at alpha.
std::vector<BlobTensor> apply_smoothing(const std::vector<BlobTensor>& tensors, const std::vector<SmoothSite>& sites,
                                        double alpha);

}  // namespace vitcc::pack
