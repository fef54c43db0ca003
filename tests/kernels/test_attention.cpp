#include <vitcc/kernels/attention.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "kernel_test_support.hpp"

using namespace vitcc::kernels;
using vitcc::test::Buffer;
using vitcc::test::Rng;

namespace {

// Head h's rows of out = softmax(s) V_h, s the t x t scores (overwritten), in double. mag (if given)
// receives sum_j p_j |v_j| / sum_j p_j per element: the scale of rounding P and V.
void softmax_times_v(std::size_t t, std::size_t d, std::size_t h, std::size_t hd, std::vector<double>& s,
                     const float* qkv, std::size_t ld_qkv, std::vector<double>& out,
                     std::vector<double>* mag = nullptr) {
  for (std::size_t i = 0; i < t; ++i) {
    double mx = -INFINITY, sum = 0;
    for (std::size_t j = 0; j < t; ++j) mx = std::fmax(mx, s[i * t + j]);
    for (std::size_t j = 0; j < t; ++j) sum += (s[i * t + j] = std::exp(s[i * t + j] - mx));
    for (std::size_t e = 0; e < hd; ++e) {
      double acc = 0, am = 0;
      for (std::size_t j = 0; j < t; ++j) {
        const double v = qkv[j * ld_qkv + 2 * d + h * hd + e];
        acc += s[i * t + j] * v;
        am += s[i * t + j] * std::fabs(v);
      }
      out[i * d + h * hd + e] = acc / sum;
      if (mag) (*mag)[i * d + h * hd + e] = am / sum;
    }
  }
}

// The definition, with the whole t x t matrix per head, in double.
std::vector<double> naive_attention(std::size_t t, std::size_t heads, std::size_t hd, float scale,
                                    const float* qkv, std::size_t ld_qkv) {
  const std::size_t d = heads * hd;
  std::vector<double> out(t * d), s(t * t);
  for (std::size_t h = 0; h < heads; ++h) {
    for (std::size_t i = 0; i < t; ++i)
      for (std::size_t j = 0; j < t; ++j) {
        double dot = 0;
        for (std::size_t e = 0; e < hd; ++e)
          dot += double(qkv[i * ld_qkv + h * hd + e]) * qkv[j * ld_qkv + d + h * hd + e];
        s[i * t + j] = dot * scale;
      }
    softmax_times_v(t, d, h, hd, s, qkv, ld_qkv, out);
  }
  return out;
}

// The int8 models' attention (kernels/attention.hpp): q_i and k_j quantised per token, symmetric,
// 127 levels (x * (127 / max|row|) rounded to nearest even, as gemm_q8.hpp specifies), exact integer
// dot products, scores = dot * (max|q_i| / 127) * (max|k_j| / 127) * scale; softmax and P V in double.
std::vector<double> naive_attention_q8(std::size_t t, std::size_t heads, std::size_t hd, float scale,
                                       const float* qkv, std::size_t ld_qkv, std::vector<double>* mag = nullptr) {
  const std::size_t d = heads * hd;
  if (mag) mag->assign(t * d, 0.0);
  auto quant = [&](const float* row, std::vector<long>& q) {
    float mx = 0.0f;
    for (std::size_t e = 0; e < hd; ++e) mx = std::fmax(mx, std::fabs(row[e]));
    const float inv = mx > 0.0f ? 127.0f / mx : 0.0f;
    for (std::size_t e = 0; e < hd; ++e) q[e] = std::lrint(std::fmin(127.0f, std::fmax(-127.0f, std::nearbyint(row[e] * inv))));
    return double(mx) / 127.0;
  };
  std::vector<double> out(t * d), s(t * t), sk(t);
  std::vector<long> qi(hd), kq(t * hd), tmp(hd);
  for (std::size_t h = 0; h < heads; ++h) {
    for (std::size_t j = 0; j < t; ++j) {
      sk[j] = quant(qkv + j * ld_qkv + d + h * hd, tmp);
      for (std::size_t e = 0; e < hd; ++e) kq[j * hd + e] = tmp[e];
    }
    for (std::size_t i = 0; i < t; ++i) {
      const double sq = quant(qkv + i * ld_qkv + h * hd, qi);
      for (std::size_t j = 0; j < t; ++j) {
        long dot = 0;
        for (std::size_t e = 0; e < hd; ++e) dot += qi[e] * kq[j * hd + e];
        s[i * t + j] = double(dot) * sq * sk[j] * scale;
      }
    }
    softmax_times_v(t, d, h, hd, s, qkv, ld_qkv, out, mag);
  }
  return out;
}

struct AttnCase {
  std::size_t t, heads, hd;
  float sharpness = 1.0f;  // multiplies the usual 1/sqrt(hd) scale: large values make softmax peaky
  std::size_t ld_pad = 0;
};

struct AttnRun {
  Buffer qkv, out;
  std::size_t ld_qkv, ld_out;
  float scale;
};

AttnRun make_inputs(const AttnCase& c, std::uint64_t seed) {
  const std::size_t d = c.heads * c.hd;
  const std::size_t ld_qkv = 3 * d + c.ld_pad, ld_out = d + 2 * c.ld_pad;
  AttnRun r{Buffer(c.t * ld_qkv), Buffer(c.t * ld_out, 321.0f), ld_qkv, ld_out,
            c.sharpness / std::sqrt(float(c.hd))};
  Rng rng(seed);
  rng.fill(r.qkv.data(), c.t * ld_qkv);
  // Later tokens get larger keys in some heads, so the running max keeps moving across key blocks
  // and the online-softmax rescale is exercised, not just the first block's max.
  for (std::size_t j = 0; j < c.t; ++j)
    for (std::size_t e = 0; e < c.hd; ++e) r.qkv[j * ld_qkv + d + e] *= 1.0f + 2.0f * float(j) / float(c.t);
  return r;
}

template <class Arch>
void run_case(const AttnCase& c, std::uint64_t seed) {
  INFO("t=" << c.t << " heads=" << c.heads << " head_dim=" << c.hd << " sharpness=" << c.sharpness
            << " ld_pad=" << c.ld_pad);
  const std::size_t d = c.heads * c.hd;
  AttnRun r = make_inputs(c, seed);
  const auto want = naive_attention(c.t, c.heads, c.hd, r.scale, r.qkv.data(), r.ld_qkv);
  Buffer scratch(attention_scratch_floats(c.t, c.hd));
  attention<Arch>(c.t, c.heads, c.hd, r.scale, r.qkv.data(), r.ld_qkv, r.out.data(), r.ld_out, scratch.data());
  // Outputs are convex combinations of |v| <= 1; float scores, exp and sums over t keys.
  VITCC_CHECK_CLOSE(vitcc::test::compare(r.out.data(), r.ld_out, want.data(), d, c.t, d, 2e-5));
  bool padding_intact = true;
  for (std::size_t i = 0; i < c.t; ++i)
    for (std::size_t j = d; j < r.ld_out; ++j) padding_intact = padding_intact && r.out[i * r.ld_out + j] == 321.0f;
  CHECK(padding_intact);
  CHECK(r.out.guard_intact());
  CHECK(scratch.guard_intact());
}

}  // namespace

