// What every benchmark of the suite shares: the machine's peak at each precision, measured here
// rather than assumed, the GFLOP/s and %-of-peak counters, aligned buffers and seeded data.
#pragma once
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "vitcc/core/arch.hpp"
#include "vitcc/core/precision.hpp"
#include "vitcc/core/thread_pool.hpp"
#include "vitcc/kernels/gemm.hpp"
#include "vitcc/kernels/gemm_q8.hpp"

namespace vitcc::bench {

using Arch = default_arch;

// fp32 FMA throughput of one core: 16 independent accumulator chains (enough to cover the FMA
// latency on both pipes of current cores) of the widest vector the build targets, the same fmadd the
// GEMM microkernel issues. Returns FLOP per second for `seconds` of work.
inline double fma_chains_flops(double seconds) {
#if VITCC_DISABLE_SIMD
  (void)seconds;
  return 1.0;
#else
  using B = xsimd::batch<float, Arch>;
  constexpr int chains = 16;
  constexpr std::size_t inner = 1024;
  B acc[chains];
  for (int i = 0; i < chains; ++i) acc[i] = B(float(i) * 1e-3f);
  const B x(0.999999f), y(1e-7f);
  std::uint64_t rounds = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
    for (std::size_t k = 0; k < inner; ++k) {
      VITCC_UNROLL
      for (int i = 0; i < chains; ++i) acc[i] = kernels::detail::fmadd<Arch>(acc[i], x, y);
    }
    ++rounds;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (elapsed < seconds);
  for (int i = 0; i < chains; ++i) benchmark::DoNotOptimize(acc[i]);
  return double(rounds) * inner * chains * B::size * 2.0 / elapsed;
#endif
}

// bf16 weights run on that same fp32 FMA (kernels/gemm.hpp: bfloat16 weights, float32 arithmetic);
// what they add is the widening of every B vector from bfloat16 pairs, one shift or mask per MR FMAs.
// So their peak is the same chains shaped as the microkernel's register tile (MR x NB accumulators,
// one broadcast A), with B loaded as bfloat16 pair words from a buffer that stays in L1 and widened
// as the kernel does. The FMA alone is fma_chains_flops; the difference is the widening's cost.
inline double bf16_fma_chains_flops(double seconds) {
#if VITCC_DISABLE_SIMD
  (void)seconds;
  return 1.0;
#else
  using B = xsimd::batch<float, Arch>;
  using U = xsimd::batch<std::uint32_t, Arch>;
  using tile = kernels::detail::gemm_tile<Arch>;
  constexpr std::size_t MR = tile::mr, NB = tile::np * tile::panel_batches, W = B::size;
  constexpr std::size_t pair_rows = 32;  // 32 x NB vectors: 6 KiB at AVX-512, well inside L1
  alignas(64) static std::uint32_t words[pair_rows * NB * W];
  for (std::uint32_t& w : words) w = 0x3F803F80u;  // both halves bfloat16 1.0
  B acc[MR][NB];
  for (std::size_t i = 0; i < MR; ++i)
    for (std::size_t j = 0; j < NB; ++j) acc[i][j] = B(float(i * NB + j) * 1e-3f);
  const B a(1e-7f);
  const U odd_mask(0xFFFF0000u);
  std::uint64_t rounds = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
    for (std::size_t r = 0; r < pair_rows; ++r) {
      VITCC_UNROLL
      for (std::size_t half = 0; half < 2; ++half) {
        B bv[NB];
        VITCC_UNROLL
        for (std::size_t j = 0; j < NB; ++j) {
          const U u = U::load_aligned(words + (r * NB + j) * W);
          bv[j] = xsimd::bitwise_cast<B>(half ? (u & odd_mask) : (u << 16));
        }
        VITCC_UNROLL
        for (std::size_t i = 0; i < MR; ++i) {
          VITCC_UNROLL
          for (std::size_t j = 0; j < NB; ++j) acc[i][j] = kernels::detail::fmadd<Arch>(a, bv[j], acc[i][j]);
        }
      }
    }
    ++rounds;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (elapsed < seconds);
  for (std::size_t i = 0; i < MR; ++i)
    for (std::size_t j = 0; j < NB; ++j) benchmark::DoNotOptimize(acc[i][j]);
  return double(rounds) * pair_rows * 2 * MR * NB * W * 2.0 / elapsed;
#endif
}

// int8 multiply-add throughput of one core: 16 independent accumulators of the dot-product
// instruction the int8 GEMM issues (kernels/gemm_q8.hpp's path for this build): vpdpbusd on zmm
// (AVX512-VNNI), on ymm (AVX-VNNI), or sdot (NEON dot product). 2 operations per byte product, as
// FLOPs count 2 per multiply-add. 0 where the int8 GEMM has no such path (scalar).
inline double int8_dot_chains_ops(double seconds) {
  constexpr auto path = kernels::detail::q8_path<Arch>();
  constexpr int chains = 16;
  constexpr std::size_t inner = 1024;
  std::uint64_t rounds = 0;
  double elapsed = 0, ops_per_round = 0;
  const auto t0 = std::chrono::steady_clock::now();
  auto time_up = [&] {
    ++rounds;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return elapsed >= seconds;
  };
  if constexpr (path == kernels::detail::Q8Path::vnni512) {
#if defined(__AVX512VNNI__)
    // Sixteen named accumulators: GCC 12 keeps an array of them in memory inside the loop (and with
    // the intrinsic copies each through a second register), which would measure loads and stores.
    const __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(-1);
#define VITCC_BENCH_X16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define VITCC_BENCH_DECL(i) __m512i acc##i = _mm512_set1_epi32(i);
#define VITCC_BENCH_DOT(i) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc##i) : "v"(a), "v"(b));
#define VITCC_BENCH_SUM(i) sum = _mm512_add_epi32(sum, acc##i);
    VITCC_BENCH_X16(VITCC_BENCH_DECL)
    do {
      for (std::size_t k = 0; k < inner; ++k) {
        VITCC_BENCH_X16(VITCC_BENCH_DOT)
      }
    } while (!time_up());
    __m512i sum = _mm512_setzero_si512();
    VITCC_BENCH_X16(VITCC_BENCH_SUM)
    benchmark::DoNotOptimize(sum);
#undef VITCC_BENCH_SUM
#undef VITCC_BENCH_DOT
#undef VITCC_BENCH_DECL
#undef VITCC_BENCH_X16
    ops_per_round = double(inner) * chains * 64 * 2;
#endif
  } else if constexpr (path == kernels::detail::Q8Path::vnni256) {
#if defined(__AVXVNNI__) || (defined(__AVX512VNNI__) && defined(__AVX512VL__))
    __m256i acc[chains];
    for (int i = 0; i < chains; ++i) acc[i] = _mm256_set1_epi32(i);
    const __m256i a = _mm256_set1_epi8(1), b = _mm256_set1_epi8(-1);
    do {
      for (std::size_t k = 0; k < inner; ++k) {
        VITCC_UNROLL
        for (int i = 0; i < chains; ++i) acc[i] = kernels::detail::q8_dpbusd256(acc[i], a, b);
      }
    } while (!time_up());
    for (int i = 0; i < chains; ++i) benchmark::DoNotOptimize(acc[i]);
    ops_per_round = double(inner) * chains * 32 * 2;
#endif
  } else if constexpr (path == kernels::detail::Q8Path::sdot) {
#if VITCC_Q8_SDOT
    int32x4_t acc[chains];
    for (int i = 0; i < chains; ++i) acc[i] = vdupq_n_s32(i);
    const int8x16_t a = vdupq_n_s8(1), b = vdupq_n_s8(-1);
    do {
      for (std::size_t k = 0; k < inner; ++k) {
        VITCC_UNROLL
        for (int i = 0; i < chains; ++i) acc[i] = vdotq_s32(acc[i], a, b);
      }
    } while (!time_up());
    for (int i = 0; i < chains; ++i) benchmark::DoNotOptimize(acc[i]);
    ops_per_round = double(inner) * chains * 16 * 2;
#endif
  }
  (void)time_up;
  return elapsed > 0 ? double(rounds) * ops_per_round / elapsed : 0.0;
}

// AVX512-BF16's dot product, vdpbf16ps on zmm: 12 independent chains (2 multiply-adds of bf16
// pairs per lane and instruction: 64 FLOPs). Not a kernel's peak: vitcc's bf16 GEMM widens the
// weights and multiplies in float32 (peak/bf16_fma); this is what a vdpbf16ps kernel could reach,
// measured because the issue asks whether it beats fp32 FMA on the machine. 0 without AVX512-BF16.
inline double bf16_dot_chains_flops(double seconds) {
#if !VITCC_DISABLE_SIMD && defined(__AVX512BF16__)
  constexpr std::size_t inner = 1024;
  std::uint64_t rounds = 0;
  double elapsed = 0;
  const auto t0 = std::chrono::steady_clock::now();
  const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3f80), c = (__m512bh)_mm512_set1_epi16(0x3380);  // 1, 2^-24
#define VITCC_BENCH_X12(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11)
#define VITCC_BENCH_DECL(i) __m512 acc##i = _mm512_set1_ps(float(i));
#define VITCC_BENCH_DOT(i) acc##i = _mm512_dpbf16_ps(acc##i, b, c);
#define VITCC_BENCH_SUM(i) sum = _mm512_add_ps(sum, acc##i);
  VITCC_BENCH_X12(VITCC_BENCH_DECL)
  do {
    for (std::size_t k = 0; k < inner; ++k) {
      VITCC_BENCH_X12(VITCC_BENCH_DOT)
    }
    ++rounds;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (elapsed < seconds);
  __m512 sum = _mm512_setzero_ps();
  VITCC_BENCH_X12(VITCC_BENCH_SUM)
  benchmark::DoNotOptimize(sum);
#undef VITCC_BENCH_SUM
#undef VITCC_BENCH_DOT
#undef VITCC_BENCH_DECL
#undef VITCC_BENCH_X12
  return double(rounds) * inner * 12 * 64 / elapsed;
#else
  (void)seconds;
  return 0.0;
#endif
}

// The single-core peak of a precision's GEMM arithmetic, measured once (best of 5 x 50 ms) the first
// time a benchmark needs it: fp32 FMA chains, the same with bf16 widening, int8 dot products.
inline double peak_flops_1core(Precision p = Precision::fp32) {
  static const double peaks[3] = {
      [] {
        double best = 0;
        for (int i = 0; i < 5; ++i) best = std::max(best, fma_chains_flops(0.05));
        return best;
      }(),
      [] {
        // bf16's own peak is that of the instruction its GEMM multiplies with: vdpbf16ps where the
        // build selects it (VITCC_BF16_DOT), else the FMA with the widening of B.
        const bool dot = kernels::detail::bf16_path<Arch>() == kernels::detail::Bf16Path::avx512;
        double best = 0;
        for (int i = 0; i < 5; ++i) best = std::max(best, dot ? bf16_dot_chains_flops(0.05) : bf16_fma_chains_flops(0.05));
        return best;
      }(),
      [] {
        double best = 0;
        for (int i = 0; i < 5; ++i) best = std::max(best, int8_dot_chains_ops(0.05));
        return best;
      }()};
  return peaks[int(p)];
}

// Counters: GFLOP/s (for int8: GOP/s, 2 per multiply-add all the same) and % of (threads x the
// single-core peak of the precision the benchmark runs at), from the benchmark's real time.
inline void set_flops(benchmark::State& state, double flops_per_iteration, std::size_t threads = 1,
                      Precision precision = Precision::fp32) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iteration * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  const double peak = peak_flops_1core(precision);
  if (peak > 0)
    state.counters["%peak"] = benchmark::Counter(flops_per_iteration * 100.0 / (peak * double(threads)),
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

struct AlignedDeleter {
  void operator()(float* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<float[], AlignedDeleter>;

inline Buffer aligned_floats(std::size_t n) {
  const std::size_t bytes = (std::max<std::size_t>(n, 1) * sizeof(float) + 63) / 64 * 64;
  return Buffer(static_cast<float*>(std::aligned_alloc(64, bytes)));
}

// Seeded values in [-1, 1): the data never matters for fp32 speed, only that it is not denormal.
inline Buffer random_floats(std::size_t n, std::uint64_t seed) {
  Buffer b = aligned_floats(n);
  std::uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (std::size_t i = 0; i < n; ++i) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    b[i] = float(s >> 40) / float(1 << 23) - 1.0f;
  }
  return b;
}

// One pool per thread count, built outside the timed loop (pools allocate at construction).
inline const Executor* executor_for(std::size_t threads) {
  if (threads <= 1) return nullptr;
  static std::vector<std::unique_ptr<ThreadPool>> pools;
  static std::vector<Executor> executors(16);
  for (auto& p : pools)
    if (p->workers() == threads) return &executors[threads];
  pools.emplace_back(new ThreadPool(threads));
  executors[threads] = pools.back()->executor();
  return &executors[threads];
}

}  // namespace vitcc::bench
