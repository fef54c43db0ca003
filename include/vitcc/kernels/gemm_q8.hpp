// int8 GEMM: C = epilogue(diag(sa) * (Aq * Wq) * diag(sw)), the product of an int8 model's Linear
// layers and 1x1 / patch convolutions.
//
// Contract
//   A:  M x K float32 row-major (lda). Quantised here, per row (per token): sa_i = max_k |A_ik| / 127,
//       Aq_ik = round_to_nearest_even(A_ik * (127 / max_k |A_ik|)) in float32 (multiplied by the
//       inverse, not divided by sa_i: the two can differ at ties), in [-127, 127] (all zero for a
//       zero row, or one whose inverse overflows). This is the GEMM's packing of its A operand: A is
//       read once, into q8 scratch.
//   Wq: the [K, N] weight as int8, symmetric per output column (sw_n = max_k |W_kn| / 127, from the
//       packer), in the blob layout gemm_b16_k4: panels of 16 columns, K/4 rows of 16 quads, element
//       (k, n) of panel p at p * Kp * 16 + (k / 4) * 64 + (n % 16) * 4 + k % 4, Kp = K rounded up to 4,
//       zero padding; scale[n] = sw_n and colsum[n] = sum_k Wq_kn, both padded with zeros to whole
//       panels (ceil(N / 16) * 16 entries) so the kernels read them a vector at a time.
//   C:  M x N float32 (ldc). Int32 accumulation (exact: |sum| <= K * 127 * 127 < 2^31 for K < 133,000),
//       then the float32 epilogue of the float32 GEMM: scales, bias, activation, residual add.
//   scratch: q8_scratch_bytes(M, K), 64-byte aligned.
//
// Paths (chosen at compile time from what the target ISA has; kernels/gemm.hpp's structure):
//   AVX512-VNNI  vpdpbusd on zmm: 8 rows x 48 columns per tile, 24 int32 accumulators. vpdpbusd
//                multiplies unsigned by signed bytes, so A is stored as Aq + 128 and the epilogue
//                subtracts 128 * colsum[n] (exact in int32).
//   AVX-VNNI     the same on ymm (also AVX512-VL+VNNI): 6 rows x 16 columns.
//   NEON SMMLA   AArch64 with the int8 matrix-multiply extension (__ARM_FEATURE_MATMUL_INT8, e.g.
//                -march=armv8.6-a or armv8.2-a+i8mm; Neoverse N2/V1, Cortex-A510/A710 and later),
//                preferred over SDOT: smmla multiplies a 2 x 8 block of A by an 8 x 2 block of B into
//                2 x 2 int32. Signed x signed, no correction; 6 rows (3 row pairs) x 16 columns (8
//                column pairs), 24 int32x4 accumulators, un-interleaved into rows for the epilogue.
//                The B blocks are two quad rows of the same gemm_b16_k4 panel zipped as 32-bit lanes.
//   NEON SDOT    AArch64 with the dot-product extension (__ARM_FEATURE_DOTPROD, e.g. -march=armv8.2-a+dotprod
//                or any Cortex-A55/A76 and later): sdot multiplies signed by signed bytes, so A stays
//                signed and no correction is needed; 6 rows x 16 columns, 24 int32x4 accumulators.
//   scalar       everything else (SSE, NEON without dotprod, Cortex-M): 4 x 4 int32 tiles on signed bytes.
// Every path sums the same int32 products exactly; SMMLA and SDOT share one epilogue, so they give
// each other's bits, and the scalar path's with activation none or relu (the SIMD GELU differs in
// the last bits); tests/kernels/test_gemm_q8.cpp asserts both under QEMU's "max" CPU.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "vitcc/core/aligned.hpp"
#include "vitcc/core/arch.hpp"
#include "vitcc/core/config.hpp"
#include "vitcc/core/executor.hpp"
#include "vitcc/kernels/gemm.hpp"

#if !VITCC_DISABLE_SIMD && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#endif
#if !VITCC_DISABLE_SIMD && defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#define VITCC_Q8_SDOT 1
#else
#define VITCC_Q8_SDOT 0
#endif
#if !VITCC_DISABLE_SIMD && defined(__aarch64__) && defined(__ARM_FEATURE_MATMUL_INT8)
#define VITCC_Q8_SMMLA 1
#else
#define VITCC_Q8_SMMLA 0
#endif
#if VITCC_Q8_SDOT || VITCC_Q8_SMMLA
#include <arm_neon.h>
#endif

