// Depthwise k x k convolution (any odd k: EfficientViT uses 3, 5, 7), stride 1 or 2, symmetric zero
// padding, on an NHWC map, with a fused epilogue: out = act(conv(in) + bias) [+ add].
//
// Contract
//   in:     h x w pixels, pixel p's c channels at in + p * ld_in (ld_in >= c: a channel slice of a
//           wider map, e.g. the q columns of a qkv row, is read in place).
//   weight: [k * k, c] row-major, tap (ky, kx) at row ky * k + kx (the blob's dwconv layout), of
//           element type WT: float (float32 blobs), std::uint16_t (bfloat16 bits, bf16 blobs) or
//           std::int8_t (int8 blobs) with scale [c]: tap t of channel ch is weight[t * c + ch] * scale[ch]
//           (symmetric, per channel). The weights are widened (and scaled) to float32 as they are
//           loaded; the arithmetic on the activations is float32 at every weight type. scale is
//           ignored (may be null) for float and bfloat16 weights. bfloat16 and int8 taps are widened
//           once per channel block into a stack buffer (k <= dwconv_max_k; a larger k runs the
//           per-channel loop that the channel tail uses).
//   out:    oh x ow pixels at out + p * ld_out; must not overlap `in`. add (optional) like out.
// Vectorised across channels: one SIMD batch of W consecutive channels of one output pixel
// accumulates all k*k taps in registers; a channel tail runs through padded copies.
// With an executor, output rows are the tasks (each row is computed the same way whoever runs it).
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "vitcc/core/fp.hpp"
#include "vitcc/core/arch.hpp"
#include "vitcc/core/config.hpp"
#include "vitcc/kernels/activations.hpp"
#include "vitcc/kernels/gemm.hpp"
#include "vitcc/kernels/ref/gemm.hpp"
#include "vitcc/kernels/ref/dwconv.hpp"

