// EfficientViT kernels, for every architecture the build targets (the scalar path included), against
// naive definitions written here from the operations' meaning -- a PyTorch-layout depthwise conv, an
// unfused softmax attention, an index-by-index im2col, a spelled-out squeeze-excite -- in double,
// sharing no code with the library (the references read PyTorch-layout weights; the kernels get
// theirs packed by the library's packing where their API asks for it):
//   depthwise conv (k 3/5/7, stride 1/2, channel counts below/at/above the SIMD width, strided rows,
//   fused bias/ReLU/residual add); small-window attention with an additive bias (odd token counts,
//   value dims that are not multiples of the SIMD width); im2col of a CHW image and of an NHWC map;
//   squeeze-excite (channel counts off the SIMD width). The reduced-precision weights (bfloat16 and
//   int8 depthwise conv weights, a bfloat16 attention bias) are made here bit by bit, and the
//   references use the values those bits stand for.
// Thread-split invariance of these kernels is tested in test_split_invariance.cpp.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <cstddef>
#include <utility>
#include <vector>

#include "kernel_test_support.hpp"
#include "vitcc/kernels/dwconv.hpp"
#include "vitcc/kernels/im2col.hpp"
#include "vitcc/kernels/squeeze_excite.hpp"
#include "vitcc/kernels/window_attention.hpp"

namespace {

using vitcc::kernels::Activation;

std::vector<float> randv(std::size_t n, unsigned seed, float scale = 1.0f) {
  std::vector<float> v(n);
  unsigned s = seed * 2654435761u + 1;
  for (float& x : v) {
    s = s * 1664525u + 1013904223u;
    x = scale * (float((s >> 8) & 0xffff) / 32768.0f - 1.0f);
  }
  return v;
}

// got within 2e-5 x (1 + |want|) of want, everywhere.
void expect_close(const std::vector<float>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  double worst = 0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double e = std::isnan(got[i]) ? INFINITY : std::fabs(double(got[i]) - want[i]) / (1.0 + std::fabs(want[i]));
    if (e > worst) worst = e, at = i;
  }
  INFO("worst relative error ", worst, " at ", at, ": got ", got[at], ", want ", want[at]);
  CHECK(worst <= 2e-5);
}

// Depthwise conv as PyTorch defines it: input [c, h, w] read from an NHWC buffer (row stride ld),
// weight [c, 1, k, k] (the kernel's [k*k, c] layout is transposed here), zero padding k / 2.
template <class WV>
std::vector<double> naive_dwconv(std::size_t h, std::size_t w, std::size_t c, const std::vector<float>& in,
                                 std::size_t ld, std::size_t k, std::size_t stride, const std::vector<WV>& w_kkc,
                                 const std::vector<float>& bias, Activation act, const std::vector<float>* add) {
  const long pad = long(k / 2);
  const std::size_t oh = (h + 2 * (k / 2) - k) / stride + 1, ow = (w + 2 * (k / 2) - k) / stride + 1;
  std::vector<double> out(oh * ow * c);
  for (std::size_t ch = 0; ch < c; ++ch)
    for (std::size_t y = 0; y < oh; ++y)
      for (std::size_t x = 0; x < ow; ++x) {
        double s = bias[ch];
        for (std::size_t i = 0; i < k; ++i)
          for (std::size_t j = 0; j < k; ++j) {
            const long iy = long(y * stride + i) - pad, ix = long(x * stride + j) - pad;
            if (iy >= 0 && iy < long(h) && ix >= 0 && ix < long(w))
              s += double(in[(std::size_t(iy) * w + std::size_t(ix)) * ld + ch]) * double(w_kkc[(i * k + j) * c + ch]);
          }
        if (act == Activation::relu) s = std::max(s, 0.0);
        if (add) s += (*add)[(y * ow + x) * c + ch];
        out[(y * ow + x) * c + ch] = s;
      }
  return out;
}

// softmax(scale q k^T + bias) v with the full score matrix, for n tokens.
std::vector<double> naive_window_attention(std::size_t n, std::size_t kd, std::size_t vd, double scale,
                                           const std::vector<float>& qkv, std::size_t ld, const std::vector<float>* bias) {
  std::vector<double> scores(n * n), out(n * vd, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    double mx = -INFINITY;
    for (std::size_t j = 0; j < n; ++j) {
      double d = 0;
      for (std::size_t e = 0; e < kd; ++e) d += double(qkv[i * ld + e]) * qkv[j * ld + kd + e];
      scores[i * n + j] = d * scale + (bias ? double((*bias)[i * n + j]) : 0.0);
      mx = std::max(mx, scores[i * n + j]);
    }
    double z = 0;
    for (std::size_t j = 0; j < n; ++j) z += std::exp(scores[i * n + j] - mx);
    for (std::size_t j = 0; j < n; ++j) {
      const double p = std::exp(scores[i * n + j] - mx) / z;
      for (std::size_t e = 0; e < vd; ++e) out[i * vd + e] += p * qkv[j * ld + 2 * kd + e];
    }
  }
  return out;
}