namespace vitcc::kernels {

// K rounded up to the quads of the layout: the row stride of quantised A, and of a panel in quads.
constexpr std::size_t q8_kp(std::size_t k) noexcept { return (k + 3) / 4 * 4; }
// Elements of a packed int8 weight, and of its padded scale and colsum vectors.
constexpr std::size_t packed_b_q8_elements(std::size_t k, std::size_t n) noexcept {
  return (n + gemm_nr - 1) / gemm_nr * gemm_nr * q8_kp(k);
}
constexpr std::size_t q8_padded_n(std::size_t n) noexcept { return (n + gemm_nr - 1) / gemm_nr * gemm_nr; }

// Scratch of one int8 GEMM: the quantised rows of A, then their scales.
constexpr std::size_t q8_scratch_bytes(std::size_t m, std::size_t k) noexcept {
  return (m * q8_kp(k) + alignment - 1) / alignment * alignment + (m * sizeof(float) + alignment - 1) / alignment * alignment;
}

// 127 / max|row|, or 0 when that is not finite (an all-zero row, or a max so small that its inverse
// overflows): such a row quantises to zeros instead of to inf * 0 = NaN.
inline float q8_inverse_scale(float mx) noexcept {
  const float inv = mx > 0.0f ? 127.0f / mx : 0.0f;
  return inv <= 3.4e38f ? inv : 0.0f;
}
// A rounded value clamped to [-127, 127]; NaN (from a NaN input) becomes -127, as the SIMD clamps
// make it, rather than an undefined float-to-int conversion.
inline float q8_clamp(float v) noexcept { return v >= -127.0f ? (v <= 127.0f ? v : 127.0f) : -127.0f; }

// An int8 weight as the kernels read it.
struct Q8Weight {
  const std::int8_t* w = nullptr;        // gemm_b16_k4
  const float* scale = nullptr;          // [q8_padded_n(N)]
  const std::int32_t* colsum = nullptr;  // [q8_padded_n(N)]
};

// Packs a float32 packed B (pack_b's layout) as symmetric per-column int8: fills w, scale, colsum.
inline void pack_b_q8(const float* packed, std::size_t k, std::size_t n, std::int8_t* w, float* scale,
                      std::int32_t* colsum) noexcept {
  const std::size_t kp = q8_kp(k), np = q8_padded_n(n);
  for (std::size_t col = 0; col < np; ++col) {
    const std::size_t p = col / gemm_nr, jj = col % gemm_nr;
    float mx = 0.0f;
    for (std::size_t kk = 0; kk < k; ++kk) mx = std::fmax(mx, std::fabs(packed[p * k * gemm_nr + kk * gemm_nr + jj]));
    const float s = mx / 127.0f, inv = q8_inverse_scale(mx);
    std::int32_t sum = 0;
    for (std::size_t kk = 0; kk < kp; ++kk) {
      const float q = q8_clamp(kk < k ? std::nearbyint(packed[p * k * gemm_nr + kk * gemm_nr + jj] * inv) : 0.0f);
      w[p * kp * gemm_nr + (kk / 4) * 4 * gemm_nr + jj * 4 + kk % 4] = static_cast<std::int8_t>(q);
      sum += static_cast<std::int32_t>(q);
    }
    scale[col] = col < n ? s : 0.0f;
    colsum[col] = sum;
  }
}

namespace detail {

enum class Q8Path { scalar, vnni512, vnni256, sdot, smmla };

template <class Arch>
constexpr Q8Path q8_path() noexcept {
#if !VITCC_DISABLE_SIMD && (defined(__x86_64__) || defined(__i386__))
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
#if defined(__AVX512VNNI__)
    return Q8Path::vnni512;
#endif
  } else if constexpr (std::is_base_of_v<xsimd::avx2, Arch>) {
#if defined(__AVXVNNI__) || (defined(__AVX512VNNI__) && defined(__AVX512VL__))
    return Q8Path::vnni256;
#endif
  }
#endif
#if VITCC_Q8_SMMLA
  if constexpr (std::is_base_of_v<xsimd::neon64, Arch>) return Q8Path::smmla;
#endif
#if VITCC_Q8_SDOT
  if constexpr (std::is_base_of_v<xsimd::neon64, Arch>) return Q8Path::sdot;
#endif
  return Q8Path::scalar;
}

// VNNI multiplies unsigned A bytes by signed W bytes: A is stored as Aq + 128 there.
template <class Arch>
inline constexpr bool q8_unsigned_a = q8_path<Arch>() == Q8Path::vnni512 || q8_path<Arch>() == Q8Path::vnni256;

// Rows [r0, r1) of A quantised into scratch (rows q8_kp(k) bytes apart, the padding zero-valued),
// their scales after the rows.
template <class Arch>
void q8_quantize_rows(std::size_t r0, std::size_t r1, std::size_t m, std::size_t k, const float* a, std::size_t lda,
                      void* scratch) noexcept {
  const std::size_t kp = q8_kp(k);
  auto* q = static_cast<std::uint8_t*>(scratch);
  float* sa = reinterpret_cast<float*>(q + (m * kp + alignment - 1) / alignment * alignment);
  const std::uint8_t offset = q8_unsigned_a<Arch> ? 128 : 0;
  for (std::size_t i = r0; i < r1; ++i) {
    const float* ar = a + i * lda;
    std::uint8_t* qr = q + i * kp;
    float mx = 0.0f;
    std::size_t j = 0;
#if !VITCC_DISABLE_SIMD && (defined(__x86_64__) || defined(__i386__))
    if constexpr (q8_path<Arch>() == Q8Path::vnni512) {
      __m512 m0 = _mm512_setzero_ps();
      for (; j + 16 <= k; j += 16) m0 = _mm512_max_ps(m0, _mm512_abs_ps(_mm512_loadu_ps(ar + j)));
      mx = _mm512_reduce_max_ps(m0);
    } else if constexpr (q8_path<Arch>() == Q8Path::vnni256) {
      const __m256 sign = _mm256_set1_ps(-0.0f);
      __m256 m0 = _mm256_setzero_ps();
      for (; j + 8 <= k; j += 8) m0 = _mm256_max_ps(m0, _mm256_andnot_ps(sign, _mm256_loadu_ps(ar + j)));
      alignas(32) float lanes[8];
      _mm256_store_ps(lanes, m0);
      for (float v : lanes) mx = v > mx ? v : mx;
    }
#endif
    for (; j < k; ++j) mx = std::fmax(mx, std::fabs(ar[j]));
    sa[i] = mx / 127.0f;
    const float inv = q8_inverse_scale(mx);
    j = 0;
#if !VITCC_DISABLE_SIMD && (defined(__x86_64__) || defined(__i386__))
    if constexpr (q8_path<Arch>() == Q8Path::vnni512) {
      // cvtps rounds to nearest even (MXCSR's default); |Aq| <= 127, so + 128 fits a byte unsigned.
      const __m512 vinv = _mm512_set1_ps(inv);
      const __m512i off = _mm512_set1_epi32(128);
      for (; j + 16 <= k; j += 16) {
        const __m512i v = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(ar + j), vinv)), off);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(qr + j), _mm512_cvtusepi32_epi8(v));
      }
    } else if constexpr (q8_path<Arch>() == Q8Path::vnni256) {
      const __m256 vinv = _mm256_set1_ps(inv);
      const __m256i off = _mm256_set1_epi32(128);
      for (; j + 8 <= k; j += 8) {
        const __m256i v = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(ar + j), vinv)), off);
        alignas(32) std::int32_t lanes[8];
        _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), v);
        for (int l = 0; l < 8; ++l) qr[j + std::size_t(l)] = static_cast<std::uint8_t>(lanes[l]);
      }
    }