TEST_CASE("ref::attention matches the full-matrix definition") {
  for (const AttnCase c : {AttnCase{1, 1, 1}, AttnCase{5, 2, 3, 1.0f, 1}, AttnCase{17, 3, 24, 4.0f},
                           AttnCase{70, 2, 64, 8.0f, 3}}) {
    INFO("t=" << c.t << " heads=" << c.heads << " head_dim=" << c.hd);
    const std::size_t d = c.heads * c.hd;
    AttnRun r = make_inputs(c, 99);
    const auto want = naive_attention(c.t, c.heads, c.hd, r.scale, r.qkv.data(), r.ld_qkv);
    Buffer scratch(attention_scratch_floats(c.t, c.hd));
    ref::attention(c.t, c.heads, c.hd, r.scale, r.qkv.data(), r.ld_qkv, r.out.data(), r.ld_out, scratch.data());
    VITCC_CHECK_CLOSE(vitcc::test::compare(r.out.data(), r.ld_out, want.data(), d, c.t, d, 1e-5));
  }
  // A hand-checkable case: one query, two keys with scores 0 and log(3) -> weights 1/4, 3/4.
  const float qkv[2 * 3] = {1.0f, 0.0f, 10.0f, 0.0f, std::log(3.0f), 20.0f};  // rows: (q, k, v)
  float out[2], scratch[attention_scratch_floats(2, 1)];
  ref::attention(2, 1, 1, 1.0f, qkv, 3, out, 1, scratch);
  // query 0: q=1, keys k0=0, k1=log 3 -> softmax(0, log 3) = (1/4, 3/4) -> 0.25*10 + 0.75*20
  CHECK(out[0] == doctest::Approx(17.5).epsilon(1e-6));
}

