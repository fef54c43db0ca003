// A depthwise k x k convolution's parameters (BatchNorm folded in by the packer): weight [k * k, c]
// in the element type of the model's precision, bias [c] float32.
//   fp32  float32 weights
//   bf16  bfloat16 weights (rounded to nearest even)
//   int8  int8 weights, symmetric, one float32 scale per channel (scale [c]: w = q * scale)
// The convolution itself (kernels::dwconv) widens the weights as it loads them and runs in float32.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "vitcc/core/executor.hpp"
#include "vitcc/core/precision.hpp"
#include "vitcc/kernels/dwconv.hpp"

namespace vitcc {

struct DwConv {
  const void* weight = nullptr;   // [k * k, c]: float, bfloat16 bits or int8, by `stored`
  const float* scale = nullptr;   // [c] for int8 weights, else null
  const float* bias = nullptr;    // [c]
  // The weights' own precision: the model's, or fp32 in a bf16 or int8 blob written before depthwise
  // weights followed the precision (such blobs still bind).
  Precision stored = Precision::fp32;

  // The weight's element type at precision P.
  template <Precision P>
  using weight_type = std::conditional_t<P == Precision::fp32, float,
                                         std::conditional_t<P == Precision::bf16, std::uint16_t, std::int8_t>>;

  // out = act(dwconv(in) + bias) [+ add] on an h x w NHWC map (kernels::dwconv's contract) in a model
  // of precision P; ex spreads the output rows over its workers (null: the calling thread).
  template <class Arch, Precision P>
  void apply(const Executor* ex, std::size_t h, std::size_t w, std::size_t c, const float* in, std::size_t ld_in,
             std::size_t k, std::size_t stride, std::size_t pad, kernels::Activation act, const float* add,
             std::size_t ld_add, float* out, std::size_t ld_out) const noexcept {
    if constexpr (P != Precision::fp32) {
      if (stored == P) {
        kernels::dwconv<Arch, weight_type<P>>(ex, h, w, c, in, ld_in, k, stride, pad,
                                              static_cast<const weight_type<P>*>(weight), scale, bias, act, add, ld_add,
                                              out, ld_out);
        return;
      }
    }
    kernels::dwconv<Arch, float>(ex, h, w, c, in, ld_in, k, stride, pad, static_cast<const float*>(weight), nullptr,
                                 bias, act, add, ld_add, out, ld_out);
  }
};

}  // namespace vitcc