#endif
    for (; j < k; ++j) {
      const float v = q8_clamp(std::nearbyint(ar[j] * inv));
      qr[j] = static_cast<std::uint8_t>(static_cast<std::int32_t>(v) + offset);
    }
    for (; j < kp; ++j) qr[j] = offset;  // the value 0
  }
}

// The float32 epilogue of one accumulated int32: (acc - corr) * sa * sw + bias -> activation -> + add.
VITCC_ALWAYS_INLINE float q8_dequant(std::int32_t acc, float sa_sw) noexcept { return float(acc) * sa_sw; }

// ---- scalar path: 4 x 4 int32 tiles on signed bytes ----
template <std::size_t MR>
void q8_scalar_tile(std::size_t mv, std::size_t nv, std::size_t kp, const std::int8_t* aq, const float* sa,
                    const std::int8_t* panel, std::size_t j0, const float* sw, float* c, std::size_t ldc,
                    const float* bias, Activation act, const float* add, std::size_t ld_add) noexcept {
  std::int32_t acc[MR][4] = {};
  const std::int8_t* ar[MR];
  for (std::size_t i = 0; i < MR; ++i) ar[i] = aq + (i < mv ? i : mv - 1) * kp;
  for (std::size_t g = 0; g < kp / 4; ++g) {
    const std::int8_t* bq = panel + g * 4 * gemm_nr + j0 * 4;
    for (std::size_t u = 0; u < 4; ++u) {
      const std::int32_t b0 = bq[u], b1 = bq[4 + u], b2 = bq[8 + u], b3 = bq[12 + u];
      VITCC_UNROLL
      for (std::size_t i = 0; i < MR; ++i) {
        const std::int32_t ai = ar[i][4 * g + u];
        acc[i][0] += ai * b0;
        acc[i][1] += ai * b1;
        acc[i][2] += ai * b2;
        acc[i][3] += ai * b3;
      }
    }
  }
  for (std::size_t i = 0; i < mv; ++i)
    for (std::size_t j = 0; j < nv; ++j) {
      float v = q8_dequant(acc[i][j], sa[i] * sw[j]);
      if (bias) v += bias[j];
      v = apply_activation_scalar(v, act);
      if (add) v += add[i * ld_add + j];
      c[i * ldc + j] = v;
    }
}

