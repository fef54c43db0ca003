#include <vitcc/kernels/gemm.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <cstring>
#include <vector>

#include "kernel_test_support.hpp"
#include "vitcc/core/thread_pool.hpp"

using namespace vitcc::kernels;
using vitcc::test::Buffer;
using vitcc::test::Rng;

namespace {

struct GemmCase {
  std::size_t m, n, k;
  std::size_t lda_pad = 0, ldc_pad = 0;
  bool bias = false;
  Activation act = Activation::none;
  enum class Add { none, separate, alias_c } add = Add::none;
  bool bf16 = false;  // B as bfloat16 (pack_b_bf16), float32 arithmetic
};

// bfloat16 rounding as the format defines it (nearest, ties to even), written here from the bits.
float round_to_bf16(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  const std::uint32_t lower = u & 0xFFFFu, upper = u >> 16;
  const std::uint32_t up = lower > 0x8000u || (lower == 0x8000u && (upper & 1u)) ? 1u : 0u;
  u = (upper + up) << 16;
  float y;
  std::memcpy(&y, &u, 4);
  return y;
}

// The independent definition: an unpacked row-major B, double accumulation, the epilogue spelled out.
// mag receives sum |terms| per element, the scale of a float summation's rounding error.
std::vector<double> naive_gemm(const GemmCase& g, const float* a, std::size_t lda, const std::vector<float>& b,
                               const float* bias, const float* add, std::size_t ld_add, std::vector<double>& mag) {
  std::vector<double> c(g.m * g.n);
  mag.assign(g.m * g.n, 0.0);
  for (std::size_t i = 0; i < g.m; ++i)
    for (std::size_t j = 0; j < g.n; ++j) {
      double s = 0.0, sa = 0.0;
      for (std::size_t kk = 0; kk < g.k; ++kk) {
        s += double(a[i * lda + kk]) * b[kk * g.n + j];
        sa += std::fabs(double(a[i * lda + kk]) * b[kk * g.n + j]);
      }
      mag[i * g.n + j] = sa;
      if (bias) s += bias[j];
      if (g.act == Activation::relu) s = s > 0 ? s : 0;
      if (g.act == Activation::gelu_erf) s = 0.5 * s * (1.0 + std::erf(s / std::sqrt(2.0)));
      if (add) s += add[i * ld_add + j];
      c[i * g.n + j] = s;
    }
  return c;
}

// Runs one case through gemm<Arch> and through ref::gemm and checks both against naive_gemm; checks
// that nothing outside C's m x n (the ldc padding, the guard after the buffer) was written.
template <class Arch>
void run_case(const GemmCase& g, std::uint64_t seed) {
  INFO("m=" << g.m << " n=" << g.n << " k=" << g.k << " lda_pad=" << g.lda_pad << " ldc_pad=" << g.ldc_pad
            << " bias=" << g.bias << " act=" << int(g.act) << " add=" << int(g.add));
  Rng rng(seed);
  const std::size_t lda = g.k + g.lda_pad, ldc = g.n + g.ldc_pad;
  // A ends at an inaccessible page (its last row is read up to column k only, the lda padding of the
  // last row is not part of it), so reading past the M x K operand crashes; and it is not 64-byte
  // aligned, since A carries no alignment promise.
  const std::size_t a_floats = g.m == 0 ? 0 : (g.m - 1) * lda + g.k;
  vitcc::test::GuardPageBuffer a(a_floats + 1);
  float* a0 = a.data() + 1;
  rng.fill(a0, a_floats);
  std::vector<float> b(g.k * g.n);
  rng.fill(b.data(), b.size());
  Buffer packed(packed_b_floats(g.k, g.n));
  pack_b(b.data(), g.n, g.k, g.n, packed.data());
  std::vector<std::uint16_t> packed16;
  if (g.bf16) {
    packed16.assign(packed_b_bf16_elements(g.k, g.n) + 32, 0xDEADu);  // 32 guard elements past the end
    pack_b_bf16(packed.data(), g.k, g.n, packed16.data());
    for (float& v : b) v = round_to_bf16(v);  // what the kernel multiplies by
  }
  std::vector<float> bias(g.n);
  rng.fill(bias.data(), g.n);

  const float pad_value = 777.0f;
  Buffer c(g.m * ldc, pad_value), c_ref(g.m * ldc, pad_value);
  std::vector<float> add_sep(g.m * ldc);
  rng.fill(add_sep.data(), add_sep.size());
  if (g.add == GemmCase::Add::alias_c) {
    // The residual lives in C itself; the padding keeps its sentinel so stray writes still show.
    for (std::size_t i = 0; i < g.m; ++i)
      for (std::size_t j = 0; j < g.n; ++j) c[i * ldc + j] = c_ref[i * ldc + j] = add_sep[i * ldc + j];
  }
  const float* add_for_naive = g.add == GemmCase::Add::none ? nullptr : add_sep.data();
  // The bfloat16 dot-product paths (BFDOT, BFMMLA) multiply A rounded to bfloat16 too.
  const bool a_bf16 = g.bf16 && detail::bf16_path<Arch>() != detail::Bf16Path::fp32;
  std::vector<float> a_rounded;
  if (a_bf16) {
    a_rounded.assign(a0, a0 + a_floats);
    for (float& v : a_rounded) v = round_to_bf16(v);
  }
  std::vector<double> mag;
  const auto want = naive_gemm(g, a_bf16 ? a_rounded.data() : a0, lda, b, g.bias ? bias.data() : nullptr,
                               add_for_naive, ldc, mag);

  auto epilogue = [&](float* cbuf) {
    GemmEpilogue ep;
    ep.bias = g.bias ? bias.data() : nullptr;
    ep.act = g.act;
    if (g.add == GemmCase::Add::separate) ep.add = add_sep.data();
    if (g.add == GemmCase::Add::alias_c) ep.add = cbuf;
    ep.ld_add = ldc;
    return ep;
  };
  if (g.bf16) {
    gemm<Arch>(g.m, g.n, g.k, a0, lda, packed16.data(), c.data(), ldc, epilogue(c.data()));
    using vitcc::test::compare;
    using vitcc::test::sum_mag_rel;
    // Round-to-odd (the dot-product paths) errs by up to one unit in the last place, not half.
    VITCC_CHECK_CLOSE(compare(c.data(), ldc, want.data(), g.n, g.m, g.n, 1e-5, mag.data(),
                              (a_bf16 ? 2 : 1) * sum_mag_rel));
    CHECK(c.guard_intact());
    // Three workers: the same bits.
    if (g.add == GemmCase::Add::alias_c)
      for (std::size_t i = 0; i < g.m; ++i)
        for (std::size_t j = 0; j < g.n; ++j) c_ref[i * ldc + j] = add_sep[i * ldc + j];
    vitcc::ThreadPool pool(3);
    const vitcc::Executor ex = pool.executor();
    gemm<Arch>(g.m, g.n, g.k, a0, lda, packed16.data(), c_ref.data(), ldc, epilogue(c_ref.data()), &ex);
    bool same = true;
    for (std::size_t i = 0; i < g.m; ++i) same = same && std::memcmp(&c[i * ldc], &c_ref[i * ldc], g.n * 4) == 0;
    CHECK(same);
#if VITCC_BF16_NEON
    // BFMMLA chains the same BFDotAdd steps per element as BFDOT, in the same k order: the same bits,
    // whichever of the two VITCC_BF16_DOT selects (or neither: both kernels are checked here).
    if constexpr (std::is_same_v<Arch, xsimd::neon64>) {
      Buffer c_dot(g.m * ldc, pad_value), c_mmla(g.m * ldc, pad_value);
      for (Buffer* cb : {&c_dot, &c_mmla})
        if (g.add == GemmCase::Add::alias_c)
          for (std::size_t i = 0; i < g.m; ++i)
            for (std::size_t j = 0; j < g.n; ++j) (*cb)[i * ldc + j] = add_sep[i * ldc + j];
      const std::size_t stride = panel_stride<std::uint16_t>(g.k);
      detail::gemm_bf16_neon_panels<detail::Bf16Path::bfdot>(g.m, g.n, g.k, a0, lda, packed16.data(), stride,
                                                              c_dot.data(), ldc, epilogue(c_dot.data()));
      detail::gemm_bf16_neon_panels<detail::Bf16Path::bfmmla>(g.m, g.n, g.k, a0, lda, packed16.data(), stride,
                                                               c_mmla.data(), ldc, epilogue(c_mmla.data()));
      std::vector<float> a_r(a0, a0 + a_floats);
      for (float& v : a_r) v = round_to_bf16(v);
      std::vector<double> mag_r;
      const auto want_r = naive_gemm(g, a_r.data(), lda, b, g.bias ? bias.data() : nullptr, add_for_naive, ldc, mag_r);
      VITCC_CHECK_CLOSE(compare(c_dot.data(), ldc, want_r.data(), g.n, g.m, g.n, 1e-5, mag_r.data(), 2 * sum_mag_rel));
      VITCC_CHECK_CLOSE(compare(c_mmla.data(), ldc, want_r.data(), g.n, g.m, g.n, 1e-5, mag_r.data(), 2 * sum_mag_rel));
      bool same_dot_mmla = true;
      for (std::size_t i = 0; i < g.m; ++i)
        same_dot_mmla = same_dot_mmla && std::memcmp(&c_dot[i * ldc], &c_mmla[i * ldc], g.n * 4) == 0;
      CHECK(same_dot_mmla);
      CHECK(c_dot.guard_intact());
      CHECK(c_mmla.guard_intact());
    }
#endif
    return;
  }
  gemm<Arch>(g.m, g.n, g.k, a0, lda, packed.data(), c.data(), ldc, epilogue(c.data()));
  ref::gemm(g.m, g.n, g.k, a0, lda, packed.data(), c_ref.data(), ldc, epilogue(c_ref.data()));

  // 1e-5 relative, plus float rounding on sum |a_ik b_kj| when the dot product cancels to near zero;
  // a dropped, repeated or misplaced term moves an element by ~|a b| ~ 0.25, hundreds of tolerances.
  using vitcc::test::compare;
  using vitcc::test::sum_mag_rel;
  VITCC_CHECK_CLOSE(compare(c.data(), ldc, want.data(), g.n, g.m, g.n, 1e-5, mag.data(), sum_mag_rel));
  VITCC_CHECK_CLOSE(compare(c_ref.data(), ldc, want.data(), g.n, g.m, g.n, 1e-5, mag.data(), sum_mag_rel));
  // And the SIMD kernel against the scalar reference directly (identical for scalar_arch).
  std::vector<double> ref_d(g.m * g.n);
  for (std::size_t i = 0; i < g.m; ++i)
    for (std::size_t j = 0; j < g.n; ++j) ref_d[i * g.n + j] = c_ref[i * ldc + j];
  VITCC_CHECK_CLOSE(compare(c.data(), ldc, ref_d.data(), g.n, g.m, g.n, 1e-5, mag.data(), 2 * sum_mag_rel));
  bool padding_intact = true;
  for (std::size_t i = 0; i < g.m; ++i)
    for (std::size_t j = g.n; j < ldc; ++j) padding_intact = padding_intact && c[i * ldc + j] == pad_value;
  CHECK(padding_intact);
  CHECK(c.guard_intact());
}

}  // namespace

