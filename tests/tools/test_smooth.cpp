// vitcc-pack's SmoothQuant fold (tools/pack/smooth.*), against plain double-precision maths written
// here from docs/FORMAT.md's gemm_b16 layout and the SmoothQuant formula.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "error.hpp"
#include "smooth.hpp"

using namespace vitcc::pack;

namespace {

constexpr float eps = 1e-6f;

// Packs a row-major [K, N] matrix as gemm_b16 (docs/FORMAT.md: panels of 16 columns, K rows each).
BlobTensor packed(const std::string& name, std::size_t K, std::size_t N, const std::vector<float>& b) {
  const std::size_t panels = (N + 15) / 16;
  std::vector<float> p(panels * 16 * K, 0.0f);
  for (std::size_t k = 0; k < K; ++k)
    for (std::size_t n = 0; n < N; ++n) p[(n / 16) * K * 16 + k * 16 + n % 16] = b[k * N + n];
  return BlobTensor(name, vitcc::blob::Layout::gemm_b16, {K, N}, p);
}
double at(const BlobTensor& t, std::size_t k, std::size_t n) {
  const std::size_t K = std::size_t(t.dims[0]);
  return t.data[(n / 16) * K * 16 + k * 16 + n % 16];
}
const BlobTensor& get(const std::vector<BlobTensor>& ts, const std::string& name) {
  for (const BlobTensor& t : ts)
    if (t.name == name) return t;
  FAIL("no tensor " << name);
  return ts.front();
}

// A LayerNorm (d = K) with gamma and beta from the tensors, then Y = LN(x) B for the GEMM `w`, in double.
std::vector<double> ln_gemm(const std::vector<BlobTensor>& ts, const std::string& w, const std::vector<float>& x,
                            std::size_t rows, std::size_t K) {
  const BlobTensor& g = get(ts, "n.weight");
  const BlobTensor& b = get(ts, "n.bias");
  const BlobTensor& m = get(ts, w);
  const std::size_t N = std::size_t(m.dims[1]);
  std::vector<double> y(rows * N, 0.0);
  for (std::size_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (std::size_t k = 0; k < K; ++k) mean += x[r * K + k];
    mean /= double(K);
    for (std::size_t k = 0; k < K; ++k) var += (x[r * K + k] - mean) * (x[r * K + k] - mean);
    var /= double(K);
    for (std::size_t k = 0; k < K; ++k) {
      const double ln = (x[r * K + k] - mean) / std::sqrt(var + 1e-6) * g.data[k] + b.data[k];
      for (std::size_t n = 0; n < N; ++n) y[r * N + n] += ln * at(m, k, n);
    }
  }
  return y;
}

// The int8 scheme of kernels/gemm_q8.hpp, simulated: activations symmetric per row, weights
// symmetric per output column, both rounded to nearest; returns the relative Frobenius error of
// LN(x) B against the exact double product.
double int8_error(const std::vector<BlobTensor>& ts, const std::string& w, const std::vector<float>& x, std::size_t rows,
                  std::size_t K) {
  const BlobTensor& g = get(ts, "n.weight");
  const BlobTensor& b = get(ts, "n.bias");
  const BlobTensor& m = get(ts, w);
  const std::size_t N = std::size_t(m.dims[1]);
  std::vector<double> colscale(N, 0.0);
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t k = 0; k < K; ++k) colscale[n] = std::max(colscale[n], std::fabs(at(m, k, n)) / 127);
  double err = 0, norm = 0;
  for (std::size_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (std::size_t k = 0; k < K; ++k) mean += x[r * K + k];
    mean /= double(K);
    for (std::size_t k = 0; k < K; ++k) var += (x[r * K + k] - mean) * (x[r * K + k] - mean);
    var /= double(K);
    std::vector<double> ln(K);
    double amax = 0;
    for (std::size_t k = 0; k < K; ++k) {
      ln[k] = (x[r * K + k] - mean) / std::sqrt(var + 1e-6) * g.data[k] + b.data[k];
      amax = std::max(amax, std::fabs(ln[k]));
    }
    const double as = amax / 127;
    for (std::size_t n = 0; n < N; ++n) {
      double exact = 0, q = 0;
      for (std::size_t k = 0; k < K; ++k) {
        exact += ln[k] * at(m, k, n);
        q += std::nearbyint(ln[k] / as) * as * std::nearbyint(at(m, k, n) / colscale[n]) * colscale[n];
      }
      err += (q - exact) * (q - exact);
      norm += exact * exact;
    }
  }
  return std::sqrt(err / norm);
}

struct Case {
  std::size_t K = 40, N1 = 37, N2 = 5, rows = 24;
  std::vector<BlobTensor> tensors;
  std::vector<float> x;
  SmoothSite site;

