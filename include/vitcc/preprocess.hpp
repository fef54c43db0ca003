// Image preprocessing on the device: a camera frame (8-bit RGB or RGBA, interleaved, rows of any
// stride) in, the model's input out (float32 CHW), as timm's evaluation transform computes it on a
// PIL image (transforms_imagenet_eval, crop_mode "center"):
//
//   1. scale_h = floor(input_h / crop_pct), scale_w = floor(input_w / crop_pct) (in double, with
//      crop_pct the Python float of the model's config).
//   2. Equal scales (the usual square case): torchvision Resize(scale) takes the shorter side to
//      scale and the longer to int(scale * long / short), with the configured interpolation.
//      Otherwise timm's ResizeKeepRatio(scale_size): ratio = min(H / scale_h, W / scale_w), new size
//      (round(H / ratio), round(W / ratio)), half to even, and -- as timm's code does, since it does
//      not pass the interpolation on -- always bilinear.
//   3. torchvision CenterCrop(input_h, input_w): top = round((H' - input_h) / 2), half to even,
//      likewise left; a resized image smaller than the crop is padded with black first.
//   4. x / 255, then (x - mean) / std, in float32.
//
// Resampling is Pillow's 8-bit resize (9.x):
//   - bilinear (triangle, support 1) and bicubic (Keys, a = -0.5, support 2) are separable
//     convolutions with pixel centres at +0.5 and the support widened by the downscale factor;
//   - the weights are normalised to sum 1 and held in 22-bit fixed point;
//   - the horizontal pass runs first, and each pass rounds and clamps to uint8;
//   - only the axes whose size changes are resampled;
//   - nearest takes source pixel floor((x + 0.5) * in / out), computed as Pillow does (a running double
//     sum, truncated), which decides exact ties.
// The output matches torchvision on PIL to float32 rounding (tests/tools/test_tensor_io.cpp holds it
// to Pillow's pixels; tests/tools/preprocess_files.py to torchvision on real image files).
//
// Only the cropped window is resampled: each output pixel depends on its own taps alone, so this
// equals cropping the full resize, at a fraction of the work. Nothing is allocated: the caller
// passes scratch memory of preprocess_scratch_bytes(width, height, config) bytes (8-byte aligned);
// the function writes only `out` and the scratch, throws nothing, and refuses (vitcc::Status) a bad
// configuration, a null or misaligned pointer, a stride too small for the row, or too little scratch.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "vitcc/core/error.hpp"