TEST_CASE("pack_b and pack_b_from_linear produce the documented layout") {
  const std::size_t k = 5, n = 37;  // three panels, the last one 5 columns wide
  CHECK(packed_b_floats(k, n) == 3 * 16 * k);
  CHECK(packed_b_floats(k, 16) == 16 * k);
  CHECK(packed_b_floats(0, 16) == 0);
  std::vector<float> b(k * n), w(n * k);
  for (std::size_t kk = 0; kk < k; ++kk)
    for (std::size_t nn = 0; nn < n; ++nn) {
      b[kk * n + nn] = float(kk * 1000 + nn);
      w[nn * k + kk] = float(kk * 1000 + nn);  // the same B seen as a Linear weight [out, in]
    }
  std::vector<float> p1(packed_b_floats(k, n), -1.0f), p2(packed_b_floats(k, n), -1.0f);
  pack_b(b.data(), n, k, n, p1.data());
  pack_b_from_linear(w.data(), k, n, p2.data());
  bool ok = true;
  for (std::size_t p = 0; p < 3; ++p)
    for (std::size_t kk = 0; kk < k; ++kk)
      for (std::size_t jj = 0; jj < 16; ++jj) {
        const std::size_t nn = p * 16 + jj;
        const float want = nn < n ? float(kk * 1000 + nn) : 0.0f;
        ok = ok && p1[p * k * 16 + kk * 16 + jj] == want && p2[p * k * 16 + kk * 16 + jj] == want;
      }
  CHECK(ok);
  // A leading dimension wider than N selects the right columns.
  std::vector<float> wide(k * (n + 3), 9.0f);
  for (std::size_t kk = 0; kk < k; ++kk)
    for (std::size_t nn = 0; nn < n; ++nn) wide[kk * (n + 3) + nn] = b[kk * n + nn];
  std::vector<float> p3(packed_b_floats(k, n));
  pack_b(wide.data(), n + 3, k, n, p3.data());
  CHECK(p3 == p1);
}

