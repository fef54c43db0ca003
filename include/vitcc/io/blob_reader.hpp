// Reads a weight blob in place (from flash, a static array or a mapped file) and checks it
// completely before anything trusts it: magic, version, byte order, header consistency, every
// table entry, alignment, bounds, order and overlap of tensors, and the checksum. No allocation,
// no exceptions: problems come back as a Status naming what was wrong.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "vitcc/core/aligned.hpp"
#include "vitcc/core/error.hpp"
#include "vitcc/io/blob_format.hpp"

namespace vitcc {

struct TensorView {
  const char* name = nullptr;
  blob::DType dtype = blob::DType::f32;
  blob::Layout layout = blob::Layout::plain;
  std::uint32_t rank = 0;
  std::uint64_t dims[blob::max_rank] = {0, 0, 0, 0};
  const void* data = nullptr;
  std::uint64_t bytes = 0;

  const float* f32() const noexcept { return static_cast<const float*>(data); }
  const std::uint16_t* bf16() const noexcept { return static_cast<const std::uint16_t*>(data); }
  const std::int8_t* i8() const noexcept { return static_cast<const std::int8_t*>(data); }
  const std::int32_t* i32() const noexcept { return static_cast<const std::int32_t*>(data); }
};

class BlobView {
 public:
  // Validates `bytes` bytes at `data` (which must stay alive and unchanged while in use).
  // verify_checksum=false skips only the hash, for callers that verified the bytes another way.
  Status open(const void* data, std::size_t bytes, bool verify_checksum = true) noexcept;

  std::uint32_t tensor_count() const noexcept { return count_; }
  std::uint64_t checksum() const noexcept { return checksum_; }
  TensorView tensor(std::uint32_t i) const noexcept;
  // Looks a tensor up by name; returns false when absent.
  bool find(const char* name, TensorView& out) const noexcept;