namespace vitcc::kernels {

// The largest kernel side the bfloat16 and int8 weight paths take (EfficientViT uses 3, 5 and 7).
inline constexpr std::size_t dwconv_max_k = 11;

namespace detail {
// Tap t of channel ch as float32: one rounding for int8 (q * scale), none for the others.
inline float dw_weight(const float* w, std::size_t i, const float*, std::size_t) noexcept { return w[i]; }
inline float dw_weight(const std::uint16_t* w, std::size_t i, const float*, std::size_t) noexcept {
  return from_bf16(w[i]);
}
inline float dw_weight(const std::int8_t* w, std::size_t i, const float* scale, std::size_t ch) noexcept {
  return static_cast<float>(w[i]) * scale[ch];
}
}  // namespace detail

// Output rows [oy0, oy1) of the convolution.
template <class Arch, class WT>
void dwconv_rows(std::size_t oy0, std::size_t oy1, std::size_t h, std::size_t w, std::size_t c, const float* in,
                 std::size_t ld_in, std::size_t k, std::size_t stride, std::size_t pad, const WT* weight,
                 const float* scale, const float* bias, Activation act, const float* add, std::size_t ld_add,
                 float* out, std::size_t ld_out) noexcept {
  static_assert(std::is_same_v<WT, float> || std::is_same_v<WT, std::uint16_t> || std::is_same_v<WT, std::int8_t>,
                "dwconv weights are float, bfloat16 bits (std::uint16_t) or int8");
  if constexpr (is_scalar_arch<Arch>) {
    // fp32 (see gemm.hpp): per output pixel and channel, the taps inside the map.
    const std::size_t ow = conv_out_size(w, k, stride, pad);
    for (std::size_t oy = oy0; oy < oy1; ++oy)
      for (std::size_t ox = 0; ox < ow; ++ox)
        for (std::size_t ch = 0; ch < c; ++ch) {
          float acc = 0.0f;
          for (std::size_t ky = 0; ky < k; ++ky) {
            const long iy = long(oy * stride + ky) - long(pad);
            if (iy < 0 || iy >= long(h)) continue;
            for (std::size_t kx = 0; kx < k; ++kx) {
              const long ix = long(ox * stride + kx) - long(pad);
              if (ix < 0 || ix >= long(w)) continue;
              acc = fp::madd(in[(std::size_t(iy) * w + std::size_t(ix)) * ld_in + ch],
                             detail::dw_weight(weight, (ky * k + kx) * c + ch, scale, ch), acc);
            }
          }
          if (bias) acc += bias[ch];
          acc = detail::apply_activation_scalar(acc, act);
          const std::size_t o = oy * ow + ox;
          if (add) acc += add[o * ld_add + ch];
          out[o * ld_out + ch] = acc;
        }
  } else {
#if !VITCC_DISABLE_SIMD
    using B = xsimd::batch<float, Arch>;
    constexpr std::size_t W = B::size;
    const std::size_t ow = conv_out_size(w, k, stride, pad);
    const std::size_t body = std::is_same_v<WT, float> || k <= dwconv_max_k ? c / W * W : 0;
    // One output pixel's W channels from ch: taps (ky, kx) at wt + ky * wrow + kx * wtap.
    auto pixel = [&](std::size_t oy, std::size_t ox, std::size_t ch, const float* wt, std::size_t wrow,
                     std::size_t wtap) {
      const long y0 = long(oy * stride) - long(pad);
      const std::size_t ky0 = y0 < 0 ? std::size_t(-y0) : 0;
      const std::size_t ky1 = std::size_t(y0 + long(k)) > h ? std::size_t(long(h) - y0) : k;
      const long x0 = long(ox * stride) - long(pad);
      const std::size_t kx0 = x0 < 0 ? std::size_t(-x0) : 0;
      const std::size_t kx1 = std::size_t(x0 + long(k)) > w ? std::size_t(long(w) - x0) : k;
      const std::size_t o = oy * ow + ox;
      B acc(0.0f);
      for (std::size_t ky = ky0; ky < ky1; ++ky) {
        const float* row = in + (std::size_t(y0 + long(ky)) * w) * ld_in + ch;
        const float* wr = wt + ky * wrow;
        for (std::size_t kx = kx0; kx < kx1; ++kx)
          acc = detail::fmadd<Arch>(B::load_unaligned(row + std::size_t(x0 + long(kx)) * ld_in),
                                    B::load_unaligned(wr + kx * wtap), acc);
      }
      if (bias) acc += B::load_unaligned(bias + ch);
      acc = detail::apply_activation<Arch>(acc, act);
      if (add) acc += B::load_unaligned(add + o * ld_add + ch);
      acc.store_unaligned(out + o * ld_out + ch);
    };
    if constexpr (std::is_same_v<WT, float>) {
      for (std::size_t oy = oy0; oy < oy1; ++oy)
        for (std::size_t ox = 0; ox < ow; ++ox)
          for (std::size_t ch = 0; ch < body; ch += W) pixel(oy, ox, ch, weight + ch, k * c, c);
    } else {
      // A channel block's k * k taps widened to float32 once, then every pixel of the rows.
      alignas(64) float wf[dwconv_max_k * dwconv_max_k * W];
      for (std::size_t ch = 0; ch < body; ch += W) {
        for (std::size_t t = 0; t < k * k; ++t)
          for (std::size_t j = 0; j < W; ++j) wf[t * W + j] = detail::dw_weight(weight, t * c + ch + j, scale, ch + j);
        for (std::size_t oy = oy0; oy < oy1; ++oy)
          for (std::size_t ox = 0; ox < ow; ++ox) pixel(oy, ox, ch, wf, k * W, W);
      }
    }
    for (std::size_t oy = oy0; oy < oy1; ++oy) {
      const long y0 = long(oy * stride) - long(pad);
      const std::size_t ky0 = y0 < 0 ? std::size_t(-y0) : 0;
      const std::size_t ky1 = std::size_t(y0 + long(k)) > h ? std::size_t(long(h) - y0) : k;
      for (std::size_t ox = 0; ox < ow; ++ox) {
        const long x0 = long(ox * stride) - long(pad);
        const std::size_t kx0 = x0 < 0 ? std::size_t(-x0) : 0;
        const std::size_t kx1 = std::size_t(x0 + long(k)) > w ? std::size_t(long(w) - x0) : k;
        const std::size_t o = oy * ow + ox;
        for (std::size_t ch = body; ch < c; ++ch) {  // channel tail (c not a multiple of W)
          float acc = 0.0f;
          for (std::size_t ky = ky0; ky < ky1; ++ky)
            for (std::size_t kx = kx0; kx < kx1; ++kx)
              acc = fp::madd(in[(std::size_t(y0 + long(ky)) * w + std::size_t(x0 + long(kx))) * ld_in + ch],
                             detail::dw_weight(weight, (ky * k + kx) * c + ch, scale, ch), acc);
          if (bias) acc += bias[ch];
          acc = detail::apply_activation_scalar(acc, act);
          if (add) acc += add[o * ld_add + ch];
          out[o * ld_out + ch] = acc;
        }
      }
    }
#endif
  }
}

template <class Arch, class WT>
void dwconv(std::size_t h, std::size_t w, std::size_t c, const float* in, std::size_t ld_in, std::size_t k,
            std::size_t stride, std::size_t pad, const WT* weight, const float* scale, const float* bias,
            Activation act, const float* add, std::size_t ld_add, float* out, std::size_t ld_out) noexcept {
  dwconv_rows<Arch>(0, conv_out_size(h, k, stride, pad), h, w, c, in, ld_in, k, stride, pad, weight, scale, bias, act,
                    add, ld_add, out, ld_out);
}

// The same, one task per output row spread over the workers of `ex` (null: the calling thread).
template <class Arch, class WT>
void dwconv(const Executor* ex, std::size_t h, std::size_t w, std::size_t c, const float* in, std::size_t ld_in,
            std::size_t k, std::size_t stride, std::size_t pad, const WT* weight, const float* scale,
            const float* bias, Activation act, const float* add, std::size_t ld_add, float* out,
            std::size_t ld_out) noexcept {
  const std::size_t oh = conv_out_size(h, k, stride, pad);
  if (worker_count(ex) == 1) {
    dwconv_rows<Arch>(0, oh, h, w, c, in, ld_in, k, stride, pad, weight, scale, bias, act, add, ld_add, out, ld_out);
    return;
  }
  parallel_for(ex, oh, [&](std::size_t oy, std::size_t) {
    dwconv_rows<Arch>(oy, oy + 1, h, w, c, in, ld_in, k, stride, pad, weight, scale, bias, act, add, ld_add, out,
                      ld_out);
  });
}

// float32 weights (no scale): the signatures the float32 callers have always used.
template <class Arch>
void dwconv(std::size_t h, std::size_t w, std::size_t c, const float* in, std::size_t ld_in, std::size_t k,
            std::size_t stride, std::size_t pad, const float* weight, const float* bias, Activation act,
            const float* add, std::size_t ld_add, float* out, std::size_t ld_out) noexcept {
  dwconv<Arch, float>(h, w, c, in, ld_in, k, stride, pad, weight, nullptr, bias, act, add, ld_add, out, ld_out);
}
template <class Arch>
void dwconv(const Executor* ex, std::size_t h, std::size_t w, std::size_t c, const float* in, std::size_t ld_in,
            std::size_t k, std::size_t stride, std::size_t pad, const float* weight, const float* bias, Activation act,
            const float* add, std::size_t ld_add, float* out, std::size_t ld_out) noexcept {
  dwconv<Arch, float>(ex, h, w, c, in, ld_in, k, stride, pad, weight, nullptr, bias, act, add, ld_add, out, ld_out);
}

}  // namespace vitcc::kernels
