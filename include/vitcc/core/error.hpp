// Errors on the device path are values: a code for programs and a message for people, held in a
// fixed buffer so that reporting an error allocates nothing and throws nothing.
#pragma once
#include <cstdarg>
#include <cstddef>
#include <cstdio>

namespace vitcc {

enum class Errc {
  ok = 0,
  null_pointer,
  misaligned,         // a buffer is not VITCC_ALIGNMENT-aligned
  truncated,          // the blob is shorter than its header says
  bad_magic,
  bad_version,
  bad_endianness,
  bad_header,         // header fields inconsistent with each other
  bad_tensor_entry,   // a tensor table entry is malformed (name, dtype, rank, size)
  out_of_bounds,      // a tensor lies (partly) outside the blob
  overlapping,        // tensors overlap or are out of order
  checksum_mismatch,  // the blob's bytes do not hash to its recorded checksum
  wrong_blob,         // the blob is intact but not the one this config was made for
  missing_tensor,
  dtype_mismatch,
  layout_mismatch,
  shape_mismatch,
  non_finite,         // a weight is NaN or Inf (check_finite, an opt-in check at load)
  not_bound,          // forward() on a model whose bind() did not succeed
  workspace_too_small,
  unsupported_cpu,    // the code was compiled for instructions this CPU lacks (core/cpu_features.hpp)
  invalid_argument,   // a value outside what the call accepts (e.g. a preprocessing configuration)
};

class Status {
 public:
  static constexpr std::size_t message_capacity = 224;

  Status() noexcept { message_[0] = '\0'; }

  // printf-style message; truncated to message_capacity - 1 characters.
#if defined(__GNUC__) || defined(__clang__)
  __attribute__((format(printf, 2, 3)))
#endif
  static Status error(Errc code, const char* format, ...) noexcept {
    Status s;
    s.code_ = code;
    va_list args;
    va_start(args, format);
    std::vsnprintf(s.message_, message_capacity, format, args);
    va_end(args);
    return s;
  }

  bool ok() const noexcept { return code_ == Errc::ok; }
  explicit operator bool() const noexcept { return ok(); }
  Errc code() const noexcept { return code_; }
  const char* message() const noexcept { return ok() ? "ok" : message_; }

 private:
  Errc code_ = Errc::ok;
  char message_[message_capacity];
};

}  // namespace vitcc
