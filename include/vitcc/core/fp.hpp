// Floating-point contraction policy: every multiply-add in scalar kernel code is written as madd().
//
// Why: C++ lets a compiler contract a * b + c into one fused multiply-add, or not, wherever the
// source leaves it free to, and GCC's default (-ffp-contract=fast) decides separately for each copy
// of a loop. The copy that a forward() with compile-time shapes inlines, the copy that a thread's
// task runs with run-time bounds, and a vectorised copy of either can then round the same expression
// differently, and a kernel's output would depend on how its work was split across threads (issue 20:
// deit_tiny differed in 913 of 1000 logits between one and three threads on the scalar path). A
// header-only library cannot rely on its own build flags for this: users compile these headers with
// theirs. So the arithmetic is spelled out instead:
//   - where the target has a fused multiply-add instruction (x86 FMA3, every AArch64 core, Arm VFPv4
//     and FPv4/FPv5 for single precision), madd() is std::fma: one rounding, in every copy, vectorised
//     or not (the compiler vectorises std::fma into the vector FMA);
//   - where it has none, madd() is a * b + c: two roundings, and with no FMA instruction to contract
//     into, the compiler has no choice to make either.
// The SIMD kernels do the same with kernels/fmadd.hpp, a vector FMA instruction wherever the target
// has one, whatever xsimd's own fma does for that architecture. (This header needs nothing but the
// standard library, so the scalar references can use it.)
//
// The rule for kernel code: a product whose result is added to or subtracted from something is written
// with madd (scalar) or an explicit FMA (SIMD); tests/kernels/test_split_invariance.cpp checks that
// every kernel gives the same bits however its work is split.
#pragma once
#include <cmath>

#include "vitcc/core/config.hpp"

namespace vitcc::fp {

// a * b + c, rounded the same way wherever it is inlined (see above).
inline float madd(float a, float b, float c) noexcept {
#if VITCC_HAS_FMAF
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

inline double madd(double a, double b, double c) noexcept {
#if VITCC_HAS_FMA
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

}  // namespace vitcc::fp