TEST_CASE("attention_scratch_floats covers the packed head, one block and the reference's row") {
  for (std::size_t t : {1, 16, 197, 1370})
    for (std::size_t hd : {1, 24, 64}) {
      CHECK(attention_scratch_floats(t, hd) >= t);
      CHECK(attention_scratch_floats(t, hd) >= attention_packed_kv_floats(t, hd) + attention_block_scratch_floats());
      CHECK(attention_packed_kv_floats(t, hd) % 16 == 0);  // keeps the block scratch 64-byte aligned
    }
}

TEST_CASE_TEMPLATE_DEFINE("attention: sequence lengths around every block, several head sizes", Arch, attn_shapes) {
  std::uint64_t seed = 1;
  // t around the 16-key panel, the query block (48) and one, two and three key blocks (256), so the
  // online-softmax rescale runs; head_dim odd, below, equal and above one panel.
  static_assert(attention_block_q == 48 && attention_block_k == 256, "update the lengths below");
  for (std::size_t t : {1, 2, 15, 16, 17, 47, 48, 49, 197, 255, 256, 257, 513, 600})
    for (std::size_t hd : {1, 7, 16, 24, 32, 40, 64})
      run_case<Arch>(AttnCase{t, 2, hd, 1.0f, t % 2}, seed++);
}
TEST_CASE_TEMPLATE_APPLY(attn_shapes, vitcc::test::kernel_archs);

TEST_CASE_TEMPLATE_DEFINE("attention: peaky softmax and ViT sizes", Arch, attn_vit) {
  // Sharp softmax (scores of tens): a wrong running max or rescale shows as O(1) errors.
  run_case<Arch>(AttnCase{197, 3, 64, 8.0f, 0}, 11);
  run_case<Arch>(AttnCase{260, 2, 40, 16.0f, 5}, 12);
  // ViT-S/16 at 224 and DINOv2-S/14 at 518 (two of its six heads, to keep the double reference quick).
  run_case<Arch>(AttnCase{197, 6, 64, 1.0f, 0}, 13);
  run_case<Arch>(AttnCase{1370, 2, 64, 1.0f, 0}, 14);
}
TEST_CASE_TEMPLATE_APPLY(attn_vit, vitcc::test::kernel_archs);

template <class Arch>
void run_case_q8(const AttnCase& c, std::uint64_t seed) {
  INFO("int8 t=" << c.t << " heads=" << c.heads << " head_dim=" << c.hd << " sharpness=" << c.sharpness
                 << " ld_pad=" << c.ld_pad);
  const std::size_t d = c.heads * c.hd;
  AttnRun r = make_inputs(c, seed);
  std::vector<double> mag;
  const auto want = naive_attention_q8(c.t, c.heads, c.hd, r.scale, r.qkv.data(), r.ld_qkv, &mag);
  Buffer scratch(attention_scratch_floats(c.t, c.hd, vitcc::Precision::int8));
  attention<Arch, vitcc::Precision::int8>(c.t, c.heads, c.hd, r.scale, r.qkv.data(), r.ld_qkv, r.out.data(), r.ld_out,
                                          scratch.data());
  // The scores are exact up to the float epilogue's two products, then the float softmax and P V.
  // With P.v in bfloat16 (VITCC_BF16_PV) each product p_j v_j is off by at most two bfloat16
  // roundings (8 significant bits: 2^-8 each), 2^-7 of p_j |v_j|: the bound adds 2^-7 of
  // sum_j p_j |v_j| / sum_j p_j.
  const bool pv_bf16 = detail::attention_pv_bf16<Arch, vitcc::Precision::int8>();
  VITCC_CHECK_CLOSE(vitcc::test::compare(r.out.data(), r.ld_out, want.data(), d, c.t, d, 2e-5, mag.data(),
                                         pv_bf16 ? 1.0 / 128.0 : 0.0));
  bool padding_intact = true;
  for (std::size_t i = 0; i < c.t; ++i)
    for (std::size_t j = d; j < r.ld_out; ++j) padding_intact = padding_intact && r.out[i * r.ld_out + j] == 321.0f;
  CHECK(padding_intact);
  CHECK(r.out.guard_intact());
  CHECK(scratch.guard_intact());
}

