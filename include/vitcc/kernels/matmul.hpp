// The GEMM of a layer's packed weight at any precision: what Linear::apply, the patch embedding
// and the convolutions-as-GEMMs call. The precision is a compile-time constant (the model's config),
// so each call compiles to exactly one of gemm (float32 or bfloat16 weights, kernels/gemm.hpp) and
// gemm_q8 (int8, kernels/gemm_q8.hpp).
#pragma once
#include <cstddef>
#include <cstdint>

#include "vitcc/core/executor.hpp"
#include "vitcc/core/precision.hpp"
#include "vitcc/kernels/gemm.hpp"
#include "vitcc/kernels/gemm_q8.hpp"
#include "vitcc/kernels/packed_b.hpp"

namespace vitcc::kernels {

// Scratch bytes of one product of `m` rows over `k` inputs at precision P (int8: the quantised rows).
constexpr std::size_t matmul_scratch_bytes(Precision p, std::size_t m, std::size_t k) noexcept {
  return p == Precision::int8 ? q8_scratch_bytes(m, k) : 0;
}

// C (M x N, ldc) = epilogue(A (M x K, lda) * B). scratch: matmul_scratch_bytes(P, m, k), 64-byte
// aligned (unused, may be null, at fp32 and bf16). ex: spread over its workers (null: this thread).
template <class Arch, Precision P>
void matmul(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda, const PackedB& b, float* c,
            std::size_t ldc, const GemmEpilogue& ep, void* scratch, const Executor* ex) noexcept {
  if constexpr (P == Precision::int8) {
    gemm_q8<Arch>(m, n, k, a, lda, Q8Weight{static_cast<const std::int8_t*>(b.data), b.scale, b.colsum}, c, ldc, ep,
                  scratch, ex);
  } else if constexpr (P == Precision::bf16) {
    (void)scratch;
    gemm<Arch>(m, n, k, a, lda, static_cast<const std::uint16_t*>(b.data), c, ldc, ep, ex);
  } else {
    (void)scratch;
    gemm<Arch>(m, n, k, a, lda, static_cast<const float*>(b.data), c, ldc, ep, ex);
  }
}

}  // namespace vitcc::kernels
