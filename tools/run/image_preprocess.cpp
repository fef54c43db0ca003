#include "image_preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "vitcc/preprocess.hpp"

// The resampling lives in the library (include/vitcc/preprocess.hpp), where a device runs it too; this
// wrapper turns vitcc-run's configuration into the library's and allocates what it needs.
namespace vitcc::run {
namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("image preprocessing: " + what);
}

// crop_pct arrives as a float but timm computes with the Python float (double) the config
// was written with. The shortest decimal that reads back as the same float recovers it, so
// 0.9f gives 0.9 rather than 0.89999997615814208984.
double decimal_value(float f) {
  char buf[40];
  for (int digits = 6; digits <= 9; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, static_cast<double>(f));
    if (std::strtof(buf, nullptr) == f) return std::strtod(buf, nullptr);
  }
  return static_cast<double>(f);
}

}  // namespace

vitcc::Preprocessing library_preprocessing(const Preprocess& pp) {
  vitcc::Preprocessing lp;
  if (pp.interpolation == "bicubic") lp.interpolation = vitcc::Interpolation::bicubic;
  else if (pp.interpolation == "bilinear") lp.interpolation = vitcc::Interpolation::bilinear;
  else if (pp.interpolation == "nearest") lp.interpolation = vitcc::Interpolation::nearest;
  else fail("interpolation must be \"bicubic\", \"bilinear\" or \"nearest\", found \"" + pp.interpolation + "\"");
  if (pp.input_h <= 0 || pp.input_w <= 0 || pp.input_h > (1 << 16) || pp.input_w > (1 << 16))
    fail("input size must be in 1..65536, found " + std::to_string(pp.input_h) + "x" + std::to_string(pp.input_w));
  lp.input_h = static_cast<int>(pp.input_h);
  lp.input_w = static_cast<int>(pp.input_w);
  for (int c = 0; c < 3; ++c) {
    lp.mean[c] = pp.mean[c];
    lp.std[c] = pp.std[c];
  }
  if (!(pp.crop_pct > 0.0f) || !std::isfinite(pp.crop_pct))
    fail("crop_pct must be a positive number, found " + std::to_string(pp.crop_pct));
  lp.crop_pct = decimal_value(pp.crop_pct);
  return lp;
}

Tensor preprocess_image(const unsigned char* rgb, int width, int height, const Preprocess& pp) {
  if (rgb == nullptr || width <= 0 || height <= 0)
    fail("expected a non-empty RGB image, found " + std::to_string(width) + "x" + std::to_string(height));
  const vitcc::Preprocessing lp = library_preprocessing(pp);
  // At least one word, so that a frame it cannot serve gets preprocess's reason, not "a null pointer".
  std::vector<std::uint64_t> scratch(std::max<std::size_t>(1, (vitcc::preprocess_scratch_bytes(width, height, lp) + 7) / 8));
  Tensor t;
  t.shape = {1, 3, pp.input_h, pp.input_w};
  t.data.resize(static_cast<std::size_t>(3 * pp.input_h * pp.input_w));
  const vitcc::Status s = vitcc::preprocess(rgb, width, height, static_cast<std::size_t>(width) * 3, 3, lp, t.data.data(),
                                            scratch.data(), scratch.size() * 8);
  if (!s.ok()) fail(std::string(s.message()).substr(std::string("preprocess: ").size()));
  return t;
}

}  // namespace vitcc::run