TEST_CASE_TEMPLATE_DEFINE("attention, int8 scores: lengths, head sizes, ViT sizes", Arch, attn_q8) {
  const std::string pv_path = std::string(Arch::name()) + ": P.v in " +
                              (detail::attention_pv_bf16<Arch, vitcc::Precision::int8>()
                                   ? "bfloat16 (vdpbf16ps, VITCC_BF16_PV)"
                                   : "float32");
  MESSAGE(pv_path);
#if defined(VITCC_TEST_EXPECT_BF16_PV)
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) REQUIRE(detail::attention_pv_bf16<Arch, vitcc::Precision::int8>());
#endif
  std::uint64_t seed = 101;
  for (std::size_t t : {1, 2, 17, 48, 49, 256, 257, 600})
    for (std::size_t hd : {1, 7, 24, 64})
      run_case_q8<Arch>(AttnCase{t, 2, hd, 1.0f, t % 2}, seed++);
  run_case_q8<Arch>(AttnCase{197, 3, 64, 8.0f, 0}, 111);  // peaky softmax
  run_case_q8<Arch>(AttnCase{197, 6, 64, 1.0f, 0}, 112);  // ViT-S/16 at 224
  run_case_q8<Arch>(AttnCase{1370, 1, 64, 1.0f, 0}, 113); // DINOv2-S/14 at 518, one head
}
TEST_CASE_TEMPLATE_APPLY(attn_q8, vitcc::test::kernel_archs);

// The claim of kernels/attention.hpp: every path computes the same int8 scores, bit for bit (exact
// int32 sums, the same two float products), here each SIMD path against the scalar one, from packs
// each path made itself (VNNI stores q offset by 128).
template <class Arch>
std::vector<float> q8_scores(std::size_t t, std::size_t hd, const AttnRun& r, std::size_t heads) {
  Buffer pack(attention_q8_qk_floats(t, hd));
  std::vector<float> s(t * t);
  detail::attention_pack_q8<Arch>(t, heads, hd, r.scale, r.qkv.data(), r.ld_qkv, 1, pack.data());
  const detail::AttentionQ8 view = detail::attention_q8_view(pack.data(), t, hd);
  for (std::size_t i0 = 0; i0 < t; i0 += 5) {  // odd row blocks, all keys from j0 = 0
    const std::size_t nq = t - i0 < 5 ? t - i0 : 5;
    detail::attention_scores_q8<Arch>(view, hd, i0, nq, 0, t, s.data() + i0 * t, t);
  }
  CHECK(pack.guard_intact());
  return s;
}

TEST_CASE_TEMPLATE_DEFINE("attention, int8 scores: every path gives the scalar path's bits", Arch, attn_q8_bits) {
  for (std::size_t t : {17, 197})
    for (std::size_t hd : {7, 64}) {
      CAPTURE(t);
      CAPTURE(hd);
      const AttnRun r = make_inputs(AttnCase{t, 2, hd, 1.0f, 0}, 7 * t + hd);
      const std::vector<float> want = q8_scores<vitcc::scalar_arch>(t, hd, r, 2);
      const std::vector<float> got = q8_scores<Arch>(t, hd, r, 2);
      std::size_t differ = 0;
      for (std::size_t i = 0; i < want.size(); ++i) differ += std::memcmp(&want[i], &got[i], sizeof(float)) != 0;
      CHECK(differ == 0);
    }
}
TEST_CASE_TEMPLATE_APPLY(attn_q8_bits, vitcc::test::kernel_archs);

TEST_CASE("attention_scratch_floats at int8 covers the int8 pack, a block and the scalar row") {
  using vitcc::Precision;
  for (std::size_t t : {1, 16, 197, 1370})
    for (std::size_t hd : {1, 24, 64}) {
      CHECK(attention_scratch_floats(t, hd, Precision::int8) >= attention_q8_qk_floats(t, hd) + t);
      CHECK(attention_scratch_floats(t, hd, Precision::int8) >=
            attention_packed_kv_floats(t, hd, Precision::int8) + attention_block_scratch_floats());
      CHECK(attention_packed_kv_floats(t, hd, Precision::int8) % 16 == 0);
      CHECK(attention_q8_qk_floats(t, hd) * sizeof(float) >= attention_q8_qk_bytes(t, hd));
    }
}