// Random bfloat16 bits (the upper half of a random float32's bits: truncation, so that the test does
// not share the library's rounding) and the float32 values they stand for.
std::vector<std::uint16_t> bf16_bits(const std::vector<float>& v, std::vector<float>& values) {
  std::vector<std::uint16_t> h(v.size());
  values.resize(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::uint32_t u;
    std::memcpy(&u, &v[i], 4);
    h[i] = std::uint16_t(u >> 16);
    u = std::uint32_t(h[i]) << 16;
    std::memcpy(&values[i], &u, 4);
  }
  return h;
}

// Random int8 weights [taps, c] in [-127, 127] with a random positive scale per channel, and the
// weight each stands for (q * scale, as a double).
struct Int8Weights {
  std::vector<std::int8_t> q;
  std::vector<float> scale;
  std::vector<double> values;
};
Int8Weights int8_weights(std::size_t taps, std::size_t c, unsigned seed) {
  Int8Weights w;
  const auto r = randv(taps * c, seed), s = randv(c, seed + 1);
  w.q.resize(taps * c);
  w.values.resize(taps * c);
  w.scale.resize(c);
  for (std::size_t ch = 0; ch < c; ++ch) w.scale[ch] = 0.002f + 0.01f * std::fabs(s[ch]);
  for (std::size_t i = 0; i < taps * c; ++i) {
    w.q[i] = std::int8_t(std::lround(r[i] * 127.0f));
    w.values[i] = double(w.q[i]) * double(w.scale[i % c]);
  }
  return w;
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("dwconv: kernel sizes, strides, odd channels, strided rows, fused epilogue", Arch, dw_shapes) {
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
    std::vector<float> got(oh * ow * t.c);
    vitcc::kernels::dwconv<Arch>(t.h, t.w, t.c, in.data(), t.ld, t.k, t.stride, pad, wt.data(), b.data(), t.act,
                                 t.add ? add.data() : nullptr, t.c, got.data(), t.c);
    expect_close(got, naive_dwconv(t.h, t.w, t.c, in, t.ld, t.k, t.stride, wt, b, t.act, t.add ? &add : nullptr));
  }
}
TEST_CASE_TEMPLATE_APPLY(dw_shapes, vitcc::test::kernel_archs);

// The bf16 and int8 blobs' depthwise weights: the same shapes, plus a kernel side above
// dwconv_max_k (the per-channel path), and a channel count that fills whole SIMD batches only.
TEST_CASE_TEMPLATE_DEFINE("dwconv: bfloat16 and int8 (per-channel scale) weights", Arch, dw_low_shapes) {
  struct Case { std::size_t h, w, c, ld, k, stride; Activation act; bool add; };
  const Case cases[] = {{7, 7, 16, 16, 5, 1, Activation::none, false}, {14, 14, 64, 64, 3, 1, Activation::none, true},
                        {13, 9, 37, 50, 7, 1, Activation::relu, false}, {14, 14, 256, 256, 3, 2, Activation::relu, false},
                        {7, 7, 3, 7, 3, 2, Activation::none, true},    {5, 6, 17, 17, 5, 1, Activation::relu, true},
                        {4, 4, 16, 80, 7, 1, Activation::none, false}, {1, 1, 9, 9, 3, 1, Activation::none, false},
                        {15, 15, 33, 33, 13, 1, Activation::relu, true}, {8, 8, 32, 48, 3, 1, Activation::none, true}};
  for (const Case& t : cases) {
    CAPTURE(t.h); CAPTURE(t.w); CAPTURE(t.c); CAPTURE(t.k); CAPTURE(t.stride);
    const std::size_t pad = t.k / 2;
    const std::size_t oh = vitcc::kernels::conv_out_size(t.h, t.k, t.stride, pad);
    const std::size_t ow = vitcc::kernels::conv_out_size(t.w, t.k, t.stride, pad);
    const auto in = randv(t.h * t.w * t.ld, 1), b = randv(t.c, 3);
    const auto add = randv(oh * ow * t.c, 4);
    std::vector<float> got(oh * ow * t.c);
    {
      std::vector<float> values;
      const auto bits = bf16_bits(randv(t.k * t.k * t.c, 2), values);
      vitcc::kernels::dwconv<Arch, std::uint16_t>(t.h, t.w, t.c, in.data(), t.ld, t.k, t.stride, pad, bits.data(), nullptr,
                                                  b.data(), t.act, t.add ? add.data() : nullptr, t.c, got.data(), t.c);
      INFO("bfloat16 weights");
      expect_close(got, naive_dwconv(t.h, t.w, t.c, in, t.ld, t.k, t.stride, values, b, t.act, t.add ? &add : nullptr));
    }
    {
      const Int8Weights q = int8_weights(t.k * t.k, t.c, 7);
      vitcc::kernels::dwconv<Arch, std::int8_t>(t.h, t.w, t.c, in.data(), t.ld, t.k, t.stride, pad, q.q.data(),
                                                q.scale.data(), b.data(), t.act, t.add ? add.data() : nullptr, t.c,
                                                got.data(), t.c);
      INFO("int8 weights");
      expect_close(got, naive_dwconv(t.h, t.w, t.c, in, t.ld, t.k, t.stride, q.values, b, t.act, t.add ? &add : nullptr));
    }
  }
}
TEST_CASE_TEMPLATE_APPLY(dw_low_shapes, vitcc::test::kernel_archs);

