#include <vitcc/kernels/layer_norm.hpp>

#include <cmath>
#include <vector>

#include "kernel_test_support.hpp"

using namespace vitcc::kernels;
using vitcc::test::Buffer;
using vitcc::test::Rng;

namespace {

std::vector<double> naive_layer_norm(std::size_t rows, std::size_t d, const float* x, std::size_t ldx,
                                     const float* gamma, const float* beta, float eps) {
  std::vector<double> y(rows * d);
  for (std::size_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (std::size_t j = 0; j < d; ++j) mean += x[r * ldx + j];
    mean /= double(d);
    for (std::size_t j = 0; j < d; ++j) var += (x[r * ldx + j] - mean) * (x[r * ldx + j] - mean);
    var /= double(d);
    for (std::size_t j = 0; j < d; ++j)
      y[r * d + j] = (x[r * ldx + j] - mean) / std::sqrt(var + eps) * gamma[j] + beta[j];
  }
  return y;
}

template <class Arch>
void run_case(std::size_t rows, std::size_t d, std::size_t pad, float offset, bool in_place, std::uint64_t seed) {
  INFO("rows=" << rows << " d=" << d << " pad=" << pad << " offset=" << offset << " in_place=" << in_place);
  Rng rng(seed);
  const std::size_t ld = d + pad;
  Buffer x(rows * ld);
  rng.fill(x.data(), rows * ld);
  // A large common offset is what breaks a one-pass E[x^2] - E[x]^2 variance.
  for (std::size_t i = 0; i < rows * ld; ++i) x[i] += offset;
  std::vector<float> gamma(d), beta(d);
  rng.fill(gamma.data(), d, 0.5f, 1.5f);
  rng.fill(beta.data(), d);
  const float eps = 1e-6f;
  const auto want = naive_layer_norm(rows, d, x.data(), ld, gamma.data(), beta.data(), eps);
  const float pad_value = 555.0f;
  Buffer y(rows * ld, pad_value);
  float* out = y.data();
  if (in_place) {
    for (std::size_t i = 0; i < rows * ld; ++i) y[i] = x[i];
    layer_norm<Arch>(rows, d, y.data(), ld, gamma.data(), beta.data(), eps, out, ld);
  } else {
    layer_norm<Arch>(rows, d, x.data(), ld, gamma.data(), beta.data(), eps, out, ld);
  }
  // Normalised values are O(1). A float mean of values near the offset is only known to ~ulp(offset),
  // which a float kernel cannot beat; a one-pass variance would be off by percent, far outside this.
  const double tol = 2e-6 + 2e-7 * std::fabs(offset);
  VITCC_CHECK_CLOSE(vitcc::test::compare(out, ld, want.data(), d, rows, d, tol));
  if (!in_place) {
    bool padding_intact = true;
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t j = d; j < ld; ++j) padding_intact = padding_intact && y[r * ld + j] == pad_value;
    CHECK(padding_intact);
  }
  CHECK(y.guard_intact());
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("layer_norm: known values", Arch, ln_known) {
  const float x[4] = {1, 2, 3, 4}, gamma[4] = {1, 1, 2, 1}, beta[4] = {0, 0, 0, 10};
  float y[4];
  layer_norm<Arch>(1, 4, x, 4, gamma, beta, 0.0f, y, 4);
  // mean 2.5, biased variance 1.25
  const double s = 1.0 / std::sqrt(1.25);
  CHECK(y[0] == doctest::Approx(-1.5 * s).epsilon(1e-6));
  CHECK(y[1] == doctest::Approx(-0.5 * s).epsilon(1e-6));
  CHECK(y[2] == doctest::Approx(2 * 0.5 * s).epsilon(1e-6));
  CHECK(y[3] == doctest::Approx(1.5 * s + 10).epsilon(1e-6));
  // eps matters for a constant row: (x - mean) = 0 everywhere, output is beta.
  const float c[3] = {7, 7, 7}, g3[3] = {1, 1, 1}, b3[3] = {1, 2, 3};
  float yc[3];
  layer_norm<Arch>(1, 3, c, 3, g3, b3, 1e-5f, yc, 3);
  CHECK(yc[0] == 1.0f);
  CHECK(yc[1] == 2.0f);
  CHECK(yc[2] == 3.0f);
}
TEST_CASE_TEMPLATE_APPLY(ln_known, vitcc::test::kernel_archs);

TEST_CASE_TEMPLATE_DEFINE("layer_norm: odd widths, strides, in place, large offsets", Arch, ln_shapes) {
  std::uint64_t seed = 1;
  for (std::size_t rows : {1, 3, 197})
    for (std::size_t d : {1, 2, 3, 15, 16, 17, 31, 32, 33, 63, 384, 385, 1536})
      for (std::size_t pad : {0, 5})
        for (bool in_place : {false, true}) {
          run_case<Arch>(rows, d, pad, 0.0f, in_place, seed++);
          if (d > 1) run_case<Arch>(rows, d, pad, 1000.0f, in_place, seed++);
        }
}
TEST_CASE_TEMPLATE_APPLY(ln_shapes, vitcc::test::kernel_archs);
