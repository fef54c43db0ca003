// C = epilogue(A * B) with B pre-packed: the GEMM behind every Linear layer, the patch embedding and
// the two products inside attention.
//
// Contract
//   A: M x K row-major, leading dimension lda, any alignment.
//   B: packed by pack_b / pack_b_from_linear into 16-column panels (layout in ref/gemm.hpp);
//      no alignment is required, but the blob stores it 64-byte aligned so every panel row is one line.
//   C: M x N row-major, leading dimension ldc. The epilogue (bias, activation, residual add, see
//      GemmEpilogue) is applied in registers before C is written, so C is written exactly once.
//
// Structure (BLIS / XNNPACK style): a register-tiled microkernel computes an MR x (NP * 16) tile of C
// over the whole K, broadcasting one element of A per row and loading NP panel rows of B per k step.
// M and N edges are handled inside the microkernel: rows past M re-read the last valid row of A and
// are not stored (one instantiation serves every M), columns past N are computed on B's zero padding
// and not stored. The tile is chosen from the register file of the architecture (gemm_tile below).
//
// bfloat16 weights (pack_b_bf16, layout gemm_b16_k2: pairs of k per column) are multiplied in float32
// on every target, widened as they are loaded. Dot-product paths exist, opt-in through
// VITCC_BF16_DOT (core/config.hpp): on AArch64 with FEAT_BF16, BFMMLA (1; 6 rows x 16 columns as
// 2 x 2 blocks) and BFDOT (2; 4 x 16), which accumulate with round-to-odd and give each other's bits;
// on x86 with AVX512-BF16, vdpbf16ps (8 x 48, as the int8 VNNI tile; round to nearest even). All of
// them round A to bfloat16 as well, so they change the numerics (docs/PRECISION.md has the
// measurements and why they are not the default).
//
// The driver cuts A into row blocks that fit in L2 (all of A for 197 tokens at K = 384), and within a
// block walks column tiles outermost, so one K x (NP * 16) sliver of B (72 KB at K = 384) stays in
// L1/L2 while every row tile of the block streams past it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "vitcc/core/arch.hpp"
#include "vitcc/core/config.hpp"
#include "vitcc/core/executor.hpp"
#include "vitcc/core/fp.hpp"
#include "vitcc/kernels/activations.hpp"
#include "vitcc/kernels/fmadd.hpp"
#include "vitcc/kernels/ref/gemm.hpp"

// bfloat16 dot products (BFDOT, BFMMLA) where the target has FEAT_BF16; used for bf16 weights only
// when VITCC_BF16_DOT asks for them (core/config.hpp).
#if !VITCC_DISABLE_SIMD && defined(__aarch64__) && defined(__ARM_FEATURE_BF16_VECTOR_ARITHMETIC)
#include <arm_neon.h>
#define VITCC_BF16_NEON 1
#else
#define VITCC_BF16_NEON 0
#endif
// ... and AVX512-BF16's vdpbf16ps on x86 targets that have it (-march=native on AMD Zen 4 / Zen 5,
// Intel Cooper Lake, Sapphire Rapids and later), under the same opt-in.
#if !VITCC_DISABLE_SIMD && (defined(__x86_64__) || defined(__i386__)) && defined(__AVX512BF16__) && \
    defined(__AVX512F__)
#include <immintrin.h>
#define VITCC_BF16_AVX512 1
#else
#define VITCC_BF16_AVX512 0
#endif

namespace vitcc::kernels {

namespace detail {
// How the GEMM multiplies bfloat16 weights on Arch: float32 arithmetic (every target by default),
// or bfloat16 x bfloat16 dot products: BFMMLA / BFDOT (AArch64 with FEAT_BF16 and VITCC_BF16_DOT = 1
// or 2), vdpbf16ps (x86 with AVX512-BF16 and any non-zero VITCC_BF16_DOT).
enum class Bf16Path { fp32, bfmmla, bfdot, avx512 };
template <class Arch>
constexpr Bf16Path bf16_path() noexcept {
#if VITCC_BF16_NEON && VITCC_BF16_DOT == 1
  if constexpr (std::is_base_of_v<xsimd::neon64, Arch>) return Bf16Path::bfmmla;
#elif VITCC_BF16_NEON && VITCC_BF16_DOT == 2
  if constexpr (std::is_base_of_v<xsimd::neon64, Arch>) return Bf16Path::bfdot;
#endif
#if VITCC_BF16_AVX512 && VITCC_BF16_DOT != 0
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) return Bf16Path::avx512;
#endif
  return Bf16Path::fp32;
}
}  // namespace detail