 private:
  const unsigned char* base_ = nullptr;
  std::size_t bytes_ = 0;
  std::uint32_t count_ = 0;
  std::uint64_t checksum_ = 0;
};

namespace detail {

// At most 2^56 elements, so that the byte count (x dtype size <= 8) cannot wrap around 2^64:
// with 2^62 elements of 4 bytes the byte count would wrap to 0 and a table entry recording
// 0 bytes would pass as a 2^62-element tensor (found by tests/fuzz/fuzz_blob.cpp's review).
inline constexpr std::uint64_t max_tensor_elements = std::uint64_t(1) << 56;

// Element count implied by dims and layout, or 0 on overflow / bad dims. In 64-bit arithmetic
// whatever size_t is (32-bit targets read blobs too).
inline std::uint64_t tensor_elements(const std::uint64_t* dims, std::uint32_t rank,
                                     blob::Layout layout) noexcept {
  if (layout != blob::Layout::plain) {
    if (rank != 2 || dims[0] == 0 || dims[1] == 0) return 0;
    const std::uint64_t k = dims[0], n = dims[1];
    if (k > (std::uint64_t(1) << 31) || n > (std::uint64_t(1) << 31)) return 0;
    const std::uint64_t elements = blob::packed_elements(layout, k, n);  // < 2^63
    return elements > max_tensor_elements ? 0 : elements;
  }
  std::uint64_t n = 1;
  for (std::uint32_t i = 0; i < rank; ++i) {
    if (dims[i] == 0 || dims[i] > max_tensor_elements || n > max_tensor_elements / dims[i]) return 0;
    n *= dims[i];
  }
  return n;
}

// The dtypes and layouts a blob of `version` may use, and which go together.
inline bool known_dtype(blob::DType t, std::uint32_t version) noexcept {
  switch (t) {
    case blob::DType::f32: return true;
    case blob::DType::bf16: case blob::DType::i8: case blob::DType::i32: return version >= 2;
  }
  return false;
}
inline bool known_layout(blob::Layout l, blob::DType t, std::uint32_t version) noexcept {
  switch (l) {
    case blob::Layout::plain: return true;
    case blob::Layout::gemm_b16: return t == blob::DType::f32;
    case blob::Layout::gemm_b16_k2: case blob::Layout::gemm_b16_k4: return version >= 2 && t == blob::packed_dtype(l);
  }
  return false;
}

}  // namespace detail

inline TensorView BlobView::tensor(std::uint32_t i) const noexcept {
  TensorView t;
  if (i >= count_) return t;
  const unsigned char* e = base_ + blob::header_fixed_bytes + std::size_t(i) * blob::entry_bytes;
  t.name = reinterpret_cast<const char*>(e);
  t.dtype = static_cast<blob::DType>(blob::read_u32(e + 64));
  t.layout = static_cast<blob::Layout>(blob::read_u32(e + 68));
  t.rank = blob::read_u32(e + 72);
  for (std::size_t d = 0; d < blob::max_rank; ++d) t.dims[d] = blob::read_u64(e + 80 + 8 * d);
  const std::uint64_t offset = blob::read_u64(e + 112);
  t.bytes = blob::read_u64(e + 120);
  t.data = base_ + offset;
  return t;
}

inline bool BlobView::find(const char* name, TensorView& out) const noexcept {
  for (std::uint32_t i = 0; i < count_; ++i) {
    const char* n = reinterpret_cast<const char*>(base_ + blob::header_fixed_bytes +
                                                  std::size_t(i) * blob::entry_bytes);
    if (std::strncmp(n, name, blob::name_capacity) == 0) {
      out = tensor(i);
      return true;
    }
  }
  return false;
}

inline Status BlobView::open(const void* data, std::size_t bytes, bool verify_checksum) noexcept {
  *this = BlobView{};
  if (data == nullptr) return Status::error(Errc::null_pointer, "blob: null data pointer");
  if (!is_aligned(data))
    return Status::error(Errc::misaligned, "blob: data must be %zu-byte aligned", alignment);
  const auto* p = static_cast<const unsigned char*>(data);
  if (bytes < blob::header_fixed_bytes)
    return Status::error(Errc::truncated, "blob: %zu bytes is shorter than the %zu-byte header",
                         bytes, blob::header_fixed_bytes);
  if (std::memcmp(p, blob::magic, sizeof blob::magic) != 0)
    return Status::error(Errc::bad_magic, "blob: bad magic (not a vitcc weight blob)");
  const std::uint32_t tag = blob::read_u32(p + 12);
  if (tag != blob::endian_tag)
    return Status::error(Errc::bad_endianness, "blob: endianness tag 0x%08x, expected 0x%08x (little endian)",
                         unsigned(tag), unsigned(blob::endian_tag));
  // Our little-endian reads only match native memory on a little-endian machine.
  std::uint32_t native;
  std::memcpy(&native, p + 12, 4);
  if (native != blob::endian_tag)
    return Status::error(Errc::bad_endianness, "blob: this machine is big endian; blobs are little endian");
  const std::uint32_t version = blob::read_u32(p + 8);
  if (version < blob::oldest_format_version || version > blob::format_version)
    return Status::error(Errc::bad_version, "blob: format version %u, this reader supports %u to %u",
                         unsigned(version), unsigned(blob::oldest_format_version), unsigned(blob::format_version));
  const std::uint32_t header_bytes = blob::read_u32(p + 16);
  const std::uint32_t count = blob::read_u32(p + 20);
  const std::uint64_t file_bytes = blob::read_u64(p + 24);
  const std::uint64_t recorded = blob::read_u64(p + blob::checksum_offset);
  const std::uint64_t data_offset = blob::read_u64(p + 40);
  if (count > 1000000 ||
      std::uint64_t(header_bytes) != blob::header_fixed_bytes + std::uint64_t(count) * blob::entry_bytes)
    return Status::error(Errc::bad_header, "blob: header bytes %u do not match %u tensor entries",
                         unsigned(header_bytes), unsigned(count));
  if (file_bytes != bytes)
    return Status::error(Errc::truncated, "blob: header records %llu bytes but %zu are present",
                         static_cast<unsigned long long>(file_bytes), bytes);
  if (header_bytes > bytes)
    return Status::error(Errc::truncated, "blob: tensor table (%u bytes) exceeds the blob", unsigned(header_bytes));
  if (data_offset % blob::tensor_alignment != 0 || data_offset < header_bytes || data_offset > bytes)
    return Status::error(Errc::bad_header, "blob: data offset %llu is not a 64-aligned offset past the table",
                         static_cast<unsigned long long>(data_offset));
  base_ = p;
  bytes_ = bytes;
  count_ = count;

  std::uint64_t previous_end = data_offset;
  for (std::uint32_t i = 0; i < count; ++i) {
    const unsigned char* e = p + blob::header_fixed_bytes + std::size_t(i) * blob::entry_bytes;
    const char* name = reinterpret_cast<const char*>(e);
    std::size_t name_len = 0;
    while (name_len < blob::name_capacity && name[name_len] != '\0') ++name_len;
    Status bad;
    if (name_len == 0 || name_len == blob::name_capacity) {
      bad = Status::error(Errc::bad_tensor_entry, "blob: tensor entry %u has no NUL-terminated name", unsigned(i));
    } else {
      const TensorView t = tensor(i);
      const std::uint64_t offset = blob::read_u64(e + 112);
      if (!detail::known_dtype(t.dtype, version)) {
        bad = Status::error(Errc::bad_tensor_entry, "blob: tensor '%.63s' has unknown dtype %u (format version %u)", name,
                            unsigned(t.dtype), unsigned(version));
      } else if (!detail::known_layout(t.layout, t.dtype, version)) {
        bad = Status::error(Errc::bad_tensor_entry, "blob: tensor '%.63s' has layout %u, unknown or not for dtype %u", name,
                            unsigned(t.layout), unsigned(t.dtype));
      } else if (t.rank == 0 || t.rank > blob::max_rank) {
        bad = Status::error(Errc::bad_tensor_entry, "blob: tensor '%.63s' has rank %u (expected 1..4)", name, unsigned(t.rank));
      } else {
        const std::uint64_t elements = detail::tensor_elements(t.dims, t.rank, t.layout);
        if (elements == 0 || elements * blob::dtype_bytes(t.dtype) != t.bytes) {
          bad = Status::error(Errc::bad_tensor_entry, "blob: tensor '%.63s' records %llu bytes, its shape needs %llu",
                              name, static_cast<unsigned long long>(t.bytes),
                              static_cast<unsigned long long>(elements * blob::dtype_bytes(t.dtype)));
        } else if (offset % blob::tensor_alignment != 0) {
          bad = Status::error(Errc::misaligned, "blob: tensor '%.63s' at offset %llu is not 64-aligned", name,
                              static_cast<unsigned long long>(offset));
        } else if (offset > bytes || t.bytes > bytes - offset) {
          bad = Status::error(Errc::out_of_bounds, "blob: tensor '%.63s' (offset %llu, %llu bytes) extends past the %zu-byte blob",
                              name, static_cast<unsigned long long>(offset), static_cast<unsigned long long>(t.bytes), bytes);
        } else if (offset < previous_end) {
          bad = Status::error(Errc::overlapping, "blob: tensor '%.63s' at offset %llu overlaps the table or the previous tensor",
                              name, static_cast<unsigned long long>(offset));
        } else {
          previous_end = offset + t.bytes;
        }
      }
    }
    if (!bad.ok()) {
      *this = BlobView{};
      return bad;
    }
  }
  if (verify_checksum) {
    const std::uint64_t actual = blob::checksum(p, bytes);
    if (actual != recorded) {
      *this = BlobView{};
      return Status::error(Errc::checksum_mismatch, "blob: checksum 0x%016llx does not match the recorded 0x%016llx (corrupted)",
                           static_cast<unsigned long long>(actual), static_cast<unsigned long long>(recorded));
    }
  }
  checksum_ = recorded;
  return Status{};
}

// Opt-in check at load: every float32 and bfloat16 value of every tensor is finite (int8 and
// int32 have no Inf or NaN). vitcc-pack refuses to write NaN or Inf weights, and the checksum ties
// the bytes to what it wrote, so this is for blobs from elsewhere; it costs one more pass over the
// weights (docs/SECURITY.md).
inline Status check_finite(const BlobView& blob) noexcept {
  for (std::uint32_t i = 0; i < blob.tensor_count(); ++i) {
    const TensorView t = blob.tensor(i);
    const auto* p = static_cast<const unsigned char*>(t.data);
    // Exponent all ones: Inf (mantissa zero) or NaN, whatever -ffast-math says. A bfloat16 is the
    // upper half of a float32: the same test on its 16 bits shifted up.
    auto non_finite = [&](std::uint32_t bits, std::uint64_t k) {
      return Status::error(Errc::non_finite, "blob: tensor '%.63s' holds %s at element %llu", t.name,
                           (bits & 0x007fffffu) ? "NaN" : "Inf", static_cast<unsigned long long>(k));
    };
    if (t.dtype == blob::DType::f32) {
      for (std::uint64_t k = 0; k < t.bytes / 4; ++k) {
        std::uint32_t bits;
        std::memcpy(&bits, p + 4 * k, 4);
        if ((bits & 0x7f800000u) == 0x7f800000u) return non_finite(bits, k);
      }
    } else if (t.dtype == blob::DType::bf16) {
      for (std::uint64_t k = 0; k < t.bytes / 2; ++k) {
        std::uint16_t half;
        std::memcpy(&half, p + 2 * k, 2);
        const std::uint32_t bits = std::uint32_t(half) << 16;
        if ((bits & 0x7f800000u) == 0x7f800000u) return non_finite(bits, k);
      }
    }
  }
  return Status{};
}

}  // namespace vitcc
