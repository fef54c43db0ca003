// A Linear layer: y = act(x W + b) [+ add], W pre-packed by the packer for kernels::gemm.
#pragma once
#include <cstddef>

#include "vitcc/kernels/gemm.hpp"

namespace vitcc {

struct Linear {
  const float* weight = nullptr;  // packed [in, out] (Layout::gemm_b16)
  const float* bias = nullptr;    // [out], or null

  // rows x in  ->  rows x out. `add` (rows x out, leading dim ld_add) is added after the
  // activation; it may be y itself for an in-place residual.
  template <class Arch>
  void apply(std::size_t rows, std::size_t in, std::size_t out, const float* x, std::size_t ldx,
             float* y, std::size_t ldy, kernels::Activation act = kernels::Activation::none,
             const float* add = nullptr, std::size_t ld_add = 0) const noexcept {
    apply<Arch>(nullptr, rows, in, out, x, ldx, y, ldy, act, add, ld_add);
  }

  // The same, its tiles spread over the workers of `ex` (null: the calling thread).
  template <class Arch>
  void apply(const Executor* ex, std::size_t rows, std::size_t in, std::size_t out, const float* x, std::size_t ldx,
             float* y, std::size_t ldy, kernels::Activation act = kernels::Activation::none,
             const float* add = nullptr, std::size_t ld_add = 0) const noexcept {
    kernels::GemmEpilogue ep;
    ep.bias = bias;
    ep.act = act;
    ep.add = add;
    ep.ld_add = ld_add;
    kernels::gemm<Arch>(rows, out, in, x, ldx, weight, y, ldy, ep, ex);
  }
};

struct Norm {
  const float* weight = nullptr;
  const float* bias = nullptr;
};

}  // namespace vitcc