namespace detail {

// The scalar path (scalar_arch: builds with VITCC_DISABLE_SIMD, and cores without SIMD such as the
// Cortex-M4F and M7). fp32 throughout, since a single-precision FPU emulates double in software;
// every multiply-add is one fp::madd, a VFMA.F32 on an FPv4/FPv5 FPU. The register tile is MR = 4 rows
// x 4 columns: 16 accumulators, 4 values of A and 4 of B, 24 of the 32 single-precision registers,
// and 8 loads per 16 multiply-adds, which an in-order core issues beside them. Each element of C is
// one sequential sum over K, so any split of the work gives the same bits.
inline constexpr std::size_t gemm_scalar_mr = 4, gemm_scalar_nr = 4;

// Element (kk, c) of a packed panel, as float: float32 panels hold K rows of 16 floats; bfloat16
// panels K/2 rows of 16 pairs (k even, k odd), a bfloat16 being the upper half of a float32.
VITCC_ALWAYS_INLINE float panel_value(const float* panel, std::size_t kk, std::size_t c) noexcept {
  return panel[kk * gemm_nr + c];
}
VITCC_ALWAYS_INLINE float panel_value(const std::uint16_t* panel, std::size_t kk, std::size_t c) noexcept {
  const std::uint32_t bits = std::uint32_t(panel[(kk / 2) * (2 * gemm_nr) + c * 2 + kk % 2]) << 16;
  float v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

// One MR x 4 tile (mv <= MR rows, nv <= 4 columns valid) over the full K. panel: the tile's packed
// panel, j0 its first column inside it; bias and add already offset to the tile.
template <std::size_t MR, class Wt>
void gemm_scalar_tile(std::size_t mv, std::size_t nv, std::size_t k, const float* a, std::size_t lda, const Wt* panel,
                      std::size_t j0, float* c, std::size_t ldc, const float* bias, Activation act, const float* add,
                      std::size_t ld_add) noexcept {
  float acc[MR][gemm_scalar_nr] = {};
  const float* ar[MR];
  for (std::size_t i = 0; i < MR; ++i) ar[i] = a + (i < mv ? i : mv - 1) * lda;
  for (std::size_t kk = 0; kk < k; ++kk) {
    const float b0 = panel_value(panel, kk, j0), b1 = panel_value(panel, kk, j0 + 1);
    const float b2 = panel_value(panel, kk, j0 + 2), b3 = panel_value(panel, kk, j0 + 3);
    VITCC_UNROLL
    for (std::size_t i = 0; i < MR; ++i) {
      const float ai = ar[i][kk];
      acc[i][0] = fp::madd(ai, b0, acc[i][0]);
      acc[i][1] = fp::madd(ai, b1, acc[i][1]);
      acc[i][2] = fp::madd(ai, b2, acc[i][2]);
      acc[i][3] = fp::madd(ai, b3, acc[i][3]);
    }
  }
  for (std::size_t i = 0; i < mv; ++i)
    for (std::size_t j = 0; j < nv; ++j) {
      float v = acc[i][j];
      if (bias) v += bias[j];
      v = apply_activation_scalar(v, act);
      if (add) v += add[i * ld_add + j];  // read before c is written: add may be c itself
      c[i * ldc + j] = v;
    }
}

// The scalar GEMM over a B whose panels are panel_stride elements apart: panel by panel, row tiles
// of A inside (4 rows stay in L1 across the panel's four column groups), the panel read once per row
// tile.
template <class Wt>
void gemm_scalar_panels(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda,
                        const Wt* packed_b, std::size_t panel_stride, float* c, std::size_t ldc,
                        const GemmEpilogue& ep) noexcept {
  constexpr std::size_t MR = gemm_scalar_mr, NR = gemm_scalar_nr;
  for (std::size_t col0 = 0; col0 < n; col0 += gemm_nr) {
    const Wt* panel = packed_b + col0 / gemm_nr * panel_stride;
    for (std::size_t i0 = 0; i0 < m; i0 += MR) {
      const std::size_t mv = m - i0 < MR ? m - i0 : MR;
      for (std::size_t j = 0; j < gemm_nr && col0 + j < n; j += NR) {
        const std::size_t col = col0 + j, nv = n - col < NR ? n - col : NR;
        const float* bias = ep.bias ? ep.bias + col : nullptr;
        const float* add = ep.add ? ep.add + i0 * ep.ld_add + col : nullptr;
        float* ct = c + i0 * ldc + col;
        const float* at = a + i0 * lda;
        switch (mv) {
          case 1: gemm_scalar_tile<1>(mv, nv, k, at, lda, panel, j, ct, ldc, bias, ep.act, add, ep.ld_add); break;
          case 2: gemm_scalar_tile<2>(mv, nv, k, at, lda, panel, j, ct, ldc, bias, ep.act, add, ep.ld_add); break;
          case 3: gemm_scalar_tile<3>(mv, nv, k, at, lda, panel, j, ct, ldc, bias, ep.act, add, ep.ld_add); break;
          default: gemm_scalar_tile<MR>(mv, nv, k, at, lda, panel, j, ct, ldc, bias, ep.act, add, ep.ld_add); break;
        }
      }
    }
  }
}

}  // namespace detail

#if !VITCC_DISABLE_SIMD
namespace detail {

template <class Arch>
inline constexpr std::size_t simd_registers = 16;
// AVX-512 and AArch64 NEON have 32 vector registers; the tile grows to use them.
template <>
inline constexpr std::size_t simd_registers<xsimd::avx512f> = 32;
template <>
inline constexpr std::size_t simd_registers<xsimd::avx512cd> = 32;
template <>
inline constexpr std::size_t simd_registers<xsimd::avx512dq> = 32;
template <>
inline constexpr std::size_t simd_registers<xsimd::avx512bw> = 32;
#if XSIMD_WITH_NEON64
template <>
inline constexpr std::size_t simd_registers<xsimd::neon64> = 32;
#endif

// Register tile of the microkernel: MR rows x NP panels of 16 columns. The accumulators take
// MR * NP * (16 / W) registers; NP * (16 / W) more hold the B row and one the broadcast A element.
//   AVX-512 (W=16, 32 regs):  8 x 48, 24 accumulators -- enough independent FMAs to cover the FMA
//                            latency on both pipes, and 8 broadcasts + 3 loads per 24 FMAs. Measured
//                            on Zen 5 against 12 x 32: +1-2% at 197 tokens, +3-5% at 1370 (fewer A
//                            streams per tile).
//   AVX2    (W=8,  16 regs):  6 x 16, 12 accumulators.
//   NEON64  (W=4,  32 regs):  6 x 16, 24 accumulators.
//   SSE     (W=4,  16 regs):  3 x 16, 12 accumulators.
template <class Arch>
struct gemm_tile {
  static constexpr std::size_t width = xsimd::batch<float, Arch>::size;
  static_assert(gemm_nr % width == 0, "the SIMD width must divide the packed panel width");
  static constexpr std::size_t panel_batches = gemm_nr / width;
  static constexpr std::size_t np = width >= 16 ? 3 : 1;
  static constexpr std::size_t acc_budget = simd_registers<Arch> - np * panel_batches - 2;
  static constexpr std::size_t mr_max = acc_budget / (np * panel_batches);
  static constexpr std::size_t mr = width >= 16 ? 8 : (mr_max > 12 ? 12 : mr_max);
  static_assert(mr >= 1, "no room for a register tile");
};

// Applies the epilogue to one batch of W accumulated columns and stores it. cols < W only on the
// last panel: bias and add are then read through zero-padded copies so the tail gets exactly the
// same SIMD arithmetic as the body, and only the valid columns are written back.
template <class Arch>
VITCC_ALWAYS_INLINE void gemm_store_batch(xsimd::batch<float, Arch> v, std::size_t cols, const float* bias,
                                          Activation act, const float* add, float* c) noexcept {
  using B = xsimd::batch<float, Arch>;
  constexpr std::size_t W = B::size;
  if (cols >= W) {
    if (bias) v += B::load_unaligned(bias);
    v = apply_activation<Arch>(v, act);
    if (add) v += B::load_unaligned(add);
    v.store_unaligned(c);
    return;
  }
  alignas(VITCC_ALIGNMENT) float tmp[W] = {};
  if (bias) {
    for (std::size_t j = 0; j < cols; ++j) tmp[j] = bias[j];
    v += B::load_aligned(tmp);
  }
  v = apply_activation<Arch>(v, act);
  if (add) {
    for (std::size_t j = 0; j < cols; ++j) tmp[j] = add[j];
    v += B::load_aligned(tmp);
  }
  v.store_aligned(tmp);
  for (std::size_t j = 0; j < cols; ++j) c[j] = tmp[j];
}

// How far ahead (in k steps, 64 bytes each) the microkernel prefetches its panels of B.
inline constexpr std::size_t gemm_prefetch_rows = 64;

// One MR x (NP * 16) tile of C over the full K.
//   mv (1..MR) valid rows, nv (1..NP*16) valid columns;
//   b points at the tile's first panel, panel_stride floats between consecutive panels (K * 16 for a
//   packed weight; attention packs a longer sequence and multiplies a slice of it);
//   bias and add are already offset to the tile's first column (and row, for add).
template <class Arch, std::size_t MR, std::size_t NP, class Wt = float>
void gemm_microkernel(std::size_t mv, std::size_t nv, std::size_t k, const float* VITCC_RESTRICT a,
                      std::size_t lda, const Wt* VITCC_RESTRICT b, std::size_t panel_stride,
                      float* c, std::size_t ldc, const float* bias, Activation act, const float* add,
                      std::size_t ld_add) noexcept {
  using B = xsimd::batch<float, Arch>;
  constexpr std::size_t W = B::size;
  constexpr std::size_t PB = gemm_nr / W;
  constexpr std::size_t NB = NP * PB;

  const float* ar[MR];
  VITCC_UNROLL
  for (std::size_t i = 0; i < MR; ++i) ar[i] = a + (i < mv ? i : mv - 1) * lda;

  B acc[MR][NB];
  VITCC_UNROLL
  for (std::size_t i = 0; i < MR; ++i) {
    VITCC_UNROLL
    for (std::size_t j = 0; j < NB; ++j) acc[i][j] = B(0.0f);
  }

  if constexpr (std::is_same_v<Wt, float>) {
  for (std::size_t kk = 0; kk < k; ++kk) {
#if defined(__GNUC__) || defined(__clang__)
    // B rows gemm_prefetch_rows ahead: the weights of a layer stream from DRAM or L3 once per row block,
    // and the hardware prefetcher alone leaves the first row tile of each sliver waiting on them
    // (+2-5% on ViT-B's 768 x 2304 / 768 x 3072 layers on Zen 5). Past the end of a panel the prefetch
    // touches the next panel or harmlessly nothing.
    VITCC_UNROLL
    for (std::size_t p = 0; p < NP; ++p) __builtin_prefetch(b + p * panel_stride + (kk + gemm_prefetch_rows) * gemm_nr);
#endif
    B bv[NB];
    VITCC_UNROLL
    for (std::size_t p = 0; p < NP; ++p) {
      VITCC_UNROLL
      for (std::size_t q = 0; q < PB; ++q) bv[p * PB + q] = B::load_unaligned(b + p * panel_stride + kk * gemm_nr + q * W);
    }
    VITCC_UNROLL
    for (std::size_t i = 0; i < MR; ++i) {
      const B ai(ar[i][kk]);
      VITCC_UNROLL
      for (std::size_t j = 0; j < NB; ++j) acc[i][j] = fmadd<Arch>(ai, bv[j], acc[i][j]);
    }
  }
  } else {
    // bfloat16 weights, float32 arithmetic: a panel row holds 16 pairs (k even, k odd), one 32-bit
    // word per column, so one load gives two rows of B: the word shifted up 16 bits is the even k's
    // float, the word with its low half cleared the odd k's. Half the bytes of float32 weights.
    using U = xsimd::batch<std::uint32_t, Arch>;
    const std::uint32_t* words = reinterpret_cast<const std::uint32_t*>(b);
    const std::size_t wstride = panel_stride / 2;  // words between panels
    // One k step: B's row kk (the even or odd half of pair row kk / 2) times A's column kk.
    auto step = [&](std::size_t kk) VITCC_ALWAYS_INLINE_LAMBDA {
      const std::uint32_t* row = words + (kk / 2) * gemm_nr;
      B bv[NB];
      VITCC_UNROLL
      for (std::size_t p = 0; p < NP; ++p) {
        VITCC_UNROLL
        for (std::size_t q = 0; q < PB; ++q) {
          const U u = U::load_unaligned(row + p * wstride + q * W);
          bv[p * PB + q] = xsimd::bitwise_cast<B>(kk % 2 ? (u & U(0xFFFF0000u)) : (u << 16));
        }
      }
      VITCC_UNROLL
      for (std::size_t i = 0; i < MR; ++i) {
        const B ai(ar[i][kk]);
        VITCC_UNROLL
        for (std::size_t j = 0; j < NB; ++j) acc[i][j] = fmadd<Arch>(ai, bv[j], acc[i][j]);
      }
    };
    std::size_t kk = 0;
    for (; kk + 2 <= k; kk += 2) {
#if defined(__GNUC__) || defined(__clang__)
      VITCC_UNROLL
      for (std::size_t p = 0; p < NP; ++p) __builtin_prefetch(words + p * wstride + (kk / 2 + gemm_prefetch_rows) * gemm_nr);
#endif
      step(kk);
      step(kk + 1);
    }
    if (kk < k) step(kk);  // an odd K's last row
  }

  if (!bias && !add && act == Activation::none && nv == NB * W) {
    // Plain product, full width (attention's score blocks): stores only, no per-batch checks.
    VITCC_UNROLL
    for (std::size_t i = 0; i < MR; ++i) {
      if (i >= mv) break;
      VITCC_UNROLL
      for (std::size_t j = 0; j < NB; ++j) acc[i][j].store_unaligned(c + i * ldc + j * W);
    }
    return;
  }
  for (std::size_t i = 0; i < MR; ++i) {
    if (i >= mv) break;
    for (std::size_t j = 0; j < NB; ++j) {
      const std::size_t col = j * W;
      if (col >= nv) break;
      gemm_store_batch<Arch>(acc[i][j], nv - col, bias ? bias + col : nullptr, act,
                             add ? add + i * ld_add + col : nullptr, c + i * ldc + col);
    }
  }
}

// One row tile of mv rows: the full-height microkernel, or for the last tile of a matrix the shortest
// instantiation that still covers mv rows (M = 197 would otherwise compute 3 dead rows out of 8 in
// its last tile). Every element sees the same FMA sequence whichever height runs it.
template <class Arch, std::size_t NP, class Wt>
VITCC_ALWAYS_INLINE void gemm_row_tile(std::size_t mv, std::size_t nv, std::size_t k, const float* a, std::size_t lda,
                                       const Wt* b, std::size_t panel_stride, float* c, std::size_t ldc,
                                       const float* bias, Activation act, const float* add,
                                       std::size_t ld_add) noexcept {
  constexpr std::size_t MR = gemm_tile<Arch>::mr;
  if (MR > 2 && mv <= 2)
    gemm_microkernel<Arch, (MR > 2 ? 2 : MR), NP, Wt>(mv, nv, k, a, lda, b, panel_stride, c, ldc, bias, act, add, ld_add);
  else if (MR > 4 && mv <= 4)
    gemm_microkernel<Arch, (MR > 4 ? 4 : MR), NP, Wt>(mv, nv, k, a, lda, b, panel_stride, c, ldc, bias, act, add, ld_add);
  else if (MR > 8 && mv <= 8)
    gemm_microkernel<Arch, (MR > 8 ? 8 : MR), NP, Wt>(mv, nv, k, a, lda, b, panel_stride, c, ldc, bias, act, add, ld_add);
  else
    gemm_microkernel<Arch, MR, NP, Wt>(mv, nv, k, a, lda, b, panel_stride, c, ldc, bias, act, add, ld_add);
}

// Floats of A per row block of the driver: 512 KB, half the L2 of current x86 and big ARM cores.
inline constexpr std::size_t gemm_a_block_floats = 128 * 1024;

// Height of the drivers' row blocks of A (every SIMD GEMM driver's): blocks of equal height, a
// multiple of mr, as many as the nearest whole number of target_rows-row blocks (at least one), so no
// short trailing block re-streams B for a few rows.
constexpr std::size_t gemm_row_block(std::size_t m, std::size_t target_rows, std::size_t mr) noexcept {
  const std::size_t target = target_rows > 0 ? target_rows : 1;
  const std::size_t nblocks_raw = (m + target / 2) / target;
  const std::size_t nblocks = nblocks_raw > 0 ? nblocks_raw : 1;
  return ((m + mr - 1) / mr + nblocks - 1) / nblocks * mr;
}

// The GEMM over a B whose panels are panel_stride elements apart.
template <class Arch, class Wt = float>
void gemm_panels(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda,
                 const Wt* packed_b, std::size_t panel_stride, float* c, std::size_t ldc,
                 const GemmEpilogue& ep) noexcept {
  using tile = gemm_tile<Arch>;
  constexpr std::size_t MR = tile::mr;
  constexpr std::size_t NP = tile::np;
  static_assert(NP >= 1 && NP <= 3, "the driver dispatches the last 1 or 2 panels to NP = 1 or 2");
  if (m == 0 || n == 0) return;
  const std::size_t panels = (n + gemm_nr - 1) / gemm_nr;
  // Row blocks of A small enough (gemm_a_block_floats) to stay in L2 while every sliver of B passes:
  // without them a tall A (1370 tokens) is streamed from L3 once per 32 columns.
  const std::size_t mc = gemm_row_block(m, gemm_a_block_floats / (k ? k : 1), MR);
  for (std::size_t r0 = 0; r0 < m; r0 += mc) {
  const std::size_t r1 = m - r0 < mc ? m : r0 + mc;
  for (std::size_t p0 = 0; p0 < panels; p0 += NP) {
    const std::size_t col0 = p0 * gemm_nr;
    const std::size_t nv = n - col0 < NP * gemm_nr ? n - col0 : NP * gemm_nr;
    const Wt* b = packed_b + p0 * panel_stride;
    const float* bias = ep.bias ? ep.bias + col0 : nullptr;
    for (std::size_t i0 = r0; i0 < r1; i0 += MR) {
      const std::size_t mv = m - i0 < MR ? m - i0 : MR;
      const float* add = ep.add ? ep.add + i0 * ep.ld_add + col0 : nullptr;
      if (NP == 1 || panels - p0 >= NP)
        gemm_row_tile<Arch, NP, Wt>(mv, nv, k, a + i0 * lda, lda, b, panel_stride, c + i0 * ldc + col0, ldc, bias,
                                    ep.act, add, ep.ld_add);
      else if (NP == 3 && panels - p0 == 2)
        gemm_row_tile<Arch, (NP > 2 ? 2 : 1), Wt>(mv, nv, k, a + i0 * lda, lda, b, panel_stride, c + i0 * ldc + col0,
                                                   ldc, bias, ep.act, add, ep.ld_add);
      else
        gemm_row_tile<Arch, 1, Wt>(mv, nv, k, a + i0 * lda, lda, b, panel_stride, c + i0 * ldc + col0, ldc, bias,
                                   ep.act, add, ep.ld_add);
    }
  }
  }
}

#if VITCC_BF16_NEON
// ---- bfloat16 x bfloat16 on NEON (FEAT_BF16): A rounded to bfloat16 as it is read ----
// Both instructions add each pair's two products (exact in float32) and then the pair's sum to the
// accumulator, each addition rounded to odd with denormals flushed (the Arm ARM's BFDotAdd, FPCR.EBF
// = 0); BFMMLA chains two such pairs per element in k order, so the two paths give the same bits.
// A's floats become bfloat16 with BFCVTN (nearest, ties to even under the default FPCR); a K tail
// is read through a zero-padded copy, so nothing past a row of A is read.

// A's row pair (r0, r1) at k..k+3 as BFMMLA's first operand (r0's four, then r1's); cnt < 4 pads.
VITCC_ALWAYS_INLINE bfloat16x8_t bf16_a_rows4(const float* r0, const float* r1, std::size_t cnt) noexcept {
  if (cnt >= 4) return vcvtq_high_bf16_f32(vcvtq_low_bf16_f32(vld1q_f32(r0)), vld1q_f32(r1));
  float t0[4] = {}, t1[4] = {};
  for (std::size_t j = 0; j < cnt; ++j) {
    t0[j] = r0[j];
    t1[j] = r1[j];
  }
  return vcvtq_high_bf16_f32(vcvtq_low_bf16_f32(vld1q_f32(t0)), vld1q_f32(t1));
}
// Eight floats of a row of A at k..k+7 as four bfloat16 pairs (lane p: k + 2p, k + 2p + 1); cnt < 8 pads.
VITCC_ALWAYS_INLINE bfloat16x8_t bf16_a_row8(const float* r, std::size_t cnt) noexcept {
  if (cnt >= 8) return vcvtq_high_bf16_f32(vcvtq_low_bf16_f32(vld1q_f32(r)), vld1q_f32(r + 4));
  float t[8] = {};
  for (std::size_t j = 0; j < cnt; ++j) t[j] = r[j];
  return vcvtq_high_bf16_f32(vcvtq_low_bf16_f32(vld1q_f32(t)), vld1q_f32(t + 4));
}

// The stores of a bf16 tile: acc[i][v] holds row i's columns 4v..4v+3.
template <std::size_t MR>
VITCC_ALWAYS_INLINE void bf16_neon_store(const float32x4_t (&acc)[MR][4], std::size_t mv, std::size_t nv, float* c,
                                         std::size_t ldc, const float* bias, Activation act, const float* add,
                                         std::size_t ld_add) noexcept {
  using B = xsimd::batch<float, xsimd::neon64>;
  for (std::size_t i = 0; i < MR; ++i) {
    if (i >= mv) break;
    for (std::size_t v = 0; v < 4; ++v) {
      const std::size_t col = v * 4;
      if (col >= nv) break;
      gemm_store_batch<xsimd::neon64>(B(acc[i][v]), nv - col, bias ? bias + col : nullptr, act,
                                      add ? add + i * ld_add + col : nullptr, c + i * ldc + col);
    }
  }
}

// BFDOT: MR rows x one panel (16 columns = 4 float32x4). A panel's pair row is 16 words, column
// 4v + j's pair in lane j of vector v: BFDOT against a lane of A's eight bfloat16 (one pair) adds
// that pair's two products to four columns at once.
template <std::size_t P, std::size_t MR>
VITCC_ALWAYS_INLINE void bfdot_pair_row(float32x4_t (&acc)[MR][4], const bfloat16x8_t (&av)[MR],
                                        const std::uint16_t* row) noexcept {
  bfloat16x8_t bv[4];
  VITCC_UNROLL
  for (std::size_t v = 0; v < 4; ++v) bv[v] = vreinterpretq_bf16_u16(vld1q_u16(row + v * 8));
  VITCC_UNROLL
  for (std::size_t i = 0; i < MR; ++i) {
    VITCC_UNROLL
    for (std::size_t v = 0; v < 4; ++v) acc[i][v] = vbfdotq_laneq_f32(acc[i][v], bv[v], av[i], P);
  }
}

template <std::size_t MR>
void gemm_bfdot_tile(std::size_t mv, std::size_t nv, std::size_t k, const float* a, std::size_t lda,
                     const std::uint16_t* b, float* c, std::size_t ldc, const float* bias, Activation act,
                     const float* add, std::size_t ld_add) noexcept {
  const float* ar[MR];
  VITCC_UNROLL
  for (std::size_t i = 0; i < MR; ++i) ar[i] = a + (i < mv ? i : mv - 1) * lda;
  float32x4_t acc[MR][4];
  VITCC_UNROLL
  for (std::size_t i = 0; i < MR; ++i) {
    VITCC_UNROLL
    for (std::size_t v = 0; v < 4; ++v) acc[i][v] = vdupq_n_f32(0.0f);
  }
  std::size_t kk = 0;
  for (; kk + 8 <= k; kk += 8) {  // four pair rows of the panel
    bfloat16x8_t av[MR];
    VITCC_UNROLL
    for (std::size_t i = 0; i < MR; ++i) av[i] = bf16_a_row8(ar[i] + kk, 8);
    const std::uint16_t* rows = b + kk * gemm_nr;  // pair row kk / 2, 32 bfloat16 each
    bfdot_pair_row<0>(acc, av, rows);
    bfdot_pair_row<1>(acc, av, rows + 32);
    bfdot_pair_row<2>(acc, av, rows + 64);
    bfdot_pair_row<3>(acc, av, rows + 96);
  }
  if (kk < k) {  // 1..7 columns left: (left + 1) / 2 pair rows, A zero-padded
    const std::size_t left = k - kk, pairs = (left + 1) / 2;
    bfloat16x8_t av[MR];
    VITCC_UNROLL
    for (std::size_t i = 0; i < MR; ++i) av[i] = bf16_a_row8(ar[i] + kk, left);
    const std::uint16_t* rows = b + kk * gemm_nr;
    bfdot_pair_row<0>(acc, av, rows);
    if (pairs > 1) bfdot_pair_row<1>(acc, av, rows + 32);
    if (pairs > 2) bfdot_pair_row<2>(acc, av, rows + 64);
    if (pairs > 3) bfdot_pair_row<3>(acc, av, rows + 96);
  }
  bf16_neon_store<MR>(acc, mv, nv, c, ldc, bias, act, add, ld_add);
}

// BFMMLA: MR rows (MR / 2 row pairs) x one panel (8 column pairs). BFMMLA multiplies a 2 x 4 block
// of A (two rows, four k) by the transpose of a 2 x 4 block of B (two columns, the same four k) into
// a 2 x 2 float32 block (r0c0, r0c1, r1c0, r1c1). Pair rows p and p + 1 of the panel, zipped as
// 32-bit lanes, are that B block for a column pair (column c's k 0..3, then column c + 1's), so the
// k2 blob layout serves unchanged.
template <std::size_t MR>
void gemm_bfmmla_tile(std::size_t mv, std::size_t nv, std::size_t k, const float* a, std::size_t lda,
                      const std::uint16_t* b, float* c, std::size_t ldc, const float* bias, Activation act,
                      const float* add, std::size_t ld_add) noexcept {
  static_assert(MR % 2 == 0, "rows go in pairs");
  constexpr std::size_t RP = MR / 2;
  const float* ar[MR];
  VITCC_UNROLL
  for (std::size_t i = 0; i < MR; ++i) ar[i] = a + (i < mv ? i : mv - 1) * lda;
  float32x4_t acc[RP][8];  // [row pair][column pair]
  VITCC_UNROLL
  for (std::size_t r = 0; r < RP; ++r) {
    VITCC_UNROLL
    for (std::size_t q = 0; q < 8; ++q) acc[r][q] = vdupq_n_f32(0.0f);
  }
  // Four k: A's row pairs, B's pair rows lo and hi (hi null past the panel's last pair row).
  auto step = [&](const bfloat16x8_t (&av)[RP], const std::uint16_t* lo, const std::uint16_t* hi)
                  VITCC_ALWAYS_INLINE_LAMBDA {
    VITCC_UNROLL
    for (std::size_t v = 0; v < 4; ++v) {
      const uint32x4_t l = vreinterpretq_u32_u16(vld1q_u16(lo + v * 8));
      const uint32x4_t h = hi ? vreinterpretq_u32_u16(vld1q_u16(hi + v * 8)) : vdupq_n_u32(0);
      const bfloat16x8_t p0 = vreinterpretq_bf16_u32(vzip1q_u32(l, h)), p1 = vreinterpretq_bf16_u32(vzip2q_u32(l, h));
      VITCC_UNROLL
      for (std::size_t r = 0; r < RP; ++r) {
        acc[r][2 * v] = vbfmmlaq_f32(acc[r][2 * v], av[r], p0);
        acc[r][2 * v + 1] = vbfmmlaq_f32(acc[r][2 * v + 1], av[r], p1);
      }
    }
  };
  std::size_t kk = 0;
  for (; kk + 4 <= k; kk += 4) {
    bfloat16x8_t av[RP];
    VITCC_UNROLL
    for (std::size_t r = 0; r < RP; ++r) av[r] = bf16_a_rows4(ar[2 * r] + kk, ar[2 * r + 1] + kk, 4);
    step(av, b + kk * gemm_nr, b + (kk + 2) * gemm_nr);
  }
  if (kk < k) {  // 1..3 columns left; a second pair row only for 3
    const std::size_t left = k - kk;
    bfloat16x8_t av[RP];
    VITCC_UNROLL
    for (std::size_t r = 0; r < RP; ++r) av[r] = bf16_a_rows4(ar[2 * r] + kk, ar[2 * r + 1] + kk, left);
    step(av, b + kk * gemm_nr, left > 2 ? b + (kk + 2) * gemm_nr : nullptr);
  }
  // Un-interleave: row 2r's columns 4v..4v+3 are the low halves of blocks 2v and 2v + 1, row 2r + 1's
  // the high halves.
  float32x4_t rows[MR][4];
  VITCC_UNROLL
  for (std::size_t r = 0; r < RP; ++r) {
    VITCC_UNROLL
    for (std::size_t v = 0; v < 4; ++v) {
      const float64x2_t x0 = vreinterpretq_f64_f32(acc[r][2 * v]), x1 = vreinterpretq_f64_f32(acc[r][2 * v + 1]);
      rows[2 * r][v] = vreinterpretq_f32_f64(vzip1q_f64(x0, x1));
      rows[2 * r + 1][v] = vreinterpretq_f32_f64(vzip2q_f64(x0, x1));
    }
  }
  bf16_neon_store<MR>(rows, mv, nv, c, ldc, bias, act, add, ld_add);
}

// The bf16 GEMM on one of the two, panel by panel, row tiles inside (as the int8 NEON paths).
template <Bf16Path P>
void gemm_bf16_neon_panels(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda,
                           const std::uint16_t* packed_b, std::size_t panel_stride, float* c, std::size_t ldc,
                           const GemmEpilogue& ep) noexcept {
  // 6 x 16 for BFMMLA: 24 accumulators, 3 row pairs of A, 2 of B. BFDOT keeps A's eight values per
  // row for four pair rows: 4 x 16, 16 accumulators, 4 of A, 4 of B.
  constexpr std::size_t MR = P == Bf16Path::bfmmla ? 6 : 4;
  for (std::size_t col0 = 0; col0 < n; col0 += gemm_nr) {
    const std::uint16_t* panel = packed_b + col0 / gemm_nr * panel_stride;
    const std::size_t nv = n - col0 < gemm_nr ? n - col0 : gemm_nr;
    const float* bias = ep.bias ? ep.bias + col0 : nullptr;
    for (std::size_t i0 = 0; i0 < m; i0 += MR) {
      const std::size_t mv = m - i0 < MR ? m - i0 : MR;
      const float* add = ep.add ? ep.add + i0 * ep.ld_add + col0 : nullptr;
      if constexpr (P == Bf16Path::bfmmla)
        gemm_bfmmla_tile<MR>(mv, nv, k, a + i0 * lda, lda, panel, c + i0 * ldc + col0, ldc, bias, ep.act, add, ep.ld_add);
      else
        gemm_bfdot_tile<MR>(mv, nv, k, a + i0 * lda, lda, panel, c + i0 * ldc + col0, ldc, bias, ep.act, add, ep.ld_add);
    }
  }
}
#endif

#if VITCC_BF16_AVX512
// ---- bfloat16 x bfloat16 on AVX512-BF16: vdpbf16ps ----
// vdpbf16ps adds, per float32 lane, the products of a pair of bfloat16 (the odd element's, then the
// even's), each addition rounded to nearest even with denormal inputs and results flushed to zero,
// whatever MXCSR says. A gemm_b16_k2 pair row (16 columns x (k even, k odd)) is one zmm of B; A's
// pair (k, k + 1) of a row, broadcast to every lane, is the other operand. A's floats become
// bfloat16 (vcvtne2ps2bf16: nearest even) 32 k at a time, per row tile, into a 64-byte row of a
// stack buffer whose words are then broadcast; a K tail is read with masked loads (zeros), so
// nothing past a row of A is read.

// One MR x (NP * 16) tile over the full K (as gemm_microkernel: rows past mv re-read the last valid
// row and are not stored; columns past nv are B's zero padding and not stored).
template <std::size_t MR, std::size_t NP>
void gemm_bf16_avx512_tile(std::size_t mv, std::size_t nv, std::size_t k, const float* a, std::size_t lda,
                           const std::uint16_t* b, std::size_t panel_stride, float* c, std::size_t ldc,
                           const float* bias, Activation act, const float* add, std::size_t ld_add) noexcept {
  const float* ar[MR];
  VITCC_UNROLL
  for (std::size_t i = 0; i < MR; ++i) ar[i] = a + (i < mv ? i : mv - 1) * lda;
  __m512 acc[MR][NP];
  VITCC_UNROLL
  for (std::size_t i = 0; i < MR; ++i) {
    VITCC_UNROLL
    for (std::size_t p = 0; p < NP; ++p) acc[i][p] = _mm512_setzero_ps();
  }
  alignas(64) std::uint32_t apairs[MR][16];  // 16 pairs = 32 k of each row, as bfloat16
  for (std::size_t k0 = 0; k0 < k; k0 += 32) {
    const std::size_t kc = k - k0 < 32 ? k - k0 : 32;
    const __mmask16 lo = kc >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << kc) - 1);
    const __mmask16 hi = kc >= 32 ? __mmask16(0xFFFF) : kc > 16 ? __mmask16((1u << (kc - 16)) - 1) : __mmask16(0);
    VITCC_UNROLL
    for (std::size_t i = 0; i < MR; ++i) {
      const __m512 x0 = _mm512_maskz_loadu_ps(lo, ar[i] + k0);
      const __m512 x1 = hi ? _mm512_maskz_loadu_ps(hi, ar[i] + k0 + 16) : _mm512_setzero_ps();  // no pointer past the row
      _mm512_store_si512(apairs[i], (__m512i)_mm512_cvtne2ps_pbh(x1, x0));  // element j: k0 + j
    }
    const std::size_t pairs = (kc + 1) / 2;
    const std::uint16_t* rows = b + k0 * gemm_nr;  // pair row k0 / 2: 32 elements each
    for (std::size_t q = 0; q < pairs; ++q) {
      __m512i bv[NP];
      VITCC_UNROLL
      for (std::size_t p = 0; p < NP; ++p) {
#if defined(__GNUC__) || defined(__clang__)
        __builtin_prefetch(rows + p * panel_stride + (q + gemm_prefetch_rows) * 2 * gemm_nr);
#endif
        bv[p] = _mm512_loadu_si512(rows + p * panel_stride + q * 2 * gemm_nr);
      }
      VITCC_UNROLL
      for (std::size_t i = 0; i < MR; ++i) {
        const __m512i av = _mm512_set1_epi32(int(apairs[i][q]));
        VITCC_UNROLL
        for (std::size_t p = 0; p < NP; ++p) acc[i][p] = _mm512_dpbf16_ps(acc[i][p], (__m512bh)av, (__m512bh)bv[p]);
      }
    }
  }
  // As q8_vnni512_tile: the epilogue's run-time bounds read a copy, so acc stays in registers above.
  alignas(64) float out[MR][NP][16];
  VITCC_UNROLL
  for (std::size_t i = 0; i < MR; ++i) {
    VITCC_UNROLL
    for (std::size_t p = 0; p < NP; ++p) _mm512_store_ps(out[i][p], acc[i][p]);
  }
  using B = xsimd::batch<float, xsimd::avx512f>;
  for (std::size_t i = 0; i < MR; ++i) {
    if (i >= mv) break;
    for (std::size_t p = 0; p < NP; ++p) {
      const std::size_t col = p * gemm_nr;
      if (col >= nv) break;
      gemm_store_batch<xsimd::avx512f>(B::load_aligned(out[i][p]), nv - col, bias ? bias + col : nullptr, act,
                                       add ? add + i * ld_add + col : nullptr, c + i * ldc + col);
    }
  }
}