inline void q8_scalar_panels(std::size_t m, std::size_t n, std::size_t kp, const std::int8_t* aq, const float* sa,
                             const Q8Weight& w, float* c, std::size_t ldc, const GemmEpilogue& ep) noexcept {
  for (std::size_t col0 = 0; col0 < n; col0 += gemm_nr) {
    const std::int8_t* panel = w.w + col0 / gemm_nr * kp * gemm_nr;
    for (std::size_t i0 = 0; i0 < m; i0 += 4) {
      const std::size_t mv = m - i0 < 4 ? m - i0 : 4;
      for (std::size_t j = 0; j < gemm_nr && col0 + j < n; j += 4) {
        const std::size_t col = col0 + j, nv = n - col < 4 ? n - col : 4;
        const float* bias = ep.bias ? ep.bias + col : nullptr;
        const float* add = ep.add ? ep.add + i0 * ep.ld_add + col : nullptr;
        const std::int8_t* at = aq + i0 * kp;
        float* ct = c + i0 * ldc + col;
        switch (mv) {
          case 1: q8_scalar_tile<1>(mv, nv, kp, at, sa + i0, panel, j, w.scale + col, ct, ldc, bias, ep.act, add, ep.ld_add); break;
          case 2: q8_scalar_tile<2>(mv, nv, kp, at, sa + i0, panel, j, w.scale + col, ct, ldc, bias, ep.act, add, ep.ld_add); break;
          case 3: q8_scalar_tile<3>(mv, nv, kp, at, sa + i0, panel, j, w.scale + col, ct, ldc, bias, ep.act, add, ep.ld_add); break;
          default: q8_scalar_tile<4>(mv, nv, kp, at, sa + i0, panel, j, w.scale + col, ct, ldc, bias, ep.act, add, ep.ld_add); break;
        }
      }
    }
  }
}

#if !VITCC_DISABLE_SIMD && (defined(__x86_64__) || defined(__i386__))
// ---- VNNI: MR rows x NP panels, each panel row of 16 columns one zmm (or two ymm) of quads ----
template <class Arch>
struct q8_tile {
  static constexpr bool wide = q8_path<Arch>() == Q8Path::vnni512;
  static constexpr std::size_t lanes = wide ? 16 : 8;     // int32 accumulators per vector
  static constexpr std::size_t pb = gemm_nr / lanes;      // vectors per panel row
  static constexpr std::size_t np = wide ? 3 : 1;
  static constexpr std::size_t mr = wide ? 8 : 6;
};

#if defined(__AVX512VNNI__)
template <std::size_t MR, std::size_t NP>
void q8_vnni512_tile(std::size_t mv, std::size_t nv, std::size_t kp, const std::uint8_t* aq, const float* sa,
                     const std::int8_t* b, std::size_t panel_stride, const float* sw, const std::int32_t* colsum,
                     float* c, std::size_t ldc, const float* bias, Activation act, const float* add,
                     std::size_t ld_add) noexcept {
  using B = xsimd::batch<float, xsimd::avx512f>;
  const std::uint8_t* ar[MR];
  VITCC_UNROLL
  for (std::size_t i = 0; i < MR; ++i) ar[i] = aq + (i < mv ? i : mv - 1) * kp;
  __m512i acc[MR][NP];
  VITCC_UNROLL
  for (std::size_t i = 0; i < MR; ++i) {
    VITCC_UNROLL
    for (std::size_t p = 0; p < NP; ++p) acc[i][p] = _mm512_setzero_si512();
  }
  for (std::size_t g = 0; g < kp / 4; ++g) {
    __m512i bv[NP];
    VITCC_UNROLL
    for (std::size_t p = 0; p < NP; ++p) {
      __builtin_prefetch(b + p * panel_stride + (g + 16) * 64);
      bv[p] = _mm512_loadu_si512(b + p * panel_stride + g * 64);
    }
    VITCC_UNROLL
    for (std::size_t i = 0; i < MR; ++i) {
      std::int32_t quad;
      std::memcpy(&quad, ar[i] + 4 * g, 4);
      const __m512i av = _mm512_set1_epi32(quad);
      VITCC_UNROLL
      for (std::size_t p = 0; p < NP; ++p) acc[i][p] = _mm512_dpbusd_epi32(acc[i][p], av, bv[p]);
    }
  }
  // The epilogue below indexes rows and panels with run-time bounds; reading the accumulators from
  // here (fully unrolled stores) keeps acc itself in registers through the loop above (indexing acc
  // there made GCC 12 keep all 24 in memory: ViT-S's int8 GEMMs ran at ~40% of the VNNI peak).
  alignas(64) std::int32_t out[MR][NP][16];
  VITCC_UNROLL
  for (std::size_t i = 0; i < MR; ++i) {
    VITCC_UNROLL
    for (std::size_t p = 0; p < NP; ++p) _mm512_store_si512(out[i][p], acc[i][p]);
  }
  for (std::size_t p = 0; p < NP; ++p) {
    const std::size_t col = p * gemm_nr;
    if (col >= nv) break;
    const __m512i corr = _mm512_slli_epi32(_mm512_loadu_si512(colsum + col), 7);  // 128 * colsum
    const __m512 wsc = _mm512_loadu_ps(sw + col);
    for (std::size_t i = 0; i < MR; ++i) {
      if (i >= mv) break;
      const __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_load_si512(out[i][p]), corr)),
                                     _mm512_mul_ps(wsc, _mm512_set1_ps(sa[i])));
      gemm_store_batch<xsimd::avx512f>(B(v), nv - col, bias ? bias + col : nullptr, act,
                                       add ? add + i * ld_add + col : nullptr, c + i * ldc + col);
    }
  }
}
#endif

