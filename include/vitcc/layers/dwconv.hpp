// A depthwise k x k convolution's parameters (BatchNorm folded in by the packer): weight [k * k, c]
// plain float32 at every precision (a few thousand values per layer, and its FLOPs are few), bias [c].
// The convolution itself is kernels::dwconv.
#pragma once

namespace vitcc {

struct DwConv {
  const float* weight = nullptr;
  const float* bias = nullptr;
};

}  // namespace vitcc
