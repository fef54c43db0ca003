#include "image_preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace vitcc::run {
namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("image preprocessing: " + what);
}

enum class Interp { nearest, bilinear, bicubic };

Interp parse_interp(const std::string& s) {
  if (s == "bicubic") return Interp::bicubic;
  if (s == "bilinear") return Interp::bilinear;
  if (s == "nearest") return Interp::nearest;
  fail("interpolation must be \"bicubic\", \"bilinear\" or \"nearest\", found \"" + s + "\"");
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

// Pillow's filters. Bicubic is Keys' cubic with a = -0.5.
double triangle(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}
double keys_cubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

constexpr int kPrecisionBits = 22;  // fixed-point weight precision of Pillow's 8-bit path

// Fixed-point taps of outputs [o0, o1) of an in_size -> out_size resize along one axis.
struct Taps {
  std::int64_t o0 = 0;
  int ksize = 0;
  std::vector<std::int64_t> first;   // first input index, per output
  std::vector<int> count;            // number of inputs, per output
  std::vector<std::int32_t> weight;  // ksize per output
};

Taps make_taps(std::int64_t in_size, std::int64_t out_size, std::int64_t o0, std::int64_t o1,
               Interp interp) {
  const double base_support = interp == Interp::bicubic ? 2.0 : 1.0;
  double (*filter)(double) = interp == Interp::bicubic ? keys_cubic : triangle;
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filter_scale = std::max(scale, 1.0);  // widen the kernel when downscaling
  const double support = base_support * filter_scale;
  const double inv_filter_scale = 1.0 / filter_scale;

  Taps t;
  t.o0 = o0;
  t.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  const auto n = static_cast<std::size_t>(o1 - o0);
  t.first.resize(n);
  t.count.resize(n);
  t.weight.assign(n * static_cast<std::size_t>(t.ksize), 0);
  std::vector<double> k(static_cast<std::size_t>(t.ksize));
  for (std::int64_t o = o0; o < o1; ++o) {
    const double centre = (static_cast<double>(o) + 0.5) * scale;
    // C-style truncation as Pillow does; clamped to the image.
    auto lo = static_cast<std::int64_t>(centre - support + 0.5);
    auto hi = static_cast<std::int64_t>(centre + support + 0.5);
    lo = std::max<std::int64_t>(lo, 0);
    hi = std::min<std::int64_t>(hi, in_size);
    const int cnt = static_cast<int>(std::min<std::int64_t>(hi - lo, t.ksize));
    double sum = 0.0;
    for (int j = 0; j < cnt; ++j) {
      k[j] = filter((static_cast<double>(j + lo) - centre + 0.5) * inv_filter_scale);
      sum += k[j];
    }
    const auto i = static_cast<std::size_t>(o - o0);
    std::int32_t* w = &t.weight[i * static_cast<std::size_t>(t.ksize)];
    for (int j = 0; j < cnt; ++j) {
      const double v = (sum != 0.0 ? k[j] / sum : k[j]) * static_cast<double>(1 << kPrecisionBits);
      w[j] = static_cast<std::int32_t>(v < 0.0 ? v - 0.5 : v + 0.5);  // round half away from 0
    }
    t.first[i] = lo;
    t.count[i] = std::max(cnt, 0);
  }
  return t;
}

inline unsigned char fixed_to_u8(std::int64_t acc) {
  const std::int64_t v = acc >> kPrecisionBits;  // floor; acc starts at +0.5 so this rounds
  return static_cast<unsigned char>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// An interleaved RGB block: rows x cols pixels.
struct Block {
  std::int64_t rows = 0, cols = 0;
  std::vector<unsigned char> px;
  unsigned char* at(std::int64_t r, std::int64_t c) {
    return &px[static_cast<std::size_t>((r * cols + c) * 3)];
  }
};

// Resizes the whole W x H image to rw x rh (conceptually) and returns only rows [r0, r1) and
// columns [c0, c1) of the result. Each output pixel depends only on its own taps, so this
// equals cropping the full resize.
Block resize_window(const unsigned char* rgb, std::int64_t W, std::int64_t H, std::int64_t rw,
                    std::int64_t rh, std::int64_t r0, std::int64_t r1, std::int64_t c0,
                    std::int64_t c1, Interp interp) {
  auto src = [&](std::int64_t y, std::int64_t x) {
    return rgb + static_cast<std::size_t>((y * W + x) * 3);
  };
  Block out;
  out.rows = r1 - r0;
  out.cols = c1 - c0;
  out.px.resize(static_cast<std::size_t>(out.rows * out.cols * 3));

  if (interp == Interp::nearest) {
    // Pillow's nearest resize walks the source in steps of in/out starting at half a step,
    // accumulating in double and truncating: source index of output o is
    // int(s/2 + s + ... + s) with o additions, i.e. floor((o + 0.5) * s) up to the rounding
    // of the running sum, which we reproduce (it decides exact ties such as 64 -> 48).
    auto table = [](std::int64_t o0, std::int64_t o1, std::int64_t in, std::int64_t outn) {
      const double s = static_cast<double>(in) / static_cast<double>(outn);
      std::vector<std::int64_t> idx(static_cast<std::size_t>(o1 - o0));
      double pos = s * 0.5;
      for (std::int64_t o = 0; o < o1; ++o, pos += s)
        if (o >= o0)
          idx[static_cast<std::size_t>(o - o0)] =
              std::clamp<std::int64_t>(static_cast<std::int64_t>(pos), 0, in - 1);
      return idx;
    };
    const std::vector<std::int64_t> xs = table(c0, c1, W, rw), ys = table(r0, r1, H, rh);
    for (std::int64_t r = r0; r < r1; ++r) {
      const std::int64_t y = ys[static_cast<std::size_t>(r - r0)];
      for (std::int64_t c = c0; c < c1; ++c) {
        const unsigned char* s = src(y, xs[static_cast<std::size_t>(c - c0)]);
        unsigned char* d = out.at(r - r0, c - c0);
        d[0] = s[0];
        d[1] = s[1];
        d[2] = s[2];
      }
    }
    return out;
  }

  // Pillow resizes only the axes whose size changes; horizontal first, then vertical, each
  // pass rounding to uint8.
  const bool horizontal = rw != W;
  const bool vertical = rh != H;
  Taps vt;
  std::int64_t in_r0 = r0, in_r1 = r1;  // source rows the vertical pass reads
  if (vertical) {
    vt = make_taps(H, rh, r0, r1, interp);
    in_r0 = std::numeric_limits<std::int64_t>::max();
    in_r1 = 0;
    for (std::size_t i = 0; i < vt.first.size(); ++i) {
      if (vt.count[i] <= 0) continue;
      in_r0 = std::min(in_r0, vt.first[i]);
      in_r1 = std::max(in_r1, vt.first[i] + vt.count[i]);
    }
    if (in_r0 >= in_r1) in_r0 = in_r1 = 0;
  }

  // Horizontal pass over source rows [in_r0, in_r1) into tmp.
  Block tmp;
  tmp.rows = in_r1 - in_r0;
  tmp.cols = out.cols;
  tmp.px.resize(static_cast<std::size_t>(tmp.rows * tmp.cols * 3));
  if (horizontal) {
    const Taps ht = make_taps(W, rw, c0, c1, interp);
    for (std::int64_t y = in_r0; y < in_r1; ++y) {
      for (std::int64_t c = c0; c < c1; ++c) {
        const auto i = static_cast<std::size_t>(c - c0);
        const std::int32_t* w = &ht.weight[i * static_cast<std::size_t>(ht.ksize)];
        const unsigned char* s = src(y, ht.first[i]);
        std::int64_t a0 = 1 << (kPrecisionBits - 1), a1 = a0, a2 = a0;
        for (int j = 0; j < ht.count[i]; ++j, s += 3) {
          a0 += static_cast<std::int64_t>(s[0]) * w[j];
          a1 += static_cast<std::int64_t>(s[1]) * w[j];
          a2 += static_cast<std::int64_t>(s[2]) * w[j];
        }
        unsigned char* d = tmp.at(y - in_r0, c - c0);
        d[0] = fixed_to_u8(a0);
        d[1] = fixed_to_u8(a1);
        d[2] = fixed_to_u8(a2);
      }
    }
  } else {
    for (std::int64_t y = in_r0; y < in_r1; ++y)
      std::copy(src(y, c0), src(y, c1), tmp.at(y - in_r0, 0));
  }
  if (!vertical) return tmp;  // in_r0 == r0, in_r1 == r1

  for (std::int64_t r = r0; r < r1; ++r) {
    const auto i = static_cast<std::size_t>(r - r0);
    const std::int32_t* w = &vt.weight[i * static_cast<std::size_t>(vt.ksize)];
    for (std::int64_t c = 0; c < out.cols; ++c) {
      std::int64_t a0 = 1 << (kPrecisionBits - 1), a1 = a0, a2 = a0;
      for (int j = 0; j < vt.count[i]; ++j) {
        const unsigned char* s = tmp.at(vt.first[i] + j - in_r0, c);
        a0 += static_cast<std::int64_t>(s[0]) * w[j];
        a1 += static_cast<std::int64_t>(s[1]) * w[j];
        a2 += static_cast<std::int64_t>(s[2]) * w[j];
      }
      unsigned char* d = out.at(r - r0, c);
      d[0] = fixed_to_u8(a0);
      d[1] = fixed_to_u8(a1);
      d[2] = fixed_to_u8(a2);
    }
  }
  return out;
}

}  // namespace

Tensor preprocess_image(const unsigned char* rgb, int width, int height, const Preprocess& pp) {
  const Interp interp = parse_interp(pp.interpolation);
  constexpr std::int64_t kMaxSide = 1 << 16;
  if (rgb == nullptr || width <= 0 || height <= 0)
    fail("expected a non-empty RGB image, found " + std::to_string(width) + "x" +
         std::to_string(height));
  if (pp.input_h <= 0 || pp.input_w <= 0 || pp.input_h > kMaxSide || pp.input_w > kMaxSide)
    fail("input size must be in 1.." + std::to_string(kMaxSide) + ", found " +
         std::to_string(pp.input_h) + "x" + std::to_string(pp.input_w));
  if (!(pp.crop_pct > 0.0f) || !std::isfinite(pp.crop_pct))
    fail("crop_pct must be a positive number, found " + std::to_string(pp.crop_pct));
  for (int ch = 0; ch < 3; ++ch)
    if (!(pp.std[ch] != 0.0f) || !std::isfinite(pp.std[ch]) || !std::isfinite(pp.mean[ch]))
      fail("mean and std must be finite and std non-zero (channel " + std::to_string(ch) + ")");

  const std::int64_t W = width, H = height;
  const std::int64_t ch_out = pp.input_h, cw_out = pp.input_w;

  // 1-2. Resize target, as timm's transforms_imagenet_eval (crop_mode 'center') chooses it.
  const double crop_pct = decimal_value(pp.crop_pct);
  const double scale_h_d = std::floor(static_cast<double>(pp.input_h) / crop_pct);
  const double scale_w_d = std::floor(static_cast<double>(pp.input_w) / crop_pct);
  if (scale_h_d < 1.0 || scale_w_d < 1.0 || scale_h_d > 1e9 || scale_w_d > 1e9)
    fail("input size / crop_pct out of range");
  const auto scale_h = static_cast<std::int64_t>(scale_h_d);
  const auto scale_w = static_cast<std::int64_t>(scale_w_d);
  std::int64_t rh = 0, rw = 0;
  Interp resize_interp = interp;
  if (scale_h == scale_w) {
    // torchvision Resize(int): shorter side -> scale, longer -> int(scale * long / short).
    const double s = static_cast<double>(scale_h);
    if (W <= H) {
      rw = scale_h;
      rh = static_cast<std::int64_t>(s * static_cast<double>(H) / static_cast<double>(W));
    } else {
      rh = scale_h;
      rw = static_cast<std::int64_t>(s * static_cast<double>(W) / static_cast<double>(H));
    }
  } else {
    // timm ResizeKeepRatio(scale_size) with its default interpolation (bilinear).
    const double ratio = std::min(static_cast<double>(H) / static_cast<double>(scale_h),
                                  static_cast<double>(W) / static_cast<double>(scale_w));
    rh = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(H) / ratio));
    rw = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(W) / ratio));
    resize_interp = Interp::bilinear;
  }
  if (rh < 1 || rw < 1) fail("the image resizes to an empty image");

  // 3. torchvision CenterCrop: pad with zeros where the crop is larger, then crop.
  const std::int64_t pad_t = ch_out > rh ? (ch_out - rh) / 2 : 0;
  const std::int64_t pad_l = cw_out > rw ? (cw_out - rw) / 2 : 0;
  const std::int64_t ph = std::max(ch_out, rh), pw = std::max(cw_out, rw);
  const auto top = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(ph - ch_out) / 2.0));
  const auto left = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(pw - cw_out) / 2.0));
  const std::int64_t off_y = top - pad_t, off_x = left - pad_l;  // output -> resized coords
  const std::int64_t r0 = std::max<std::int64_t>(off_y, 0), r1 = std::min(rh, off_y + ch_out);
  const std::int64_t c0 = std::max<std::int64_t>(off_x, 0), c1 = std::min(rw, off_x + cw_out);

  Block win;
  if (r0 < r1 && c0 < c1) win = resize_window(rgb, W, H, rw, rh, r0, r1, c0, c1, resize_interp);

  // 4. ToTensor + Normalize, in float32 like torchvision.
  Tensor t;
  t.shape = {1, 3, ch_out, cw_out};
  t.data.resize(static_cast<std::size_t>(3 * ch_out * cw_out));
  for (int ch = 0; ch < 3; ++ch) {
    const float m = pp.mean[ch], sd = pp.std[ch];
    float* plane = &t.data[static_cast<std::size_t>(ch * ch_out * cw_out)];
    for (std::int64_t y = 0; y < ch_out; ++y) {
      const std::int64_t ry = y + off_y;
      for (std::int64_t x = 0; x < cw_out; ++x) {
        const std::int64_t rx = x + off_x;
        unsigned v = 0;
        if (ry >= r0 && ry < r1 && rx >= c0 && rx < c1) v = win.at(ry - r0, rx - c0)[ch];
        const float f = static_cast<float>(v) / 255.0f;
        plane[y * cw_out + x] = (f - m) / sd;
      }
    }
  }
  return t;
}

}  // namespace vitcc::run