namespace vitcc {

enum class Interpolation : int { nearest = 0, bilinear = 1, bicubic = 2 };

constexpr const char* interpolation_name(Interpolation i) noexcept {
  return i == Interpolation::nearest ? "nearest" : i == Interpolation::bilinear ? "bilinear" : "bicubic";
}

// A model's preprocessing (vitcc-pack writes it into the generated config as `preprocessing`).
struct Preprocessing {
  int input_h = 224, input_w = 224;
  float mean[3] = {0.485f, 0.456f, 0.406f};  // timm IMAGENET_DEFAULT_MEAN
  float std[3] = {0.229f, 0.224f, 0.225f};   // timm IMAGENET_DEFAULT_STD
  Interpolation interpolation = Interpolation::bicubic;
  double crop_pct = 0.875;  // timm DEFAULT_CROP_PCT
};

namespace detail::pre {

constexpr int precision_bits = 22;  // Pillow's fixed-point weights (8-bit path)
constexpr std::int64_t max_side = 1 << 16;

inline double triangle(double x) noexcept {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}
inline double keys_cubic(double x) noexcept {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// The resize and crop for one frame size, and where each part of the scratch lies.
struct Plan {
  std::int64_t W = 0, H = 0, out_h = 0, out_w = 0;
  std::int64_t rw = 0, rh = 0;             // the resized image
  std::int64_t off_y = 0, off_x = 0;       // output (y, x) -> resized (y + off_y, x + off_x)
  std::int64_t r0 = 0, r1 = 0, c0 = 0, c1 = 0;  // the window of the resized image the crop keeps
  Interpolation interp = Interpolation::bicubic;
  bool horizontal = false, vertical = false;
  int kh = 0, kv = 0;                      // taps per output pixel, horizontal and vertical
  // scratch offsets (bytes), counted in 64 bits (a 32-bit target refuses what does not fit its size_t)
  std::uint64_t h_first = 0, h_count = 0, h_weight = 0, v_first = 0, v_count = 0, v_weight = 0, tmp = 0, win = 0,
                bytes = 0;
};

inline int tap_count(std::int64_t in, std::int64_t out, Interpolation interp) noexcept {
  const double support = (interp == Interpolation::bicubic ? 2.0 : 1.0) *
                         std::max(static_cast<double>(in) / static_cast<double>(out), 1.0);
  return static_cast<int>(std::ceil(support)) * 2 + 1;
}

// Fills `p`; returns an error status for a configuration or frame it cannot serve.
inline Status plan(int width, int height, const Preprocessing& pp, Plan& p) noexcept {
  if (width <= 0 || height <= 0 || width > max_side || height > max_side)
    return Status::error(Errc::shape_mismatch, "preprocess: the frame is %dx%d, expected 1..65536 on each side", width,
                         height);
  if (pp.input_h <= 0 || pp.input_w <= 0 || pp.input_h > max_side || pp.input_w > max_side)
    return Status::error(Errc::invalid_argument, "preprocess: input size %dx%d, expected 1..65536", pp.input_h, pp.input_w);
  if (!(pp.crop_pct > 0.0) || !std::isfinite(pp.crop_pct))
    return Status::error(Errc::invalid_argument, "preprocess: crop_pct must be a positive number");
  for (int c = 0; c < 3; ++c)
    if (!(pp.std[c] != 0.0f) || !std::isfinite(pp.std[c]) || !std::isfinite(pp.mean[c]))
      return Status::error(Errc::invalid_argument, "preprocess: mean and std must be finite and std non-zero (channel %d)", c);
  if (pp.interpolation != Interpolation::nearest && pp.interpolation != Interpolation::bilinear &&
      pp.interpolation != Interpolation::bicubic)
    return Status::error(Errc::invalid_argument, "preprocess: unknown interpolation %d", static_cast<int>(pp.interpolation));

  p = Plan{};
  p.W = width;
  p.H = height;
  p.out_h = pp.input_h;
  p.out_w = pp.input_w;
  // 1-2. The resize target.
  const double scale_h_d = std::floor(static_cast<double>(pp.input_h) / pp.crop_pct);
  const double scale_w_d = std::floor(static_cast<double>(pp.input_w) / pp.crop_pct);
  if (scale_h_d < 1.0 || scale_w_d < 1.0 || scale_h_d > 1e9 || scale_w_d > 1e9)
    return Status::error(Errc::invalid_argument, "preprocess: input size / crop_pct out of range");
  const auto scale_h = static_cast<std::int64_t>(scale_h_d), scale_w = static_cast<std::int64_t>(scale_w_d);
  p.interp = pp.interpolation;
  if (scale_h == scale_w) {
    const double s = static_cast<double>(scale_h);
    if (p.W <= p.H) {
      p.rw = scale_h;
      p.rh = static_cast<std::int64_t>(s * static_cast<double>(p.H) / static_cast<double>(p.W));
    } else {
      p.rh = scale_h;
      p.rw = static_cast<std::int64_t>(s * static_cast<double>(p.W) / static_cast<double>(p.H));
    }
  } else {
    const double ratio = std::min(static_cast<double>(p.H) / static_cast<double>(scale_h),
                                  static_cast<double>(p.W) / static_cast<double>(scale_w));
    p.rh = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(p.H) / ratio));
    p.rw = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(p.W) / ratio));
    p.interp = Interpolation::bilinear;
  }
  if (p.rh < 1 || p.rw < 1 || p.rh > (std::int64_t(1) << 30) || p.rw > (std::int64_t(1) << 30))
    return Status::error(Errc::shape_mismatch, "preprocess: the %dx%d frame resizes to %lldx%lld", width, height,
                         static_cast<long long>(p.rw), static_cast<long long>(p.rh));
  // 3. CenterCrop: pad with zeros where the crop is larger, then crop.
  const std::int64_t pad_t = p.out_h > p.rh ? (p.out_h - p.rh) / 2 : 0;
  const std::int64_t pad_l = p.out_w > p.rw ? (p.out_w - p.rw) / 2 : 0;
  const std::int64_t ph = std::max(p.out_h, p.rh), pw = std::max(p.out_w, p.rw);
  const auto top = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(ph - p.out_h) / 2.0));
  const auto left = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(pw - p.out_w) / 2.0));
  p.off_y = top - pad_t;
  p.off_x = left - pad_l;
  p.r0 = std::max<std::int64_t>(p.off_y, 0);
  p.r1 = std::max(p.r0, std::min(p.rh, p.off_y + p.out_h));
  p.c0 = std::max<std::int64_t>(p.off_x, 0);
  p.c1 = std::max(p.c0, std::min(p.rw, p.off_x + p.out_w));

  // The scratch: tap tables (int32), the horizontal pass's rows, the window (uint8 RGB).
  const auto cols = static_cast<std::uint64_t>(p.c1 - p.c0), rows = static_cast<std::uint64_t>(p.r1 - p.r0);
  auto take = [&p](std::uint64_t bytes) {
    const std::uint64_t at = p.bytes;
    p.bytes += (bytes + 7) / 8 * 8;
    return at;
  };
  p.horizontal = p.rw != p.W;
  p.vertical = p.rh != p.H;
  if (p.interp == Interpolation::nearest) {
    p.h_first = take(cols * 4);
    p.v_first = take(rows * 4);
  } else {
    p.kh = p.horizontal ? tap_count(p.W, p.rw, p.interp) : 0;
    p.kv = p.vertical ? tap_count(p.H, p.rh, p.interp) : 0;
    p.h_first = take(cols * 4);
    p.h_count = take(cols * 4);
    p.h_weight = take(cols * static_cast<std::uint64_t>(p.kh) * 4);
    p.v_first = take(rows * 4);
    p.v_count = take(rows * 4);
    p.v_weight = take(rows * static_cast<std::uint64_t>(p.kv) * 4);
    if (p.vertical) p.tmp = take(static_cast<std::uint64_t>(p.H) * cols * 3);  // at most every source row
  }
  p.win = take(rows * cols * 3);
  if (p.bytes > static_cast<std::uint64_t>(static_cast<std::size_t>(-1) / 2))
    return Status::error(Errc::invalid_argument, "preprocess: a %dx%d frame needs more scratch than this target addresses",
                         width, height);
  return Status{};
}