TEST_CASE("im2col: every column is the input pixel its index names, or the zero padding") {
  // A CHW image (3 x 9 x 7) and an NHWC map (9 x 7 x 5), 3x3 stride 2 pad 1: 5 x 4 output pixels.
  const std::size_t h = 9, w = 7, oh = 5, ow = 4, k = 3, stride = 2;
  for (std::size_t cin : {std::size_t(3), std::size_t(5)}) {
    const bool chw = cin == 3;
    const auto in = randv(h * w * cin, 7);
    auto at = [&](long y, long x, std::size_t ch) -> float {
      if (y < 0 || y >= long(h) || x < 0 || x >= long(w)) return 0.0f;
      return chw ? in[(ch * h + std::size_t(y)) * w + std::size_t(x)] : in[(std::size_t(y) * w + std::size_t(x)) * cin + ch];
    };
    const std::size_t ps = chw ? 1 : cin, cs = chw ? h * w : 1, kk = k * k * cin;
    std::vector<float> all(oh * ow * kk, -1.0f);
    vitcc::kernels::im2col(h, w, cin, in.data(), ps, cs, k, stride, 1, all.data());
    std::size_t wrong = 0;
    for (std::size_t o = 0; o < oh * ow; ++o)
      for (std::size_t ky = 0; ky < k; ++ky)
        for (std::size_t kx = 0; kx < k; ++kx)
          for (std::size_t ch = 0; ch < cin; ++ch) {
            const long y = long((o / ow) * stride + ky) - 1, x = long((o % ow) * stride + kx) - 1;
            wrong += all[o * kk + (ky * k + kx) * cin + ch] != at(y, x, ch);
          }
    CAPTURE(cin);
    CHECK(wrong == 0);
    // A pixel range (the model's chunks) fills exactly its rows, from row 0 of the buffer.
    for (std::size_t p0 : {std::size_t(0), std::size_t(3), std::size_t(7)})
      for (std::size_t p1 : {p0 + 1, std::size_t(20)}) {
        std::vector<float> part((p1 - p0) * kk, -1.0f);
        vitcc::kernels::im2col_rows(p0, p1, h, w, cin, in.data(), ps, cs, k, stride, 1, part.data());
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
    const auto qkv = randv(t.n * t.ld, 5, 2.0f), bias = randv(t.n * t.n, 6);
    std::vector<float> scratch(vitcc::kernels::window_attention_scratch_floats(t.n, t.kd) + 64);
    std::vector<float> got(t.n * t.vd);
    const float* q = qkv.data();
    vitcc::kernels::window_attention<Arch>(t.n, t.kd, t.vd, 0.25f * 3, q, t.ld, q + t.kd, t.ld, q + 2 * t.kd, t.ld,
                                           t.bias ? bias.data() : nullptr, got.data(), t.vd, scratch.data());
    expect_close(got, naive_window_attention(t.n, t.kd, t.vd, 0.25 * 3, qkv, t.ld, t.bias ? &bias : nullptr));
  }
}
TEST_CASE_TEMPLATE_APPLY(wa_shapes, vitcc::test::kernel_archs);

TEST_CASE_TEMPLATE_DEFINE("window_attention: a bfloat16 bias (bf16 and int8 blobs)", Arch, wa_bf16_bias) {
  struct Case { std::size_t n, kd, vd, ld; };
  const Case cases[] = {{49, 16, 16, 48}, {49, 16, 96, 128}, {16, 16, 48, 80}, {23, 5, 13, 31}};
  for (const Case& t : cases) {
    CAPTURE(t.n); CAPTURE(t.kd); CAPTURE(t.vd);
    const auto qkv = randv(t.n * t.ld, 5, 2.0f);
    std::vector<float> bias;
    const auto bits = bf16_bits(randv(t.n * t.n, 6, 3.0f), bias);
    std::vector<float> scratch(vitcc::kernels::window_attention_scratch_floats(t.n, t.kd) + 64);
    std::vector<float> got(t.n * t.vd);
    const float* q = qkv.data();
    vitcc::kernels::window_attention<Arch>(t.n, t.kd, t.vd, 0.25f * 3, q, t.ld, q + t.kd, t.ld, q + 2 * t.kd, t.ld,
                                           bits.data(), got.data(), t.vd, scratch.data());
    expect_close(got, naive_window_attention(t.n, t.kd, t.vd, 0.25 * 3, qkv, t.ld, &bias));
  }
}
TEST_CASE_TEMPLATE_APPLY(wa_bf16_bias, vitcc::test::kernel_archs);

TEST_CASE("expand_relative_bias: timm's attention_biases[:, attention_bias_idxs]") {
  for (std::size_t win : {1, 2, 4, 7}) {
    CAPTURE(win);
    // timm CascadedGroupAttention: offsets numbered as first seen over itertools.product(points, points)
    std::vector<std::pair<std::size_t, std::size_t>> offsets;
    std::vector<std::size_t> idxs;
    for (std::size_t p1 = 0; p1 < win * win; ++p1)
      for (std::size_t p2 = 0; p2 < win * win; ++p2) {
        const long dy = std::labs(long(p1 / win) - long(p2 / win)), dx = std::labs(long(p1 % win) - long(p2 % win));
        const std::pair<std::size_t, std::size_t> o{std::size_t(dy), std::size_t(dx)};
        auto it = std::find(offsets.begin(), offsets.end(), o);
        if (it == offsets.end()) it = offsets.insert(offsets.end(), o);
        idxs.push_back(std::size_t(it - offsets.begin()));
      }
    REQUIRE(offsets.size() == win * win);
    const auto table = randv(win * win, 9);
    std::vector<float> got(win * win * win * win);
    vitcc::kernels::expand_relative_bias(table.data(), win, got.data());
    for (std::size_t e = 0; e < got.size(); ++e) REQUIRE(got[e] == table[idxs[e]]);
  }
}

TEST_CASE_TEMPLATE_DEFINE("squeeze_excite: x *= sigmoid(fc2(relu(fc1(mean of x))))", Arch, se_shapes) {
  // (pixels, channels, reduced channels): EfficientViT-M's patch merging (4c hidden, make_divisible(c, 8))
  // and widths off every SIMD width.
  const std::size_t cases[][3] = {{49, 256, 64}, {16, 768, 192}, {9, 37, 8}, {1, 16, 8}, {25, 130, 40}};
  for (const auto& cs : cases) {
    const std::size_t p = cs[0], c = cs[1], rd = cs[2];
    CAPTURE(p); CAPTURE(c); CAPTURE(rd);
    const auto x0 = randv(p * c, 11, 3.0f), w1 = randv(rd * c, 12, 0.3f), b1 = randv(rd, 13, 0.2f);
    const auto w2 = randv(c * rd, 14, 0.3f), b2 = randv(c, 15, 0.2f);
    // The definition, from PyTorch-layout weights [out, in].
    std::vector<double> mean(c, 0.0), hidden(rd), want(p * c);
    for (std::size_t i = 0; i < p; ++i)
      for (std::size_t j = 0; j < c; ++j) mean[j] += x0[i * c + j] / double(p);
    for (std::size_t r = 0; r < rd; ++r) {
      double s = b1[r];
      for (std::size_t j = 0; j < c; ++j) s += double(w1[r * c + j]) * mean[j];
      hidden[r] = std::max(s, 0.0);
    }
    for (std::size_t j = 0; j < c; ++j) {
      double s = b2[j];
      for (std::size_t r = 0; r < rd; ++r) s += double(w2[j * rd + r]) * hidden[r];
      const double gate = 1.0 / (1.0 + std::exp(-s));
      for (std::size_t i = 0; i < p; ++i) want[i * c + j] = x0[i * c + j] * gate;
    }
    // The kernel takes fc1/fc2 packed as the packer packs 1x1 convs.
    std::vector<float> p1(vitcc::kernels::packed_b_floats(c, rd)), p2(vitcc::kernels::packed_b_floats(rd, c));
    vitcc::kernels::pack_b_from_linear(w1.data(), c, rd, p1.data());
    vitcc::kernels::pack_b_from_linear(w2.data(), rd, c, p2.data());
    std::vector<float> x = x0, scratch(vitcc::kernels::squeeze_excite_scratch_floats(c, rd));
    vitcc::kernels::squeeze_excite<Arch>(p, c, rd, x.data(), vitcc::kernels::PackedB{p1.data()}, b1.data(),
                                         vitcc::kernels::PackedB{p2.data()}, b2.data(), scratch.data());
    expect_close(x, want);
  }
}
TEST_CASE_TEMPLATE_APPLY(se_shapes, vitcc::test::kernel_archs);
