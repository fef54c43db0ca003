// The int8 GEMM (kernels/gemm_q8.hpp) on every path the build has, against a definition written
// here: the weights quantised per column and the rows of A per row, as the contract says, the int32
// products summed exactly, then the float32 epilogue in double. Quantisation itself is then the only
// difference from a float32 product, and its size is checked too (relative error of a random product).
#include <vitcc/kernels/gemm_q8.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "kernel_test_support.hpp"
#include "vitcc/core/thread_pool.hpp"

using namespace vitcc::kernels;
using vitcc::test::Buffer;
using vitcc::test::Rng;

namespace {

struct Case {
  std::size_t m, n, k;
  bool bias = true;
  Activation act = Activation::none;
  bool residual = false;
};

// Round to nearest, ties to even, as the contract specifies (written without the library's helpers).
double rne(double x) {
  const double f = std::floor(x), d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return std::fmod(f, 2.0) == 0.0 ? f : f + 1;
}

struct Reference {
  std::vector<double> c, exact;  // quantised definition; float64 product without quantisation
};

// w: the weight as B [k, n] row-major.
Reference reference(const Case& g, const std::vector<float>& a, const std::vector<float>& w, const std::vector<float>& bias,
                    const std::vector<float>& add) {
  std::vector<double> sw(g.n), sa(g.m);
  std::vector<long> wq(g.k * g.n), aq(g.m * g.k);
  for (std::size_t j = 0; j < g.n; ++j) {
    float mx = 0;
    for (std::size_t kk = 0; kk < g.k; ++kk) mx = std::fmax(mx, std::fabs(w[kk * g.n + j]));
    sw[j] = double(mx / 127.0f);
    const float inv = mx > 0 ? 127.0f / mx : 0.0f;
    for (std::size_t kk = 0; kk < g.k; ++kk) wq[kk * g.n + j] = long(rne(double(w[kk * g.n + j] * inv)));
  }
  for (std::size_t i = 0; i < g.m; ++i) {
    float mx = 0;
    for (std::size_t kk = 0; kk < g.k; ++kk) mx = std::fmax(mx, std::fabs(a[i * g.k + kk]));
    sa[i] = double(mx / 127.0f);
    const float inv = mx > 0 ? 127.0f / mx : 0.0f;
    for (std::size_t kk = 0; kk < g.k; ++kk) aq[i * g.k + kk] = long(rne(double(a[i * g.k + kk] * inv)));
  }
  Reference r;
  r.c.resize(g.m * g.n);
  r.exact.resize(g.m * g.n);
  for (std::size_t i = 0; i < g.m; ++i)
    for (std::size_t j = 0; j < g.n; ++j) {
      long s = 0;
      double e = 0;
      for (std::size_t kk = 0; kk < g.k; ++kk) {
        s += aq[i * g.k + kk] * wq[kk * g.n + j];
        e += double(a[i * g.k + kk]) * w[kk * g.n + j];
      }
      for (double* out : {&r.c[i * g.n + j], &r.exact[i * g.n + j]}) {
        double v = out == &r.c[i * g.n + j] ? double(s) * (float(sa[i]) * float(sw[j])) : e;
        if (g.bias) v += bias[j];
        if (g.act == Activation::relu) v = v > 0 ? v : 0;
        if (g.act == Activation::gelu_erf) v = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
        if (g.residual) v += add[i * g.n + j];
        *out = v;
      }
    }
  return r;
}

template <class Arch>
void run_case(const Case& g, std::uint64_t seed) {
  INFO("m=" << g.m << " n=" << g.n << " k=" << g.k << " act=" << int(g.act) << " residual=" << g.residual);
  Rng rng(seed);
  std::vector<float> a(g.m * g.k), w(g.k * g.n), bias(g.n), add(g.m * g.n);
  rng.fill(a.data(), a.size(), -2.0f, 2.0f);
  rng.fill(w.data(), w.size(), -0.2f, 0.2f);
  rng.fill(bias.data(), bias.size());
  rng.fill(add.data(), add.size());
  if (g.m > 2)
    for (std::size_t kk = 0; kk < g.k; ++kk) a[1 * g.k + kk] = 0.0f;  // a zero row: scale 0, no NaN

  std::vector<float> packed(packed_b_floats(g.k, g.n));
  pack_b(w.data(), g.n, g.k, g.n, packed.data());
  std::vector<std::int8_t> wq(packed_b_q8_elements(g.k, g.n) + 64, 99);
  std::vector<float> scale(q8_padded_n(g.n));
  std::vector<std::int32_t> colsum(q8_padded_n(g.n));
  pack_b_q8(packed.data(), g.k, g.n, wq.data(), scale.data(), colsum.data());
  const Q8Weight q{wq.data(), scale.data(), colsum.data()};

  Buffer c(g.m * g.n, -3.0f);
  if (g.residual)
    for (std::size_t i = 0; i < g.m * g.n; ++i) c[i] = add[i];  // the residual in place, as the models do
  GemmEpilogue ep;
  ep.bias = g.bias ? bias.data() : nullptr;
  ep.act = g.act;
  if (g.residual) {
    ep.add = c.data();
    ep.ld_add = g.n;
  }
  Buffer scratch(q8_scratch_bytes(g.m, g.k) / 4 + 16);
  gemm_q8<Arch>(g.m, g.n, g.k, a.data(), g.k, q, c.data(), g.n, ep, scratch.data());
  const Reference r = reference(g, a, w, bias, add);
  VITCC_CHECK_CLOSE(vitcc::test::compare(c.data(), g.n, r.c.data(), g.n, g.m, g.n, 2e-6));
  CHECK(c.guard_intact());
  // Quantisation error against the exact product: about |a||w| * sqrt(k) / 127 per element.
  double worst = 0;
  for (std::size_t i = 0; i < g.m * g.n; ++i) worst = std::fmax(worst, std::fabs(c[i] - r.exact[i]));
  CHECK(worst <= 0.2 * 2.0 * std::sqrt(double(g.k)) * 3.0 / 127.0 + 1e-6);

  // Spread over three workers: the same bits.
  vitcc::ThreadPool pool(3);
  const vitcc::Executor ex = pool.executor();
  Buffer c3(g.m * g.n, -3.0f);
  if (g.residual)
    for (std::size_t i = 0; i < g.m * g.n; ++i) c3[i] = add[i];
  if (g.residual) ep.add = c3.data();
  gemm_q8<Arch>(g.m, g.n, g.k, a.data(), g.k, q, c3.data(), g.n, ep, scratch.data(), &ex);
  bool same = true;
  for (std::size_t i = 0; i < g.m * g.n; ++i) same = same && std::memcmp(&c[i], &c3[i], 4) == 0;
  CHECK(same);

  // The int32 sums are exact and the NEON epilogue is the scalar one's float operations in the same
  // order, so with the same activation code (none, relu) SDOT and SMMLA give the scalar path's bits.
  // (Not asserted for VNNI: on an x86 build the scalar epilogue and the VNNI one differ in the last
  // bit, not investigated here; the tolerance above holds them.)
  constexpr bool neon_dot = detail::q8_path<Arch>() == detail::Q8Path::sdot || detail::q8_path<Arch>() == detail::Q8Path::smmla;
  if (neon_dot && g.act != Activation::gelu_erf) {
    Buffer cs(g.m * g.n, -3.0f);
    if (g.residual)
      for (std::size_t i = 0; i < g.m * g.n; ++i) cs[i] = add[i];
    if (g.residual) ep.add = cs.data();
    gemm_q8<vitcc::scalar_arch>(g.m, g.n, g.k, a.data(), g.k, q, cs.data(), g.n, ep, scratch.data());
    bool same_as_scalar = true;
    for (std::size_t i = 0; i < g.m * g.n; ++i) same_as_scalar = same_as_scalar && std::memcmp(&c[i], &cs[i], 4) == 0;
    CHECK(same_as_scalar);
  }
#if VITCC_Q8_SMMLA && VITCC_Q8_SDOT
  // Where both exist, SMMLA and SDOT give the same bits (any activation).
  if constexpr (detail::q8_path<Arch>() == detail::Q8Path::smmla) {
    Buffer cd(g.m * g.n, -3.0f);
    if (g.residual)
      for (std::size_t i = 0; i < g.m * g.n; ++i) cd[i] = add[i];
    if (g.residual) ep.add = cd.data();
    detail::q8_quantize_rows<Arch>(0, g.m, g.m, g.k, a.data(), g.k, scratch.data());
    const detail::Q8A qa = detail::q8_a(scratch.data(), g.m, g.k);
    detail::q8_neon_panels<6>(g.m, g.n, q8_kp(g.k), reinterpret_cast<const std::int8_t*>(qa.q), qa.sa, q, cd.data(),
                              g.n, ep, detail::q8_sdot_tile<6>);
    bool same_as_sdot = true;
    for (std::size_t i = 0; i < g.m * g.n; ++i) same_as_sdot = same_as_sdot && std::memcmp(&c[i], &cd[i], 4) == 0;
    CHECK(same_as_sdot);
  }
#endif
}

}  // namespace