// Fixed-point taps of outputs [o0, o1) of an in -> out resize along one axis.
inline void make_taps(std::int64_t in, std::int64_t out, std::int64_t o0, std::int64_t o1, Interpolation interp,
                      int ksize, std::int32_t* first, std::int32_t* count, std::int32_t* weight) noexcept {
  const double base_support = interp == Interpolation::bicubic ? 2.0 : 1.0;
  double (*filter)(double) = interp == Interpolation::bicubic ? keys_cubic : triangle;
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  const double filter_scale = std::max(scale, 1.0);
  const double support = base_support * filter_scale;
  const double inv_filter_scale = 1.0 / filter_scale;
  for (std::int64_t o = o0; o < o1; ++o) {
    const double centre = (static_cast<double>(o) + 0.5) * scale;
    // C-style truncation as Pillow does; clamped to the image.
    auto lo = static_cast<std::int64_t>(centre - support + 0.5);
    auto hi = static_cast<std::int64_t>(centre + support + 0.5);
    lo = std::max<std::int64_t>(lo, 0);
    hi = std::min<std::int64_t>(hi, in);
    const int cnt = static_cast<int>(std::max<std::int64_t>(std::min<std::int64_t>(hi - lo, ksize), 0));
    const auto i = static_cast<std::size_t>(o - o0);
    std::int32_t* w = weight + i * static_cast<std::size_t>(ksize);
    double sum = 0.0;
    for (int j = 0; j < cnt; ++j) sum += filter((static_cast<double>(j + lo) - centre + 0.5) * inv_filter_scale);
    for (int j = 0; j < cnt; ++j) {
      const double k = filter((static_cast<double>(j + lo) - centre + 0.5) * inv_filter_scale);
      const double v = (sum != 0.0 ? k / sum : k) * static_cast<double>(1 << precision_bits);
      w[j] = static_cast<std::int32_t>(v < 0.0 ? v - 0.5 : v + 0.5);  // round half away from zero
    }
    first[i] = static_cast<std::int32_t>(lo);
    count[i] = cnt;
  }
}