// The driver: row blocks of A for L2, column tiles of three panels inside, as gemm_panels.
inline void gemm_bf16_avx512_panels(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda,
                                    const std::uint16_t* packed_b, std::size_t panel_stride, float* c,
                                    std::size_t ldc, const GemmEpilogue& ep) noexcept {
  constexpr std::size_t MR = 8, NP = 3;
  if (m == 0 || n == 0) return;
  const std::size_t panels = (n + gemm_nr - 1) / gemm_nr;
  const std::size_t mc = gemm_row_block(m, gemm_a_block_floats / (k ? k : 1), MR);
  for (std::size_t r0 = 0; r0 < m; r0 += mc) {
    const std::size_t r1 = m - r0 < mc ? m : r0 + mc;
    for (std::size_t p0 = 0; p0 < panels; p0 += NP) {
      const std::size_t col0 = p0 * gemm_nr;
      const std::size_t nv = n - col0 < NP * gemm_nr ? n - col0 : NP * gemm_nr;
      const std::uint16_t* b = packed_b + p0 * panel_stride;
      const float* bias = ep.bias ? ep.bias + col0 : nullptr;
      for (std::size_t i0 = r0; i0 < r1; i0 += MR) {
        const std::size_t mv = m - i0 < MR ? m - i0 : MR;
        const float* add = ep.add ? ep.add + i0 * ep.ld_add + col0 : nullptr;
        float* ct = c + i0 * ldc + col0;
        const float* at = a + i0 * lda;
        if (panels - p0 >= 3)
          gemm_bf16_avx512_tile<MR, 3>(mv, nv, k, at, lda, b, panel_stride, ct, ldc, bias, ep.act, add, ep.ld_add);
        else if (panels - p0 == 2)
          gemm_bf16_avx512_tile<MR, 2>(mv, nv, k, at, lda, b, panel_stride, ct, ldc, bias, ep.act, add, ep.ld_add);
        else
          gemm_bf16_avx512_tile<MR, 1>(mv, nv, k, at, lda, b, panel_stride, ct, ldc, bias, ep.act, add, ep.ld_add);
      }
    }
  }
}
#endif

}  // namespace detail
#endif

