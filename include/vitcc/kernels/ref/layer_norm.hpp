// Scalar reference LayerNorm over the last dimension, as torch.nn.LayerNorm: biased variance, two
// passes (mean, then the mean of squared deviations) so that large means do not cancel.
// Test oracle only (double accumulation): no product path runs it; the scalar path is fp32 code in
// the kernel headers, for cores whose FPU has single precision only.
#pragma once
#include <cmath>
#include <cstddef>

#include "vitcc/core/fp.hpp"

namespace vitcc::kernels::ref {

// y may alias x (same pointer and leading dimension): each row is read completely before it is written.
inline void layer_norm(std::size_t rows, std::size_t d, const float* x, std::size_t ldx, const float* gamma,
                       const float* beta, float eps, float* y, std::size_t ldy) noexcept {
  for (std::size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    double mean = 0.0;
    for (std::size_t j = 0; j < d; ++j) mean += xr[j];
    mean /= static_cast<double>(d);
    double var = 0.0;
    for (std::size_t j = 0; j < d; ++j) var = fp::madd(xr[j] - mean, xr[j] - mean, var);
    var /= static_cast<double>(d);
    const double inv = 1.0 / std::sqrt(var + static_cast<double>(eps));
    for (std::size_t j = 0; j < d; ++j)
      yr[j] = static_cast<float>(fp::madd((xr[j] - mean) * inv, double(gamma[j]), double(beta[j])));
  }
}

}  // namespace vitcc::kernels::ref