TEST_CASE("pack_b_q8: symmetric per-column int8 in quads of k, scales and column sums") {
  const std::size_t k = 6, n = 18;  // K not a multiple of 4, two panels
  std::vector<float> b(k * n);
  for (std::size_t kk = 0; kk < k; ++kk)
    for (std::size_t nn = 0; nn < n; ++nn) b[kk * n + nn] = float(int(kk * 7 + nn * 3) % 11 - 5) * (0.01f + 0.001f * float(nn));
  std::vector<float> p(packed_b_floats(k, n));
  pack_b(b.data(), n, k, n, p.data());
  std::vector<std::int8_t> w(packed_b_q8_elements(k, n), 99);
  CHECK(w.size() == 2 * 16 * 8);
  std::vector<float> scale(q8_padded_n(n), -1.0f);
  std::vector<std::int32_t> colsum(q8_padded_n(n), -1);
  pack_b_q8(p.data(), k, n, w.data(), scale.data(), colsum.data());
  bool ok = true;
  for (std::size_t nn = 0; nn < 32; ++nn) {
    float mx = 0;
    for (std::size_t kk = 0; kk < k && nn < n; ++kk) mx = std::fmax(mx, std::fabs(b[kk * n + nn]));
    ok = ok && scale[nn] == (nn < n ? mx / 127.0f : 0.0f);
    long sum = 0;
    for (std::size_t kk = 0; kk < 8; ++kk) {
      const std::int8_t got = w[(nn / 16) * 8 * 16 + (kk / 4) * 64 + (nn % 16) * 4 + kk % 4];
      const long want = kk < k && nn < n ? long(rne(double(b[kk * n + nn] * (127.0f / mx)))) : 0;
      ok = ok && got == want;
      sum += got;
    }
    ok = ok && colsum[nn] == sum;
  }
  CHECK(ok);
}