namespace detail {
// The GEMM over a B whose panels are panel_stride elements apart, on either path.
template <class Arch, class Wt = float>
void gemm_strided(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda, const Wt* packed_b,
                  std::size_t panel_stride, float* c, std::size_t ldc, const GemmEpilogue& ep) noexcept {
  if constexpr (is_scalar_arch<Arch>) {
    gemm_scalar_panels(m, n, k, a, lda, packed_b, panel_stride, c, ldc, ep);
  } else {
#if !VITCC_DISABLE_SIMD
#if VITCC_BF16_NEON
    if constexpr (std::is_same_v<Wt, std::uint16_t> && bf16_path<Arch>() != Bf16Path::fp32) {
      gemm_bf16_neon_panels<bf16_path<Arch>()>(m, n, k, a, lda, packed_b, panel_stride, c, ldc, ep);
      return;
    }
#endif
#if VITCC_BF16_AVX512
    if constexpr (std::is_same_v<Wt, std::uint16_t> && bf16_path<Arch>() == Bf16Path::avx512) {
      gemm_bf16_avx512_panels(m, n, k, a, lda, packed_b, panel_stride, c, ldc, ep);
      return;
    }
#endif
    gemm_panels<Arch, Wt>(m, n, k, a, lda, packed_b, panel_stride, c, ldc, ep);
#endif
  }
}
}  // namespace detail

