// Instruction-set selection. Kernels take the architecture as a template parameter: an xsimd
// architecture tag (xsimd::avx512f, xsimd::fma3<xsimd::avx2>, xsimd::neon64, ...) runs the xsimd
// kernel; vitcc::scalar_arch runs the plain scalar reference in kernels/ref.
#pragma once
#include <type_traits>

#include "vitcc/core/config.hpp"

#if !VITCC_DISABLE_SIMD
#include <xsimd/xsimd.hpp>
#endif

namespace vitcc {

struct scalar_arch {
  static constexpr const char* name() noexcept { return "scalar"; }
};

#if VITCC_DISABLE_SIMD
using default_arch = scalar_arch;
#else
// The best instruction set enabled at compile time (-march=native by default).
using default_arch = xsimd::default_arch;
#endif

template <class Arch>
inline constexpr bool is_scalar_arch = std::is_same_v<Arch, scalar_arch>;

}  // namespace vitcc