TEST_CASE_TEMPLATE_DEFINE("gemm_q8: every edge of the tiles, the epilogue, three workers", Arch, q8_shapes) {
  const std::string path = detail::q8_path<Arch>() == detail::Q8Path::vnni512   ? "AVX512-VNNI"
                           : detail::q8_path<Arch>() == detail::Q8Path::vnni256 ? "AVX-VNNI"
                           : detail::q8_path<Arch>() == detail::Q8Path::sdot    ? "NEON SDOT"
                           : detail::q8_path<Arch>() == detail::Q8Path::smmla   ? "NEON SMMLA"
                                                                               : "scalar int8";
  MESSAGE("int8 path of ", std::string(Arch::name()), ": ", path);
#if defined(VITCC_TEST_EXPECT_SDOT) && !VITCC_DISABLE_SIMD
  if constexpr (std::is_same_v<Arch, xsimd::neon64>) REQUIRE(detail::q8_path<Arch>() == detail::Q8Path::sdot);
#endif
#if defined(VITCC_TEST_EXPECT_SMMLA) && !VITCC_DISABLE_SIMD
  if constexpr (std::is_same_v<Arch, xsimd::neon64>) {
    REQUIRE(detail::q8_path<Arch>() == detail::Q8Path::smmla);
    MESSAGE("SMMLA also checked bit for bit against the SDOT path: ",
            std::string(VITCC_Q8_SDOT ? "yes" : "no (no dotprod in this build)"));
  }
#endif
  std::uint64_t seed = 1;
  for (std::size_t m : {1, 2, 5, 6, 7, 9, 13, 25})
    for (std::size_t n : {1, 15, 16, 17, 33, 48, 49, 97})
      for (std::size_t k : {1, 3, 4, 5, 17, 64, 131}) {
        Case g{m, n, k};
        g.act = (m + n) % 3 == 0 ? Activation::gelu_erf : (m + n) % 3 == 1 ? Activation::relu : Activation::none;
        g.residual = (k % 2) == 1;
        g.bias = n % 2 == 1;
        run_case<Arch>(g, seed++);
      }
  run_case<Arch>(Case{197, 1152, 384, true, Activation::none, false}, 99);
  run_case<Arch>(Case{197, 384, 1536, true, Activation::none, true}, 100);
}
TEST_CASE_TEMPLATE_APPLY(q8_shapes, vitcc::test::kernel_archs);
