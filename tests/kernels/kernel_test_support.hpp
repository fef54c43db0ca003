// Shared by the kernel tests: the architectures to instantiate, deterministic data, aligned buffers
// with guard zones, and a tolerance check that reports the worst element.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <tuple>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#define VITCC_TEST_HAVE_GUARD_PAGE 1
#endif

#include <doctest/doctest.h>

#include "vitcc/core/arch.hpp"

namespace vitcc::test {

// Every architecture this build can run: the scalar reference always, plus each xsimd ISA the
// compiler targets (-march=native), so a bug in one tile shape or batch width cannot hide behind another.
using kernel_archs = std::tuple<vitcc::scalar_arch
#if !VITCC_DISABLE_SIMD
#if XSIMD_WITH_AVX512F
                                , xsimd::avx512f
#endif
#if XSIMD_WITH_FMA3_AVX2
                                , xsimd::fma3<xsimd::avx2>
#endif
#if XSIMD_WITH_SSE2
                                , xsimd::sse2
#endif
#if XSIMD_WITH_NEON64
                                , xsimd::neon64
#endif
#endif
                                >;

// Small deterministic generator (no <random> distribution differences between standard libraries).
struct Rng {
  std::uint64_t state;
  explicit Rng(std::uint64_t seed) : state(seed * 0x9E3779B97F4A7C15ull + 1) {}
  float uniform(float lo = -1.0f, float hi = 1.0f) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return lo + (hi - lo) * static_cast<float>((state >> 40) & 0xFFFFFF) / 16777216.0f;
  }
  void fill(float* p, std::size_t n, float lo = -1.0f, float hi = 1.0f) {
    for (std::size_t i = 0; i < n; ++i) p[i] = uniform(lo, hi);
  }
};

// A 64-byte aligned float buffer followed by a guard zone filled with a sentinel, so a kernel that
// writes past what it was given is caught by guard_intact().
class Buffer {
 public:
  static constexpr std::size_t guard = 64;
  static constexpr float sentinel = -12345.678f;
  explicit Buffer(std::size_t n, float fill_value = 0.0f) : n_(n) {
    const std::size_t bytes = ((n + guard) * sizeof(float) + 63) / 64 * 64;
    mem_.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    for (std::size_t i = 0; i < n; ++i) mem_.get()[i] = fill_value;
    for (std::size_t i = n; i < n + guard; ++i) mem_.get()[i] = sentinel;
  }
  float* data() { return mem_.get(); }
  const float* data() const { return mem_.get(); }
  float& operator[](std::size_t i) { return mem_.get()[i]; }
  const float& operator[](std::size_t i) const { return mem_.get()[i]; }
  std::size_t size() const { return n_; }
  bool guard_intact() const {
    for (std::size_t i = n_; i < n_ + guard; ++i)
      if (std::memcmp(&mem_.get()[i], &sentinel, sizeof(float)) != 0) return false;
    return true;
  }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::size_t n_;
  std::unique_ptr<float, Free> mem_;
};

// n floats that end exactly where an inaccessible page begins: a kernel that reads even one element
// past the input (e.g. the rows of a partial tile) crashes the test instead of reading stale memory.
// Elsewhere it degrades to a plain allocation.
class GuardPageBuffer {
 public:
  explicit GuardPageBuffer(std::size_t n) : n_(n) {
#ifdef VITCC_TEST_HAVE_GUARD_PAGE
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t body = (n * sizeof(float) + page - 1) / page * page;
    bytes_ = body + page;
    base_ = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(base_ != MAP_FAILED);
    REQUIRE(mprotect(static_cast<char*>(base_) + body, page, PROT_NONE) == 0);
    data_ = reinterpret_cast<float*>(static_cast<char*>(base_) + body - n * sizeof(float));
#else
    fallback_.resize(n);
    data_ = fallback_.data();
#endif
  }
  ~GuardPageBuffer() {
#ifdef VITCC_TEST_HAVE_GUARD_PAGE
    munmap(base_, bytes_);
#endif
  }
  GuardPageBuffer(const GuardPageBuffer&) = delete;
  GuardPageBuffer& operator=(const GuardPageBuffer&) = delete;
  float* data() { return data_; }
  std::size_t size() const { return n_; }

 private:
  std::size_t n_;
  float* data_ = nullptr;
#ifdef VITCC_TEST_HAVE_GUARD_PAGE
  void* base_ = nullptr;
  std::size_t bytes_ = 0;
#else
  std::vector<float> fallback_;
#endif
};

// Worst |got - want| / tolerance over a rows x cols matrix; <= 1 means within tolerance.
// tolerance = rel * max(1, |want|) + mag_rel * mag[i][j]. mag, when given, is the sum of the absolute
// values of the terms that were added up (sum_k |a_ik b_kj| for a product): a float sum's rounding
// error scales with it, not with the result, which can cancel to near zero.
// NaN in got counts as infinitely wrong.
struct Mismatch {
  double worst = 0.0;
  std::size_t row = 0, col = 0;
  double got = 0.0, want = 0.0;
};
inline Mismatch compare(const float* got, std::size_t ld_got, const double* want, std::size_t ld_want,
                        std::size_t rows, std::size_t cols, double rel, const double* mag = nullptr,
                        double mag_rel = 0.0) {
  Mismatch m;
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) {
      const double g = got[i * ld_got + j], w = want[i * ld_want + j];
      const double tol = rel * std::fmax(1.0, std::fabs(w)) + (mag ? mag_rel * mag[i * ld_want + j] : 0.0);
      double e = std::fabs(g - w) / tol;
      if (std::isnan(g)) e = INFINITY;
      if (e > m.worst || (i == 0 && j == 0)) m = {e, i, j, g, w};
    }
  return m;
}
inline Mismatch compare(const float* got, std::size_t ld_got, const float* want, std::size_t ld_want,
                        std::size_t rows, std::size_t cols, double rel, const double* mag = nullptr,
                        double mag_rel = 0.0) {
  std::vector<double> w(rows * cols);
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) w[i * cols + j] = want[i * ld_want + j];
  return compare(got, ld_got, w.data(), cols, rows, cols, rel, mag, mag_rel);
}

// Two float roundings per term of a float sum, as a multiple of the summed magnitudes (see compare).
inline constexpr double sum_mag_rel = 2.4e-7;

}  // namespace vitcc::test

TYPE_TO_STRING(vitcc::scalar_arch);
#if !VITCC_DISABLE_SIMD
#if XSIMD_WITH_AVX512F
TYPE_TO_STRING(xsimd::avx512f);
#endif
#if XSIMD_WITH_FMA3_AVX2
TYPE_TO_STRING(xsimd::fma3<xsimd::avx2>);
#endif
#if XSIMD_WITH_SSE2
TYPE_TO_STRING(xsimd::sse2);
#endif
#if XSIMD_WITH_NEON64
TYPE_TO_STRING(xsimd::neon64);
#endif
#endif

#define VITCC_CHECK_CLOSE(mismatch)                                                                   \
  do {                                                                                                \
    const auto& m_ = (mismatch);                                                                      \
    INFO("worst element (" << m_.row << ", " << m_.col << "): got " << m_.got << ", want " << m_.want \
                           << ", error/tolerance " << m_.worst);                                     \
    CHECK(m_.worst <= 1.0);                                                                           \
  } while (0)
