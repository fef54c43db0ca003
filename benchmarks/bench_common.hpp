// What every benchmark of the suite shares: the machine's fp32 peak, measured here rather than
// assumed, the GFLOP/s and %-of-peak counters, aligned buffers and seeded data.
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
#include "vitcc/core/thread_pool.hpp"
#include "vitcc/kernels/gemm.hpp"

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

// The single-core peak, measured once (best of 5 x 50 ms) the first time a benchmark needs it.
inline double peak_flops_1core() {
  static const double peak = [] {
    double best = 0;
    for (int i = 0; i < 5; ++i) best = std::max(best, fma_chains_flops(0.05));
    return best;
  }();
  return peak;
}

// Counters: GFLOP/s and % of (threads x single-core peak), from the benchmark's real time.
inline void set_flops(benchmark::State& state, double flops_per_iteration, std::size_t threads = 1) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iteration * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["%peak"] = benchmark::Counter(
      flops_per_iteration * 100.0 / (peak_flops_1core() * double(threads)), benchmark::Counter::kIsIterationInvariantRate);
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
