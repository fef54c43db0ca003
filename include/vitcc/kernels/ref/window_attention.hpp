// Scalar reference of small-window attention with an additive bias (see kernels/window_attention.hpp).
// Test oracle only (double accumulation): no product path runs it; the scalar path is fp32 code in
// the kernel headers, for cores whose FPU has single precision only.
#pragma once
#include <cmath>
#include <cstddef>

#include "vitcc/core/fp.hpp"

namespace vitcc::kernels::ref {

// Query rows [i0, i1) only; window_attention below is all n.
inline void window_attention_rows(std::size_t i0, std::size_t i1, std::size_t n, std::size_t kd, std::size_t vd,
                                  float scale, const float* q, std::size_t ldq, const float* k, std::size_t ldk,
                                  const float* v, std::size_t ldv, const float* bias, float* out, std::size_t ldo,
                                  float* scratch) noexcept {
  for (std::size_t i = i0; i < i1; ++i) {
    float mx = -INFINITY;
    for (std::size_t j = 0; j < n; ++j) {
      double dot = 0.0;
      for (std::size_t e = 0; e < kd; ++e) dot = fp::madd(double(q[i * ldq + e]), double(k[j * ldk + e]), dot);
      scratch[j] = fp::madd(float(dot), scale, bias ? bias[i * n + j] : 0.0f);
      mx = scratch[j] > mx ? scratch[j] : mx;
    }
    double sum = 0.0;
    for (std::size_t j = 0; j < n; ++j) {
      scratch[j] = std::exp(scratch[j] - mx);
      sum += scratch[j];
    }
    for (std::size_t e = 0; e < vd; ++e) {
      double acc = 0.0;
      for (std::size_t j = 0; j < n; ++j) acc = fp::madd(double(scratch[j]), double(v[j * ldv + e]), acc);
      out[i * ldo + e] = float(acc / sum);
    }
  }
}

inline void window_attention(std::size_t n, std::size_t kd, std::size_t vd, float scale, const float* q,
                             std::size_t ldq, const float* k, std::size_t ldk, const float* v, std::size_t ldv,
                             const float* bias, float* out, std::size_t ldo, float* scratch) noexcept {
  window_attention_rows(0, n, n, kd, vd, scale, q, ldq, k, ldk, v, ldv, bias, out, ldo, scratch);
}

}  // namespace vitcc::kernels::ref
