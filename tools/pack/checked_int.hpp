// Integer arithmetic on values an ONNX file controls. Signed overflow is undefined behaviour in C++
// (and INT64_MIN / -1 traps on x86), so every sum, difference, product and quotient the constant
// folder and the interpreter compute from file data goes through these: each returns false instead
// of overflowing, and the caller refuses the node, naming it.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#include "onnx_graph.hpp"

namespace vitcc::pack::detail {

inline bool add_ok(std::int64_t a, std::int64_t b, std::int64_t* r) { return !__builtin_add_overflow(a, b, r); }
inline bool sub_ok(std::int64_t a, std::int64_t b, std::int64_t* r) { return !__builtin_sub_overflow(a, b, r); }
inline bool mul_ok(std::int64_t a, std::int64_t b, std::int64_t* r) { return !__builtin_mul_overflow(a, b, r); }
// b != 0 is the caller's check; this one catches the only overflowing quotient, INT64_MIN / -1.
inline bool div_ok(std::int64_t a, std::int64_t b, std::int64_t* r) {
  if (b == -1 && a == std::numeric_limits<std::int64_t>::min()) return false;
  *r = a / b;
  return true;
}

// Whether v is a value of the element type t. int32 tensors (which also hold int16, int8 and uint8
// data) keep their values in 64 bits, so results are checked against the narrower range.
inline bool fits(DType t, std::int64_t v) {
  if (t == DType::i32) return v >= std::numeric_limits<std::int32_t>::min() && v <= std::numeric_limits<std::int32_t>::max();
  return true;
}

// Whether a float can be converted to an integer of type t (truncated toward zero) without
// undefined behaviour: finite and, truncated, inside t's range. 2^63 and 2^31 are exact floats.
inline bool float_fits(DType t, double f) {
  const double lim = t == DType::i32 ? 2147483648.0 : 9223372036854775808.0;
  return std::trunc(f) >= -lim && f < lim;  // false for NaN
}

}  // namespace vitcc::pack::detail
