// Element-wise activations, fused into the GEMM epilogue (Activation) or applied in place (gelu_erf).
// enum class Activation { none, gelu_erf, relu } is declared with the references (ref/activations.hpp).
//
// GELU is the exact erf form, 0.5 * x * (1 + erf(x / sqrt(2))), as PyTorch nn.GELU() by default;
// ViT checkpoints are trained with it, and the tanh approximation drifts by ~1e-3, so it is not offered.
#pragma once
#include <cmath>
#include <cstddef>

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

// 1 + erf(z) == erfc(-z): written with erfc it keeps full relative precision on the negative side,
// where 1 + erf(z) cancels (gelu(-4) would otherwise lose ~4 decimal digits).
template <class Arch>
VITCC_ALWAYS_INLINE xsimd::batch<float, Arch> gelu_erf(const xsimd::batch<float, Arch>& x) noexcept {
  using B = xsimd::batch<float, Arch>;
  const B half_x = x * B(0.5f);
  return half_x * xsimd::erfc(x * B(-0.70710678118654752440f));
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