TEST_CASE_TEMPLATE_DEFINE("gemm: odd shapes, every edge of the register tile", Arch, gemm_shapes) {
  std::uint64_t seed = 1;
  // m around every microkernel height (3, 6, 12) and its multiples; n below/equal/above one and two
  // panels; k from 0 (epilogue only) through values around powers of two.
  for (std::size_t m : {1, 2, 3, 5, 6, 7, 11, 12, 13, 24, 25, 37})
    for (std::size_t n : {1, 4, 15, 16, 17, 31, 32, 33, 48, 65})
      for (std::size_t k : {0, 1, 3, 16, 17, 64, 129}) {
        GemmCase g{m, n, k};
        run_case<Arch>(g, seed++);
      }
}
TEST_CASE_TEMPLATE_APPLY(gemm_shapes, vitcc::test::kernel_archs);

TEST_CASE_TEMPLATE_DEFINE("gemm: every epilogue, strides and in-place residual", Arch, gemm_epilogues) {
  std::uint64_t seed = 1000;
  const GemmCase::Add adds[] = {GemmCase::Add::none, GemmCase::Add::separate, GemmCase::Add::alias_c};
  const Activation acts[] = {Activation::none, Activation::gelu_erf, Activation::relu};
  for (auto add : adds)
    for (auto act : acts)
      for (bool bias : {false, true})
        for (std::size_t pad : {0, 3}) {
          for (auto shape : {std::array<std::size_t, 3>{13, 33, 20}, std::array<std::size_t, 3>{1, 7, 5},
                             std::array<std::size_t, 3>{26, 64, 70}}) {
            GemmCase g{shape[0], shape[1], shape[2], pad, pad * 2 + 1, bias, act, add};
            run_case<Arch>(g, seed++);
          }
        }
}
TEST_CASE_TEMPLATE_APPLY(gemm_epilogues, vitcc::test::kernel_archs);

