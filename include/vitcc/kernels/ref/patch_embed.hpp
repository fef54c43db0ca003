// Scalar reference patch embedding: Conv2d(c, d, kernel_size=p, stride=p, padding=0) written as the
// plain sum it is, reading the weight from its packed-B form (see ref/gemm.hpp).
// Test oracle only (double accumulation): no product path runs it; the scalar path is fp32 code in
// the kernel headers, for cores whose FPU has single precision only.
#pragma once
#include <cstddef>

#include "vitcc/core/fp.hpp"
#include "vitcc/kernels/ref/gemm.hpp"

namespace vitcc::kernels::ref {

// image: CHW [c, h, w]. Patch r = gy * (w / p) + gx; its K = c * p * p inputs are ordered
// (channel, ky, kx), as a Conv2d weight [d, c, p, p] flattened to [d, c * p * p].
// out[r][j] = sum_k patch_r[k] * W(k, j) + add[r * ld_add + j].
inline void patch_embed(const float* image, std::size_t c, std::size_t h, std::size_t w, std::size_t p,
                        const float* packed_w, std::size_t d, const float* add, std::size_t ld_add, float* out,
                        std::size_t ld_out) noexcept {
  const std::size_t gh = h / p, gw = w / p, k = c * p * p;
  for (std::size_t gy = 0; gy < gh; ++gy) {
    for (std::size_t gx = 0; gx < gw; ++gx) {
      const std::size_t r = gy * gw + gx;
      for (std::size_t j = 0; j < d; ++j) {
        const float* wj = packed_w + (j / gemm_nr) * k * gemm_nr + j % gemm_nr;
        double acc = 0.0;
        for (std::size_t ch = 0; ch < c; ++ch)
          for (std::size_t ky = 0; ky < p; ++ky)
            for (std::size_t kx = 0; kx < p; ++kx) {
              const std::size_t kk = (ch * p + ky) * p + kx;
              acc = fp::madd(static_cast<double>(image[(ch * h + gy * p + ky) * w + gx * p + kx]), double(wj[kk * gemm_nr]), acc);
            }
        out[r * ld_out + j] = static_cast<float>(acc) + add[r * ld_add + j];
      }
    }
  }
}

}  // namespace vitcc::kernels::ref
