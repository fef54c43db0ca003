// A LayerNorm's affine parameters (the normalisation itself is kernels::layer_norm).
#pragma once

namespace vitcc {

struct Norm {
  const float* weight = nullptr;
  const float* bias = nullptr;
};

}  // namespace vitcc
