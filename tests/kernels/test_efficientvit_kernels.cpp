// EfficientViT kernels against their scalar references, for every architecture the build targets:
// depthwise conv (k 3/5/7, stride 1/2, channel counts below/at/above the SIMD width, strided rows,
// fused bias/ReLU/residual add) and small-window attention with an additive bias (odd token counts,
// value dims that are not multiples of the SIMD width).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <utility>
#include <vector>

#include "kernel_test_support.hpp"
#include "vitcc/core/thread_pool.hpp"
#include "vitcc/kernels/dwconv.hpp"
#include "vitcc/kernels/im2col.hpp"
#include "vitcc/kernels/window_attention.hpp"

namespace {

std::vector<float> randv(std::size_t n, unsigned seed) {
  std::vector<float> v(n);
  unsigned s = seed * 2654435761u + 1;
  for (float& x : v) {
    s = s * 1664525u + 1013904223u;
    x = float((s >> 8) & 0xffff) / 32768.0f - 1.0f;
  }
  return v;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    worst = std::fmax(worst, std::fabs(double(got[i]) - want[i]) / (1.0 + std::fabs(double(want[i]))));
  CHECK(worst <= 2e-5);
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("dwconv: kernel sizes, strides, odd channels, strided rows, fused epilogue", Arch, dw_shapes) {
  using vitcc::kernels::Activation;
  struct Case { std::size_t h, w, c, ld, k, stride; Activation act; bool add; };
  const Case cases[] = {{7, 7, 16, 16, 5, 1, Activation::none, false}, {14, 14, 64, 64, 3, 1, Activation::none, true},
                        {13, 9, 37, 50, 7, 1, Activation::relu, false}, {14, 14, 256, 256, 3, 2, Activation::relu, false},
                        {7, 7, 3, 7, 3, 2, Activation::none, true},    {5, 6, 17, 17, 5, 1, Activation::relu, true},
                        {4, 4, 16, 80, 7, 1, Activation::none, false}, {1, 1, 9, 9, 3, 1, Activation::none, false}};
  for (const Case& t : cases) {
    CAPTURE(t.h); CAPTURE(t.w); CAPTURE(t.c); CAPTURE(t.k); CAPTURE(t.stride);
    const std::size_t pad = t.k / 2;
    const std::size_t oh = vitcc::kernels::conv_out_size(t.h, t.k, t.stride, pad);
    const std::size_t ow = vitcc::kernels::conv_out_size(t.w, t.k, t.stride, pad);
    const auto in = randv(t.h * t.w * t.ld, 1), wt = randv(t.k * t.k * t.c, 2), b = randv(t.c, 3);
    const auto add = randv(oh * ow * t.c, 4);
    std::vector<float> got(oh * ow * t.c), want(oh * ow * t.c);
    vitcc::kernels::dwconv<Arch>(t.h, t.w, t.c, in.data(), t.ld, t.k, t.stride, pad, wt.data(), b.data(), t.act,
                                 t.add ? add.data() : nullptr, t.c, got.data(), t.c);
    vitcc::kernels::ref::dwconv(t.h, t.w, t.c, in.data(), t.ld, t.k, t.stride, pad, wt.data(), b.data(), t.act,
                                t.add ? add.data() : nullptr, t.c, want.data(), t.c);
    expect_close(got, want);
    // Spread over three workers (one task per output row): the same bits as on one thread.
    vitcc::ThreadPool pool(3);
    const vitcc::Executor ex = pool.executor();
    std::vector<float> par(got.size());
    vitcc::kernels::dwconv<Arch>(&ex, t.h, t.w, t.c, in.data(), t.ld, t.k, t.stride, pad, wt.data(), b.data(), t.act,
                                 t.add ? add.data() : nullptr, t.c, par.data(), t.c);
    CHECK(par == got);
  }
}
TEST_CASE_TEMPLATE_APPLY(dw_shapes, vitcc::test::kernel_archs);

TEST_CASE("im2col_rows: any pixel range equals the same rows of the whole im2col") {
  // A CHW image (3 x 9 x 7) and an NHWC map (9 x 7 x 5), 3x3 stride 2 pad 1: 5 x 4 output pixels.
  const std::size_t h = 9, w = 7, oh = 5, ow = 4;
  for (std::size_t cin : {std::size_t(3), std::size_t(5)}) {
    const bool chw = cin == 3;
    const auto in = randv(h * w * cin, 7);
    const std::size_t ps = chw ? 1 : cin, cs = chw ? h * w : 1, kk = 9 * cin;
    std::vector<float> all(oh * ow * kk);
    vitcc::kernels::im2col(h, w, cin, in.data(), ps, cs, 3, 2, 1, all.data());
    // spot-check the definition: output pixel (1, 2) tap (0, 0) reads input (1, 3); tap (0,0) of (0, 0) is padding
    CHECK(all[(1 * ow + 2) * kk + 0] == in[(1 * w + 3) * ps]);
    CHECK(all[0] == 0.0f);
    for (std::size_t p0 : {std::size_t(0), std::size_t(3), std::size_t(7)})
      for (std::size_t p1 : {p0 + 1, std::size_t(20)}) {
        std::vector<float> part((p1 - p0) * kk, -1.0f);
        vitcc::kernels::im2col_rows(p0, p1, h, w, cin, in.data(), ps, cs, 3, 2, 1, part.data());
        CHECK(std::equal(part.begin(), part.end(), all.begin() + std::ptrdiff_t(p0 * kk)));
      }
  }
}

TEST_CASE_TEMPLATE_DEFINE("window_attention: token counts, key/value dims, bias", Arch, wa_shapes) {
  struct Case { std::size_t n, kd, vd, ld; bool bias; };
  const Case cases[] = {{49, 16, 16, 48, true}, {49, 16, 96, 128, true}, {16, 16, 48, 80, true},
                        {1, 16, 16, 48, true},  {23, 5, 13, 31, false}, {49, 16, 64, 96, true}};
  for (const Case& t : cases) {
    CAPTURE(t.n); CAPTURE(t.kd); CAPTURE(t.vd);
    const auto qkv = randv(t.n * t.ld, 5), bias = randv(t.n * t.n, 6);
    std::vector<float> scratch(vitcc::kernels::window_attention_scratch_floats(t.n, t.kd) + 64);
    std::vector<float> got(t.n * t.vd), want(t.n * t.vd);
    const float* q = qkv.data();
    const float* k = qkv.data() + t.kd;
    const float* v = qkv.data() + 2 * t.kd;
    vitcc::kernels::window_attention<Arch>(t.n, t.kd, t.vd, 0.25f * 3, q, t.ld, k, t.ld, v, t.ld,
                                           t.bias ? bias.data() : nullptr, got.data(), t.vd, scratch.data());
    vitcc::kernels::ref::window_attention(t.n, t.kd, t.vd, 0.25f * 3, q, t.ld, k, t.ld, v, t.ld,
                                          t.bias ? bias.data() : nullptr, want.data(), t.vd, scratch.data());
    expect_close(got, want);
    // Query rows in two ranges (how a window is split over workers): the same bits.
    std::vector<float> split(got.size());
    const std::size_t mid = t.n / 2;
    for (const auto& r : {std::pair<std::size_t, std::size_t>{0, mid}, {mid, t.n}})
      vitcc::kernels::window_attention_rows<Arch>(r.first, r.second, t.n, t.kd, t.vd, 0.25f * 3, q, t.ld, k, t.ld, v,
                                                  t.ld, t.bias ? bias.data() : nullptr, split.data(), t.vd,
                                                  scratch.data());
    CHECK(split == got);
  }
}
TEST_CASE_TEMPLATE_APPLY(wa_shapes, vitcc::test::kernel_archs);
