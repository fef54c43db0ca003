// Scalar reference multi-head self-attention for one image: for each head and each query, one row of
// scores, a max-subtracted softmax and the weighted sum of values. Deliberately the textbook form.
// Test oracle only (double accumulation): no product path runs it; the scalar path is fp32 code in
// the kernel headers, for cores whose FPU has single precision only.
#pragma once
#include <cmath>
#include <cstddef>

#include "vitcc/core/fp.hpp"

namespace vitcc::kernels::ref {

// Queries q0 .. q0+nq-1 of head h. qkv: [t, 3d] (ld_qkv), d = heads * head_dim; q of head h at column
// h*head_dim, k at d + h*head_dim, v at 2d + h*head_dim. out: [t, d] (ld_out), head h at column
// h*head_dim. scratch: at least t floats (one row of scores).
inline void attention_rows(std::size_t t, std::size_t heads, std::size_t head_dim, float scale, const float* qkv,
                           std::size_t ld_qkv, std::size_t h, std::size_t q0, std::size_t nq, float* out,
                           std::size_t ld_out, float* scratch) noexcept {
  const std::size_t d = heads * head_dim;
  float* scores = scratch;
  const float* q = qkv + h * head_dim;
  const float* k = qkv + d + h * head_dim;
  const float* v = qkv + 2 * d + h * head_dim;
  for (std::size_t i = q0; i < q0 + nq; ++i) {
    float row_max = -INFINITY;
    for (std::size_t j = 0; j < t; ++j) {
      float s = 0.0f;
      for (std::size_t e = 0; e < head_dim; ++e) s = fp::madd(q[i * ld_qkv + e], k[j * ld_qkv + e], s);
      scores[j] = s * scale;
      row_max = scores[j] > row_max ? scores[j] : row_max;
    }
    float sum = 0.0f;
    for (std::size_t j = 0; j < t; ++j) {
      scores[j] = std::exp(scores[j] - row_max);
      sum += scores[j];
    }
    float* o = out + i * ld_out + h * head_dim;
    for (std::size_t e = 0; e < head_dim; ++e) {
      float acc = 0.0f;
      for (std::size_t j = 0; j < t; ++j) acc = fp::madd(scores[j], v[j * ld_qkv + e], acc);
      o[e] = acc / sum;
    }
  }
}

// All heads, all queries (layouts as above).
inline void attention(std::size_t t, std::size_t heads, std::size_t head_dim, float scale, const float* qkv,
                      std::size_t ld_qkv, float* out, std::size_t ld_out, float* scratch) noexcept {
  for (std::size_t h = 0; h < heads; ++h)
    attention_rows(t, heads, head_dim, scale, qkv, ld_qkv, h, 0, t, out, ld_out, scratch);
}

}  // namespace vitcc::kernels::ref
