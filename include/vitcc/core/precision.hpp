// The arithmetic precision of a model's weights: a compile-time constant of every generated config
// (`static constexpr vitcc::Precision precision`), from which the model templates pick their GEMM.
//   fp32  float32 weights and arithmetic (the default)
//   bf16  bfloat16 weights (rounded to nearest even), float32 arithmetic: half the weight bytes
//   int8  int8 weights, symmetric, one float32 scale per output channel; activations quantised per
//         row (per token) as the GEMM packs them; int32 accumulation; float32 epilogue
// LayerNorm, softmax, GELU and attention's P.v stay float32 at every precision; int8 ViT models
// compute the attention scores q.k^T from int8 q and k (kernels/attention.hpp).
#pragma once
#include <cstdint>
#include <type_traits>
#include <utility>

namespace vitcc {

enum class Precision : std::uint8_t { fp32 = 0, bf16 = 1, int8 = 2 };

constexpr const char* precision_name(Precision p) noexcept {
  return p == Precision::bf16 ? "bf16" : p == Precision::int8 ? "int8" : "fp32";
}

// The inverse of precision_name; false for any other text.
constexpr bool precision_from_name(const char* s, Precision& out) noexcept {
  auto eq = [](const char* a, const char* b) {
    while (*a && *a == *b) ++a, ++b;
    return *a == *b;
  };
  for (Precision p : {Precision::fp32, Precision::bf16, Precision::int8})
    if (s && eq(s, precision_name(p))) return out = p, true;
  return false;
}

// A config's precision: its `precision` member (a static constexpr of a generated config, a field of
// a runtime-shaped one), or float32 for a config generated before precisions existed.
template <class C, class = void>
struct has_precision_field : std::false_type {};
template <class C>
struct has_precision_field<C, std::void_t<decltype(std::declval<const C&>().precision)>> : std::true_type {};

template <class C>
constexpr Precision precision_of(const C& cfg) noexcept {
  if constexpr (has_precision_field<C>::value) return cfg.precision;
  else return Precision::fp32;
}

}  // namespace vitcc