inline std::uint8_t fixed_to_u8(std::int64_t acc) noexcept {
  const std::int64_t v = acc >> precision_bits;  // floor; the sum starts at +0.5, so this rounds
  return static_cast<std::uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

}  // namespace detail::pre

// The scratch bytes preprocess() needs for a width x height frame (0 if it cannot serve that frame:
// preprocess() then says why).
inline std::size_t preprocess_scratch_bytes(int width, int height, const Preprocessing& pp) noexcept {
  detail::pre::Plan p;
  return detail::pre::plan(width, height, pp, p).ok() ? std::max<std::size_t>(static_cast<std::size_t>(p.bytes), 8) : 0;
}

// pixels: `height` rows of `width` pixels, `channels` bytes each (3: R, G, B; 4: R, G, B, A, alpha
// ignored), row r at pixels + r * row_stride. out: pp.input_h * pp.input_w * 3 floats, CHW.
inline Status preprocess(const std::uint8_t* pixels, int width, int height, std::size_t row_stride, int channels,
                         const Preprocessing& pp, float* out, void* scratch, std::size_t scratch_bytes) noexcept {
  using namespace detail::pre;
  if (!pixels || !out || !scratch) return Status::error(Errc::null_pointer, "preprocess: a null pointer");
  if (reinterpret_cast<std::uintptr_t>(scratch) % 8 != 0)
    return Status::error(Errc::misaligned, "preprocess: the scratch memory is not 8-byte aligned");
  if (channels != 3 && channels != 4)
    return Status::error(Errc::shape_mismatch, "preprocess: %d channels, expected 3 (RGB) or 4 (RGBA)", channels);
  Plan p;
  if (Status s = plan(width, height, pp, p); !s.ok()) return s;
  if (row_stride < static_cast<std::size_t>(width) * static_cast<std::size_t>(channels))
    return Status::error(Errc::shape_mismatch, "preprocess: a row stride of %zu bytes is less than %d pixels x %d",
                         row_stride, width, channels);
  if (scratch_bytes < p.bytes)
    return Status::error(Errc::workspace_too_small, "preprocess: %zu bytes of scratch, %zu needed for a %dx%d frame",
                         scratch_bytes, static_cast<std::size_t>(p.bytes), width, height);

  auto* base = static_cast<unsigned char*>(scratch);
  const std::int64_t cols = p.c1 - p.c0, rows = p.r1 - p.r0;
  std::uint8_t* win = base + p.win;
  auto src = [&](std::int64_t y, std::int64_t x) {
    return pixels + static_cast<std::size_t>(y) * row_stride + static_cast<std::size_t>(x) * std::size_t(channels);
  };
  if (rows > 0 && cols > 0) {
    if (p.interp == Interpolation::nearest) {
      // Pillow's nearest walks the source in steps of in/out from half a step, summing in double.
      auto table = [](std::int64_t o0, std::int64_t o1, std::int64_t in, std::int64_t outn, std::int32_t* idx) {
        const double s = static_cast<double>(in) / static_cast<double>(outn);
        double pos = s * 0.5;
        for (std::int64_t o = 0; o < o1; ++o, pos += s)
          if (o >= o0) idx[o - o0] = static_cast<std::int32_t>(std::clamp<std::int64_t>(static_cast<std::int64_t>(pos), 0, in - 1));
      };
      auto* xs = reinterpret_cast<std::int32_t*>(base + p.h_first);
      auto* ys = reinterpret_cast<std::int32_t*>(base + p.v_first);
      table(p.c0, p.c1, p.W, p.rw, xs);
      table(p.r0, p.r1, p.H, p.rh, ys);
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 0; c < cols; ++c) {
          const std::uint8_t* s = src(ys[r], xs[c]);
          std::uint8_t* d = win + (r * cols + c) * 3;
          d[0] = s[0];
          d[1] = s[1];
          d[2] = s[2];
        }
    } else {
      auto* hf = reinterpret_cast<std::int32_t*>(base + p.h_first);
      auto* hc = reinterpret_cast<std::int32_t*>(base + p.h_count);
      auto* hw = reinterpret_cast<std::int32_t*>(base + p.h_weight);
      auto* vf = reinterpret_cast<std::int32_t*>(base + p.v_first);
      auto* vc = reinterpret_cast<std::int32_t*>(base + p.v_count);
      auto* vw = reinterpret_cast<std::int32_t*>(base + p.v_weight);
      std::uint8_t* tmp = base + p.tmp;
      std::int64_t in_r0 = p.r0, in_r1 = p.r1;  // the source rows the vertical pass reads
      if (p.vertical) {
        make_taps(p.H, p.rh, p.r0, p.r1, p.interp, p.kv, vf, vc, vw);
        in_r0 = p.H;
        in_r1 = 0;
        for (std::int64_t i = 0; i < rows; ++i) {
          if (vc[i] <= 0) continue;
          in_r0 = std::min<std::int64_t>(in_r0, vf[i]);
          in_r1 = std::max<std::int64_t>(in_r1, std::int64_t(vf[i]) + vc[i]);
        }
        if (in_r0 >= in_r1) in_r0 = in_r1 = 0;
      }
      // The horizontal pass over source rows [in_r0, in_r1), into tmp (into the window when there is
      // no vertical pass: then in_r0..in_r1 are the window's rows).
      std::uint8_t* hout = p.vertical ? tmp : win;
      if (p.horizontal) {
        make_taps(p.W, p.rw, p.c0, p.c1, p.interp, p.kh, hf, hc, hw);
        for (std::int64_t y = in_r0; y < in_r1; ++y)
          for (std::int64_t c = 0; c < cols; ++c) {
            const std::int32_t* w = hw + c * p.kh;
            const std::uint8_t* s = src(y, hf[c]);
            std::int64_t a0 = std::int64_t(1) << (precision_bits - 1), a1 = a0, a2 = a0;
            for (int j = 0; j < hc[c]; ++j, s += channels) {
              a0 += static_cast<std::int64_t>(s[0]) * w[j];
              a1 += static_cast<std::int64_t>(s[1]) * w[j];
              a2 += static_cast<std::int64_t>(s[2]) * w[j];
            }
            std::uint8_t* d = hout + ((y - in_r0) * cols + c) * 3;
            d[0] = fixed_to_u8(a0);
            d[1] = fixed_to_u8(a1);
            d[2] = fixed_to_u8(a2);
          }
      } else {
        for (std::int64_t y = in_r0; y < in_r1; ++y)
          for (std::int64_t c = 0; c < cols; ++c) {
            const std::uint8_t* s = src(y, p.c0 + c);
            std::uint8_t* d = hout + ((y - in_r0) * cols + c) * 3;
            d[0] = s[0];
            d[1] = s[1];
            d[2] = s[2];
          }
      }
      if (p.vertical)
        for (std::int64_t r = 0; r < rows; ++r) {
          const std::int32_t* w = vw + r * p.kv;
          for (std::int64_t c = 0; c < cols; ++c) {
            std::int64_t a0 = std::int64_t(1) << (precision_bits - 1), a1 = a0, a2 = a0;
            for (int j = 0; j < vc[r]; ++j) {
              const std::uint8_t* s = tmp + ((vf[r] + j - in_r0) * cols + c) * 3;
              a0 += static_cast<std::int64_t>(s[0]) * w[j];
              a1 += static_cast<std::int64_t>(s[1]) * w[j];
              a2 += static_cast<std::int64_t>(s[2]) * w[j];
            }
            std::uint8_t* d = win + (r * cols + c) * 3;
            d[0] = fixed_to_u8(a0);
            d[1] = fixed_to_u8(a1);
            d[2] = fixed_to_u8(a2);
          }
        }
    }
  }

  // 4. ToTensor + Normalize in float32, black outside the window (the crop's padding).
  for (int ch = 0; ch < 3; ++ch) {
    const float m = pp.mean[ch], sd = pp.std[ch];
    float* plane = out + static_cast<std::size_t>(ch) * static_cast<std::size_t>(p.out_h * p.out_w);
    for (std::int64_t y = 0; y < p.out_h; ++y) {
      const std::int64_t ry = y + p.off_y;
      for (std::int64_t x = 0; x < p.out_w; ++x) {
        const std::int64_t rx = x + p.off_x;
        unsigned v = 0;
        if (ry >= p.r0 && ry < p.r1 && rx >= p.c0 && rx < p.c1) v = win[((ry - p.r0) * cols + (rx - p.c0)) * 3 + ch];
        const float f = static_cast<float>(v) / 255.0f;
        plane[y * p.out_w + x] = (f - m) / sd;
      }
    }
  }
  return Status{};
}

}  // namespace vitcc
