// Every VITCC_ macro lives here.
#pragma once
#include "vitcc/version.hpp"

// VITCC_DISABLE_SIMD=1 builds the plain scalar path only (kernels/ref), whatever the target ISA.
#ifndef VITCC_DISABLE_SIMD
#define VITCC_DISABLE_SIMD 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define VITCC_RESTRICT __restrict__
#define VITCC_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define VITCC_RESTRICT
#define VITCC_ALWAYS_INLINE inline
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