TEST_CASE_TEMPLATE_DEFINE("gemm: ViT-sized and long-K products", Arch, gemm_large) {
  // qkv of ViT-S (197 x 384 -> 1152) with the full epilogue, an mlp fc2-like long K with the residual
  // in place, and K = 4096 at the top of the supported range.
  run_case<Arch>(GemmCase{197, 1152, 384, 0, 0, true, Activation::gelu_erf, GemmCase::Add::separate}, 7);
  run_case<Arch>(GemmCase{197, 100, 1536, 5, 2, true, Activation::none, GemmCase::Add::alias_c}, 8);
  run_case<Arch>(GemmCase{13, 40, 4096, 0, 0, true, Activation::relu, GemmCase::Add::none}, 9);
}
TEST_CASE_TEMPLATE_APPLY(gemm_large, vitcc::test::kernel_archs);

TEST_CASE("pack_b_bf16: pairs of k per column, rounded to nearest even, zero padding") {
  const std::size_t k = 5, n = 20;  // odd K (one padded row of the pairs), two panels
  std::vector<float> b(k * n);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = 1.0f + float(i) * 0.00390625f + 0.0009765625f;  // low bits set
  std::vector<float> p(packed_b_floats(k, n));
  pack_b(b.data(), n, k, n, p.data());
  std::vector<std::uint16_t> h(packed_b_bf16_elements(k, n), 0xFFFFu);
  CHECK(h.size() == 2 * 16 * 6);
  pack_b_bf16(p.data(), k, n, h.data());
  bool ok = true;
  for (std::size_t panel = 0; panel < 2; ++panel)
    for (std::size_t kk = 0; kk < 6; ++kk)
      for (std::size_t jj = 0; jj < 16; ++jj) {
        const std::size_t nn = panel * 16 + jj;
        const float want = kk < k && nn < n ? round_to_bf16(b[kk * n + nn]) : 0.0f;
        ok = ok && from_bf16(h[panel * 6 * 16 + (kk / 2) * 32 + jj * 2 + kk % 2]) == want;
      }
  CHECK(ok);
  CHECK(round_to_bf16(1.0f + 0.00390625f * 0.5f) == 1.0f);            // a tie rounds to the even 1.0
  CHECK(from_bf16(to_bf16(1.0f + 0.00390625f * 0.5f)) == 1.0f);
  CHECK(from_bf16(to_bf16(1.0f + 0.00390625f * 1.5f)) == 1.0f + 0.0078125f);  // and this one up, to even
}

