// Vector fused multiply-add for the SIMD kernels: the batch counterpart of fp::madd (core/fp.hpp,
// which says why every multiply-add in a kernel is spelled out).
#pragma once
#include <type_traits>

#include "vitcc/core/arch.hpp"
#include "vitcc/core/config.hpp"

#if !VITCC_DISABLE_SIMD
namespace vitcc::kernels::detail {

// a * b + c on SIMD batches, in one rounding where the target has FMA. xsimd 8.1's fma is only
// "a * b + c" for AVX-512 (no specialisation) and for SSE/AVX without FMA3; the compiler may contract
// that or not, so where the target has the instruction it is asked for explicitly.
template <class Arch>
VITCC_ALWAYS_INLINE xsimd::batch<float, Arch> fmadd(const xsimd::batch<float, Arch>& a, const xsimd::batch<float, Arch>& b,
                                                    const xsimd::batch<float, Arch>& c) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) return _mm512_fmadd_ps(a, b, c);
#endif
#if defined(__FMA__) && (defined(__x86_64__) || defined(__i386__))
  if constexpr (!std::is_base_of_v<xsimd::avx512f, Arch> && xsimd::batch<float, Arch>::size == 8)
    return _mm256_fmadd_ps(a, b, c);
  if constexpr (xsimd::batch<float, Arch>::size == 4) return _mm_fmadd_ps(a, b, c);
#endif
  return xsimd::fma(a, b, c);
}

}  // namespace vitcc::kernels::detail
#endif
