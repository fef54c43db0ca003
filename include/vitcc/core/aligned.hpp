// Alignment arithmetic for the workspace and the blob.
#pragma once
#include <cstddef>
#include <cstdint>

#include "vitcc/core/config.hpp"

namespace vitcc {

inline constexpr std::size_t alignment = VITCC_ALIGNMENT;
inline constexpr std::size_t floats_per_alignment = alignment / sizeof(float);

// Rounds a float count up so that the next buffer carved after it stays aligned.
constexpr std::size_t align_floats(std::size_t n) noexcept {
  return (n + floats_per_alignment - 1) / floats_per_alignment * floats_per_alignment;
}

inline bool is_aligned(const void* p) noexcept {
  return reinterpret_cast<std::uintptr_t>(p) % alignment == 0;
}

}  // namespace vitcc
