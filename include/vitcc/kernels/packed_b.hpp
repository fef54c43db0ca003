// A layer's [K, N] weight as the GEMM of its precision reads it (kernels/matmul.hpp), as bound
// from the blob (io/bind.hpp). Only the view: no kernel comes with it.
#pragma once
#include <cstdint>

namespace vitcc::kernels {

// fp32  data: float, pack_b's layout (blob gemm_b16)
// bf16  data: bfloat16 bits, pack_b_bf16's layout (gemm_b16_k2)
// int8  data: int8, pack_b_q8's layout (gemm_b16_k4), with its per-column scale and column sums
struct PackedB {
  const void* data = nullptr;
  const float* scale = nullptr;
  const std::int32_t* colsum = nullptr;
};

}  // namespace vitcc::kernels
