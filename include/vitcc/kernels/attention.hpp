// Fused multi-head self-attention for one image, flash-attention style: the t x t score matrix is
// never formed, not even for one head.
//
// Contract
//   qkv: [t, 3d] row-major (ld_qkv), d = heads * head_dim, as produced by the fused qkv Linear:
//        q of head h at columns h*head_dim.., k at d + h*head_dim.., v at 2d + h*head_dim...
//   out: [t, d] row-major (ld_out); head h is written to columns h*head_dim...
//        out_h = softmax(scale * q_h k_h^T) v_h.
//   scratch: 64-byte aligned, attention_scratch_floats(t, head_dim, P) floats (P the model's precision;
//            the threaded overload: attention_scratch_floats(t, head_dim, heads, workers, P)).
//            Any t and head_dim >= 1.
//
// Algorithm, per head:
//   1. Pack the head once: K_h^T * scale in the GEMM's packed-B layout (16-key panels of head_dim rows)
//      and V_h in the same layout (16-column panels of t rows), both zero-padded. Folding the scale
//      into K costs nothing per score.
//   2. For each block of attention_block_q queries, walk the keys in blocks of attention_block_k:
//        S = Q_blk K_blk^T                   (gemm microkernel, S in scratch: block_q x block_k)
//        m_new = max(m, rowmax S); P = exp(S - m_new); l = l * exp(m - m_new) + rowsum P
//        O = O * exp(m - m_new) + P V_blk          (gemm microkernel, O accumulated in `out` itself)
//      then O /= l. This is the online softmax: only a block of scores is live at any time.
// Both products reuse the GEMM microkernel, so attention gets its register tiling for free.
//
// int8 models (attention<Arch, Precision::int8>): the scores S = scale * Q K^T are the int8 GEMM
// (gemm_q8.hpp) on per-token quantised q and k rows: q_i as the GEMM's A (sa_i = max|q_i| / 127),
// k_j as a packed int8 B column (sk_j = max|k_j| / 127, the softmax scale folded into it), int32
// dot products, S_ij = float(dot) * (scale * sk_j * sa_i). P V stays float32, or bfloat16 with
// VITCC_BF16_PV (vdpbf16ps; the project's CMake build turns it on where a configure-time probe
// measures vdpbf16ps at >= 1.5x the fp32 FMA rate). Why (docs/PRECISION.md,
// tools/export/quant_sim.py): on ViT-S with random weights, int8 q.k^T moved the output's cosine to
// the fp32 model from 0.999123 (int8 Linear layers only) to 0.999114, while int8 P (per-row
// scales; small probabilities round to zero) took it to 0.998588, under the 0.999 bound; bf16 P V
// keeps the accuracy (0.999143), and vdpbf16ps runs at ~2x the fp32 FMA on AMD Zen 4 and Zen 5 but
// at half rate on the Intel Xeon with AMX. Every path (scalar included) computes the same scores: the int32 sums are exact
// and the float epilogue is the same two products on every path.
//
// Threading: the unit of work is (head, query block). Given the packed K/V of its head
// (detail::attention_pack_head, attention_packed_kv_floats, shareable read-only by every query block of
// the head) and its own attention_block_scratch_floats of scratch, detail::attention_query_block touches
// nothing but its own rows of out, so units can run on any thread in any order.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "vitcc/core/arch.hpp"
#include "vitcc/core/config.hpp"
#include "vitcc/core/executor.hpp"
#include "vitcc/core/fp.hpp"
#include "vitcc/core/precision.hpp"
#include "vitcc/kernels/gemm.hpp"
#include "vitcc/kernels/gemm_q8.hpp"
#include "vitcc/kernels/ref/attention.hpp"

