// im2col for a dense k x k convolution (EfficientViT's stride-2 3x3 patch-embedding convs), so the
// convolution runs as one GEMM against a packed [k*k*cin, cout] weight:
//   cols[o, (ky*k + kx)*cin + ch] = in(oy*s + ky - pad, ox*s + kx - pad, ch), zero outside.
// The input is addressed through strides so both the CHW image and NHWC maps are read in place:
// element (y, x, ch) is at in[(y * w + x) * pixel_stride + ch * channel_stride].
#pragma once
#include <cstddef>
#include <cstring>

#include "vitcc/kernels/ref/dwconv.hpp"

namespace vitcc::kernels {

// Output pixels [p0, p1) (row-major over the output map) into rows 0 .. p1 - p0 of cols: a slice of
// the columns, so a convolution can run as GEMMs over pixel chunks that stay in cache.
// For an NHWC map with contiguous pixels (channel_stride 1, pixel_stride cin) the in-range taps of a
// kernel row are one contiguous run of the input, copied at once; padding is zero-filled around it.
inline void im2col_rows(std::size_t p0, std::size_t p1, std::size_t h, std::size_t w, std::size_t cin,
                        const float* in, std::size_t pixel_stride, std::size_t channel_stride, std::size_t k,
                        std::size_t stride, std::size_t pad, float* cols) noexcept {
  const std::size_t ow = conv_out_size(w, k, stride, pad);
  const std::size_t kk = k * k * cin;
  const bool contiguous = channel_stride == 1 && pixel_stride == cin;
  for (std::size_t o = p0; o < p1; ++o) {
    const std::size_t oy = o / ow, ox = o % ow;
    const long x0 = long(ox * stride) - long(pad);
    // taps kx in [kx0, kx1) read inside the map
    const std::size_t kx0 = x0 < 0 ? std::size_t(-x0) : 0;
    const std::size_t kx1 = x0 + long(k) > long(w) ? std::size_t(long(w) - x0) : k;
    float* row = cols + (o - p0) * kk;
    for (std::size_t ky = 0; ky < k; ++ky) {
      const long iy = long(oy * stride + ky) - long(pad);
      float* dst = row + ky * k * cin;
      if (iy < 0 || iy >= long(h) || kx0 >= kx1) {
        std::memset(dst, 0, k * cin * sizeof(float));
        continue;
      }
      if (kx0 > 0) std::memset(dst, 0, kx0 * cin * sizeof(float));
      if (kx1 < k) std::memset(dst + kx1 * cin, 0, (k - kx1) * cin * sizeof(float));
      const float* src = in + (std::size_t(iy) * w + std::size_t(x0 + long(kx0))) * pixel_stride;
      if (contiguous) {
        std::memcpy(dst + kx0 * cin, src, (kx1 - kx0) * cin * sizeof(float));
      } else {
        for (std::size_t kx = kx0; kx < kx1; ++kx, src += pixel_stride) {
          float* d = dst + kx * cin;
          for (std::size_t ch = 0; ch < cin; ++ch) d[ch] = src[ch * channel_stride];
        }
      }
    }
  }
}

inline void im2col(std::size_t h, std::size_t w, std::size_t cin, const float* in, std::size_t pixel_stride,
                   std::size_t channel_stride, std::size_t k, std::size_t stride, std::size_t pad,
                   float* cols) noexcept {
  im2col_rows(0, conv_out_size(h, k, stride, pad) * conv_out_size(w, k, stride, pad), h, w, cin, in, pixel_stride,
              channel_stride, k, stride, pad, cols);
}

}  // namespace vitcc::kernels
