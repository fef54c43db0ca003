// Patch embedding, Conv2d(c, d, kernel_size=p, stride=p, padding=0), as a GEMM over patches:
//   out[r][j] = patch_r . W[:, j] + add[r * ld_add + j]
// Contract
//   image: CHW [c, h, w] float. Grid gh = h / p, gw = w / p (trailing pixels ignored, as Conv2d does);
//          patch r = gy * gw + gx; its K = c * p * p vector is ordered (channel, ky, kx).
//   packed_w: the Conv2d weight [d, c, p, p] seen as [d, c * p * p], packed for the GEMM of the
//             model's precision P (kernels/matmul.hpp; at fp32 pack_b_from_linear(w, c * p * p, d, ...)).
//   add: never null -- the positional embedding of the patch tokens with the conv bias folded in.
//   out: [gh * gw, d] (ld_out). scratch: patch_embed_scratch_floats(c, p, P) floats, 64-byte aligned.
// No full im2col copy: patch_embed_rows patches at a time are gathered (p contiguous pixels per
// (channel, ky)) into scratch and multiplied by the packed weight. Gathering several microkernel
// heights at once lets each K x 32 sliver of the weight serve patch_embed_rows patches before it is
// evicted, instead of streaming the whole weight once per row tile.
#pragma once
#include <cstddef>

#include "vitcc/core/arch.hpp"
#include "vitcc/core/config.hpp"
#include "vitcc/core/executor.hpp"
#include "vitcc/kernels/gemm.hpp"
#include "vitcc/kernels/matmul.hpp"
#include "vitcc/kernels/ref/patch_embed.hpp"

namespace vitcc::kernels {

// Patches gathered per GEMM call: a multiple of every microkernel height (8, 6, 3).
inline constexpr std::size_t patch_embed_rows = 48;

// One worker's scratch: the gathered patches (rows padded to 16 floats), then at int8 the
// quantised patches (kernels/gemm_q8.hpp).
constexpr std::size_t patch_embed_scratch_floats(std::size_t c, std::size_t p, Precision prec = Precision::fp32) noexcept {
  const std::size_t gathered = patch_embed_rows * ((c * p * p + 15) / 16 * 16);
  return gathered + (matmul_scratch_bytes(prec, patch_embed_rows, c * p * p) + 3) / 4;
}

namespace detail {
// Patches group * patch_embed_rows .. + patch_embed_rows - 1: gather them into scratch (one group's
// worth), then one GEMM against the packed weight.
template <class Arch, Precision P>
void patch_embed_group(std::size_t group, const float* image, std::size_t c, std::size_t h, std::size_t w,
                       std::size_t p, const PackedB& packed_w, std::size_t d, const float* add, std::size_t ld_add,
                       float* out, std::size_t ld_out, float* scratch) noexcept {
  const std::size_t gw = w / p, patches = (h / p) * gw, k = c * p * p;
  // Rows padded to 16 floats keep every gathered patch 64-byte aligned.
  const std::size_t lda = (k + 15) / 16 * 16;
  const std::size_t r0 = group * patch_embed_rows;
  const std::size_t rows = patches - r0 < patch_embed_rows ? patches - r0 : patch_embed_rows;
  for (std::size_t i = 0; i < rows; ++i) {
    const std::size_t gy = (r0 + i) / gw, gx = (r0 + i) % gw;
    float* dst = scratch + i * lda;
    for (std::size_t ch = 0; ch < c; ++ch)
      for (std::size_t ky = 0; ky < p; ++ky) {
        const float* src = image + (ch * h + gy * p + ky) * w + gx * p;
        for (std::size_t kx = 0; kx < p; ++kx) dst[(ch * p + ky) * p + kx] = src[kx];
      }
  }
  GemmEpilogue ep;
  ep.add = add + r0 * ld_add;
  ep.ld_add = ld_add;
  matmul<Arch, P>(rows, d, k, scratch, lda, packed_w, out + r0 * ld_out, ld_out, ep, scratch + patch_embed_rows * lda,
                  nullptr);
}
}  // namespace detail

template <class Arch, Precision P = Precision::fp32>
void patch_embed(const float* image, std::size_t c, std::size_t h, std::size_t w, std::size_t p,
                 const PackedB& packed_w, std::size_t d, const float* add, std::size_t ld_add, float* out,
                 std::size_t ld_out, float* scratch) noexcept {
  const std::size_t patches = (h / p) * (w / p);
  for (std::size_t r0 = 0; r0 < patches; r0 += patch_embed_rows)
    detail::patch_embed_group<Arch, P>(r0 / patch_embed_rows, image, c, h, w, p, packed_w, d, add, ld_add, out, ld_out,
                                       scratch);
}

// Parallel patch embedding: tasks are groups of patch_embed_rows patches, each gathered into its
// worker's slice of scratch: patch_embed_scratch_floats(c, p, P) * worker_count(ex) floats.
template <class Arch, Precision P = Precision::fp32>
void patch_embed(const float* image, std::size_t c, std::size_t h, std::size_t w, std::size_t p,
                 const PackedB& packed_w, std::size_t d, const float* add, std::size_t ld_add, float* out,
                 std::size_t ld_out, float* scratch, const Executor* ex) noexcept {
  if (worker_count(ex) == 1) {
    patch_embed<Arch, P>(image, c, h, w, p, packed_w, d, add, ld_add, out, ld_out, scratch);
    return;
  }
  const std::size_t patches = (h / p) * (w / p);
  const std::size_t slice = patch_embed_scratch_floats(c, p, P);
  parallel_for(ex, (patches + patch_embed_rows - 1) / patch_embed_rows, [&](std::size_t g, std::size_t wk) {
    detail::patch_embed_group<Arch, P>(g, image, c, h, w, p, packed_w, d, add, ld_add, out, ld_out, scratch + wk * slice);
  });
}

}  // namespace vitcc::kernels