// Elements between consecutive panels of a packed [k, n] weight: float32 panels hold k rows of 16,
// bfloat16 panels k rounded up to even (pairs).
template <class Wt>
constexpr std::size_t panel_stride(std::size_t k) noexcept {
  return (std::is_same_v<Wt, float> ? k : (k + 1) / 2 * 2) * gemm_nr;
}

// C (M x N, ldc) = epilogue(A (M x K, lda) * B), B packed with pack_b / pack_b_from_linear (float32),
// or pack_b_bf16 (bfloat16 bits, float32 arithmetic).
template <class Arch, class Wt>
void gemm(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda, const Wt* packed_b,
          float* c, std::size_t ldc, const GemmEpilogue& ep) noexcept {
  detail::gemm_strided<Arch, Wt>(m, n, k, a, lda, packed_b, panel_stride<Wt>(k), c, ldc, ep);
}

// Parallel GEMM: C is cut into tasks of gemm_task_rows(m, n) rows x gemm_task_cols columns, fixed
// by M and N alone, so the result does not depend on the number of workers; each task runs the same
// microkernel calls the serial driver would for its tile. Without an executor (ex == nullptr) this is
// the serial gemm.
//
// When N has at least gemm_full_column_tasks column blocks (every ViT layer: N >= 384), a task is a
// whole K x 48 column block over all M rows: its sliver of B is then read from L2/L3 once and stays
// in cache across all row tiles, as in the serial driver (which also blocks the rows of a tall A
// for L2 inside the task). Narrower products are cut into 48-row tiles as well, so a few column
// blocks still make enough tasks. ViT-S/16 with two threads, alternating runs on this 2-core VM:
// 23.6-23.9 ms with 48 x 48 tasks, 23.4 ms with whole column blocks (27.6 vs 28.4 ms at a time the
// second core was slower).
inline constexpr std::size_t gemm_task_cols = 48;  // a multiple of every microkernel width (16, 48)
inline constexpr std::size_t gemm_tile_task_rows = 48;  // a multiple of every microkernel height (8, 6, 12, 3)
inline constexpr std::size_t gemm_full_column_tasks = 8;

