// Kernel and layer benchmarks at the shapes the supported models really run, batch 1.
//   peak/fp32_fma              the single-core fp32 FMA peak every fp32 %peak below refers to
//   peak/bf16_fma              the same FMA with the bf16 kernel's widening of B (bf16's own peak)
//   peak/int8_dot              the int8 GEMM's dot-product instruction (vpdpbusd / sdot): int8's peak
//   peak/bf16_dot              AVX512-BF16 vdpbf16ps chains (where the CPU has it): what a bf16
//                              dot-product kernel could reach, against peak/fp32_fma
//   gemm/M/K/N/threads         C = A B with a packed B: M tokens (197 = 224 px /16, 257 = 224 px /14,
//                              1370 = 518 px /14) x the (K, N) of qkv, proj, fc1, fc2 for ViT-Ti/S/B
//   gemm_bf16/..., gemm_int8/  the same products on bf16 and int8 weights (ViT-S/B shapes, M 197 and
//                              1370); %peak of their own precision's peak (bf16 built with
//                              VITCC_BF16_DOT on AVX512-BF16: peak/bf16_dot)
//   attention/T/D/heads/thr    fused softmax(q k^T) v, per head (heads = 1) and whole layers
//   patch_embed/...            the patch-embedding conv as gathered GEMM
//   layer_norm/rows/d, gelu/n  memory-bound: GB/s and elements/s, not FLOPs
//   block/T/D/threads          one transformer encoder block (LN, qkv, attention, proj, LN, fc1+GELU, fc2)
//   dwconv/hw/c/k, conv1x1/..  EfficientViT's depthwise and pointwise convolutions (NHWC; 1x1 is a GEMM)
// Every FLOP-bound benchmark reports GFLOP/s and %peak (of threads x the measured one-core peak of
// its precision; int8 counts operations as FLOPs are counted, 2 per multiply-add).
#include <cstdio>
#include <string>

#include "bench_common.hpp"
#include "vitcc/kernels/activations.hpp"
#include "vitcc/kernels/attention.hpp"
#include "vitcc/kernels/layer_norm.hpp"
#include "vitcc/kernels/matmul.hpp"
#include "vitcc/kernels/patch_embed.hpp"
#include "vitcc/layers/linear.hpp"
#if __has_include("vitcc/kernels/dwconv.hpp")
#include "vitcc/kernels/dwconv.hpp"
#define VITCC_BENCH_DWCONV 1
#endif

namespace vb = vitcc::bench;
namespace vk = vitcc::kernels;
using vb::Arch;

