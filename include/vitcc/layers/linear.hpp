// A Linear layer (or a 1x1 / im2col convolution): y = act(x W + b) [+ add], W packed by the packer
// for the GEMM of the model's precision (kernels/matmul.hpp).
#pragma once
#include <cstddef>

#include "vitcc/core/executor.hpp"
#include "vitcc/core/precision.hpp"
#include "vitcc/kernels/matmul.hpp"

namespace vitcc {

struct Linear {
  kernels::PackedB weight;        // packed [in, out]
  const float* bias = nullptr;    // [out], or null

  // rows x in  ->  rows x out. `add` (rows x out, leading dim ld_add) is added after the
  // activation; it may be y itself for an in-place residual. scratch: matmul_scratch_bytes(P, rows,
  // in), 64-byte aligned (int8's quantised rows; none at fp32 and bf16). ex spreads the product's
  // tiles over its workers (null: the calling thread).
  template <class Arch, Precision P>
  void apply(const Executor* ex, std::size_t rows, std::size_t in, std::size_t out, const float* x, std::size_t ldx,
             float* y, std::size_t ldy, kernels::Activation act = kernels::Activation::none, const float* add = nullptr,
             std::size_t ld_add = 0, void* scratch = nullptr) const noexcept {
    kernels::GemmEpilogue ep;
    ep.bias = bias;
    ep.act = act;
    ep.add = add;
    ep.ld_add = ld_add;
    kernels::matmul<Arch, P>(rows, out, in, x, ldx, weight, y, ldy, ep, scratch, ex);
  }
};

}  // namespace vitcc
