#include <vitcc/kernels/activations.hpp>

#include <cmath>
#include <vector>

#include "kernel_test_support.hpp"

using namespace vitcc::kernels;

namespace {
double gelu_exact(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }

// ~1e-6 relative where PyTorch's own float GELU is meaningful; further down the negative tail the
// function's condition number grows like x^2 (d ln erfc(z)/dz ~ -2z), so the rounding of x / sqrt(2)
// alone costs ~x^2 * 6e-8 relative, for every float implementation.
double gelu_tolerance(double x) { return 1.5e-6 * std::fmax(1.0, x * x / 8.0); }
}  // namespace

TEST_CASE("ref::gelu_erf matches known values of the exact GELU") {
  // Values of x * Phi(x), Phi the standard normal CDF (PyTorch nn.GELU() gives the same to float precision).
  CHECK(ref::gelu_erf(0.0f) == 0.0f);
  CHECK(ref::gelu_erf(1.0f) == doctest::Approx(0.8413447).epsilon(1e-6));
  CHECK(ref::gelu_erf(-1.0f) == doctest::Approx(-0.15865526).epsilon(1e-6));
  CHECK(ref::gelu_erf(2.0f) == doctest::Approx(1.9544997).epsilon(1e-6));
  CHECK(ref::gelu_erf(-0.5f) == doctest::Approx(-0.15426877).epsilon(1e-6));
  CHECK(ref::gelu_erf(-3.0f) == doctest::Approx(-0.0040496).epsilon(1e-4));
  CHECK(ref::gelu_erf(6.0f) == doctest::Approx(6.0).epsilon(1e-7));
  CHECK(ref::relu(-2.0f) == 0.0f);
  CHECK(ref::relu(2.5f) == 2.5f);
  CHECK(ref::apply_activation(-1.0f, Activation::none) == -1.0f);
  CHECK(ref::apply_activation(-1.0f, Activation::relu) == 0.0f);
  CHECK(ref::apply_activation(1.0f, Activation::gelu_erf) == ref::gelu_erf(1.0f));
}

TEST_CASE_TEMPLATE_DEFINE("gelu_erf: every length, the whole useful range", Arch, gelu_sweep) {
  // Every length up to a few AVX-512 widths, so each tail size is exercised on each ISA.
  for (std::size_t n = 0; n <= 53; ++n) {
    std::vector<float> x(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = -6.0f + 12.0f * float(i) / float(n > 1 ? n - 1 : 1);
    std::vector<float> y = x;
    gelu_erf<Arch>(y.data(), n);
    double worst = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      const double want = gelu_exact(x[i]);
      worst = std::fmax(worst, std::fabs(y[i] - want) / std::fmax(std::fabs(want), 1e-30) / gelu_tolerance(x[i]));
    }
    INFO("n=" << n << " worst error / tolerance " << worst);
    CHECK(worst <= 1.0);
  }
  // A dense sweep over the range activations actually take.
  const std::size_t n = 20001;
  std::vector<float> x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = -9.0f + 19.0f * float(i) / float(n - 1);
  std::vector<float> y = x;
  gelu_erf<Arch>(y.data(), n);
  double worst = 0.0;
  float worst_x = 0.0f;
  for (std::size_t i = 0; i < n; ++i) {
    const double want = gelu_exact(x[i]);
    const double e = std::fabs(y[i] - want) / std::fmax(std::fabs(want), 1e-30) / gelu_tolerance(x[i]);
    if (e > worst) worst = e, worst_x = x[i];
  }
  INFO("worst error / tolerance " << worst << " at x=" << worst_x);
  CHECK(worst <= 1.0);
  // Far tails: exactly -0 / x, never NaN; infinities and NaN as the scalar path gives them.
  float tails[6] = {-40.0f, 40.0f, -1e30f, INFINITY, -INFINITY, NAN};
  gelu_erf<Arch>(tails, 6);
  CHECK(tails[0] == 0.0f);
  CHECK(std::signbit(tails[0]));
  CHECK(tails[1] == 40.0f);
  CHECK(tails[2] == 0.0f);
  CHECK(tails[3] == INFINITY);
  CHECK(std::isnan(tails[4]) == std::isnan(detail::gelu_erf_scalar(-INFINITY)));
  CHECK(std::isnan(tails[5]));
}
TEST_CASE_TEMPLATE_APPLY(gelu_sweep, vitcc::test::kernel_archs);
