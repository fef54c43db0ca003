// Depthwise k x k convolution (any odd k: EfficientViT uses 3, 5, 7), stride 1 or 2, symmetric zero
// padding, on an NHWC map, with a fused epilogue: out = act(conv(in) + bias) [+ add].
//
// Contract
//   in:     h x w pixels, pixel p's c channels at in + p * ld_in (ld_in >= c: a channel slice of a
//           wider map, e.g. the q columns of a qkv row, is read in place).
//   weight: [k * k, c] row-major, tap (ky, kx) at row ky * k + kx (the blob's dwconv layout).
//   out:    oh x ow pixels at out + p * ld_out; must not overlap `in`. add (optional) like out.
// Vectorised across channels: one SIMD batch of W consecutive channels of one output pixel
// accumulates all k*k taps in registers; a channel tail runs through padded copies.
// With an executor, output rows are the tasks (each row is computed the same way whoever runs it).
#pragma once
#include <cstddef>

#include "vitcc/core/fp.hpp"
#include "vitcc/core/arch.hpp"
#include "vitcc/core/config.hpp"
#include "vitcc/kernels/activations.hpp"
#include "vitcc/kernels/gemm.hpp"
#include "vitcc/kernels/ref/dwconv.hpp"

namespace vitcc::kernels {

// Output rows [oy0, oy1) of the convolution.
template <class Arch>
void dwconv_rows(std::size_t oy0, std::size_t oy1, std::size_t h, std::size_t w, std::size_t c, const float* in,
                 std::size_t ld_in, std::size_t k, std::size_t stride, std::size_t pad, const float* weight,
                 const float* bias, Activation act, const float* add, std::size_t ld_add, float* out,
                 std::size_t ld_out) noexcept {
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
              acc = fp::madd(in[(std::size_t(iy) * w + std::size_t(ix)) * ld_in + ch], weight[(ky * k + kx) * c + ch], acc);
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
    const std::size_t body = c / W * W;
    for (std::size_t oy = oy0; oy < oy1; ++oy) {
      const long y0 = long(oy * stride) - long(pad);
      const std::size_t ky0 = y0 < 0 ? std::size_t(-y0) : 0;
      const std::size_t ky1 = std::size_t(y0 + long(k)) > h ? std::size_t(long(h) - y0) : k;
      for (std::size_t ox = 0; ox < ow; ++ox) {
        const long x0 = long(ox * stride) - long(pad);
        const std::size_t kx0 = x0 < 0 ? std::size_t(-x0) : 0;
        const std::size_t kx1 = std::size_t(x0 + long(k)) > w ? std::size_t(long(w) - x0) : k;
        const std::size_t o = oy * ow + ox;
        for (std::size_t ch = 0; ch < body; ch += W) {
          B acc(0.0f);
          for (std::size_t ky = ky0; ky < ky1; ++ky) {
            const float* row = in + (std::size_t(y0 + long(ky)) * w) * ld_in + ch;
            const float* wr = weight + ky * k * c + ch;
            for (std::size_t kx = kx0; kx < kx1; ++kx)
              acc = detail::fmadd<Arch>(B::load_unaligned(row + std::size_t(x0 + long(kx)) * ld_in),
                                        B::load_unaligned(wr + kx * c), acc);
          }
          if (bias) acc += B::load_unaligned(bias + ch);
          acc = detail::apply_activation<Arch>(acc, act);
          if (add) acc += B::load_unaligned(add + o * ld_add + ch);
          acc.store_unaligned(out + o * ld_out + ch);
        }
        for (std::size_t ch = body; ch < c; ++ch) {  // channel tail (c not a multiple of W)
          float acc = 0.0f;
          for (std::size_t ky = ky0; ky < ky1; ++ky)
            for (std::size_t kx = kx0; kx < kx1; ++kx)
              acc = fp::madd(in[(std::size_t(y0 + long(ky)) * w + std::size_t(x0 + long(kx))) * ld_in + ch],
                             weight[(ky * k + kx) * c + ch], acc);
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

template <class Arch>
void dwconv(std::size_t h, std::size_t w, std::size_t c, const float* in, std::size_t ld_in, std::size_t k,
            std::size_t stride, std::size_t pad, const float* weight, const float* bias, Activation act,
            const float* add, std::size_t ld_add, float* out, std::size_t ld_out) noexcept {
  dwconv_rows<Arch>(0, conv_out_size(h, k, stride, pad), h, w, c, in, ld_in, k, stride, pad, weight, bias, act, add,
                    ld_add, out, ld_out);
}

// The same, one task per output row spread over the workers of `ex` (null: the calling thread).
template <class Arch>
void dwconv(const Executor* ex, std::size_t h, std::size_t w, std::size_t c, const float* in, std::size_t ld_in,
            std::size_t k, std::size_t stride, std::size_t pad, const float* weight, const float* bias, Activation act,
            const float* add, std::size_t ld_add, float* out, std::size_t ld_out) noexcept {
  const std::size_t oh = conv_out_size(h, k, stride, pad);
  if (worker_count(ex) == 1) {
    dwconv_rows<Arch>(0, oh, h, w, c, in, ld_in, k, stride, pad, weight, bias, act, add, ld_add, out, ld_out);
    return;
  }
  parallel_for(ex, oh, [&](std::size_t oy, std::size_t) {
    dwconv_rows<Arch>(oy, oy + 1, h, w, c, in, ld_in, k, stride, pad, weight, bias, act, add, ld_add, out, ld_out);
  });
}

}  // namespace vitcc::kernels
