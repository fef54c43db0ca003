// Weight blob format, version 2 (docs/FORMAT.md is the specification; keep both in step). Version 1
// (float32 tensors only) is read too: its files are valid version-2 files with another number.
//
//   offset  size  field
//   0       8     magic "VITCCBLB"
//   8       4     format version (2; 1 is read)
//   12      4     endianness tag 0x01020304, written in the file's byte order (little endian)
//   16      4     header bytes = 64 + 128 * tensor count (fixed header + tensor table)
//   20      4     tensor count
//   24      8     file bytes (a multiple of 64)
//   32      8     checksum: blob_checksum() of the whole file with these 8 bytes read as zero
//   40      8     data offset: where the first tensor starts (64-aligned, >= header bytes)
//   48      16    reserved, zero
//   64      ...   tensor table, 128 bytes per entry:
//                   0 name[64] (NUL-terminated)   64 dtype u32   68 layout u32   72 rank u32
//                   76 reserved u32   80 dims u64[4] (unused dims 0)   112 offset u64   120 bytes u64
//   then tensor data, each tensor 64-aligned, in table order, gaps zero-filled.
//
// All integers are little endian; a reader on a big-endian machine refuses the blob.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace vitcc::blob {

inline constexpr char magic[8] = {'V', 'I', 'T', 'C', 'C', 'B', 'L', 'B'};
inline constexpr std::uint32_t format_version = 2;
inline constexpr std::uint32_t oldest_format_version = 1;
inline constexpr std::uint32_t endian_tag = 0x01020304u;
inline constexpr std::size_t header_fixed_bytes = 64;
inline constexpr std::size_t entry_bytes = 128;
inline constexpr std::size_t name_capacity = 64;  // including the terminating NUL
inline constexpr std::size_t max_rank = 4;
inline constexpr std::size_t tensor_alignment = 64;
inline constexpr std::size_t checksum_offset = 32;

enum class DType : std::uint32_t {
  f32 = 1,
  // 2 is reserved for float16
  bf16 = 3,  // bfloat16: the upper 16 bits of a float32 (version 2)
  i8 = 4,    // two's complement (version 2)
  i32 = 5,   // little endian (version 2)
};

constexpr std::size_t dtype_bytes(DType t) noexcept {
  switch (t) {
    case DType::f32: case DType::i32: return 4;
    case DType::bf16: return 2;
    case DType::i8: return 1;
  }
  return 0;
}

// Columns per panel of the packed GEMM layouts: the same on every ISA, so one blob serves AVX-512
// (one zmm of float32 per panel row), AVX2, NEON and the scalar path.
inline constexpr std::size_t panel_cols = 16;

// How the elements of a tensor are arranged.
enum class Layout : std::uint32_t {
  plain = 0,        // row-major over dims
  gemm_b16 = 1,     // dims = [K, N], float32: panels of 16 columns, K rows of 16 each (kernels/ref/gemm.hpp)
  gemm_b16_k2 = 2,  // dims = [K, N], bfloat16: panels of 16 columns, K/2 rows of 16 pairs (k, k+1) (version 2)
  gemm_b16_k4 = 3,  // dims = [K, N], int8: panels of 16 columns, K/4 rows of 16 quads (k .. k+3) (version 2)
};

// The dtype a packed layout holds, and how many consecutive k it groups per column (1, 2, 4).
constexpr DType packed_dtype(Layout l) noexcept {
  return l == Layout::gemm_b16_k2 ? DType::bf16 : l == Layout::gemm_b16_k4 ? DType::i8 : DType::f32;
}
constexpr std::uint64_t packed_k_group(Layout l) noexcept {
  return l == Layout::gemm_b16_k2 ? 2 : l == Layout::gemm_b16_k4 ? 4 : 1;
}

// Elements of a [k, n] matrix in a packed layout: whole panels of 16 columns, K rounded up to the
// group (the padding is zero).
constexpr std::uint64_t packed_elements(Layout l, std::uint64_t k, std::uint64_t n) noexcept {
  const std::uint64_t g = packed_k_group(l);
  return (n + panel_cols - 1) / panel_cols * panel_cols * ((k + g - 1) / g * g);
}

// 64-bit integrity hash over 8-byte little-endian words (FNV-1a style mixing, one multiply per
// word so that hashing a 350 MB blob at load time costs well under a second). Detects corruption
// and mismatched files; it is not a defence against a deliberate forger.
inline std::uint64_t checksum(const unsigned char* data, std::size_t bytes) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull;
  const std::uint64_t prime = 0x100000001b3ull;
  std::size_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, data + i, 8);
    if (i == checksum_offset) w = 0;  // the checksum field itself
    h = (h ^ w) * prime;
    h ^= h >> 29;
  }
  for (; i < bytes; ++i) h = (h ^ data[i]) * prime;
  return h ^ (h >> 32);
}

inline std::uint32_t read_u32(const unsigned char* p) noexcept {
  return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 |
         std::uint32_t(p[3]) << 24;
}
inline std::uint64_t read_u64(const unsigned char* p) noexcept {
  return std::uint64_t(read_u32(p)) | std::uint64_t(read_u32(p + 4)) << 32;
}

}  // namespace vitcc::blob
