// Every VITCC_ macro lives here.
#pragma once
#include "vitcc/version.hpp"

// VITCC_DISABLE_SIMD=1 builds the plain scalar path only (kernels/ref), whatever the target ISA.
#ifndef VITCC_DISABLE_SIMD
#define VITCC_DISABLE_SIMD 0
#endif

// bfloat16 weights with bfloat16 dot products. 0 (default) keeps float32 arithmetic, the weights
// widened as they are loaded, on every target. Non-zero rounds the activations to bfloat16 too and
// multiplies with the target's bf16 dot product: on AArch64 with FEAT_BF16
// (__ARM_FEATURE_BF16_VECTOR_ARITHMETIC, e.g. -march=armv8.6-a or +bf16) 1 selects BFMMLA and 2 BFDOT
// (round-to-odd accumulation); on x86 with AVX512-BF16 (__AVX512BF16__) any non-zero value selects
// vdpbf16ps (round to nearest even). docs/PRECISION.md has the speed and accuracy measured and why
// this is opt-in. Ignored where the target has neither.
#ifndef VITCC_BF16_DOT
#define VITCC_BF16_DOT 0
#endif

// int8 models' P.v product in bfloat16 with AVX512-BF16's vdpbf16ps (x86 with __AVX512BF16__):
// 0 (the header's default) keeps it in float32, 1 rounds P and V to bfloat16. The project's CMake
// build defines it where a configure-time probe measures vdpbf16ps at >= 1.5x the fp32 FMA rate
// (VITCC_BF16_PV=auto; docs/PRECISION.md has the speed and accuracy). Ignored elsewhere and at fp32
// and bf16.
#ifndef VITCC_BF16_PV
#define VITCC_BF16_PV 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define VITCC_RESTRICT __restrict__
#define VITCC_ALWAYS_INLINE inline __attribute__((always_inline))
#define VITCC_ALWAYS_INLINE_LAMBDA __attribute__((always_inline))
#else
#define VITCC_RESTRICT
#define VITCC_ALWAYS_INLINE inline
#define VITCC_ALWAYS_INLINE_LAMBDA
#endif

// Fully unrolls the fixed-count loops over a microkernel's register tile. Without it GCC at -O2
// keeps the accumulator array in memory and the GEMM runs ~3x slower; with it -O2 and -O3 match.
#if defined(__clang__)
#define VITCC_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define VITCC_UNROLL _Pragma("GCC unroll 32")
#else
#define VITCC_UNROLL
#endif

// Alignment of every tensor in a blob and of the workspace the caller provides.
#define VITCC_ALIGNMENT 64

// What the unchecked API (e.g. a model's void forward()) asserts about its arguments in debug builds
// (no NDEBUG). Define it before including vitcc to route the check elsewhere (an RTOS's own assert).
#ifndef VITCC_ASSERT
#ifdef NDEBUG
#define VITCC_ASSERT(condition) ((void)0)
#else
#include <cassert>
#define VITCC_ASSERT(condition) assert(condition)
#endif
#endif

// 1 where the target executes single- (F) / double-precision fused multiply-add in hardware
// (core/fp.hpp: how kernels use it).
#if defined(__FP_FAST_FMAF) || defined(__FMA__) || defined(__aarch64__) || \
    (defined(__ARM_FEATURE_FMA) && defined(__ARM_FP) && (__ARM_FP & 4))
#define VITCC_HAS_FMAF 1
#else
#define VITCC_HAS_FMAF 0
#endif
#if defined(__FP_FAST_FMA) || defined(__FMA__) || defined(__aarch64__) || \
    (defined(__ARM_FEATURE_FMA) && defined(__ARM_FP) && (__ARM_FP & 8))
#define VITCC_HAS_FMA 1
#else
#define VITCC_HAS_FMA 0
#endif
