// Scalar reference depthwise convolution over an NHWC map (see kernels/dwconv.hpp for the contract).
// Test oracle only (double accumulation): no product path runs it; the scalar path is fp32 code in
// the kernel headers, for cores whose FPU has single precision only.
#pragma once
#include <cstddef>

#include "vitcc/core/fp.hpp"
#include "vitcc/kernels/ref/activations.hpp"

namespace vitcc::kernels {

// Output size of a k x k convolution with stride s and symmetric zero padding p.
constexpr std::size_t conv_out_size(std::size_t in, std::size_t k, std::size_t s, std::size_t p) noexcept {
  return (in + 2 * p - k) / s + 1;
}

namespace ref {

// Output rows [oy0, oy1) only (the kernel's row tasks); dwconv below is every row.
inline void dwconv_rows(std::size_t oy0, std::size_t oy1, std::size_t h, std::size_t w, std::size_t c,
                        const float* in, std::size_t ld_in, std::size_t k, std::size_t stride, std::size_t pad,
                        const float* weight, const float* bias, Activation act, const float* add,
                        std::size_t ld_add, float* out, std::size_t ld_out) noexcept {
  const std::size_t ow = conv_out_size(w, k, stride, pad);
  for (std::size_t oy = oy0; oy < oy1; ++oy)
    for (std::size_t ox = 0; ox < ow; ++ox)
      for (std::size_t ch = 0; ch < c; ++ch) {
        double acc = 0.0;
        for (std::size_t ky = 0; ky < k; ++ky) {
          const long iy = long(oy * stride + ky) - long(pad);
          if (iy < 0 || iy >= long(h)) continue;
          for (std::size_t kx = 0; kx < k; ++kx) {
            const long ix = long(ox * stride + kx) - long(pad);
            if (ix < 0 || ix >= long(w)) continue;
            acc = fp::madd(double(in[(std::size_t(iy) * w + std::size_t(ix)) * ld_in + ch]), double(weight[(ky * k + kx) * c + ch]), acc);
          }
        }
        float v = float(acc);
        if (bias) v += bias[ch];
        v = apply_activation(v, act);
        const std::size_t o = oy * ow + ox;
        if (add) v += add[o * ld_add + ch];
        out[o * ld_out + ch] = v;
      }
}

inline void dwconv(std::size_t h, std::size_t w, std::size_t c, const float* in, std::size_t ld_in, std::size_t k,
                   std::size_t stride, std::size_t pad, const float* weight, const float* bias, Activation act,
                   const float* add, std::size_t ld_add, float* out, std::size_t ld_out) noexcept {
  dwconv_rows(0, conv_out_size(h, k, stride, pad), h, w, c, in, ld_in, k, stride, pad, weight, bias, act, add, ld_add,
              out, ld_out);
}

}  // namespace ref
}  // namespace vitcc::kernels
