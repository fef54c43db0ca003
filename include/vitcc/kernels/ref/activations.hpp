// Scalar reference activations: the definition the SIMD kernels are tested against.
// The Activation enum lives here (not in kernels/activations.hpp) so the references, which define
// the semantics, need nothing from the SIMD headers; kernels/activations.hpp re-exports it.
// Test oracle only (double accumulation): no product path runs it; the scalar path is fp32 code in
// the kernel headers, for cores whose FPU has single precision only.
#pragma once
#include <cmath>
#include <cstddef>

namespace vitcc::kernels {

enum class Activation { none, gelu_erf, relu };

namespace ref {

// Exact (erf) GELU, PyTorch nn.GELU() with approximate='none': 0.5 * x * (1 + erf(x / sqrt(2))).
// Evaluated in double, with 1 + erf(z) written as the identical erfc(-z): 1 + erf(z) cancels for
// negative z (to exactly 0 below x ~ -8.3, even in double), erfc(-z) keeps full relative precision.
inline float gelu_erf(float x) noexcept {
  const double xd = x;
  return static_cast<float>(0.5 * xd * std::erfc(-xd * 0.70710678118654752440));
}

inline float relu(float x) noexcept { return x > 0.0f ? x : 0.0f; }

inline float apply_activation(float x, Activation act) noexcept {
  switch (act) {
    case Activation::gelu_erf: return gelu_erf(x);
    case Activation::relu: return relu(x);
    case Activation::none: break;
  }
  return x;
}

inline void gelu_erf(float* x, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) x[i] = gelu_erf(x[i]);
}

}  // namespace ref
}  // namespace vitcc::kernels