template <class Arch>
std::string bf16_path_name() {
  switch (detail::bf16_path<Arch>()) {
    case detail::Bf16Path::bfmmla: return "NEON BFMMLA (A rounded to bf16)";
    case detail::Bf16Path::bfdot: return "NEON BFDOT (A rounded to bf16)";
    case detail::Bf16Path::avx512: return "AVX512-BF16 vdpbf16ps (A rounded to bf16)";
    case detail::Bf16Path::fp32: break;
  }
  return "float32 arithmetic on widened bf16 weights";
}

TEST_CASE_TEMPLATE_DEFINE("gemm with bfloat16 weights: odd K, every edge, the epilogue", Arch, gemm_bf16) {
  MESSAGE("bf16 path of ", std::string(Arch::name()), ": ", bf16_path_name<Arch>());
#if VITCC_BF16_NEON
  if constexpr (std::is_same_v<Arch, xsimd::neon64>)
    MESSAGE("BFDOT and BFMMLA kernels also run directly on every case (this build has FEAT_BF16)");
#else
  MESSAGE("BFDOT and BFMMLA kernels: not in this build (no FEAT_BF16)");
#endif
#if defined(VITCC_TEST_EXPECT_BF16) && !VITCC_DISABLE_SIMD
  if constexpr (std::is_same_v<Arch, xsimd::neon64>)
    REQUIRE(detail::bf16_path<Arch>() ==
            (VITCC_TEST_EXPECT_BF16 == 1 ? detail::Bf16Path::bfmmla : detail::Bf16Path::bfdot));
  if constexpr (VITCC_TEST_EXPECT_BF16 == 3 && std::is_base_of_v<xsimd::avx512f, Arch>)
    REQUIRE(detail::bf16_path<Arch>() == detail::Bf16Path::avx512);
#endif
#if VITCC_BF16_AVX512
  MESSAGE("AVX512-BF16: in this build", VITCC_BF16_DOT ? " and selected (VITCC_BF16_DOT)" : ", not selected (VITCC_BF16_DOT=0)");
#else
  MESSAGE("AVX512-BF16: not in this build");
#endif
  std::uint64_t seed = 5000;
  for (std::size_t m : {1, 3, 7, 13, 25})
    for (std::size_t n : {1, 16, 17, 33, 48, 65})
      for (std::size_t k : {1, 2, 3, 16, 17, 31, 48, 63, 129}) {  // 31, 48, 63: every mask of a 32-k chunk
        GemmCase g{m, n, k};
        g.bf16 = true;
        g.bias = true;
        g.act = (k % 2) ? Activation::gelu_erf : Activation::none;
        g.add = (m % 2) ? GemmCase::Add::alias_c : GemmCase::Add::separate;
        run_case<Arch>(g, seed++);
      }
#if defined(VITCC_TEST_EXPECT_BF16) && VITCC_TEST_EXPECT_BF16 == 2
  // Both FEAT_BF16 builds run both kernels directly on every case; the BFDOT build checks its
  // selection on the small cases and leaves the ViT-sized ones (minutes under QEMU) to the BFMMLA build.
  MESSAGE("ViT-sized cases: skipped in the BFDOT build (the BFMMLA build runs both kernels on them)");
  return;
#endif
  GemmCase big{197, 1152, 384, 0, 0, true, Activation::gelu_erf, GemmCase::Add::separate};
  big.bf16 = true;
  run_case<Arch>(big, 77);
  GemmCase fc2{197, 384, 1536, 0, 0, true, Activation::none, GemmCase::Add::alias_c};
  fc2.bf16 = true;
  run_case<Arch>(fc2, 78);
}
TEST_CASE_TEMPLATE_APPLY(gemm_bf16, vitcc::test::kernel_archs);

