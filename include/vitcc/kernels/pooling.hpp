// Mean over rows (global average pooling of tokens or pixels). Memory-bound and tiny next to the
// GEMMs, so one plain loop that compilers vectorise serves every architecture.
#pragma once
#include <cstddef>

namespace vitcc::kernels {

inline void mean_rows(std::size_t rows, std::size_t d, const float* x, std::size_t ldx, float* out) noexcept {
  for (std::size_t j = 0; j < d; ++j) out[j] = 0.0f;
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t j = 0; j < d; ++j) out[j] += x[r * ldx + j];
  const float n = static_cast<float>(rows);
  for (std::size_t j = 0; j < d; ++j) out[j] /= n;
}

}  // namespace vitcc::kernels