constexpr std::size_t gemm_task_rows(std::size_t m, std::size_t n) noexcept {
  return (n + gemm_task_cols - 1) / gemm_task_cols >= gemm_full_column_tasks && m > 0 ? m : gemm_tile_task_rows;
}

constexpr std::size_t gemm_tasks(std::size_t m, std::size_t n) noexcept {
  const std::size_t tr = gemm_task_rows(m, n);
  return ((m + tr - 1) / tr) * ((n + gemm_task_cols - 1) / gemm_task_cols);
}

// The tile of C that task `task` of the parallel GEMM computes: rows i0 .. i0+mt-1, columns
// j0 .. j0+nt-1 (j0 a multiple of 16: a panel boundary), and the epilogue moved to it. Tasks are
// numbered column block major, so consecutive tasks share a K x 48 sliver of B. The int8 GEMM
// (gemm_q8.hpp) splits C the same way.
struct GemmTaskTile {
  std::size_t i0, j0, mt, nt;
  GemmEpilogue ep;
};
constexpr GemmTaskTile gemm_task_tile(std::size_t task, std::size_t m, std::size_t n, const GemmEpilogue& ep) noexcept {
  const std::size_t tr = gemm_task_rows(m, n);
  const std::size_t row_blocks = (m + tr - 1) / tr;
  const std::size_t i0 = task % row_blocks * tr, j0 = task / row_blocks * gemm_task_cols;
  GemmTaskTile t{i0, j0, m - i0 < tr ? m - i0 : tr, n - j0 < gemm_task_cols ? n - j0 : gemm_task_cols, ep};
  if (t.ep.bias) t.ep.bias += j0;
  if (t.ep.add) t.ep.add += i0 * t.ep.ld_add + j0;
  return t;
}