namespace vitcc::kernels {

// Queries per unit of work: a multiple of every microkernel height (8, 6, 3) so only the last block
// of a sequence runs a partial row tile.
inline constexpr std::size_t attention_block_q = 48;
// Keys per online-softmax step. 256 covers a whole 224-px ViT sequence (t = 197) in one step, so the
// common case never rescales; the score block (48 x 256 floats = 48 KB) is written, exponentiated and
// read back while still in L1/L2. Measured on Zen 5 against 128: ~7% faster at t = 197, ~3% at 1370.
inline constexpr std::size_t attention_block_k = 256;

namespace detail {
constexpr std::size_t round_up_16(std::size_t x) noexcept { return (x + 15) / 16 * 16; }
}  // namespace detail

// The int8 scores' operands of one head, in bytes: Q_h quantised per row (q8_scratch_bytes: rows,
// then scales), K_h as a packed int8 B (gemm_b16_k4, t columns), then its scales and column sums.
constexpr std::size_t attention_q8_qk_bytes(std::size_t t, std::size_t head_dim) noexcept {
  return q8_scratch_bytes(t, head_dim) + packed_b_q8_elements(head_dim, t) + 2 * q8_padded_n(t) * 4;
}
constexpr std::size_t attention_q8_qk_floats(std::size_t t, std::size_t head_dim) noexcept {
  return (attention_q8_qk_bytes(t, head_dim) + alignment - 1) / alignment * alignment / sizeof(float);
}

// Packed K_h^T and V_h of one head (int8: the int8 Q_h and K_h, then V_h); a multiple of 16 floats,
// so what follows stays 64-byte aligned.
constexpr std::size_t attention_packed_kv_floats(std::size_t t, std::size_t head_dim,
                                                 Precision p = Precision::fp32) noexcept {
  return (p == Precision::int8 ? attention_q8_qk_floats(t, head_dim) : packed_b_floats(head_dim, t)) +
         packed_b_floats(t, head_dim);
}

// Per (head, query block) working set: the score block, then the running max and running sum.
constexpr std::size_t attention_block_scratch_floats() noexcept {
  return attention_block_q * attention_block_k + 2 * attention_block_q;
}

// The SIMD kernel needs the packed head plus one block; the scalar path one row of t scores (int8:
// after the head's int8 Q and K).
constexpr std::size_t attention_scratch_floats(std::size_t t, std::size_t head_dim,
                                               Precision p = Precision::fp32) noexcept {
  const std::size_t simd = attention_packed_kv_floats(t, head_dim, p) + attention_block_scratch_floats();
  const std::size_t scalar = (p == Precision::int8 ? attention_q8_qk_floats(t, head_dim) : 0) + t;
  return simd > scalar ? simd : scalar;
}

namespace detail {
// Where the int8 operands of one head sit in its pack (attention_q8_qk_bytes).
struct AttentionQ8 {
  const std::uint8_t* q;  // t rows of q8_kp(head_dim) bytes (VNNI: + 128)
  const float* sq;        // t
  Q8Weight k;             // K_h as t packed int8 columns, scales include the softmax scale
};
inline AttentionQ8 attention_q8_view(const void* pack, std::size_t t, std::size_t head_dim) noexcept {
  const auto* base = static_cast<const std::uint8_t*>(pack);
  const Q8A qa = q8_a(pack, t, head_dim);
  const std::uint8_t* kq = base + q8_scratch_bytes(t, head_dim);
  const auto* kscale = reinterpret_cast<const float*>(kq + packed_b_q8_elements(head_dim, t));
  const auto* kcolsum = reinterpret_cast<const std::int32_t*>(kscale + q8_padded_n(t));
  return {qa.q, qa.sa, Q8Weight{reinterpret_cast<const std::int8_t*>(kq), kscale, kcolsum}};
}

// Quantises Q_h (the GEMM's own A quantisation) and K_h (per key, into packed B columns) of head h.
// K: one max per key, its values quantised a vector at a time, then written into the panel by quads.
template <class Arch>
void attention_pack_q8(std::size_t t, std::size_t heads, std::size_t head_dim, float scale, const float* qkv,
                       std::size_t ld_qkv, std::size_t h, void* pack) noexcept {
  const std::size_t d = heads * head_dim, kp = q8_kp(head_dim), tp = q8_padded_n(t);
  q8_quantize_rows<Arch>(0, t, t, head_dim, qkv + h * head_dim, ld_qkv, pack);
  auto* kq = static_cast<std::int8_t*>(pack) + q8_scratch_bytes(t, head_dim);
  auto* kscale = reinterpret_cast<float*>(kq + packed_b_q8_elements(head_dim, t));
  auto* kcolsum = reinterpret_cast<std::int32_t*>(kscale + tp);
  const float* k = qkv + d + h * head_dim;
  // A panel of 16 keys at a time: each key's scale, then its values 64 at a time, quantised a vector
  // at a time into a row of `rows`, whose 4-byte quads are then written out as the panel's 64-byte
  // rows (gemm_b16_k4: quad g of key jj at g * 64 + jj * 4). A word per quad written once, instead
  // of a store per element with its own index arithmetic (ViT-B/16: ~2% of an int8 forward).
  for (std::size_t j0 = 0; j0 < tp; j0 += gemm_nr) {
    std::int8_t* panel = kq + j0 / gemm_nr * kp * gemm_nr;
    float inv[gemm_nr];
    std::int32_t sum[gemm_nr] = {};
    for (std::size_t jj = 0; jj < gemm_nr; ++jj) {
      const std::size_t j = j0 + jj;
      const float* kj = k + (j < t ? j : 0) * ld_qkv;
      const std::size_t valid = j < t ? head_dim : 0;  // padding keys (j >= t) read nothing, are all zero
      float mx = 0.0f;
      std::size_t e = 0;
#if !VITCC_DISABLE_SIMD
      if constexpr (!is_scalar_arch<Arch>) {
        using B = xsimd::batch<float, Arch>;
        B vm(0.0f);
        for (; e + B::size <= valid; e += B::size) vm = xsimd::max(vm, xsimd::abs(B::load_unaligned(kj + e)));
        alignas(VITCC_ALIGNMENT) float lanes[B::size];
        vm.store_aligned(lanes);
        for (float l : lanes) mx = l > mx ? l : mx;
      }
#endif
      for (; e < valid; ++e) {
        const float a = std::fabs(kj[e]);
        mx = a > mx ? a : mx;  // not std::fmax: its NaN rule made it a library call per element
      }
      inv[jj] = q8_inverse_scale(mx);
      kscale[j] = j < t ? mx / 127.0f * scale : 0.0f;
    }
    for (std::size_t e0 = 0; e0 < kp; e0 += 64) {
      const std::size_t ne = kp - e0 < 64 ? kp - e0 : 64;  // a multiple of 4, as e0
      alignas(VITCC_ALIGNMENT) std::int8_t rows[gemm_nr][64];
      for (std::size_t jj = 0; jj < gemm_nr; ++jj) {
        const std::size_t j = j0 + jj;
        const float* kj = k + (j < t ? j : 0) * ld_qkv;
        const std::size_t valid = j < t ? head_dim : 0;
        const std::size_t nvalid = valid > e0 ? (valid - e0 < ne ? valid - e0 : ne) : 0;
        alignas(VITCC_ALIGNMENT) std::int32_t chunk[64];
        std::size_t i = 0;
#if !VITCC_DISABLE_SIMD
        if constexpr (!is_scalar_arch<Arch>) {
          using B = xsimd::batch<float, Arch>;
          for (; i + B::size <= nvalid; i += B::size) {
            B v = xsimd::nearbyint(B::load_unaligned(kj + e0 + i) * B(inv[jj]));
            v = xsimd::min(xsimd::max(v, B(-127.0f)), B(127.0f));
            xsimd::to_int(v).store_aligned(chunk + i);
          }
        }
#endif
        for (; i < 64; ++i) {  // the rest of the chunk too (zero): the loop below has a fixed count
          float v = i < nvalid ? std::nearbyint(kj[e0 + i] * inv[jj]) : 0.0f;
          chunk[i] = static_cast<std::int32_t>(q8_clamp(v));
        }
        std::int32_t s = 0;
        for (i = 0; i < 64; ++i) {  // a fixed count, so vectorised (narrowing and sum)
          rows[jj][i] = static_cast<std::int8_t>(chunk[i]);
          s += chunk[i];
        }
        sum[jj] += s;
      }
      for (std::size_t g = 0; g < ne / 4; ++g) {
        std::int8_t* dst = panel + (e0 / 4 + g) * 4 * gemm_nr;
        for (std::size_t jj = 0; jj < gemm_nr; ++jj) std::memcpy(dst + jj * 4, &rows[jj][4 * g], 4);
      }
    }
    for (std::size_t jj = 0; jj < gemm_nr; ++jj) kcolsum[j0 + jj] = sum[jj];
  }
}

// Whether an int8 model's P.v runs in bfloat16 on Arch (VITCC_BF16_PV, core/config.hpp): P and V are
// rounded to bfloat16 and multiplied with vdpbf16ps (gemm_bf16_avx512_panels), V packed as
// gemm_b16_k2 pairs of keys.
template <class Arch, Precision P>
constexpr bool attention_pv_bf16() noexcept {
#if VITCC_BF16_AVX512 && VITCC_BF16_PV
  return P == Precision::int8 && std::is_base_of_v<xsimd::avx512f, Arch>;
#else
  return false;
#endif
}

// The scores of queries i0 .. i0+nq-1 against keys j0 .. j0+nk-1 (j0 a multiple of 16) from the
// head's int8 operands, into s (row stride lds).
template <class Arch>
void attention_scores_q8(const AttentionQ8& a, std::size_t head_dim, std::size_t i0, std::size_t nq, std::size_t j0,
                         std::size_t nk, float* s, std::size_t lds) noexcept {
  const std::size_t kp = q8_kp(head_dim);
  Q8Weight kw = a.k;
  kw.w += j0 / gemm_nr * kp * gemm_nr;
  kw.scale += j0;
  kw.colsum += j0;
  q8_panels<Arch>(nq, nk, kp, a.q + i0 * kp, a.sq + i0, kw, s, lds, GemmEpilogue{});
}
}  // namespace detail

namespace detail {

// The scalar path (fp32; see gemm.hpp): queries q0 .. q0+nq-1 of head h, one row at a time. scores:
// t floats. Each row: its scores (dot products of q_i with every k_j, scaled), their softmax, and
// sum_j p_j v_j accumulated in the output row itself, v read row by row (contiguous) rather than
// column by column.
// q8: the head's int8 operands (attention_pack_q8) for an int8 model's scores, or null (float32).
template <class Arch>
void attention_rows_scalar(std::size_t t, std::size_t heads, std::size_t head_dim, float scale,
                           const float* qkv, std::size_t ld_qkv, std::size_t h, std::size_t q0, std::size_t nq,
                           float* out, std::size_t ld_out, float* scores, const AttentionQ8* q8 = nullptr) noexcept {
  const std::size_t d = heads * head_dim;
  const float* k = qkv + d + h * head_dim;
  const float* v = qkv + 2 * d + h * head_dim;
  for (std::size_t i = q0; i < q0 + nq; ++i) {
    const float* qi = qkv + i * ld_qkv + h * head_dim;
    float mx = -INFINITY;
    if (q8) {
      attention_scores_q8<Arch>(*q8, head_dim, i, 1, 0, t, scores, t);
      for (std::size_t j = 0; j < t; ++j) mx = scores[j] > mx ? scores[j] : mx;
    }
    for (std::size_t j = 0; j < t && !q8; ++j) {
      const float* kj = k + j * ld_qkv;
      // four partial dot products: independent multiply-adds an in-order core can overlap
      float p[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      const std::size_t body = head_dim / 4 * 4;
      for (std::size_t e = 0; e < body; e += 4)
        for (std::size_t u = 0; u < 4; ++u) p[u] = fp::madd(qi[e + u], kj[e + u], p[u]);
      for (std::size_t e = body; e < head_dim; ++e) p[0] = fp::madd(qi[e], kj[e], p[0]);
      const float s = ((p[0] + p[1]) + (p[2] + p[3])) * scale;
      scores[j] = s;
      mx = s > mx ? s : mx;
    }
    float sum = 0.0f;
    for (std::size_t j = 0; j < t; ++j) {
      scores[j] = std::exp(scores[j] - mx);
      sum += scores[j];
    }
    float* o = out + i * ld_out + h * head_dim;
    for (std::size_t e = 0; e < head_dim; ++e) o[e] = 0.0f;
    for (std::size_t j = 0; j < t; ++j) {
      const float pj = scores[j];
      const float* vj = v + j * ld_qkv;
      for (std::size_t e = 0; e < head_dim; ++e) o[e] = fp::madd(pj, vj[e], o[e]);
    }
    const float inv = 1.0f / sum;
    for (std::size_t e = 0; e < head_dim; ++e) o[e] *= inv;
  }
}

}  // namespace detail

#if !VITCC_DISABLE_SIMD
namespace detail {

// exp(x) for x <= 0 (a score minus its row's running max). Cody-Waite reduction x = n ln2 + r with
// |r| <= ln2 / 2, a degree-6 Taylor polynomial in r (truncation < 1.2e-7 relative), and 2^n written
// straight into the exponent bits: about half the instructions of a general-purpose exp, which matters
// because attention evaluates t^2 of them per head (1.9 M per head at t = 1370).
// x below -87 is clamped there: exp(-87) ~ 1.6e-38 is as good as 0 next to the row's own 1.
template <class Arch>
VITCC_ALWAYS_INLINE xsimd::batch<float, Arch> exp_nonpositive(xsimd::batch<float, Arch> x) noexcept {
  using B = xsimd::batch<float, Arch>;
  using I = xsimd::batch<std::int32_t, Arch>;
  x = xsimd::max(x, B(-87.0f));
  const B n = xsimd::nearbyint(x * B(1.44269504088896341f));
  B r = fmadd<Arch>(n, B(-0.693359375f), x);  // ln2 = 0.693359375 - 2.12194440e-4, the first part exact
  r = fmadd<Arch>(n, B(2.12194440e-4f), r);
  B p = B(1.0f / 720.0f);
  p = fmadd<Arch>(p, r, B(1.0f / 120.0f));
  p = fmadd<Arch>(p, r, B(1.0f / 24.0f));
  p = fmadd<Arch>(p, r, B(1.0f / 6.0f));
  p = fmadd<Arch>(p, r, B(0.5f));
  p = fmadd<Arch>(p, r, B(1.0f));
  p = fmadd<Arch>(p, r, B(1.0f));
  const I e = (xsimd::to_int(n) + I(127)) << 23;
  return p * xsimd::bitwise_cast<B>(e);
}

#if defined(__AVX512F__)
// r[i][j] -> r[j][i] for 16 rows of 16 floats: pairs of rows interleaved (unpack ps), then quads
// (unpack pd): u[4b + m] holds, in 128-bit lane L, column 4L + m of rows 4b .. 4b+3; two rounds of
// 128-bit lane shuffles gather each column's four quads.
VITCC_ALWAYS_INLINE void transpose16x16(__m512 r[16]) noexcept {
  __m512 t[16], u[16];
  VITCC_UNROLL
  for (std::size_t i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  VITCC_UNROLL
  for (std::size_t b = 0; b < 4; ++b) {
    const __m512d t0 = _mm512_castps_pd(t[4 * b]), t1 = _mm512_castps_pd(t[4 * b + 1]);
    const __m512d t2 = _mm512_castps_pd(t[4 * b + 2]), t3 = _mm512_castps_pd(t[4 * b + 3]);
    u[4 * b + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    u[4 * b + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    u[4 * b + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    u[4 * b + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  VITCC_UNROLL
  for (std::size_t m = 0; m < 4; ++m) {
    const __m512 x0 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x88), x1 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xdd);
    const __m512 y0 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x88), y1 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xdd);
    r[m] = _mm512_shuffle_f32x4(x0, y0, 0x88);
    r[4 + m] = _mm512_shuffle_f32x4(x1, y1, 0x88);
    r[8 + m] = _mm512_shuffle_f32x4(x0, y0, 0xdd);
    r[12 + m] = _mm512_shuffle_f32x4(x1, y1, 0xdd);
  }
}
#endif

// Step 1: packed = [K_h^T * scale as packed B (head_dim x t) | V_h as packed B (t x head_dim)].
// Data movement only, t * head_dim per head: plain scalar code, but for K on AVX-512 (an in-register
// transpose of 16 keys x 16 dimensions; the scalar stores, 16 floats apart, were ~10% of an attention).
template <class Arch, Precision P = Precision::fp32>
void attention_pack_head(std::size_t t, std::size_t heads, std::size_t head_dim, float scale,
                         const float* qkv, std::size_t ld_qkv, std::size_t h, float* packed) noexcept {
  const std::size_t d = heads * head_dim;
  const float* k = qkv + d + h * head_dim;
  const float* v = qkv + 2 * d + h * head_dim;
  float* pk = packed;
  float* pv = packed + (P == Precision::int8 ? attention_q8_qk_floats(t, head_dim) : packed_b_floats(head_dim, t));
  if constexpr (P == Precision::int8) attention_pack_q8<Arch>(t, heads, head_dim, scale, qkv, ld_qkv, h, pk);
  for (std::size_t j0 = 0; j0 < t && P != Precision::int8; j0 += gemm_nr) {
    float* dst = pk + j0 * head_dim;  // panel j0 / 16 starts at (j0 / 16) * head_dim * 16
    std::size_t e0 = 0;  // the dimensions below e0 are packed
#if defined(__AVX512F__)
    if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
      // 16 keys x 16 dimensions at a time: 16 row loads, an in-register transpose, 16 panel-row stores
      // (the scalar loop below stores one float per key and dimension, 16 floats apart: it was ~10% of
      // a ViT-S attention). The same products krow[e] * scale, so the same bits.
      static_assert(gemm_nr == 16, "a panel row of 16 keys is one 512-bit vector");
      const __m512 vscale = _mm512_set1_ps(scale);
      for (; e0 + 16 <= head_dim; e0 += 16) {
        __m512 r[16];
        VITCC_UNROLL
        for (std::size_t jj = 0; jj < 16; ++jj)
          r[jj] = j0 + jj < t ? _mm512_mul_ps(_mm512_loadu_ps(k + (j0 + jj) * ld_qkv + e0), vscale) : _mm512_setzero_ps();
        detail::transpose16x16(r);
        VITCC_UNROLL
        for (std::size_t e = 0; e < 16; ++e) _mm512_storeu_ps(dst + (e0 + e) * gemm_nr, r[e]);
      }
    }
#endif
    for (std::size_t jj = 0; jj < gemm_nr; ++jj) {
      if (j0 + jj < t) {
        const float* krow = k + (j0 + jj) * ld_qkv;
        for (std::size_t e = e0; e < head_dim; ++e) dst[e * gemm_nr + jj] = krow[e] * scale;
      } else {
        for (std::size_t e = e0; e < head_dim; ++e) dst[e * gemm_nr + jj] = 0.0f;
      }
    }
  }
  if constexpr (attention_pv_bf16<Arch, P>()) {
    // V_h as bfloat16 pairs of keys (gemm_b16_k2 with K = t keys rounded up to even, zero padded):
    // key j, column c of panel p at p * tp2 * 16 + (j / 2) * 32 + c * 2 + j % 2. Half the floats of
    // the float32 pack, so it fits where that goes.
    auto* pv16 = reinterpret_cast<std::uint16_t*>(pv);
    const std::size_t tp2 = (t + 1) / 2 * 2;
#if VITCC_BF16_AVX512
    // A pair of keys' 16 columns is one 64-byte row of the panel: 16 words, key j in the low half of
    // each. Rounded as to_bf16 (nearest even, a NaN stays a quiet NaN), a vector at a time.
    static_assert(gemm_nr == 16, "a pair of keys' panel row is one 512-bit vector");
    const auto round16 = [](__m512 x) noexcept {
      const __m512i bits = _mm512_castps_si512(x);
      const __m512i hi = _mm512_srli_epi32(bits, 16);
      const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), _mm512_and_si512(hi, _mm512_set1_epi32(1)));
      const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(bits, bias), 16);
      return _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
    };
    for (std::size_t e0 = 0; e0 < head_dim; e0 += gemm_nr) {
      std::uint16_t* dst = pv16 + e0 * tp2;
      const std::size_t cols = head_dim - e0 < gemm_nr ? head_dim - e0 : gemm_nr;
      const __mmask16 m = static_cast<__mmask16>((1u << cols) - 1u);
      for (std::size_t j = 0; j < tp2; j += 2) {
        const __m512i lo = round16(_mm512_maskz_loadu_ps(m, v + j * ld_qkv + e0));
        const __m512i hi = j + 1 < t ? round16(_mm512_maskz_loadu_ps(m, v + (j + 1) * ld_qkv + e0)) : _mm512_setzero_si512();
        _mm512_storeu_si512(dst + (j / 2) * 2 * gemm_nr, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
      }
    }
#else
    for (std::size_t e0 = 0; e0 < head_dim; e0 += gemm_nr) {
      std::uint16_t* dst = pv16 + e0 * tp2;
      const std::size_t cols = head_dim - e0 < gemm_nr ? head_dim - e0 : gemm_nr;
      for (std::size_t j = 0; j < tp2; ++j) {
        std::uint16_t* row = dst + (j / 2) * 2 * gemm_nr + j % 2;
        const float* vrow = j < t ? v + j * ld_qkv + e0 : nullptr;
        for (std::size_t jj = 0; jj < gemm_nr; ++jj) row[jj * 2] = vrow && jj < cols ? to_bf16(vrow[jj]) : std::uint16_t(0);
      }
    }
#endif
    return;
  }
  for (std::size_t e0 = 0; e0 < head_dim; e0 += gemm_nr) {
    float* dst = pv + e0 * t;  // panel e0 / 16 starts at (e0 / 16) * t * 16
    const std::size_t cols = head_dim - e0 < gemm_nr ? head_dim - e0 : gemm_nr;
    for (std::size_t j = 0; j < t; ++j) {
      const float* vrow = v + j * ld_qkv + e0;
      if (cols == gemm_nr) {  // a whole panel row (every head_dim a multiple of 16): one 64-byte copy
        std::memcpy(dst + j * gemm_nr, vrow, gemm_nr * sizeof(float));
        continue;
      }
      for (std::size_t jj = 0; jj < gemm_nr; ++jj) dst[j * gemm_nr + jj] = jj < cols ? vrow[jj] : 0.0f;
    }
  }
}

// O (+)= P V_blk for one key block: P nq x nk (row stride lds), V_blk packed panels (head_dim
// columns, panel_stride floats apart). With 512-bit vectors and head_dim a multiple of 64, a tile of 6
// rows x 64 columns (24 accumulators) covers four panels: gemm_panels' 8 x 48 tiles would leave a
// 16-column tile of 8 accumulators for the last panel of a 64-wide head. (12 x 32 for head_dim 32
// measured no faster than gemm_panels' 8 x 32, AMD Zen 4.) Each element still sums its k in order,
// so the bits are gemm_panels'.
template <class Arch>
void attention_pv(std::size_t nq, std::size_t head_dim, std::size_t nk, const float* p, std::size_t lds,
                  const float* pv, std::size_t panel_stride, float* o, std::size_t ld_out, const GemmEpilogue& ep) noexcept {
  if constexpr (xsimd::batch<float, Arch>::size == 16 && gemm_nr == 16) {
    // MR x NP tiles of 24 accumulators over all of a head's columns.
    auto tiles = [&](auto mr, auto np) VITCC_ALWAYS_INLINE_LAMBDA {
      constexpr std::size_t MR = decltype(mr)::value, NP = decltype(np)::value;
      for (std::size_t c0 = 0; c0 < head_dim; c0 += NP * gemm_nr) {
        const float* b = pv + c0 / gemm_nr * panel_stride;
        for (std::size_t i0 = 0; i0 < nq; i0 += MR) {
          const std::size_t mv = nq - i0 < MR ? nq - i0 : MR;
          const float* add = ep.add ? ep.add + i0 * ep.ld_add + c0 : nullptr;
          gemm_microkernel<Arch, MR, NP, float>(mv, NP * gemm_nr, nk, p + i0 * lds, lds, b, panel_stride,
                                                o + i0 * ld_out + c0, ld_out, nullptr, Activation::none, add, ep.ld_add);
        }
      }
    };
    if (head_dim % 64 == 0) {
      tiles(std::integral_constant<std::size_t, 6>{}, std::integral_constant<std::size_t, 4>{});
      return;
    }
  }
  gemm_panels<Arch>(nq, head_dim, nk, p, lds, pv, panel_stride, o, ld_out, ep);
}

// Step 2 for queries q0 .. q0+nq-1 (nq <= attention_block_q) of head h, given its packed K/V.
// block_scratch: attention_block_scratch_floats(), 64-byte aligned, private to the caller.
template <class Arch, Precision P = Precision::fp32>
void attention_query_block(std::size_t t, std::size_t head_dim, const float* qkv,
                           std::size_t ld_qkv, std::size_t h, const float* packed, std::size_t q0,
                           std::size_t nq, float* out, std::size_t ld_out, float* block_scratch) noexcept {
  using B = xsimd::batch<float, Arch>;
  constexpr std::size_t W = B::size;
  constexpr std::size_t BK = attention_block_k;
  const float* pk = packed;
  const float* pv = packed + (P == Precision::int8 ? attention_q8_qk_floats(t, head_dim) : packed_b_floats(head_dim, t));
  const float* q = qkv + q0 * ld_qkv + h * head_dim;
  float* o = out + q0 * ld_out + h * head_dim;
  float* s = block_scratch;
  float* row_max = s + attention_block_q * BK;
  float* row_sum = row_max + attention_block_q;

  for (std::size_t j0 = 0; j0 < t; j0 += BK) {
    const std::size_t nk = t - j0 < BK ? t - j0 : BK;
    const bool first = j0 == 0;
    // S = (Q * scale) K^T for this key block; j0 is a multiple of 16, so the block starts a panel.
    if constexpr (P == Precision::int8)
      attention_scores_q8<Arch>(attention_q8_view(pk, t, head_dim), head_dim, q0, nq, j0, nk, s, BK);
    else
      gemm_panels<Arch>(nq, nk, head_dim, q, ld_qkv, pk + j0 * head_dim, head_dim * gemm_nr, s, BK, GemmEpilogue{});

    // The last partial vector of each row (nk not a multiple of W) goes through the vector code too,
    // its lanes past nk masked: -inf for the max, 0 after the exponential (the row has BK >= nk
    // rounded up to W floats, so the load stays inside it). Scalar std::exp on those few lanes was ~1%
    // of a ViT-S attention.
    const std::size_t body = nk / W * W;
    alignas(VITCC_ALIGNMENT) float lane_index[W];
    for (std::size_t l = 0; l < W; ++l) lane_index[l] = static_cast<float>(l);
    const auto tail_lanes = B::load_aligned(lane_index) < B(static_cast<float>(nk - body));
    static_assert(BK % W == 0, "a row of the score block holds whole vectors");
    for (std::size_t i = 0; i < nq; ++i) {
      float* si = s + i * BK;
      // Four independent max and sum chains: a single chain would wait on the latency of every step.
      B vmax(-INFINITY), m1(-INFINITY), m2(-INFINITY), m3(-INFINITY);
      std::size_t j = 0;
      for (; j + 4 * W <= body; j += 4 * W) {
        vmax = xsimd::max(vmax, B::load_aligned(si + j));
        m1 = xsimd::max(m1, B::load_aligned(si + j + W));
        m2 = xsimd::max(m2, B::load_aligned(si + j + 2 * W));
        m3 = xsimd::max(m3, B::load_aligned(si + j + 3 * W));
      }
      for (; j < body; j += W) vmax = xsimd::max(vmax, B::load_aligned(si + j));
      if (body < nk) vmax = xsimd::max(vmax, xsimd::select(tail_lanes, B::load_aligned(si + body), B(-INFINITY)));
      vmax = xsimd::max(xsimd::max(vmax, m1), xsimd::max(m2, m3));
      alignas(VITCC_ALIGNMENT) float lanes[W];
      vmax.store_aligned(lanes);
      float blk_max = -INFINITY;
      for (std::size_t l = 0; l < W; ++l) blk_max = lanes[l] > blk_max ? lanes[l] : blk_max;

      const float m_new = first || blk_max > row_max[i] ? blk_max : row_max[i];
      const B vm(m_new);
      B vsum(0.0f), s1(0.0f), s2(0.0f), s3(0.0f);
      for (j = 0; j + 4 * W <= body; j += 4 * W) {
        const B p0 = exp_nonpositive<Arch>(B::load_aligned(si + j) - vm);
        const B p1 = exp_nonpositive<Arch>(B::load_aligned(si + j + W) - vm);
        const B p2 = exp_nonpositive<Arch>(B::load_aligned(si + j + 2 * W) - vm);
        const B p3 = exp_nonpositive<Arch>(B::load_aligned(si + j + 3 * W) - vm);
        p0.store_aligned(si + j);
        p1.store_aligned(si + j + W);
        p2.store_aligned(si + j + 2 * W);
        p3.store_aligned(si + j + 3 * W);
        vsum += p0;
        s1 += p1;
        s2 += p2;
        s3 += p3;
      }
      for (; j < body; j += W) {
        const B p = exp_nonpositive<Arch>(B::load_aligned(si + j) - vm);
        p.store_aligned(si + j);
        vsum += p;
      }
      if (body < nk) {
        const B p = xsimd::select(tail_lanes, exp_nonpositive<Arch>(B::load_aligned(si + body) - vm), B(0.0f));
        p.store_aligned(si + body);
        s1 += p;
      }
      const float blk_sum = xsimd::hadd((vsum + s1) + (s2 + s3));

      if (first) {
        row_sum[i] = blk_sum;
      } else {
        // Rescale what earlier key blocks accumulated, unless the max did not move (the common case
        // once the block holding the largest score has been seen).
        float alpha = 1.0f;
        if (m_new != row_max[i]) {
          alpha = std::exp(row_max[i] - m_new);
          float* oi = o + i * ld_out;
          const std::size_t obody = head_dim / W * W;
          const B va(alpha);
          std::size_t e = 0;
          for (; e < obody; e += W) (B::load_unaligned(oi + e) * va).store_unaligned(oi + e);
          for (; e < head_dim; ++e) oi[e] *= alpha;
        }
        row_sum[i] = fp::madd(row_sum[i], alpha, blk_sum);
      }
      row_max[i] = m_new;
    }

    // O (+)= P V_blk: the first block writes O, later ones add to it in place (add aliases c).
    GemmEpilogue ep;
    if (!first) {
      ep.add = o;
      ep.ld_add = ld_out;
    }
#if VITCC_BF16_AVX512
    if constexpr (attention_pv_bf16<Arch, P>()) {
      // Pair row j0 / 2 of the bfloat16 V (j0 is even); an odd last block reads the zero pad key.
      gemm_bf16_avx512_panels(nq, head_dim, nk, s, BK, reinterpret_cast<const std::uint16_t*>(pv) + j0 * gemm_nr,
                              (t + 1) / 2 * 2 * gemm_nr, o, ld_out, ep);
      continue;
    }
#endif
    attention_pv<Arch>(nq, head_dim, nk, s, BK, pv + j0 * gemm_nr, t * gemm_nr, o, ld_out, ep);
  }

  for (std::size_t i = 0; i < nq; ++i) {
    float* oi = o + i * ld_out;
    const float inv = 1.0f / row_sum[i];
    const B vinv(inv);
    const std::size_t obody = head_dim / W * W;
    std::size_t e = 0;
    for (; e < obody; e += W) (B::load_unaligned(oi + e) * vinv).store_unaligned(oi + e);
    for (; e < head_dim; ++e) oi[e] *= inv;
  }
}

}  // namespace detail
#endif

// Scratch of the parallel attention for `workers` workers: every head packed up front (the packs are
// shared read-only by the query blocks of their head), then one block scratch per worker. One worker
// needs only the serial scratch above.
constexpr std::size_t attention_scratch_floats(std::size_t t, std::size_t head_dim, std::size_t heads,
                                               std::size_t workers, Precision p = Precision::fp32) noexcept {
  if (workers <= 1) return attention_scratch_floats(t, head_dim, p);
  const std::size_t simd = heads * attention_packed_kv_floats(t, head_dim, p) + workers * attention_block_scratch_floats();
  const std::size_t scalar = (p == Precision::int8 ? heads * attention_q8_qk_floats(t, head_dim) : 0) + workers * t;
  return simd > scalar ? simd : scalar;
}

// P: the model's precision; int8 computes the scores from int8 q and k (see the top of this file).
template <class Arch, Precision P = Precision::fp32>
void attention(std::size_t t, std::size_t heads, std::size_t head_dim, float scale, const float* qkv,
               std::size_t ld_qkv, float* out, std::size_t ld_out, float* scratch) noexcept {
  if constexpr (is_scalar_arch<Arch>) {
    for (std::size_t h = 0; h < heads; ++h) {
      if constexpr (P == Precision::int8) {
        detail::attention_pack_q8<Arch>(t, heads, head_dim, scale, qkv, ld_qkv, h, scratch);
        const detail::AttentionQ8 q8 = detail::attention_q8_view(scratch, t, head_dim);
        detail::attention_rows_scalar<Arch>(t, heads, head_dim, scale, qkv, ld_qkv, h, 0, t, out, ld_out,
                                            scratch + attention_q8_qk_floats(t, head_dim), &q8);
      } else {
        detail::attention_rows_scalar<Arch>(t, heads, head_dim, scale, qkv, ld_qkv, h, 0, t, out, ld_out, scratch);
      }
    }
  } else {
#if !VITCC_DISABLE_SIMD
    float* packed = scratch;
    float* block = scratch + attention_packed_kv_floats(t, head_dim, P);
    for (std::size_t h = 0; h < heads; ++h) {
      detail::attention_pack_head<Arch, P>(t, heads, head_dim, scale, qkv, ld_qkv, h, packed);
      for (std::size_t q0 = 0; q0 < t; q0 += attention_block_q) {
        const std::size_t nq = t - q0 < attention_block_q ? t - q0 : attention_block_q;
        detail::attention_query_block<Arch, P>(t, head_dim, qkv, ld_qkv, h, packed, q0, nq, out, ld_out, block);
      }
    }
#endif
  }
}

// Parallel attention: tasks are heads (packing), then (head, query block) pairs; each query block is
// computed exactly as in the serial kernel, so the result is the same bit for bit.
// scratch: attention_scratch_floats(t, head_dim, heads, worker_count(ex), P) floats, 64-byte aligned.
template <class Arch, Precision P = Precision::fp32>
void attention(std::size_t t, std::size_t heads, std::size_t head_dim, float scale, const float* qkv,
               std::size_t ld_qkv, float* out, std::size_t ld_out, float* scratch, const Executor* ex) noexcept {
  if (worker_count(ex) == 1) {
    attention<Arch, P>(t, heads, head_dim, scale, qkv, ld_qkv, out, ld_out, scratch);
    return;
  }
  if constexpr (is_scalar_arch<Arch>) {
    // The scalar path works row by row with one row of scores: tasks are (head, query row) blocks
    // (int8: after every head's int8 Q and K, packed first, one task per head).
    const std::size_t q8 = P == Precision::int8 ? attention_q8_qk_floats(t, head_dim) : 0;
    if constexpr (P == Precision::int8) {
      parallel_for(ex, heads, [&](std::size_t h, std::size_t) {
        detail::attention_pack_q8<Arch>(t, heads, head_dim, scale, qkv, ld_qkv, h, scratch + h * q8);
      });
    }
    float* rows = scratch + heads * q8;
    const std::size_t blocks = (t + attention_block_q - 1) / attention_block_q;
    parallel_for(ex, heads * blocks, [&](std::size_t task, std::size_t w) {
      const std::size_t h = task / blocks, q0 = task % blocks * attention_block_q;
      const std::size_t nq = t - q0 < attention_block_q ? t - q0 : attention_block_q;
      if constexpr (P == Precision::int8) {
        const detail::AttentionQ8 view = detail::attention_q8_view(scratch + h * q8, t, head_dim);
        detail::attention_rows_scalar<Arch>(t, heads, head_dim, scale, qkv, ld_qkv, h, q0, nq, out, ld_out,
                                            rows + w * t, &view);
      } else {
        detail::attention_rows_scalar<Arch>(t, heads, head_dim, scale, qkv, ld_qkv, h, q0, nq, out, ld_out,
                                            rows + w * t);
      }
    });
  } else {
#if !VITCC_DISABLE_SIMD
    const std::size_t kv = attention_packed_kv_floats(t, head_dim, P);
    float* blocks_scratch = scratch + heads * kv;
    parallel_for(ex, heads, [&](std::size_t h, std::size_t) {
      detail::attention_pack_head<Arch, P>(t, heads, head_dim, scale, qkv, ld_qkv, h, scratch + h * kv);
    });
    const std::size_t blocks = (t + attention_block_q - 1) / attention_block_q;
    parallel_for(ex, heads * blocks, [&](std::size_t task, std::size_t w) {
      const std::size_t h = task / blocks, q0 = task % blocks * attention_block_q;
      const std::size_t nq = t - q0 < attention_block_q ? t - q0 : attention_block_q;
      detail::attention_query_block<Arch, P>(t, head_dim, qkv, ld_qkv, h, scratch + h * kv, q0, nq, out, ld_out,
                                             blocks_scratch + w * attention_block_scratch_floats());
    });
#endif
  }
}

}  // namespace vitcc::kernels