  // Channels 3 and 17 of the norm's output are outliers (gamma 40 and 25), as in trained ViTs;
  // channel 9 is dead in both GEMMs' rows and in gamma and beta.
  Case() {
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> gamma(K), beta(K), b1(K * N1), b2(K * N2);
    for (std::size_t k = 0; k < K; ++k) {
      gamma[k] = 1.0f + 0.1f * nd(rng);
      beta[k] = 0.05f * nd(rng);
    }
    gamma[3] = 40.0f;
    gamma[17] = -25.0f;
    gamma[9] = beta[9] = 0.0f;
    for (float& v : b1) v = nd(rng) / std::sqrt(float(K));
    for (float& v : b2) v = nd(rng) / std::sqrt(float(K));
    for (std::size_t n = 0; n < N1; ++n) b1[9 * N1 + n] = 0.0f;
    for (std::size_t n = 0; n < N2; ++n) b2[9 * N2 + n] = 0.0f;
    tensors.push_back(BlobTensor("n.weight", vitcc::blob::Layout::plain, {K}, gamma));
    tensors.push_back(BlobTensor("n.bias", vitcc::blob::Layout::plain, {K}, beta));
    tensors.push_back(packed("w1", K, N1, b1));
    tensors.push_back(packed("w2", K, N2, b2));
    x.resize(rows * K);
    for (float& v : x) v = 2.0f * nd(rng) + 0.5f;
    // The site's statistics: max |LN(x)| per channel, computed here in double.
    site.norm = "n";
    site.gemms = {"w1", "w2"};
    site.act_max.assign(K, 0.0f);
    for (std::size_t r = 0; r < rows; ++r) {
      double mean = 0, var = 0;
      for (std::size_t k = 0; k < K; ++k) mean += x[r * K + k];
      mean /= double(K);
      for (std::size_t k = 0; k < K; ++k) var += (x[r * K + k] - mean) * (x[r * K + k] - mean);
      var /= double(K);
      for (std::size_t k = 0; k < K; ++k)
        site.act_max[k] = std::max(site.act_max[k], float(std::fabs((x[r * K + k] - mean) / std::sqrt(var + 1e-6) * gamma[k] + beta[k])));
    }
  }
};

}  // namespace

TEST_CASE("smoothing leaves LayerNorm followed by its GEMMs unchanged in float32") {
  Case c;
  for (double alpha : {0.0, 0.3, 0.5, 0.8, 1.0}) {
    CAPTURE(alpha);
    const std::vector<BlobTensor> s = apply_smoothing(c.tensors, {c.site}, alpha);
    for (const char* w : {"w1", "w2"}) {
      CAPTURE(w);
      const std::vector<double> want = ln_gemm(c.tensors, w, c.x, c.rows, c.K);
      const std::vector<double> got = ln_gemm(s, w, c.x, c.rows, c.K);
      double max_ref = 0, max_err = 0;
      for (std::size_t i = 0; i < want.size(); ++i) {
        max_ref = std::max(max_ref, std::fabs(want[i]));
        max_err = std::max(max_err, std::fabs(got[i] - want[i]));
      }
      CHECK(max_err <= 1e-5 * max_ref);  // the fold's float32 roundings of gamma, beta and B only
    }
    // The input tensors are left as they were (the float32 blob is packed from them).
    CHECK(get(c.tensors, "n.weight").data[3] == 40.0f);
  }
}

TEST_CASE("smoothing factors follow s = max|x|^alpha / max|w|^(1-alpha)") {
  Case c;
  const std::vector<float> s = smoothing_factors(c.tensors, c.site, 0.5);
  const std::vector<BlobTensor> t = apply_smoothing(c.tensors, {c.site}, 0.5);
  for (std::size_t k = 0; k < c.K; ++k) {
    CAPTURE(k);
    double wmax = 0, wmax_after = 0;
    for (const char* w : {"w1", "w2"})
      for (std::size_t n = 0; n < std::size_t(get(c.tensors, w).dims[1]); ++n) {
        wmax = std::max(wmax, std::fabs(at(get(c.tensors, w), k, n)));
        wmax_after = std::max(wmax_after, std::fabs(at(get(t, w), k, n)));
      }
    if (k == 9) {
      CHECK(s[k] == 1.0f);  // a dead channel keeps its scale
      continue;
    }
    CHECK(s[k] == doctest::Approx(std::sqrt(c.site.act_max[k]) / std::sqrt(wmax)).epsilon(eps));
    // At alpha 0.5 the activation's and the weight row's ranges meet at their geometric mean.
    CHECK(c.site.act_max[k] / s[k] == doctest::Approx(wmax_after).epsilon(1e-5));
    CHECK(wmax_after == doctest::Approx(std::sqrt(c.site.act_max[k] * wmax)).epsilon(1e-5));
  }
}

TEST_CASE("smoothing shrinks the int8 error of a GEMM whose input has outlier channels") {
  Case c;
  const double before = int8_error(c.tensors, "w1", c.x, c.rows, c.K);
  const double after = int8_error(apply_smoothing(c.tensors, {c.site}, 0.5), "w1", c.x, c.rows, c.K);
  MESSAGE("relative int8 error of LN(x) W: " << before << " without smoothing, " << after << " at alpha 0.5");
  CHECK(after < 0.5 * before);
}

TEST_CASE("smoothing refuses tensors it cannot fold into, naming them") {
  Case c;
  SmoothSite bad = c.site;
  bad.gemms = {"w1", "nope"};
  CHECK_THROWS_WITH_AS(apply_smoothing(c.tensors, {bad}, 0.5), doctest::Contains("'nope'"), PackError);
  bad = c.site;
  bad.norm = "m";
  CHECK_THROWS_WITH_AS(apply_smoothing(c.tensors, {bad}, 0.5), doctest::Contains("'m.weight'"), PackError);
  bad = c.site;
  bad.act_max.resize(c.K - 1);  // the GEMM's K no longer matches the site
  CHECK_THROWS_WITH_AS(apply_smoothing(c.tensors, {bad}, 0.5), doctest::Contains("gemm_b16"), PackError);
}
