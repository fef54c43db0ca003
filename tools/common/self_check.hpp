// Artifacts verify themselves: vitcc-pack runs the ONNX graph on a seeded input and records a
// digest of its output in the JSON config; `vitcc-run --check` regenerates the same input, runs the
// compiled model and compares. The input is reproducible from the seed alone (splitmix64, uniform
// in [-2, 2)), so nothing large needs to be stored.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vitcc/core/precision.hpp"

namespace vitcc::tools {

inline std::vector<float> self_check_input(std::size_t n, std::uint64_t seed) {
  std::vector<float> v(n);
  std::uint64_t s = seed;
  for (float& x : v) {
    s += 0x9e3779b97f4a7c15ull;
    std::uint64_t z = s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    x = static_cast<float>(static_cast<double>(z >> 40) / double(1ull << 24) * 4.0 - 2.0);
  }
  return v;
}

// The self-check input: a seeded, image-like CHW picture in the range of ImageNet-normalised pixels
// (smooth low-frequency waves per channel plus a little noise). Not white noise: networks with
// BatchNorm statistics calibrated on images can be chaotic on noise (a 1e-6 change of the input
// moved a random-weight EfficientViT-M5's outputs by hundreds), and then no two float32
// implementations agree, however correct. Checked on what models are for, the comparison means
// something.
inline std::vector<float> self_check_image(std::size_t c, std::size_t h, std::size_t w, std::uint64_t seed) {
  const std::vector<float> r = self_check_input(c * 16 + c * h * w, seed);  // 16 wave parameters per channel
  std::vector<float> img(c * h * w);
  const double two_pi = 6.283185307179586;
  for (std::size_t ch = 0; ch < c; ++ch) {
    const float* p = r.data() + ch * 16;  // each in [-2, 2)
    for (std::size_t y = 0; y < h; ++y)
      for (std::size_t x = 0; x < w; ++x) {
        const double u = double(x) / double(w), v = double(y) / double(h);
        double val = 0.25 * p[0];
        for (int k = 0; k < 3; ++k)
          val += 0.35 * p[1 + 5 * k] * std::sin(two_pi * (p[2 + 5 * k] * u + p[3 + 5 * k] * v) + 1.6 * p[4 + 5 * k]) *
                 (0.75 + 0.125 * p[5 + 5 * k]);
        val += 0.05 * r[c * 16 + (ch * h + y) * w + x];
        img[(ch * h + y) * w + x] = static_cast<float>(std::max(-2.1, std::min(2.6, val)));
      }
  }
  return img;
}

// The project's parity bound, in one place (the e2e test, vitcc-run --reference, the packer's
// self-check and vitcc-run --check all use it): max |got - ref| <= rel x max(1, max |ref|), and the
// cosine of got and ref >= min_cosine.
struct ParityBound {
  double rel;
  double min_cosine;
};
inline constexpr ParityBound fp32_parity{1e-4, 0.99999};

// The bound of a reduced-precision model against the float32 one (bfloat16 weights: 8 significant
// bits; int8: 7 bits and per-token activations). The cosines are the project's accuracy targets;
// the max-error bounds only catch a model that is wrong, not merely less precise.
constexpr ParityBound parity_for(Precision p) noexcept {
  return p == Precision::bf16 ? ParityBound{2e-2, 0.9999} : p == Precision::int8 ? ParityBound{1e-1, 0.999} : fp32_parity;
}

// Parity as the project measures it everywhere: max |a-b| against max(1, max|ref|), and cosine.
struct Agreement {
  double max_abs_err = 0, max_abs_ref = 0, cosine = 1;
  // The bound on max_abs_err; `slack` widens it for a graph that amplifies rounding (see
  // self_check_slack).
  double allowed(ParityBound b = fp32_parity, double slack = 0) const { return b.rel * std::max(1.0, max_abs_ref) + slack; }
  bool within(ParityBound b = fp32_parity, double slack = 0) const {
    return max_abs_err <= allowed(b, slack) && cosine >= b.min_cosine;
  }
};

inline Agreement compare(const float* got, const float* ref, std::size_t n) {
  Agreement a;
  double dot = 0, ng = 0, nr = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double g = got[i], r = ref[i];
    if (!std::isfinite(g)) {
      a.max_abs_err = INFINITY;
    } else {
      a.max_abs_err = std::max(a.max_abs_err, std::fabs(g - r));
    }
    a.max_abs_ref = std::max(a.max_abs_ref, std::fabs(r));
    dot += g * r;
    ng += g * g;
    nr += r * r;
  }
  a.cosine = (ng > 0 && nr > 0) ? dot / std::sqrt(ng * nr) : (ng == nr ? 1.0 : 0.0);
  if (!std::isfinite(a.max_abs_err)) a.cosine = 0;
  return a;
}

// The digest stored in the JSON: the first values, and where the largest ones are.
inline nlohmann::json self_check_record(std::uint64_t seed, const std::vector<float>& out) {
  nlohmann::json j;
  j["seed"] = seed;
  j["input"] = "self_check_image(C, H, W, seed): seeded smooth image-like pattern, NCHW, one image";
  j["output_count"] = out.size();
  const std::size_t keep = std::min<std::size_t>(out.size(), 256);
  j["output_first"] = std::vector<double>(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(keep));
  double sum = 0, amax = 0;
  for (float v : out) {
    sum += v;
    amax = std::max(amax, double(std::fabs(v)));
  }
  j["output_sum"] = sum;
  j["output_abs_max"] = amax;
  return j;
}

// Checks `out` against a record; returns an empty string when it agrees, else why not.
inline std::string self_check_verify(const nlohmann::json& rec, const std::vector<float>& out) {
  if (rec.at("output_count").get<std::size_t>() != out.size())
    return "output has " + std::to_string(out.size()) + " values, the record " +
           std::to_string(rec.at("output_count").get<std::size_t>());
  const auto first = rec.at("output_first").get<std::vector<float>>();
  if (first.size() > out.size())  // compare() below reads first.size() outputs
    return "the record lists " + std::to_string(first.size()) + " first outputs, more than the " +
           std::to_string(out.size()) + " the model gives";
  const Agreement a = compare(out.data(), first.data(), first.size());
  const double scale = std::max(1.0, rec.at("output_abs_max").get<double>());
  // The slack the packer allowed for a graph that amplifies rounding (0 when absent: older configs).
  const double slack = rec.contains("slack") ? rec.at("slack").get<double>() : 0.0;
  if (a.max_abs_err > fp32_parity.rel * scale + slack)
    return "first " + std::to_string(first.size()) + " outputs differ by up to " + std::to_string(a.max_abs_err);
  double sum = 0, amax = 0;
  for (float v : out) {
    sum += v;
    amax = std::max(amax, double(std::fabs(v)));
  }
  if (std::fabs(amax - rec.at("output_abs_max").get<double>()) > fp32_parity.rel * scale + slack)
    return "largest |output| is " + std::to_string(amax) + ", the record " +
           std::to_string(rec.at("output_abs_max").get<double>());
  if (std::fabs(sum - rec.at("output_sum").get<double>()) >
      (fp32_parity.rel * scale + slack) * std::sqrt(double(out.size())) + 1e-6 * scale * double(out.size()))
    return "output sum is " + std::to_string(sum) + ", the record " + std::to_string(rec.at("output_sum").get<double>());
  return {};
}

}  // namespace vitcc::tools
