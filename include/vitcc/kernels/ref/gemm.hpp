// Scalar reference GEMM, and the two things it shares with the SIMD kernel: the packed-B layout and
// the epilogue. They are defined here, next to the plain loop that gives them their meaning, so the
// reference depends on nothing but the standard library; kernels/gemm.hpp re-exports them.
//
// Packed-B layout (this is what the weight blob stores for every Linear / conv-as-GEMM weight):
//   B is K x N. Its columns are cut into panels of gemm_nr = 16. Panel p holds columns 16p..16p+15
//   as K rows of 16 contiguous floats: element (k, n) is at packed[(n / 16) * K * 16 + k * 16 + n % 16].
//   Panels follow one another (panel-major, then k, then the 16 columns); the last panel is padded
//   with zero columns, so the buffer holds packed_b_floats(K, N) = ceil(N / 16) * 16 * K floats.
//   The width is 16 on every ISA so one blob serves AVX-512 (one zmm per panel row), AVX2 (two ymm)
//   NEON/SSE (four vectors) and this reference; a panel row is 64 bytes, one cache line.
// Test oracle only (double accumulation): no product path runs it; the scalar path is fp32 code in
// the kernel headers, for cores whose FPU has single precision only.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "vitcc/core/fp.hpp"
#include "vitcc/io/blob_format.hpp"
#include "vitcc/kernels/ref/activations.hpp"

namespace vitcc::kernels {

inline constexpr std::size_t gemm_nr = blob::panel_cols;

constexpr std::size_t packed_b_floats(std::size_t k, std::size_t n) noexcept {
  return (n + gemm_nr - 1) / gemm_nr * gemm_nr * k;
}

// b is row-major K x N with leading dimension ldb: b[kk * ldb + nn].
inline void pack_b(const float* b, std::size_t ldb, std::size_t k, std::size_t n, float* packed) noexcept {
  for (std::size_t p = 0; p * gemm_nr < n; ++p) {
    float* dst = packed + p * k * gemm_nr;
    const std::size_t col0 = p * gemm_nr;
    for (std::size_t kk = 0; kk < k; ++kk)
      for (std::size_t jj = 0; jj < gemm_nr; ++jj)
        dst[kk * gemm_nr + jj] = col0 + jj < n ? b[kk * ldb + col0 + jj] : 0.0f;
  }
}

// w is a PyTorch Linear weight, [out = n, in = k] row-major, so B = w^T: B(kk, nn) = w[nn * k + kk].
inline void pack_b_from_linear(const float* w, std::size_t k, std::size_t n, float* packed) noexcept {
  for (std::size_t p = 0; p * gemm_nr < n; ++p) {
    float* dst = packed + p * k * gemm_nr;
    const std::size_t col0 = p * gemm_nr;
    for (std::size_t kk = 0; kk < k; ++kk)
      for (std::size_t jj = 0; jj < gemm_nr; ++jj)
        dst[kk * gemm_nr + jj] = col0 + jj < n ? w[(col0 + jj) * k + kk] : 0.0f;
  }
}

// bfloat16: the upper 16 bits of a float32, here rounded to nearest, ties to even. A NaN stays a
// (quiet) NaN of its sign: rounding its bits could carry into the sign or make it an infinity (weights
// are finite, vitcc-pack refuses NaN and Inf; activations, as an int8 model's V, need not be).
inline std::uint16_t to_bf16(float x) noexcept {
  std::uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x0040u);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>(bits >> 16);
}
inline float from_bf16(std::uint16_t h) noexcept {
  const std::uint32_t bits = std::uint32_t(h) << 16;
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

// The bfloat16 packed layout (blob layout gemm_b16_k2): panels of 16 columns as in pack_b, each panel
// ceil(K / 2) rows of 16 pairs: element (kk, nn) of panel p at p * Kp * 16 + (kk / 2) * 32 +
// (nn % 16) * 2 + kk % 2, with Kp = K rounded up to even; padding is zero. One 32-bit word then holds
// a column's two consecutive k, which the GEMM splits into two float32 rows with a shift and a mask.
constexpr std::size_t packed_b_bf16_elements(std::size_t k, std::size_t n) noexcept {
  return (n + gemm_nr - 1) / gemm_nr * gemm_nr * ((k + 1) / 2 * 2);
}

// Repacks a float32 packed B (pack_b's layout) as bfloat16 pairs.
inline void pack_b_bf16(const float* packed, std::size_t k, std::size_t n, std::uint16_t* out) noexcept {
  const std::size_t kp = (k + 1) / 2 * 2;
  for (std::size_t p = 0; p * gemm_nr < n; ++p)
    for (std::size_t kk = 0; kk < kp; ++kk)
      for (std::size_t jj = 0; jj < gemm_nr; ++jj)
        out[p * kp * gemm_nr + (kk / 2) * 2 * gemm_nr + jj * 2 + kk % 2] =
            kk < k ? to_bf16(packed[p * k * gemm_nr + kk * gemm_nr + jj]) : std::uint16_t(0);
}

// What the GEMM fuses after the dot products, per element:
//   c[i][j] = act(sum_k a[i][k] * b[k][j] + bias[j]) + add[i * ld_add + j]
// bias and add are optional (nullptr). add may be c itself (same pointer and ld_add == ldc): that is
// the in-place residual x += proj(...), so every kernel reads add[i][j] before it writes c[i][j].
struct GemmEpilogue {
  const float* bias = nullptr;
  Activation act = Activation::none;
  const float* add = nullptr;
  std::size_t ld_add = 0;
};

namespace ref {

// C (M x N, ldc) = epilogue(A (M x K, lda) * B), B packed as above. Accumulates in double so that it
// is a better reference than any float summation order it is compared with.
inline void gemm(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda,
                 const float* packed_b, float* c, std::size_t ldc, const GemmEpilogue& ep) noexcept {
  for (std::size_t i = 0; i < m; ++i) {
    for (std::size_t p = 0; p * gemm_nr < n; ++p) {
      const float* bp = packed_b + p * k * gemm_nr;
      double acc[gemm_nr] = {};
      for (std::size_t kk = 0; kk < k; ++kk) {
        const double aik = a[i * lda + kk];
        for (std::size_t jj = 0; jj < gemm_nr; ++jj) acc[jj] = fp::madd(aik, double(bp[kk * gemm_nr + jj]), acc[jj]);
      }
      for (std::size_t jj = 0; jj < gemm_nr && p * gemm_nr + jj < n; ++jj) {
        const std::size_t j = p * gemm_nr + jj;
        float v = static_cast<float>(acc[jj]);
        if (ep.bias) v += ep.bias[j];
        v = apply_activation(v, ep.act);
        if (ep.add) v += ep.add[i * ep.ld_add + j];
        c[i * ldc + j] = v;
      }
    }
  }
}

}  // namespace ref
}  // namespace vitcc::kernels