namespace detail {
// One task of the parallel GEMM over a B whose panels are panel_stride elements apart.
template <class Arch, class Wt>
void gemm_task(std::size_t task, std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda,
               const Wt* packed_b, std::size_t panel_stride, float* c, std::size_t ldc,
               const GemmEpilogue& ep) noexcept {
  const GemmTaskTile t = gemm_task_tile(task, m, n, ep);
  gemm_strided<Arch, Wt>(t.mt, t.nt, k, a + t.i0 * lda, lda, packed_b + t.j0 / gemm_nr * panel_stride, panel_stride,
                         c + t.i0 * ldc + t.j0, ldc, t.ep);
}
}  // namespace detail

template <class Arch, class Wt>
void gemm(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda, const Wt* packed_b,
          float* c, std::size_t ldc, const GemmEpilogue& ep, const Executor* ex) noexcept {
  if (worker_count(ex) == 1) {
    gemm<Arch>(m, n, k, a, lda, packed_b, c, ldc, ep);
    return;
  }
  parallel_for(ex, gemm_tasks(m, n), [&](std::size_t t, std::size_t) {
    detail::gemm_task<Arch, Wt>(t, m, n, k, a, lda, packed_b, panel_stride<Wt>(k), c, ldc, ep);
  });
}

}  // namespace vitcc::kernels
