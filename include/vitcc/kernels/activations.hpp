// Element-wise activations, fused into the GEMM epilogue (Activation) or applied in place (gelu_erf).
// enum class Activation { none, gelu_erf, relu } is declared with the references (ref/activations.hpp).
//
// GELU is the exact erf form, 0.5 * x * (1 + erf(x / sqrt(2))), as PyTorch nn.GELU() by default;
// ViT checkpoints are trained with it, and the tanh approximation drifts by ~1e-3, so it is not offered.
#pragma once
#include <cmath>
#include <cstddef>
#include <type_traits>

#include "vitcc/core/arch.hpp"
#include "vitcc/core/config.hpp"
#include "vitcc/kernels/ref/activations.hpp"

namespace vitcc::kernels {

namespace detail {

// The scalar path's activations, in float throughout (a single-precision FPU has no double; the
// references in ref/ compute in double and are the tests' oracle only).
inline float gelu_erf_scalar(float x) noexcept { return 0.5f * x * std::erfc(x * -0.70710678118654752440f); }

inline float apply_activation_scalar(float x, Activation act) noexcept {
  switch (act) {
    case Activation::gelu_erf: return gelu_erf_scalar(x);
    case Activation::relu: return x > 0.0f ? x : 0.0f;
    case Activation::none: break;
  }
  return x;
}

}  // namespace detail

#if !VITCC_DISABLE_SIMD
namespace detail {

// GELU through erfc of a = |x| / sqrt(2), which keeps full relative precision on the negative side,
// where 1 + erf(z) cancels (gelu(-4) would otherwise lose ~4 decimal digits): with h = x/2 erfc(a),
// gelu(x) = h for x <= 0 and x - h for x > 0 (1 + erf(a) = 2 - erfc(a)).
//
// erfc(a) = t exp(P(t) - a^2), t = 1 / (1 + a/2), P of degree 9: a least-squares fit (Chebyshev
// nodes, float64) of ln(erfc(a) / t) + a^2 over a in [0, 10.5], made for this kernel
// (tools/export/fit_gelu.py); relative error 9e-8 with these float32 coefficients in exact
// arithmetic. a is clamped to 10.5, where the exponential underflows to 0, so the far tails give
// exactly x and -0. One path for every lane: xsimd::erfc branches per vector on the lanes' range
// (mispredicted on real activations: 0.79 against 0.56 ns per element on a sorted ramp, AMD Zen 4)
// and divides; this runs 0.76 ns on either, and takes an int8 ViT-S/16 from 33.7 to 32.8 ms there,
// where GELU was ~9% of the time.
template <class Arch>
VITCC_ALWAYS_INLINE xsimd::batch<float, Arch> erfc_scaled_poly(const xsimd::batch<float, Arch>& t) noexcept {
  using B = xsimd::batch<float, Arch>;
  B p(0.1487911492586136f);
  p = xsimd::fma(p, t, B(-0.70184725522995f));
  p = xsimd::fma(p, t, B(1.2061694860458374f));
  p = xsimd::fma(p, t, B(-0.7619841694831848f));
  p = xsimd::fma(p, t, B(-0.02599468268454075f));
  p = xsimd::fma(p, t, B(-0.027512092143297195f));
  p = xsimd::fma(p, t, B(0.04436234384775162f));
  p = xsimd::fma(p, t, B(0.38460636138916016f));
  p = xsimd::fma(p, t, B(0.9988684058189392f));
  return xsimd::fma(p, t, B(-1.2654595375061035f));
}

template <class Arch>
VITCC_ALWAYS_INLINE xsimd::batch<float, Arch> gelu_erf(const xsimd::batch<float, Arch>& x) noexcept {
  using B = xsimd::batch<float, Arch>;
  const B a = xsimd::min(xsimd::abs(x) * B(0.70710678118654752440f), B(10.5f));
  const B d = xsimd::fma(a, B(0.5f), B(1.0f));
  B t;
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
    // AVX-512's 14-bit reciprocal estimate and one Newton step (~2^-27): ~4x cheaper than a division.
    const B r = xsimd::reciprocal(d);
    t = r * xsimd::fnma(d, r, B(2.0f));
  } else {
    t = B(1.0f) / d;  // SSE/AVX estimates have 12 bits, NEON's 8: one step would not be enough
  }
  const B e = xsimd::exp(xsimd::fnma(a, a, erfc_scaled_poly<Arch>(t)));  // erfc(a) / t
  // +inf: h is inf * 0; the scalar path's gelu(+inf) = +inf (and gelu(-inf) = NaN, on both).
  const B h = xsimd::select(x == B(INFINITY), B(0.0f), (x * B(0.5f)) * (t * e));
  return xsimd::select(x > B(0.0f), x - h, h);
}

template <class Arch>
VITCC_ALWAYS_INLINE xsimd::batch<float, Arch> apply_activation(const xsimd::batch<float, Arch>& x,
                                                               Activation act) noexcept {
  using B = xsimd::batch<float, Arch>;
  switch (act) {
    case Activation::gelu_erf: return gelu_erf<Arch>(x);
    case Activation::relu: return xsimd::max(x, B(0.0f));
    case Activation::none: break;
  }
  return x;
}

}  // namespace detail
#endif

// In-place exact GELU over n contiguous floats (no alignment required).
template <class Arch>
void gelu_erf(float* x, std::size_t n) noexcept {
  if constexpr (is_scalar_arch<Arch>) {
    for (std::size_t i = 0; i < n; ++i) x[i] = detail::gelu_erf_scalar(x[i]);
  } else {
#if !VITCC_DISABLE_SIMD
    using B = xsimd::batch<float, Arch>;
    constexpr std::size_t W = B::size;
    std::size_t i = 0;
    for (; i + W <= n; i += W) detail::gelu_erf<Arch>(B::load_unaligned(x + i)).store_unaligned(x + i);
    if (i < n) {
      // Tail through a padded buffer so it gets the same SIMD rounding as the body.
      alignas(VITCC_ALIGNMENT) float tail[W] = {};
      for (std::size_t j = i; j < n; ++j) tail[j - i] = x[j];
      detail::gelu_erf<Arch>(B::load_aligned(tail)).store_aligned(tail);
      for (std::size_t j = i; j < n; ++j) x[j] = tail[j - i];
    }
#endif
  }
}

}  // namespace vitcc::kernels