#if defined(__AVXVNNI__) || (defined(__AVX512VNNI__) && defined(__AVX512VL__))
VITCC_ALWAYS_INLINE __m256i q8_dpbusd256(__m256i acc, __m256i a, __m256i b) noexcept {
#if defined(__AVXVNNI__)
  return _mm256_dpbusd_avx_epi32(acc, a, b);
#else
  return _mm256_dpbusd_epi32(acc, a, b);
#endif
}

template <std::size_t MR>
void q8_vnni256_tile(std::size_t mv, std::size_t nv, std::size_t kp, const std::uint8_t* aq, const float* sa,
                     const std::int8_t* b, const float* sw, const std::int32_t* colsum, float* c, std::size_t ldc,
                     const float* bias, Activation act, const float* add, std::size_t ld_add) noexcept {
  using A2 = xsimd::fma3<xsimd::avx2>;
  using B = xsimd::batch<float, A2>;
  const std::uint8_t* ar[MR];
  VITCC_UNROLL
  for (std::size_t i = 0; i < MR; ++i) ar[i] = aq + (i < mv ? i : mv - 1) * kp;
  __m256i acc[MR][2];
  VITCC_UNROLL
  for (std::size_t i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
  for (std::size_t g = 0; g < kp / 4; ++g) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + g * 64));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + g * 64 + 32));
    VITCC_UNROLL
    for (std::size_t i = 0; i < MR; ++i) {
      std::int32_t quad;
      std::memcpy(&quad, ar[i] + 4 * g, 4);
      const __m256i av = _mm256_set1_epi32(quad);
      acc[i][0] = q8_dpbusd256(acc[i][0], av, b0);
      acc[i][1] = q8_dpbusd256(acc[i][1], av, b1);
    }
  }
  alignas(32) std::int32_t out[MR][2][8];  // see q8_vnni512_tile: keeps acc in registers above
  VITCC_UNROLL
  for (std::size_t i = 0; i < MR; ++i) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(out[i][0]), acc[i][0]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(out[i][1]), acc[i][1]);
  }
  for (std::size_t h = 0; h < 2; ++h) {
    const std::size_t col = h * 8;
    if (col >= nv) break;
    const __m256i corr = _mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(colsum + col)), 7);
    const __m256 wsc = _mm256_loadu_ps(sw + col);
    for (std::size_t i = 0; i < MR; ++i) {
      if (i >= mv) break;
      const __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(out[i][h])), corr)),
                                     _mm256_mul_ps(wsc, _mm256_set1_ps(sa[i])));
      gemm_store_batch<A2>(B(v), nv - col, bias ? bias + col : nullptr, act, add ? add + i * ld_add + col : nullptr,
                           c + i * ldc + col);
    }
  }
}
#endif
#endif

#if VITCC_Q8_SDOT || VITCC_Q8_SMMLA
// The NEON paths' epilogue of four accumulated columns of one row: float(acc) * (sw * sa), then
// bias, activation and residual as the float32 GEMM. SDOT and SMMLA share it, so the same int32
// sums give the same bits on either.
VITCC_ALWAYS_INLINE void q8_neon_store(int32x4_t acc, float sa_i, const float* sw, std::size_t cols, float* c,
                                       const float* bias, Activation act, const float* add) noexcept {
  using B = xsimd::batch<float, xsimd::neon64>;
  const float32x4_t x = vmulq_f32(vcvtq_f32_s32(acc), vmulq_n_f32(vld1q_f32(sw), sa_i));
  gemm_store_batch<xsimd::neon64>(B(x), cols, bias, act, add, c);
}

// The NEON int8 drivers: panels of 16 columns, MR-row tiles of the path's kernel `tile` (q8_sdot_tile
// or q8_smmla_tile, same signature).
template <std::size_t MR, class Tile>
void q8_neon_panels(std::size_t m, std::size_t n, std::size_t kp, const std::int8_t* aq, const float* sa,
                    const Q8Weight& w, float* c, std::size_t ldc, const GemmEpilogue& ep, Tile tile) noexcept {
  for (std::size_t col0 = 0; col0 < n; col0 += gemm_nr) {
    const std::int8_t* panel = w.w + col0 / gemm_nr * kp * gemm_nr;
    const std::size_t nv = n - col0 < gemm_nr ? n - col0 : gemm_nr;
    for (std::size_t i0 = 0; i0 < m; i0 += MR) {
      const std::size_t mv = m - i0 < MR ? m - i0 : MR;
      tile(mv, nv, kp, aq + i0 * kp, sa + i0, panel, w.scale + col0, c + i0 * ldc + col0, ldc,
           ep.bias ? ep.bias + col0 : nullptr, ep.act, ep.add ? ep.add + i0 * ep.ld_add + col0 : nullptr, ep.ld_add);
    }
  }
}
#endif

