// Binds model weights to tensors of a checked blob: every lookup states the dtype, layout and shape
// the model expects, and the first mismatch becomes the Status. Weights stay where they are
// (zero-copy views into the blob).
#pragma once
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <initializer_list>

#include "vitcc/core/error.hpp"
#include "vitcc/core/precision.hpp"
#include "vitcc/io/blob_reader.hpp"
#include "vitcc/kernels/packed_b.hpp"

namespace vitcc {

// The first check of every model's bind(): the blob is the one the model was generated for.
inline Status check_blob_checksum(const BlobView& blob, std::uint64_t expected) noexcept {
  if (blob.checksum() == expected) return Status{};
  return Status::error(Errc::wrong_blob, "blob: checksum 0x%016llx, this model expects 0x%016llx",
                       static_cast<unsigned long long>(blob.checksum()), static_cast<unsigned long long>(expected));
}

class Binder {
 public:
  explicit Binder(const BlobView& blob) noexcept : blob_(blob) {}

  // A plain row-major float32 tensor of exactly `dims`.
  const float* plain(std::initializer_list<std::uint64_t> dims, const char* name_format, ...) noexcept
#if defined(__GNUC__) || defined(__clang__)
      __attribute__((format(printf, 3, 4)))
#endif
  {
    va_list args;
    va_start(args, name_format);
    char name[blob::name_capacity + 8];
    std::vsnprintf(name, sizeof name, name_format, args);
    va_end(args);
    return static_cast<const float*>(lookup(blob::Layout::plain, blob::DType::f32, dims, name));
  }

  // A plain row-major tensor of exactly `dims` and dtype `dtype` (bfloat16, int8, int32 or float32).
  const void* plain(blob::DType dtype, std::initializer_list<std::uint64_t> dims, const char* name_format, ...) noexcept
#if defined(__GNUC__) || defined(__clang__)
      __attribute__((format(printf, 4, 5)))
#endif
  {
    va_list args;
    va_start(args, name_format);
    char name[blob::name_capacity + 8];
    std::vsnprintf(name, sizeof name, name_format, args);
    va_end(args);
    return lookup(blob::Layout::plain, dtype, dims, name);
  }

  // A [k, n] matrix packed for kernels::gemm (float32).
  const float* packed(std::uint64_t k, std::uint64_t n, const char* name_format, ...) noexcept
#if defined(__GNUC__) || defined(__clang__)
      __attribute__((format(printf, 4, 5)))
#endif
  {
    va_list args;
    va_start(args, name_format);
    char name[blob::name_capacity + 8];
    std::vsnprintf(name, sizeof name, name_format, args);
    va_end(args);
    return static_cast<const float*>(lookup(blob::Layout::gemm_b16, blob::DType::f32, {k, n}, name));
  }

  // A [k, n] matrix packed for the GEMM of precision p (kernels/matmul.hpp): the weight itself, and
  // at int8 also NAME_scale (float32) and NAME_colsum (int32), both padded to whole 16-column panels.
  kernels::PackedB packed(std::uint64_t k, std::uint64_t n, Precision p, const char* name_format, ...) noexcept
#if defined(__GNUC__) || defined(__clang__)
      __attribute__((format(printf, 5, 6)))
#endif
  {
    va_list args;
    va_start(args, name_format);
    char name[blob::name_capacity + 8];
    std::vsnprintf(name, sizeof name, name_format, args);
    va_end(args);
    kernels::PackedB w;
    if (p == Precision::fp32) {
      w.data = lookup(blob::Layout::gemm_b16, blob::DType::f32, {k, n}, name);
    } else if (p == Precision::bf16) {
      w.data = lookup(blob::Layout::gemm_b16_k2, blob::DType::bf16, {k, n}, name);
    } else {
      w.data = lookup(blob::Layout::gemm_b16_k4, blob::DType::i8, {k, n}, name);
      const std::uint64_t np = (n + blob::panel_cols - 1) / blob::panel_cols * blob::panel_cols;
      char extra[blob::name_capacity + 16];
      std::snprintf(extra, sizeof extra, "%s_scale", name);
      w.scale = static_cast<const float*>(lookup(blob::Layout::plain, blob::DType::f32, {np}, extra));
      std::snprintf(extra, sizeof extra, "%s_colsum", name);
      w.colsum = static_cast<const std::int32_t*>(lookup(blob::Layout::plain, blob::DType::i32, {np}, extra));
    }
    return w;
  }

  // The final verdict: the first error, or an error if the blob holds tensors the model never
  // asked for (a blob made for a different configuration).
  Status finish() const noexcept {
    if (!status_.ok()) return status_;
    if (bound_ != blob_.tensor_count())
      return Status::error(Errc::shape_mismatch, "blob: holds %u tensors but the model uses %u (made for another configuration?)",
                           unsigned(blob_.tensor_count()), unsigned(bound_));
    return status_;
  }

 private:
  const void* lookup(blob::Layout layout, blob::DType dtype, std::initializer_list<std::uint64_t> dims,
                     const char* name) noexcept {
    if (!status_.ok()) return nullptr;
    TensorView t;
    if (!blob_.find(name, t)) {
      status_ = Status::error(Errc::missing_tensor, "blob: missing tensor '%s'", name);
      return nullptr;
    }
    if (t.dtype != dtype) {
      status_ = Status::error(Errc::dtype_mismatch, "blob: tensor '%s' has dtype %u, expected %u", name, unsigned(t.dtype),
                              unsigned(dtype));
      return nullptr;
    }
    if (t.layout != layout) {
      status_ = Status::error(Errc::layout_mismatch, "blob: tensor '%s' has layout %u, expected %u", name,
                              unsigned(t.layout), unsigned(layout));
      return nullptr;
    }
    bool same = t.rank == dims.size();
    std::size_t i = 0;
    for (std::uint64_t d : dims) same = same && t.dims[i++] == d;
    if (!same) {
      char want[96], got[96];
      format_dims(want, sizeof want, dims.begin(), dims.size());
      format_dims(got, sizeof got, t.dims, t.rank);
      status_ = Status::error(Errc::shape_mismatch, "blob: tensor '%s' has shape %s, expected %s", name, got, want);
      return nullptr;
    }
    ++bound_;
    return t.data;
  }

  static void format_dims(char* out, std::size_t cap, const std::uint64_t* dims, std::size_t rank) noexcept {
    std::size_t used = static_cast<std::size_t>(std::snprintf(out, cap, "["));
    for (std::size_t i = 0; i < rank && used < cap; ++i)
      used += static_cast<std::size_t>(std::snprintf(out + used, cap - used, i ? ", %llu" : "%llu",
                                                     static_cast<unsigned long long>(dims[i])));
    if (used < cap) std::snprintf(out + used, cap - used, "]");
  }

  const BlobView& blob_;
  Status status_;
  std::uint32_t bound_ = 0;
};

}  // namespace vitcc
