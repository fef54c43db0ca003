// Squeeze-excite and global average pooling over an NHWC map (pixels x channels, row-major).
//   se: x[p, c] *= sigmoid(fc2(relu(fc1(mean_p x[p, :]))))[c], fc1/fc2 packed 1x1 convs with bias.
// The two tiny products (1 row) reuse the GEMM; the gate is scalar (one exp per channel); the
// rescaling pass over the map is a plain loop the compiler vectorises.
#pragma once
#include <cmath>
#include <cstddef>

#include "vitcc/kernels/gemm.hpp"
#include "vitcc/kernels/matmul.hpp"
#include "vitcc/kernels/pooling.hpp"

namespace vitcc::kernels {

// pooled [c], gate [c], hidden [rd], then the int8 products' quantised row.
constexpr std::size_t squeeze_excite_scratch_floats(std::size_t c, std::size_t rd, Precision p = Precision::fp32) noexcept {
  return (c + 15) / 16 * 16 * 2 + (rd + 15) / 16 * 16 + (matmul_scratch_bytes(p, 1, c > rd ? c : rd) + 63) / 64 * 16;
}

// Global average pool: out[c] = mean over the p pixels of x[p, c].
inline void global_avg_pool(std::size_t p, std::size_t c, const float* x, float* out) noexcept {
  mean_rows(p, c, x, c, out);
}

template <class Arch, Precision P = Precision::fp32>
void squeeze_excite(std::size_t p, std::size_t c, std::size_t rd, float* x, const PackedB& fc1_w, const float* fc1_b,
                    const PackedB& fc2_w, const float* fc2_b, float* scratch) noexcept {
  float* pooled = scratch;
  float* gate = pooled + (c + 15) / 16 * 16;
  float* hidden = gate + (c + 15) / 16 * 16;
  float* q8 = hidden + (rd + 15) / 16 * 16;
  global_avg_pool(p, c, x, pooled);
  GemmEpilogue e1;
  e1.bias = fc1_b;
  e1.act = Activation::relu;
  matmul<Arch, P>(1, rd, c, pooled, c, fc1_w, hidden, rd, e1, q8, nullptr);
  GemmEpilogue e2;
  e2.bias = fc2_b;
  matmul<Arch, P>(1, c, rd, hidden, rd, fc2_w, gate, c, e2, q8, nullptr);
  for (std::size_t j = 0; j < c; ++j) gate[j] = 1.0f / (1.0f + std::exp(-gate[j]));
  for (std::size_t i = 0; i < p; ++i)
    for (std::size_t j = 0; j < c; ++j) x[i * c + j] *= gate[j];
}

}  // namespace vitcc::kernels