#if VITCC_Q8_SDOT
// ---- NEON SDOT: MR rows x one panel (16 columns = 4 int32x4), signed x signed bytes ----
template <std::size_t MR>
void q8_sdot_tile(std::size_t mv, std::size_t nv, std::size_t kp, const std::int8_t* aq, const float* sa,
                  const std::int8_t* b, const float* sw, float* c, std::size_t ldc, const float* bias, Activation act,
                  const float* add, std::size_t ld_add) noexcept {
  const std::int8_t* ar[MR];
  VITCC_UNROLL
  for (std::size_t i = 0; i < MR; ++i) ar[i] = aq + (i < mv ? i : mv - 1) * kp;
  int32x4_t acc[MR][4];
  VITCC_UNROLL
  for (std::size_t i = 0; i < MR; ++i) {
    VITCC_UNROLL
    for (std::size_t v = 0; v < 4; ++v) acc[i][v] = vdupq_n_s32(0);
  }
  for (std::size_t g = 0; g < kp / 4; ++g) {
    // One quad row of the panel: lane j of vector v holds column 4v + j's four k values.
    int8x16_t bv[4];
    VITCC_UNROLL
    for (std::size_t v = 0; v < 4; ++v) bv[v] = vld1q_s8(b + g * 64 + v * 16);
    VITCC_UNROLL
    for (std::size_t i = 0; i < MR; ++i) {
      std::int32_t quad;
      std::memcpy(&quad, ar[i] + 4 * g, 4);
      const int8x16_t av = vreinterpretq_s8_s32(vdupq_n_s32(quad));
      VITCC_UNROLL
      for (std::size_t v = 0; v < 4; ++v) acc[i][v] = vdotq_s32(acc[i][v], bv[v], av);
    }
  }
  alignas(16) std::int32_t out[MR][4][4];  // see q8_vnni512_tile: keeps acc in registers above
  VITCC_UNROLL
  for (std::size_t i = 0; i < MR; ++i) {
    VITCC_UNROLL
    for (std::size_t v = 0; v < 4; ++v) vst1q_s32(out[i][v], acc[i][v]);
  }
  for (std::size_t v = 0; v < 4; ++v) {
    const std::size_t col = v * 4;
    if (col >= nv) break;
    for (std::size_t i = 0; i < MR; ++i) {
      if (i >= mv) break;
      q8_neon_store(vld1q_s32(out[i][v]), sa[i], sw + col, nv - col, c + i * ldc + col, bias ? bias + col : nullptr, act,
                    add ? add + i * ld_add + col : nullptr);
    }
  }
}

#endif

