// The instruction-set paths the whole-model tests instantiate Vit<Cfg, Arch> on: the scalar
// reference, plus whichever SIMD paths this build can run (AVX2+FMA and AVX-512 on x86, NEON on
// AArch64). A macro, not a type list, because doctest's TEST_CASE_TEMPLATE takes the types inline.
#pragma once
#include "vitcc/core/arch.hpp"

// VITCC_SIMD_TEST_ARCHS: the same without the scalar path, defined only when the build has one.
#if !VITCC_DISABLE_SIMD && XSIMD_WITH_AVX512F
#define VITCC_SIMD_TEST_ARCHS xsimd::fma3<xsimd::avx2>, xsimd::avx512f
#elif !VITCC_DISABLE_SIMD && XSIMD_WITH_FMA3_AVX2
#define VITCC_SIMD_TEST_ARCHS xsimd::fma3<xsimd::avx2>
#elif !VITCC_DISABLE_SIMD && XSIMD_WITH_NEON64
#define VITCC_SIMD_TEST_ARCHS xsimd::neon64
#endif
#ifdef VITCC_SIMD_TEST_ARCHS
#define VITCC_MODEL_TEST_ARCHS vitcc::scalar_arch, VITCC_SIMD_TEST_ARCHS
#else
#define VITCC_MODEL_TEST_ARCHS vitcc::scalar_arch
#endif
