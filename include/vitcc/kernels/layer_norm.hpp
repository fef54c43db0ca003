// LayerNorm over the last dimension of a [rows, d] matrix (torch.nn.LayerNorm semantics):
//   y = (x - mean) / sqrt(var + eps) * gamma + beta, var biased (divided by d).
// Two passes over each row (mean, then the sum of squared deviations) rather than E[x^2] - E[x]^2,
// which cancels when |mean| >> std, as it does on the residual stream of deep ViTs.
// Rows are independent and small (d <= 1536), so a row stays in L1 across the three sweeps.
// y may alias x (same pointer and leading dimension). No alignment is required.
#pragma once
#include <cmath>
#include <cstddef>

#include "vitcc/core/fp.hpp"
#include "vitcc/kernels/fmadd.hpp"
#include "vitcc/core/arch.hpp"
#include "vitcc/core/config.hpp"
#include "vitcc/core/executor.hpp"
#include "vitcc/kernels/ref/layer_norm.hpp"

namespace vitcc::kernels {

template <class Arch>
void layer_norm(std::size_t rows, std::size_t d, const float* x, std::size_t ldx, const float* gamma,
                const float* beta, float eps, float* y, std::size_t ldy) noexcept {
  if constexpr (is_scalar_arch<Arch>) {
    // fp32, the same pivot-relative two passes as the SIMD path below (see its comment), each sum
    // in four partial sums: an in-order core overlaps their additions' latency, and the rounding
    // error of a 1536-wide row stays near the SIMD path's.
    for (std::size_t r = 0; r < rows; ++r) {
      const float* xr = x + r * ldx;
      float* yr = y + r * ldy;
      const float pivot = xr[0];
      const std::size_t body = d / 4 * 4;
      float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (std::size_t j = 0; j < body; j += 4)
        for (std::size_t u = 0; u < 4; ++u) s[u] += xr[j + u] - pivot;
      for (std::size_t j = body; j < d; ++j) s[0] += xr[j] - pivot;
      const float mean_dev = ((s[0] + s[1]) + (s[2] + s[3])) / static_cast<float>(d);
      float q[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (std::size_t j = 0; j < body; j += 4)
        for (std::size_t u = 0; u < 4; ++u) {
          const float e = (xr[j + u] - pivot) - mean_dev;
          q[u] = fp::madd(e, e, q[u]);
        }
      for (std::size_t j = body; j < d; ++j) {
        const float e = (xr[j] - pivot) - mean_dev;
        q[0] = fp::madd(e, e, q[0]);
      }
      const float sq = (q[0] + q[1]) + (q[2] + q[3]);
      const float inv_std = 1.0f / std::sqrt(sq / static_cast<float>(d) + eps);
      for (std::size_t j = 0; j < d; ++j) yr[j] = fp::madd(((xr[j] - pivot) - mean_dev) * inv_std, gamma[j], beta[j]);
    }
  } else {
#if !VITCC_DISABLE_SIMD
    using B = xsimd::batch<float, Arch>;
    constexpr std::size_t W = B::size;
    const std::size_t body = d / W * W;
    for (std::size_t r = 0; r < rows; ++r) {
      const float* xr = x + r * ldx;
      float* yr = y + r * ldy;
      // Everything is computed relative to a pivot, x[0]: x - pivot is exact for values of similar
      // size, and the deviation x - mean is formed as (x - pivot) - mean_dev without ever rounding the
      // mean itself to a float near the row's offset. A row sitting on a large common offset (the
      // residual stream of a deep ViT) then keeps the precision of its spread, not of its offset.
      const float pivot = xr[0];
      const B vpivot(pivot);
      B s0(0.0f), s1(0.0f);  // two accumulators hide the add latency
      std::size_t j = 0;
      for (; j + 2 * W <= d; j += 2 * W) {
        s0 += B::load_unaligned(xr + j) - vpivot;
        s1 += B::load_unaligned(xr + j + W) - vpivot;
      }
      for (; j < body; j += W) s0 += B::load_unaligned(xr + j) - vpivot;
      float sum = xsimd::hadd(s0 + s1);
      for (; j < d; ++j) sum += xr[j] - pivot;
      const float mean_dev = sum / static_cast<float>(d);  // mean - pivot

      const B vdev(mean_dev);
      B q0(0.0f), q1(0.0f);
      j = 0;
      for (; j + 2 * W <= d; j += 2 * W) {
        const B e0 = (B::load_unaligned(xr + j) - vpivot) - vdev;
        const B e1 = (B::load_unaligned(xr + j + W) - vpivot) - vdev;
        q0 = detail::fmadd<Arch>(e0, e0, q0);
        q1 = detail::fmadd<Arch>(e1, e1, q1);
      }
      for (; j < body; j += W) {
        const B e0 = (B::load_unaligned(xr + j) - vpivot) - vdev;
        q0 = detail::fmadd<Arch>(e0, e0, q0);
      }
      float sq = xsimd::hadd(q0 + q1);
      for (; j < d; ++j) {
        const float e = (xr[j] - pivot) - mean_dev;
        sq = fp::madd(e, e, sq);
      }
      const float inv_std = 1.0f / std::sqrt(sq / static_cast<float>(d) + eps);

      const B vinv(inv_std);
      for (j = 0; j < body; j += W) {
        const B xn = ((B::load_unaligned(xr + j) - vpivot) - vdev) * vinv;
        detail::fmadd<Arch>(xn, B::load_unaligned(gamma + j), B::load_unaligned(beta + j)).store_unaligned(yr + j);
      }
      for (; j < d; ++j) yr[j] = fp::madd(((xr[j] - pivot) - mean_dev) * inv_std, gamma[j], beta[j]);
    }
#endif
  }
}

// Parallel LayerNorm: tasks are blocks of layer_norm_task_rows rows; rows are independent, so the
// result is the serial one bit for bit.
inline constexpr std::size_t layer_norm_task_rows = 16;

template <class Arch>
void layer_norm(std::size_t rows, std::size_t d, const float* x, std::size_t ldx, const float* gamma,
                const float* beta, float eps, float* y, std::size_t ldy, const Executor* ex) noexcept {
  if (worker_count(ex) == 1) {
    layer_norm<Arch>(rows, d, x, ldx, gamma, beta, eps, y, ldy);
    return;
  }
  parallel_for(ex, (rows + layer_norm_task_rows - 1) / layer_norm_task_rows, [&](std::size_t t, std::size_t) {
    const std::size_t r0 = t * layer_norm_task_rows;
    const std::size_t n = rows - r0 < layer_norm_task_rows ? rows - r0 : layer_norm_task_rows;
    layer_norm<Arch>(n, d, x + r0 * ldx, ldx, gamma, beta, eps, y + r0 * ldy, ldy);
  });
}

}  // namespace vitcc::kernels