namespace {

template <double (*Chains)(double)>
void peak(benchmark::State& state) {
  for (auto _ : state) {
    const double f = Chains(0.02);
    state.SetIterationTime(0.02);
    state.counters["GFLOP/s"] = f * 1e-9;
  }
}

void gemm(benchmark::State& state) {
  const std::size_t m = state.range(0), k = state.range(1), n = state.range(2), threads = state.range(3);
  vb::Buffer a = vb::random_floats(m * k, 1), w = vb::random_floats(k * n, 2), bias = vb::random_floats(n, 3);
  vb::Buffer packed = vb::aligned_floats(vk::packed_b_floats(k, n)), c = vb::aligned_floats(m * n);
  vk::pack_b_from_linear(w.get(), k, n, packed.get());
  vk::GemmEpilogue ep;
  ep.bias = bias.get();
  const vitcc::Executor* ex = vb::executor_for(threads);
  for (auto _ : state) {
    vk::gemm<Arch>(m, n, k, a.get(), k, packed.get(), c.get(), n, ep, ex);
    benchmark::ClobberMemory();
  }
  vb::set_flops(state, 2.0 * m * n * k, threads);
}

// The same product on bfloat16 or int8 weights (packed as vitcc-pack packs them), through the
// precision's GEMM entry point (kernels/matmul.hpp), int8's activation quantisation included.
template <vitcc::Precision P>
void gemm_reduced(benchmark::State& state) {
  const std::size_t m = state.range(0), k = state.range(1), n = state.range(2), threads = state.range(3);
  vb::Buffer a = vb::random_floats(m * k, 1), w = vb::random_floats(k * n, 2), bias = vb::random_floats(n, 3);
  vb::Buffer packed = vb::aligned_floats(vk::packed_b_floats(k, n)), c = vb::aligned_floats(m * n);
  vk::pack_b_from_linear(w.get(), k, n, packed.get());
  const std::size_t np = vk::q8_padded_n(n);
  vb::Buffer wb = vb::aligned_floats(P == vitcc::Precision::int8 ? vk::packed_b_q8_elements(k, n) / 4 + 1
                                                                  : vk::packed_b_bf16_elements(k, n) / 2 + 1);
  vb::Buffer scale = vb::aligned_floats(np), colsum = vb::aligned_floats(np);
  vb::Buffer scratch = vb::aligned_floats(vk::matmul_scratch_bytes(P, m, k) / sizeof(float) + 1);
  vk::PackedB b;
  b.data = wb.get();
  if constexpr (P == vitcc::Precision::int8) {
    auto* cs = reinterpret_cast<std::int32_t*>(colsum.get());
    vk::pack_b_q8(packed.get(), k, n, reinterpret_cast<std::int8_t*>(wb.get()), scale.get(), cs);
    b.scale = scale.get();
    b.colsum = cs;
  } else {
    vk::pack_b_bf16(packed.get(), k, n, reinterpret_cast<std::uint16_t*>(wb.get()));
  }
  vk::GemmEpilogue ep;
  ep.bias = bias.get();
  const vitcc::Executor* ex = vb::executor_for(threads);
  for (auto _ : state) {
    vk::matmul<Arch, P>(m, n, k, a.get(), k, b, c.get(), n, ep, scratch.get(), ex);
    benchmark::ClobberMemory();
  }
  vb::set_flops(state, 2.0 * m * n * k, threads, P);
}

void attention(benchmark::State& state) {
  const std::size_t t = state.range(0), hd = state.range(1), heads = state.range(2), threads = state.range(3);
  const std::size_t d = heads * hd;
  vb::Buffer qkv = vb::random_floats(t * 3 * d, 4), out = vb::aligned_floats(t * d);
  vb::Buffer scratch = vb::aligned_floats(vk::attention_scratch_floats(t, hd, heads, threads));
  const vitcc::Executor* ex = vb::executor_for(threads);
  for (auto _ : state) {
    vk::attention<Arch>(t, heads, hd, 0.125f, qkv.get(), 3 * d, out.get(), d, scratch.get(), ex);
    benchmark::ClobberMemory();
  }
  vb::set_flops(state, 4.0 * t * t * hd * heads, threads);  // q k^T and p v
}

void patch_embed(benchmark::State& state) {
  const std::size_t img = state.range(0), p = state.range(1), d = state.range(2), threads = state.range(3);
  const std::size_t c = 3, k = c * p * p, patches = (img / p) * (img / p);
  vb::Buffer image = vb::random_floats(c * img * img, 5), w = vb::random_floats(k * d, 6);
  vb::Buffer add = vb::random_floats(patches * d, 7), out = vb::aligned_floats(patches * d);
  vb::Buffer packed = vb::aligned_floats(vk::packed_b_floats(k, d));
  vb::Buffer scratch = vb::aligned_floats(threads * vk::patch_embed_scratch_floats(c, p));
  vk::pack_b_from_linear(w.get(), k, d, packed.get());
  const vitcc::Executor* ex = vb::executor_for(threads);
  for (auto _ : state) {
    vk::patch_embed<Arch>(image.get(), c, img, img, p, vk::PackedB{packed.get()}, d, add.get(), d, out.get(), d, scratch.get(), ex);
    benchmark::ClobberMemory();
  }
  vb::set_flops(state, 2.0 * patches * k * d, threads);
}

void layer_norm(benchmark::State& state) {
  const std::size_t rows = state.range(0), d = state.range(1);
  vb::Buffer x = vb::random_floats(rows * d, 8), g = vb::random_floats(d, 9), b = vb::random_floats(d, 10);
  vb::Buffer y = vb::aligned_floats(rows * d);
  for (auto _ : state) {
    vk::layer_norm<Arch>(rows, d, x.get(), d, g.get(), b.get(), 1e-6f, y.get(), d);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(std::int64_t(state.iterations() * rows * d * 2 * sizeof(float)));
}

void gelu(benchmark::State& state) {
  const std::size_t n = state.range(0);
  vb::Buffer x = vb::random_floats(n, 11);
  for (auto _ : state) {
    vk::gelu_erf<Arch>(x.get(), n);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(std::int64_t(state.iterations() * n));
}

// One pre-norm encoder block, the sequence of vit_forward's loop body, on seeded weights.
void block(benchmark::State& state) {
  const std::size_t t = state.range(0), d = state.range(1), heads = d / 64, threads = state.range(2);
  const std::size_t h = 4 * d, hd = 64;
  constexpr vitcc::Precision F32 = vitcc::Precision::fp32;
  auto packed = [](std::size_t k, std::size_t n, std::uint64_t seed) {
    vb::Buffer w = vb::random_floats(k * n, seed), p = vb::aligned_floats(vk::packed_b_floats(k, n));
    for (std::size_t i = 0; i < k * n; ++i) w[i] *= 0.05f;
    vk::pack_b_from_linear(w.get(), k, n, p.get());
    return p;
  };
  vb::Buffer wqkv = packed(d, 3 * d, 20), wproj = packed(d, d, 21), wfc1 = packed(d, h, 22), wfc2 = packed(h, d, 23);
  vb::Buffer bqkv = vb::random_floats(3 * d, 24), bproj = vb::random_floats(d, 25), bfc1 = vb::random_floats(h, 26),
             bfc2 = vb::random_floats(d, 27), g = vb::random_floats(d, 28), beta = vb::random_floats(d, 29);
  vitcc::Linear qkv{{wqkv.get()}, bqkv.get()}, proj{{wproj.get()}, bproj.get()}, fc1{{wfc1.get()}, bfc1.get()},
      fc2{{wfc2.get()}, bfc2.get()};
  vb::Buffer x = vb::random_floats(t * d, 30), xn = vb::aligned_floats(t * d), big = vb::aligned_floats(t * h);
  vb::Buffer scratch = vb::aligned_floats(vk::attention_scratch_floats(t, hd, heads, threads));
  const vitcc::Executor* ex = vb::executor_for(threads);
  for (auto _ : state) {
    vk::layer_norm<Arch>(t, d, x.get(), d, g.get(), beta.get(), 1e-6f, xn.get(), d, ex);
    qkv.apply<Arch, F32>(ex, t, d, 3 * d, xn.get(), d, big.get(), 3 * d);
    vk::attention<Arch>(t, heads, hd, 0.125f, big.get(), 3 * d, xn.get(), d, scratch.get(), ex);
    proj.apply<Arch, F32>(ex, t, d, d, xn.get(), d, x.get(), d, vk::Activation::none, x.get(), d);
    vk::layer_norm<Arch>(t, d, x.get(), d, g.get(), beta.get(), 1e-6f, xn.get(), d, ex);
    fc1.apply<Arch, F32>(ex, t, d, h, xn.get(), d, big.get(), h, vk::Activation::gelu_erf);
    fc2.apply<Arch, F32>(ex, t, h, d, big.get(), h, x.get(), d, vk::Activation::none, x.get(), d);
    benchmark::ClobberMemory();
  }
  vb::set_flops(state, 2.0 * t * 12 * d * d + 4.0 * t * t * d, threads);
}

#if VITCC_BENCH_DWCONV
void dwconv(benchmark::State& state) {
  const std::size_t hw = state.range(0), c = state.range(1), k = state.range(2);
  vb::Buffer in = vb::random_floats(hw * hw * c, 12), w = vb::random_floats(k * k * c, 13), b = vb::random_floats(c, 14);
  vb::Buffer out = vb::aligned_floats(hw * hw * c);
  for (auto _ : state) {
    vk::dwconv<Arch>(hw, hw, c, in.get(), c, k, 1, k / 2, w.get(), b.get(), vk::Activation::none, nullptr, 0, out.get(), c);
    benchmark::ClobberMemory();
  }
  vb::set_flops(state, 2.0 * hw * hw * c * k * k);
}
#endif

void register_all() {
  const double min_time = 0.2;
  benchmark::RegisterBenchmark("peak/fp32_fma", peak<vb::fma_chains_flops>)->UseManualTime()->Iterations(10);
  benchmark::RegisterBenchmark("peak/bf16_fma", peak<vb::bf16_fma_chains_flops>)->UseManualTime()->Iterations(10);
  if (vb::bf16_dot_chains_flops(0.001) > 0)
    benchmark::RegisterBenchmark("peak/bf16_dot", peak<vb::bf16_dot_chains_flops>)->UseManualTime()->Iterations(10);
  if (vb::int8_dot_chains_ops(0.001) > 0)
    benchmark::RegisterBenchmark("peak/int8_dot", peak<vb::int8_dot_chains_ops>)->UseManualTime()->Iterations(10);

  // (K, N) of qkv, proj, fc1, fc2 for ViT-Ti (D=192), ViT-S (384), ViT-B (768).
  const int kn[][2] = {{192, 576}, {192, 192}, {192, 768}, {768, 192},  {384, 1152}, {384, 384},
                       {384, 1536}, {1536, 384}, {768, 2304}, {768, 768}, {768, 3072}, {3072, 768}};
  for (int threads : {1, 2})
    for (int m : {197, 257, 1370})
      for (const auto& s : kn)
        benchmark::RegisterBenchmark("gemm", gemm)->Args({m, s[0], s[1], threads})->ArgNames({"M", "K", "N", "threads"})
            ->UseRealTime()->MinTime(min_time);
  for (int m : {197, 1370})
    for (std::size_t i = 4; i < 12; ++i) {
      benchmark::RegisterBenchmark("gemm_bf16", gemm_reduced<vitcc::Precision::bf16>)->Args({m, kn[i][0], kn[i][1], 1})
          ->ArgNames({"M", "K", "N", "threads"})->UseRealTime()->MinTime(min_time);
      benchmark::RegisterBenchmark("gemm_int8", gemm_reduced<vitcc::Precision::int8>)->Args({m, kn[i][0], kn[i][1], 1})
          ->ArgNames({"M", "K", "N", "threads"})->UseRealTime()->MinTime(min_time);
    }
  for (int threads : {1, 2})
    for (int t : {197, 257, 1370}) {
      if (threads == 1)
        for (int hd : {64, 32})  // head dims 64 (ViT, DeiT, DINOv2) and 32 (the other size)
          benchmark::RegisterBenchmark("attention", attention)->Args({t, hd, 1, 1})->ArgNames({"T", "D", "heads", "threads"})
              ->UseRealTime()->MinTime(min_time);
      benchmark::RegisterBenchmark("attention", attention)->Args({t, 64, 6, threads})->ArgNames({"T", "D", "heads", "threads"})
          ->UseRealTime()->MinTime(min_time);
    }
  for (int threads : {1, 2}) {
    benchmark::RegisterBenchmark("patch_embed", patch_embed)->Args({224, 16, 384, threads})
        ->ArgNames({"img", "patch", "D", "threads"})->UseRealTime()->MinTime(min_time);
    benchmark::RegisterBenchmark("patch_embed", patch_embed)->Args({224, 16, 768, threads})
        ->ArgNames({"img", "patch", "D", "threads"})->UseRealTime()->MinTime(min_time);
    benchmark::RegisterBenchmark("patch_embed", patch_embed)->Args({518, 14, 384, threads})
        ->ArgNames({"img", "patch", "D", "threads"})->UseRealTime()->MinTime(min_time);
  }
  for (int rows : {197, 1370})
    for (int d : {384, 768})
      benchmark::RegisterBenchmark("layer_norm", layer_norm)->Args({rows, d})->ArgNames({"rows", "d"})
          ->UseRealTime()->MinTime(min_time);
  for (int n : {197 * 1536, 197 * 3072})
    benchmark::RegisterBenchmark("gelu", gelu)->Args({n})->ArgNames({"n"})->UseRealTime()->MinTime(min_time);
#if VITCC_BENCH_DWCONV
  // EfficientViT-M0/M5 at 224: stage maps 14x14, 7x7, 4x4; DWConv 3x3 on the stage width, the
  // cascaded attention's q convolutions 5x5/7x7 on 16-channel heads.
  const int dw[][3] = {{14, 64, 3}, {14, 192, 3}, {7, 288, 3}, {4, 384, 3}, {14, 16, 7}, {7, 16, 5}};
  for (const auto& s : dw)
    benchmark::RegisterBenchmark("dwconv", dwconv)->Args({s[0], s[1], s[2]})->ArgNames({"hw", "c", "k"})
        ->UseRealTime()->MinTime(min_time);
#endif
  // EfficientViT's pointwise convolutions (FFN of each stage) are GEMMs over the map's pixels.
  const int pw[][3] = {{196, 64, 128}, {196, 128, 64}, {196, 192, 384}, {196, 384, 192}, {49, 288, 576}, {49, 576, 288},
                       {16, 384, 768}, {16, 768, 384}};
  for (const auto& s : pw)
    benchmark::RegisterBenchmark("conv1x1", gemm)->Args({s[0], s[1], s[2], 1})->ArgNames({"M", "K", "N", "threads"})
        ->UseRealTime()->MinTime(min_time);
  for (int threads : {1, 2}) {
    benchmark::RegisterBenchmark("block", block)->Args({197, 384, threads})->ArgNames({"T", "D", "threads"})
        ->UseRealTime()->MinTime(min_time);
    benchmark::RegisterBenchmark("block", block)->Args({197, 768, threads})->ArgNames({"T", "D", "threads"})
        ->UseRealTime()->MinTime(min_time);
    benchmark::RegisterBenchmark("block", block)->Args({1370, 384, threads})->ArgNames({"T", "D", "threads"})
        ->UseRealTime()->MinTime(min_time);
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  const bool bf16_dot = vitcc::kernels::detail::bf16_path<Arch>() == vitcc::kernels::detail::Bf16Path::avx512;
  std::printf("vitcc kernels, arch %s, measured peaks of one core: fp32 %.1f GFLOP/s, bf16 %.1f GFLOP/s (%s), "
              "int8 %.1f GOP/s\n", Arch::name(), vb::peak_flops_1core() * 1e-9,
              vb::peak_flops_1core(vitcc::Precision::bf16) * 1e-9,
              bf16_dot ? "vdpbf16ps, VITCC_BF16_DOT" : "fp32 FMA on widened bf16 weights",
              vb::peak_flops_1core(vitcc::Precision::int8) * 1e-9);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
