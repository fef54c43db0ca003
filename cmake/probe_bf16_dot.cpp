// Configure-time probe (CMakeLists.txt, VITCC_BF16_PV=auto): does this machine run AVX512-BF16's
// vdpbf16ps faster than float32 FMAs? Times 12 independent chains of each (~0.5 ms a run), best of 10
// interleaved runs, and prints the ratio of their FLOP rates (a vdpbf16ps lane does 2 multiply-adds,
// an FMA lane 1). Measured: 2.0 on an AMD EPYC Zen 4; the shared notes give ~1.0 for the Intel Xeon
// with AMX of this machine kind (vdpbf16ps at half rate). Prints 0 where the target lacks AVX512-BF16.
#include <chrono>
#include <cstdio>

#if defined(__AVX512BF16__) && defined(__AVX512F__)
#include <immintrin.h>

namespace {
using Clock = std::chrono::steady_clock;
constexpr int kIters = 40000;

float sink(const __m512 (&acc)[12]) {
  __m512 sum = _mm512_setzero_ps();
  for (int i = 0; i < 12; ++i) sum = _mm512_add_ps(sum, acc[i]);
  return _mm512_reduce_add_ps(sum);
}

double fma_rate(volatile float& out) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(float(i));
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  const auto t0 = Clock::now();
  for (int k = 0; k < kIters; ++k)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  out = sink(acc);
  return double(kIters) * 12 * 16 * 2 / s;
}

double dot_rate(volatile float& out) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(float(i));
  const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3f80), c = (__m512bh)_mm512_set1_epi16(0x3380);  // 1, 2^-24
  const auto t0 = Clock::now();
  for (int k = 0; k < kIters; ++k)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], b, c);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  out = sink(acc);
  return double(kIters) * 12 * 32 * 2 / s;
}
}  // namespace

int main() {
  volatile float keep = 0.0f;
  double best_fma = 0, best_dot = 0;
  for (int run = 0; run < 10; ++run) {
    const double f = fma_rate(keep), d = dot_rate(keep);
    best_fma = f > best_fma ? f : best_fma;
    best_dot = d > best_dot ? d : best_dot;
  }
  std::printf("%.2f\n", best_dot / best_fma);
  return 0;
}
#else
int main() {
  std::printf("0\n");
  return 0;
}
#endif