#if VITCC_Q8_SMMLA
// ---- NEON SMMLA (i8mm): MR rows (MR / 2 row pairs) x one panel (16 columns = 8 column pairs) ----
// smmla multiplies a 2 x 8 block of A (two rows, eight k) by the transpose of a 2 x 8 block of B
// (two columns, the same eight k) into a 2 x 2 int32 block (r0c0, r0c1, r1c0, r1c1). The blob keeps
// gemm_b16_k4: quad rows g and g + 1 of the panel, zipped as 32-bit lanes, are exactly that B block
// for a column pair (column c's k 0..3, its k 4..7, column c + 1's k 0..3, its k 4..7).
template <std::size_t MR>
void q8_smmla_tile(std::size_t mv, std::size_t nv, std::size_t kp, const std::int8_t* aq, const float* sa,
                   const std::int8_t* b, const float* sw, float* c, std::size_t ldc, const float* bias, Activation act,
                   const float* add, std::size_t ld_add) noexcept {
  static_assert(MR % 2 == 0, "rows go in pairs");
  constexpr std::size_t RP = MR / 2;
  const std::int8_t* ar[MR];
  VITCC_UNROLL
  for (std::size_t i = 0; i < MR; ++i) ar[i] = aq + (i < mv ? i : mv - 1) * kp;
  int32x4_t acc[RP][8];  // [row pair][column pair]
  VITCC_UNROLL
  for (std::size_t r = 0; r < RP; ++r) {
    VITCC_UNROLL
    for (std::size_t q = 0; q < 8; ++q) acc[r][q] = vdupq_n_s32(0);
  }
  // One step: A's row pairs and B's two quad rows lo, hi (hi zero past an odd count of quads).
  auto step = [&](const int8x16_t (&av)[RP], const std::int8_t* lo, const std::int8_t* hi) VITCC_ALWAYS_INLINE_LAMBDA {
    VITCC_UNROLL
    for (std::size_t v = 0; v < 4; ++v) {
      const uint32x4_t l = vreinterpretq_u32_s8(vld1q_s8(lo + v * 16));
      const uint32x4_t h = hi ? vreinterpretq_u32_s8(vld1q_s8(hi + v * 16)) : vdupq_n_u32(0);
      const int8x16_t p0 = vreinterpretq_s8_u32(vzip1q_u32(l, h)), p1 = vreinterpretq_s8_u32(vzip2q_u32(l, h));
      VITCC_UNROLL
      for (std::size_t r = 0; r < RP; ++r) {
        acc[r][2 * v] = vmmlaq_s32(acc[r][2 * v], av[r], p0);
        acc[r][2 * v + 1] = vmmlaq_s32(acc[r][2 * v + 1], av[r], p1);
      }
    }
  };
  const std::size_t quads = kp / 4;
  std::size_t g = 0;
  for (; g + 2 <= quads; g += 2) {
    int8x16_t av[RP];
    VITCC_UNROLL
    for (std::size_t r = 0; r < RP; ++r) av[r] = vcombine_s8(vld1_s8(ar[2 * r] + 4 * g), vld1_s8(ar[2 * r + 1] + 4 * g));
    step(av, b + g * 64, b + (g + 1) * 64);
  }
  if (g < quads) {  // an odd count of quads: the last one with zeros for k 4..7 (no read past the row)
    int8x16_t av[RP];
    VITCC_UNROLL
    for (std::size_t r = 0; r < RP; ++r) {
      std::uint32_t q0, q1;
      std::memcpy(&q0, ar[2 * r] + 4 * g, 4);
      std::memcpy(&q1, ar[2 * r + 1] + 4 * g, 4);
      av[r] = vcombine_s8(vcreate_s8(q0), vcreate_s8(q1));
    }
    step(av, b + g * 64, nullptr);
  }
  alignas(16) std::int32_t out[RP][8][4];  // see q8_vnni512_tile: keeps acc in registers above
  VITCC_UNROLL
  for (std::size_t r = 0; r < RP; ++r) {
    VITCC_UNROLL
    for (std::size_t q = 0; q < 8; ++q) vst1q_s32(out[r][q], acc[r][q]);
  }
  for (std::size_t v = 0; v < 4; ++v) {
    const std::size_t col = v * 4;
    if (col >= nv) break;
    for (std::size_t r = 0; r < RP; ++r) {
      // Columns 4v..4v+3 of the pair's two rows: the low halves of blocks 2v and 2v+1, then the high.
      const int64x2_t x0 = vreinterpretq_s64_s32(vld1q_s32(out[r][2 * v])), x1 = vreinterpretq_s64_s32(vld1q_s32(out[r][2 * v + 1]));
      const int32x4_t rows[2] = {vreinterpretq_s32_s64(vzip1q_s64(x0, x1)), vreinterpretq_s32_s64(vzip2q_s64(x0, x1))};
      for (std::size_t h = 0; h < 2; ++h) {
        const std::size_t i = 2 * r + h;
        if (i >= mv) break;
        q8_neon_store(rows[h], sa[i], sw + col, nv - col, c + i * ldc + col, bias ? bias + col : nullptr, act,
                      add ? add + i * ld_add + col : nullptr);
      }
    }
  }
}

#endif