namespace {
// What bf16 costs a ViT-shaped product against the float64 product of the float32 operands: the
// worst error relative to max |C| and the cosine, for a path given as a function filling C.
struct Accuracy {
  double max_rel, cosine;
};
// One ViT-shaped product: float32 operands, the bf16 weight packed, and the float64 reference
// (computed once, whichever paths are then measured against it: under QEMU it is most of the cost).
struct Bf16Problem {
  std::size_t m, n, k;
  std::vector<float> a;
  std::vector<std::uint16_t> packed16;
  std::vector<double> ref;
};
Bf16Problem bf16_problem(std::size_t m, std::size_t n, std::size_t k, std::uint64_t seed) {
  Rng rng(seed);
  Bf16Problem p{m, n, k, std::vector<float>(m * k), std::vector<std::uint16_t>(packed_b_bf16_elements(k, n)),
                std::vector<double>(m * n)};
  std::vector<float> b(k * n);
  rng.fill(p.a.data(), p.a.size(), -2.0f, 2.0f);  // LayerNorm / GELU outputs: O(1)
  const float wb = float(std::sqrt(3.0 / double(k)));  // weights of unit-variance outputs
  rng.fill(b.data(), b.size(), -wb, wb);
  std::vector<float> packed(packed_b_floats(k, n));
  pack_b(b.data(), n, k, n, packed.data());
  pack_b_bf16(packed.data(), k, n, p.packed16.data());
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      double r = 0;
      for (std::size_t kk = 0; kk < k; ++kk) r += double(p.a[i * k + kk]) * double(b[kk * n + j]);
      p.ref[i * n + j] = r;
    }
  return p;
}
template <class Run>
Accuracy bf16_accuracy(const Bf16Problem& p, Run run) {
  std::vector<float> c(p.m * p.n);
  run(p.m, p.n, p.k, p.a.data(), p.packed16.data(), c.data());
  double dot = 0, nc = 0, nr = 0, max_err = 0, max_ref = 0;
  for (std::size_t i = 0; i < p.m * p.n; ++i) {
    const double r = p.ref[i], g = c[i];
    dot += g * r;
    nc += g * g;
    nr += r * r;
    max_err = std::fmax(max_err, std::fabs(g - r));
    max_ref = std::fmax(max_ref, std::fabs(r));
  }
  return {max_err / max_ref, dot / std::sqrt(nc * nr)};
}
}  // namespace

TEST_CASE_TEMPLATE_DEFINE("gemm with bfloat16 weights: accuracy against float64 on ViT shapes", Arch, gemm_bf16_acc) {
  // Recorded in docs/PRECISION.md. A bf16 weight is off by up to 2^-8 relative; rounding A as well
  // (the dot-product paths) adds as much again, so the error grows by about sqrt(2).
  for (auto shape : {std::array<std::size_t, 3>{197, 384, 384}, std::array<std::size_t, 3>{197, 384, 1536}}) {
    const Bf16Problem problem = bf16_problem(shape[0], shape[1], shape[2], 31);
    auto report = [&](const char* what, const Accuracy& acc) {
      MESSAGE(std::string(Arch::name()), " ", std::string(what), " M=", shape[0], " N=", shape[1], " K=", shape[2],
              ": max |err| / max |C| = ", acc.max_rel, ", 1 - cosine = ", 1.0 - acc.cosine);
      CHECK(acc.cosine >= 0.99999);
      CHECK(acc.max_rel <= 2e-2);
    };
    report(bf16_path_name<Arch>().c_str(),
           bf16_accuracy(problem, [](std::size_t m, std::size_t n, std::size_t k, const float* a,
                                                              const std::uint16_t* b, float* c) {
             gemm<Arch>(m, n, k, a, k, b, c, n, GemmEpilogue{});
           }));
#if VITCC_BF16_NEON
    if constexpr (std::is_same_v<Arch, xsimd::neon64>) {
      report("BFDOT kernel", bf16_accuracy(problem,
                                           [](std::size_t m, std::size_t n, std::size_t k, const float* a,
                                              const std::uint16_t* b, float* c) {
                                             detail::gemm_bf16_neon_panels<detail::Bf16Path::bfdot>(
                                                 m, n, k, a, k, b, panel_stride<std::uint16_t>(k), c, n, GemmEpilogue{});
                                           }));
      report("BFMMLA kernel", bf16_accuracy(problem,
                                            [](std::size_t m, std::size_t n, std::size_t k, const float* a,
                                               const std::uint16_t* b, float* c) {
                                              detail::gemm_bf16_neon_panels<detail::Bf16Path::bfmmla>(
                                                  m, n, k, a, k, b, panel_stride<std::uint16_t>(k), c, n, GemmEpilogue{});
                                            }));
    }
#endif
  }
}
TEST_CASE_TEMPLATE_APPLY(gemm_bf16_acc, vitcc::test::kernel_archs);
