// Attention over one small window (EfficientViT's cascaded group attention: n <= 49 tokens, key dim
// 16, value dim 16..96) with an additive bias:  out = softmax(scale * q k^T + bias) v.
//
// Contract
//   q: [n, kd] (ldq), k: [n, kd] (ldk), v: [n, vd] (ldv), rows of a wider qkv map read in place.
//   bias: [n, n] row-major (the relative-position table already expanded by the packer), or null;
//         float, or bfloat16 bits (std::uint16_t: the bf16 and int8 blobs), widened as it is read.
//   out: [n, vd] (ldo), must not overlap q/k/v. scratch: window_attention_scratch_floats(n, kd).
// The whole n x n problem fits in L1, so there is no tiling: K is transposed once into scratch so the
// scores of a query row are computed W keys at a time; the row's softmax weights then scale rows of
// V accumulated W value channels at a time.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "vitcc/core/fp.hpp"
#include "vitcc/core/arch.hpp"
#include "vitcc/core/config.hpp"
#include "vitcc/kernels/gemm.hpp"
#include "vitcc/kernels/ref/gemm.hpp"
#include "vitcc/kernels/ref/window_attention.hpp"

namespace vitcc::kernels {

namespace detail {
inline float attn_bias_value(const float* b, std::size_t i) noexcept { return b[i]; }
inline float attn_bias_value(const std::uint16_t* b, std::size_t i) noexcept { return from_bf16(b[i]); }
}  // namespace detail

// The [n, n] bias of a win x win window (n = win * win, token y * win + x) from its relative-position
// table [win * win]: out[i][j] = table[|yi - yj| * win + |xi - xj|] (timm EfficientViT's
// attention_biases[:, attention_bias_idxs], whose offsets are numbered in that order).
inline void expand_relative_bias(const float* table, std::size_t win, float* out) noexcept {
  const std::size_t n = win * win;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      const std::size_t yi = i / win, xi = i % win, yj = j / win, xj = j % win;
      out[i * n + j] = table[(yi > yj ? yi - yj : yj - yi) * win + (xi > xj ? xi - xj : xj - xi)];
    }
}

constexpr std::size_t window_attention_scratch_floats(std::size_t n, std::size_t kd) noexcept {
  return (n + 16) / 16 * 16 * (kd + 1);
}

// Query rows [i0, i1) of the window (all n keys); each row is computed the same way whichever range
// it is in, so a window can be split over workers.
template <class Arch, class BT>
void window_attention_rows(std::size_t i0, std::size_t i1, std::size_t n, std::size_t kd, std::size_t vd, float scale,
                           const float* q, std::size_t ldq, const float* k, std::size_t ldk, const float* v,
                           std::size_t ldv, const BT* bias, float* out, std::size_t ldo, float* scratch) noexcept {
  if constexpr (is_scalar_arch<Arch>) {
    // fp32 (see gemm.hpp), row by row; the output row accumulates v's rows (contiguous).
    float* s = scratch;  // [n] scores, then weights
    for (std::size_t i = i0; i < i1; ++i) {
      const float* qi = q + i * ldq;
      float mx = -INFINITY;
      for (std::size_t j = 0; j < n; ++j) {
        float dot = 0.0f;
        for (std::size_t e = 0; e < kd; ++e) dot = fp::madd(qi[e], k[j * ldk + e], dot);
        s[j] = fp::madd(dot, scale, bias ? detail::attn_bias_value(bias, i * n + j) : 0.0f);
        mx = s[j] > mx ? s[j] : mx;
      }
      float sum = 0.0f;
      for (std::size_t j = 0; j < n; ++j) {
        s[j] = std::exp(s[j] - mx);
        sum += s[j];
      }
      float* oi = out + i * ldo;
      for (std::size_t e = 0; e < vd; ++e) oi[e] = 0.0f;
      for (std::size_t j = 0; j < n; ++j)
        for (std::size_t e = 0; e < vd; ++e) oi[e] = fp::madd(s[j], v[j * ldv + e], oi[e]);
      const float inv = 1.0f / sum;
      for (std::size_t e = 0; e < vd; ++e) oi[e] *= inv;
    }
  } else {
#if !VITCC_DISABLE_SIMD
    using B = xsimd::batch<float, Arch>;
    constexpr std::size_t W = B::size;
    const std::size_t np = (n + W - 1) / W * W;  // keys padded to whole batches (<= scratch row)
    float* kt = scratch;                          // [kd, np]: K transposed, zero-padded
    float* s = scratch + kd * np;                 // [np]: one row of scores / weights
    for (std::size_t e = 0; e < kd; ++e) {
      for (std::size_t j = 0; j < n; ++j) kt[e * np + j] = k[j * ldk + e];
      for (std::size_t j = n; j < np; ++j) kt[e * np + j] = 0.0f;
    }
    const std::size_t vbody = vd / W * W;
    for (std::size_t i = i0; i < i1; ++i) {
      const float* qi = q + i * ldq;
      for (std::size_t j0 = 0; j0 < np; j0 += W) {
        B acc(0.0f);
        for (std::size_t e = 0; e < kd; ++e) acc = detail::fmadd<Arch>(B(qi[e]), B::load_unaligned(kt + e * np + j0), acc);
        (acc * B(scale)).store_unaligned(s + j0);
      }
      float mx = -INFINITY;
      for (std::size_t j = 0; j < n; ++j) {
        if (bias) s[j] += detail::attn_bias_value(bias, i * n + j);
        mx = s[j] > mx ? s[j] : mx;
      }
      float sum = 0.0f;
      for (std::size_t j = 0; j < n; ++j) {
        s[j] = std::exp(s[j] - mx);
        sum += s[j];
      }
      const float inv = 1.0f / sum;
      float* oi = out + i * ldo;
      for (std::size_t e = 0; e < vbody; e += W) {
        B acc(0.0f);
        for (std::size_t j = 0; j < n; ++j) acc = detail::fmadd<Arch>(B(s[j]), B::load_unaligned(v + j * ldv + e), acc);
        (acc * B(inv)).store_unaligned(oi + e);
      }
      for (std::size_t e = vbody; e < vd; ++e) {
        float acc = 0.0f;
        for (std::size_t j = 0; j < n; ++j) acc = fp::madd(s[j], v[j * ldv + e], acc);
        oi[e] = acc * inv;
      }
    }
#endif
  }
}

template <class Arch, class BT>
void window_attention(std::size_t n, std::size_t kd, std::size_t vd, float scale, const float* q, std::size_t ldq,
                      const float* k, std::size_t ldk, const float* v, std::size_t ldv, const BT* bias, float* out,
                      std::size_t ldo, float* scratch) noexcept {
  window_attention_rows<Arch>(0, n, n, kd, vd, scale, q, ldq, k, ldk, v, ldv, bias, out, ldo, scratch);
}

}  // namespace vitcc::kernels