// The int8 GEMM over quantised A (rows kp bytes apart, scales sa): row blocks of A for L2, column
// tiles of B inside, as the float32 driver (gemm.hpp).
template <class Arch>
void q8_panels(std::size_t m, std::size_t n, std::size_t kp, const std::uint8_t* aq, const float* sa, const Q8Weight& w,
               float* c, std::size_t ldc, const GemmEpilogue& ep) noexcept {
  if (m == 0 || n == 0) return;
  constexpr Q8Path path = q8_path<Arch>();
  if constexpr (path == Q8Path::scalar) {
    q8_scalar_panels(m, n, kp, reinterpret_cast<const std::int8_t*>(aq), sa, w, c, ldc, ep);
  } else if constexpr (path == Q8Path::sdot) {
#if VITCC_Q8_SDOT
    q8_neon_panels<6>(m, n, kp, reinterpret_cast<const std::int8_t*>(aq), sa, w, c, ldc, ep, q8_sdot_tile<6>);
#endif
  } else if constexpr (path == Q8Path::smmla) {
#if VITCC_Q8_SMMLA
    q8_neon_panels<6>(m, n, kp, reinterpret_cast<const std::int8_t*>(aq), sa, w, c, ldc, ep, q8_smmla_tile<6>);
#endif
  } else {
#if !VITCC_DISABLE_SIMD && (defined(__x86_64__) || defined(__i386__))
    using tile = q8_tile<Arch>;
    constexpr std::size_t MR = tile::mr, NP = tile::np;
    const std::size_t panel_stride = kp * gemm_nr;  // bytes
    const std::size_t panels = (n + gemm_nr - 1) / gemm_nr;
    const std::size_t mc = gemm_row_block(m, 4 * gemm_a_block_floats / (kp ? kp : 1), MR);  // A is bytes here
    for (std::size_t r0 = 0; r0 < m; r0 += mc) {
      const std::size_t r1 = m - r0 < mc ? m : r0 + mc;
      for (std::size_t p0 = 0; p0 < panels; p0 += NP) {
        const std::size_t col0 = p0 * gemm_nr;
        const std::size_t nv = n - col0 < NP * gemm_nr ? n - col0 : NP * gemm_nr;
        const std::int8_t* b = w.w + p0 * panel_stride;
        const float* bias = ep.bias ? ep.bias + col0 : nullptr;
        for (std::size_t i0 = r0; i0 < r1; i0 += MR) {
          const std::size_t mv = m - i0 < MR ? m - i0 : MR;
          const float* add = ep.add ? ep.add + i0 * ep.ld_add + col0 : nullptr;
          float* ct = c + i0 * ldc + col0;
          if constexpr (path == Q8Path::vnni512) {
#if defined(__AVX512VNNI__)
            const std::size_t left = panels - p0;
            if (left >= 3)
              q8_vnni512_tile<MR, 3>(mv, nv, kp, aq + i0 * kp, sa + i0, b, panel_stride, w.scale + col0, w.colsum + col0, ct,
                                     ldc, bias, ep.act, add, ep.ld_add);
            else if (left == 2)
              q8_vnni512_tile<MR, 2>(mv, nv, kp, aq + i0 * kp, sa + i0, b, panel_stride, w.scale + col0, w.colsum + col0, ct,
                                     ldc, bias, ep.act, add, ep.ld_add);
            else
              q8_vnni512_tile<MR, 1>(mv, nv, kp, aq + i0 * kp, sa + i0, b, panel_stride, w.scale + col0, w.colsum + col0, ct,
                                     ldc, bias, ep.act, add, ep.ld_add);
#endif
          } else {
#if defined(__AVXVNNI__) || (defined(__AVX512VNNI__) && defined(__AVX512VL__))
            q8_vnni256_tile<MR>(mv, nv, kp, aq + i0 * kp, sa + i0, b, w.scale + col0, w.colsum + col0, ct, ldc, bias,
                                ep.act, add, ep.ld_add);
#endif
          }
        }
      }
    }
#endif
  }
}

// Quantised A in scratch: where the rows and the scales are.
struct Q8A {
  const std::uint8_t* q;
  const float* sa;
};
inline Q8A q8_a(const void* scratch, std::size_t m, std::size_t k) noexcept {
  const auto* q = static_cast<const std::uint8_t*>(scratch);
  return {q, reinterpret_cast<const float*>(q + (m * q8_kp(k) + alignment - 1) / alignment * alignment)};
}

}  // namespace detail

// C = epilogue(A * W) with an int8 weight, on the calling thread.
template <class Arch>
void gemm_q8(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda, const Q8Weight& w, float* c,
             std::size_t ldc, const GemmEpilogue& ep, void* scratch) noexcept {
  detail::q8_quantize_rows<Arch>(0, m, m, k, a, lda, scratch);
  const detail::Q8A qa = detail::q8_a(scratch, m, k);
  detail::q8_panels<Arch>(m, n, q8_kp(k), qa.q, qa.sa, w, c, ldc, ep);
}

// The same spread over the workers of `ex`: rows quantised in blocks of 16, then the float32 GEMM's
// task split (gemm_tasks); every element is computed the same way whoever computes it.
template <class Arch>
void gemm_q8(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda, const Q8Weight& w, float* c,
             std::size_t ldc, const GemmEpilogue& ep, void* scratch, const Executor* ex) noexcept {
  if (worker_count(ex) == 1) {
    gemm_q8<Arch>(m, n, k, a, lda, w, c, ldc, ep, scratch);
    return;
  }
  constexpr std::size_t rows_per_task = 16;
  parallel_for(ex, (m + rows_per_task - 1) / rows_per_task, [&](std::size_t t, std::size_t) {
    const std::size_t r0 = t * rows_per_task, r1 = m - r0 < rows_per_task ? m : r0 + rows_per_task;
    detail::q8_quantize_rows<Arch>(r0, r1, m, k, a, lda, scratch);
  });
  const detail::Q8A qa = detail::q8_a(scratch, m, k);
  const std::size_t kp = q8_kp(k);
  parallel_for(ex, gemm_tasks(m, n), [&](std::size_t task, std::size_t) {
    const GemmTaskTile t = gemm_task_tile(task, m, n, ep);
    Q8Weight wt = w;
    wt.w += t.j0 / gemm_nr * kp * gemm_nr;
    wt.scale += t.j0;
    wt.colsum += t.j0;
    detail::q8_panels<Arch>(t.mt, t.nt, kp, qa.q + t.i0 * kp, qa.sa + t.i0, wt, c + t.i0 * ldc + t.j0, ldc, t.ep);
  });
}

}  // namespace vitcc::kernels
