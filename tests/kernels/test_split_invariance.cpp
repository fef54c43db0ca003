// Every kernel's result depends on the shapes only, never on how its work is split (issue 20).
//
// For each kernel and each architecture the build runs (the scalar path included), the output of
// the serial call is compared bit for bit with the output of the same call spread over 2, 3 and 5
// workers, on shapes whose task boundaries fall on and off the SIMD width.
//
// What this guards against: a compiler may contract a * b + c into one FMA, or not, wherever the
// source leaves it free to, and it decides per copy of a loop. The serial call below is compiled with
// every shape a compile-time constant (flatten + template arguments), as a generated model's forward()
// is; the threaded call runs each task through a function pointer with shapes known only at run
// time. If a kernel left a multiply-add to the compiler, the two copies can round differently: GCC
// vectorises the constant-trip-count copy (at -O2 only when the count is a multiple of the vector
// width) and contracts it differently from the scalar copy. tests/kernels/CMakeLists.txt also builds
// this file with -O2 and a generic AVX2 tuning, the flags under which that showed on Intel and AMD
// alike.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernel_test_support.hpp"
#include "vitcc/core/thread_pool.hpp"
#include "vitcc/kernels/attention.hpp"
#include "vitcc/kernels/dwconv.hpp"
#include "vitcc/kernels/gemm.hpp"
#include "vitcc/kernels/layer_norm.hpp"
#include "vitcc/kernels/patch_embed.hpp"
#include "vitcc/kernels/window_attention.hpp"

// flatten inlines every call of the wrapper, as a model's forward() is inlined with its constant
// shapes. Not under the sanitizers: their instrumentation of the flattened kernels makes this file
// take over an hour and 4 GB to compile (and the split-invariance failures it hunts are a release
// build's, which make test and the -O2 build above run).
#if (defined(__GNUC__) || defined(__clang__)) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define VITCC_TEST_FLATTEN __attribute__((flatten))
#else
#define VITCC_TEST_FLATTEN
#endif

namespace {

using vitcc::Executor;
using vitcc::kernels::Activation;
using vitcc::test::Buffer;
using vitcc::test::Rng;

constexpr std::size_t kWorkers[] = {2, 3, 5};

bool same_bits(const Buffer& a, const Buffer& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::size_t differing(const Buffer& a, const Buffer& b) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < a.size(); ++i) n += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return n;
}

Buffer random_buffer(std::size_t n, std::uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  Buffer b(n);
  Rng(seed).fill(b.data(), n, lo, hi);
  return b;
}

// Runs `threaded(ex)` for every worker count and checks each result against `serial`.
template <class F>
void check_split(const Buffer& serial, std::size_t out_floats, F&& threaded) {
  for (std::size_t workers : kWorkers) {
    CAPTURE(workers);
    vitcc::ThreadPool pool(workers);
    const Executor ex = pool.executor();
    Buffer got(out_floats, -7.0f);
    threaded(&ex, got);
    INFO("elements that differ from the serial result: ", differing(serial, got));
    CHECK(same_bits(serial, got));
    CHECK(got.guard_intact());
  }
}

// ---- GEMM (every Linear and 1x1 conv) ----

template <class Arch, std::size_t M, std::size_t N, std::size_t K>
VITCC_TEST_FLATTEN void gemm_fixed(const float* a, const float* b, float* c, const vitcc::kernels::GemmEpilogue& ep) {
  vitcc::kernels::gemm<Arch>(M, N, K, a, K, b, c, N, ep);
}

template <class Arch, std::size_t M, std::size_t N, std::size_t K>
void gemm_case(Activation act, bool residual) {
  CAPTURE(M); CAPTURE(N); CAPTURE(K); CAPTURE(int(act)); CAPTURE(residual);
  const Buffer a = random_buffer(M * K, 1);
  const Buffer w = random_buffer(K * N, 2);
  const Buffer bias = random_buffer(N, 3);
  const Buffer add = random_buffer(M * N, 4, -4.0f, 4.0f);
  Buffer packed(vitcc::kernels::packed_b_floats(K, N));
  vitcc::kernels::pack_b(w.data(), N, K, N, packed.data());
  vitcc::kernels::GemmEpilogue ep;
  ep.bias = bias.data();
  ep.act = act;
  if (residual) {
    ep.add = add.data();
    ep.ld_add = N;
  }
  Buffer serial(M * N);
  gemm_fixed<Arch, M, N, K>(a.data(), packed.data(), serial.data(), ep);
  check_split(serial, M * N, [&](const Executor* ex, Buffer& got) {
    vitcc::kernels::gemm<Arch>(M, N, K, a.data(), K, packed.data(), got.data(), N, ep, ex);
  });
}

TEST_CASE_TEMPLATE_DEFINE("split invariance: gemm", Arch, gemm_split) {
  // Whole-column tasks (N >= 8 x 48), 48-row tile tasks, one-row products, and edges that are and are
  // not multiples of 8 and 16.
  gemm_case<Arch, 197, 384, 64>(Activation::gelu_erf, false);
  gemm_case<Arch, 50, 100, 37>(Activation::none, true);
  gemm_case<Arch, 1, 1000, 48>(Activation::none, false);
  gemm_case<Arch, 96, 48, 16>(Activation::relu, true);
  gemm_case<Arch, 7, 40, 9>(Activation::none, true);
}
TEST_CASE_TEMPLATE_APPLY(gemm_split, vitcc::test::kernel_archs);

// ---- multi-head self-attention ----

template <class Arch, vitcc::Precision P, std::size_t T, std::size_t Heads, std::size_t HD>
VITCC_TEST_FLATTEN void attention_fixed(const float* qkv, float* out, float* scratch) {
  vitcc::kernels::attention<Arch, P>(T, Heads, HD, 0.125f, qkv, 3 * Heads * HD, out, Heads * HD, scratch);
}

template <class Arch, std::size_t T, std::size_t Heads, std::size_t HD, vitcc::Precision P = vitcc::Precision::fp32>
void attention_case() {
  CAPTURE(T); CAPTURE(Heads); CAPTURE(HD); CAPTURE(int(P));
  constexpr std::size_t D = Heads * HD;
  const Buffer qkv = random_buffer(T * 3 * D, 5, -2.0f, 2.0f);
  Buffer serial(T * D);
  Buffer scratch1(vitcc::kernels::attention_scratch_floats(T, HD, P));
  attention_fixed<Arch, P, T, Heads, HD>(qkv.data(), serial.data(), scratch1.data());
  check_split(serial, T * D, [&](const Executor* ex, Buffer& got) {
    Buffer scratch(vitcc::kernels::attention_scratch_floats(T, HD, Heads, vitcc::worker_count(ex), P));
    vitcc::kernels::attention<Arch, P>(T, Heads, HD, 0.125f, qkv.data(), 3 * D, got.data(), D, scratch.data(), ex);
    CHECK(scratch.guard_intact());  // the threaded scratch size covers every head's pack and worker
  });
  CHECK(scratch1.guard_intact());
}

TEST_CASE_TEMPLATE_DEFINE("split invariance: attention", Arch, attention_split) {
  attention_case<Arch, 197, 3, 64>();  // ViT: four full 48-query blocks and a short one
  attention_case<Arch, 50, 2, 16>();   // query blocks of 48 and 2
  attention_case<Arch, 17, 1, 24>();   // one block; head dim not a multiple of 16
  // int8 models: scores from int8 q and k (heads packed by tasks of their own)
  attention_case<Arch, 197, 3, 64, vitcc::Precision::int8>();
  attention_case<Arch, 17, 1, 24, vitcc::Precision::int8>();
}
TEST_CASE_TEMPLATE_APPLY(attention_split, vitcc::test::kernel_archs);

// ---- LayerNorm ----

template <class Arch, std::size_t Rows, std::size_t D>
VITCC_TEST_FLATTEN void layer_norm_fixed(const float* x, const float* g, const float* b, float* y) {
  vitcc::kernels::layer_norm<Arch>(Rows, D, x, D, g, b, 1e-6f, y, D);
}

template <class Arch, std::size_t Rows, std::size_t D>
void layer_norm_case() {
  CAPTURE(Rows); CAPTURE(D);
  Buffer x = random_buffer(Rows * D, 6, -3.0f, 3.0f);
  for (std::size_t i = 0; i < Rows * D; ++i) x[i] += 10.0f;  // an offset, as on a residual stream
  const Buffer g = random_buffer(D, 7), b = random_buffer(D, 8);
  Buffer serial(Rows * D);
  layer_norm_fixed<Arch, Rows, D>(x.data(), g.data(), b.data(), serial.data());
  check_split(serial, Rows * D, [&](const Executor* ex, Buffer& got) {
    vitcc::kernels::layer_norm<Arch>(Rows, D, x.data(), D, g.data(), b.data(), 1e-6f, got.data(), D, ex);
  });
}

TEST_CASE_TEMPLATE_DEFINE("split invariance: layer_norm", Arch, layer_norm_split) {
  layer_norm_case<Arch, 197, 192>();
  layer_norm_case<Arch, 33, 20>();
  layer_norm_case<Arch, 17, 7>();
}
TEST_CASE_TEMPLATE_APPLY(layer_norm_split, vitcc::test::kernel_archs);

// ---- patch embedding ----

template <class Arch, std::size_t C, std::size_t H, std::size_t W, std::size_t P, std::size_t D>
VITCC_TEST_FLATTEN void patch_embed_fixed(const float* img, const float* w, const float* add, float* out, float* scratch) {
  vitcc::kernels::patch_embed<Arch>(img, C, H, W, P, vitcc::kernels::PackedB{w}, D, add, D, out, D, scratch);
}

template <class Arch, std::size_t C, std::size_t H, std::size_t W, std::size_t P, std::size_t D>
void patch_embed_case() {
  CAPTURE(H); CAPTURE(W); CAPTURE(P); CAPTURE(D);
  constexpr std::size_t K = C * P * P, patches = (H / P) * (W / P);
  const Buffer img = random_buffer(C * H * W, 9, -2.0f, 2.0f);
  const Buffer w = random_buffer(D * K, 10);
  const Buffer add = random_buffer(patches * D, 11);
  Buffer packed(vitcc::kernels::packed_b_floats(K, D));
  vitcc::kernels::pack_b_from_linear(w.data(), K, D, packed.data());
  Buffer serial(patches * D);
  Buffer scratch1(vitcc::kernels::patch_embed_scratch_floats(C, P));
  patch_embed_fixed<Arch, C, H, W, P, D>(img.data(), packed.data(), add.data(), serial.data(), scratch1.data());
  check_split(serial, patches * D, [&](const Executor* ex, Buffer& got) {
    Buffer scratch(vitcc::kernels::patch_embed_scratch_floats(C, P) * vitcc::worker_count(ex));
    vitcc::kernels::patch_embed<Arch>(img.data(), C, H, W, P, vitcc::kernels::PackedB{packed.data()}, D, add.data(), D, got.data(), D,
                                      scratch.data(), ex);
  });
}

TEST_CASE_TEMPLATE_DEFINE("split invariance: patch_embed", Arch, patch_embed_split) {
  patch_embed_case<Arch, 3, 112, 112, 16, 64>();  // 49 patches: a group of 48 and one of 1
  patch_embed_case<Arch, 3, 96, 80, 8, 40>();     // 120 patches, D not a multiple of 16
}
TEST_CASE_TEMPLATE_APPLY(patch_embed_split, vitcc::test::kernel_archs);

// ---- depthwise convolution (one task per output row) ----

template <class Arch, std::size_t H, std::size_t W, std::size_t C, std::size_t K, std::size_t S>
VITCC_TEST_FLATTEN void dwconv_fixed(const float* in, const float* w, const float* b, const float* add, float* out) {
  vitcc::kernels::dwconv<Arch>(H, W, C, in, C, K, S, K / 2, w, b, Activation::relu, add, C, out, C);
}

template <class Arch, std::size_t H, std::size_t W, std::size_t C, std::size_t K, std::size_t S>
void dwconv_case() {
  CAPTURE(H); CAPTURE(W); CAPTURE(C); CAPTURE(K); CAPTURE(S);
  constexpr std::size_t oh = vitcc::kernels::conv_out_size(H, K, S, K / 2);
  constexpr std::size_t ow = vitcc::kernels::conv_out_size(W, K, S, K / 2);
  const Buffer in = random_buffer(H * W * C, 12);
  const Buffer w = random_buffer(K * K * C, 13), b = random_buffer(C, 14);
  const Buffer add = random_buffer(oh * ow * C, 15);
  Buffer serial(oh * ow * C);
  dwconv_fixed<Arch, H, W, C, K, S>(in.data(), w.data(), b.data(), add.data(), serial.data());
  check_split(serial, oh * ow * C, [&](const Executor* ex, Buffer& got) {
    vitcc::kernels::dwconv<Arch>(ex, H, W, C, in.data(), C, K, S, K / 2, w.data(), b.data(), Activation::relu,
                                 add.data(), C, got.data(), C);
  });
}

TEST_CASE_TEMPLATE_DEFINE("split invariance: dwconv", Arch, dwconv_split) {
  dwconv_case<Arch, 14, 14, 64, 3, 1>();
  dwconv_case<Arch, 13, 9, 37, 5, 2>();  // channel tail
  dwconv_case<Arch, 7, 7, 24, 7, 1>();
}
TEST_CASE_TEMPLATE_APPLY(dwconv_split, vitcc::test::kernel_archs);

// bfloat16 and int8 weights (the bf16 and int8 blobs): taps widened per channel block per row task.
template <class Arch, class WT, std::size_t H, std::size_t W, std::size_t C, std::size_t K, std::size_t S>
VITCC_TEST_FLATTEN void dwconv_low_fixed(const float* in, const WT* w, const float* scale, const float* b,
                                         const float* add, float* out) {
  vitcc::kernels::dwconv<Arch, WT>(H, W, C, in, C, K, S, K / 2, w, scale, b, Activation::relu, add, C, out, C);
}

template <class Arch, class WT, std::size_t H, std::size_t W, std::size_t C, std::size_t K, std::size_t S>
void dwconv_low_case() {
  CAPTURE(H); CAPTURE(W); CAPTURE(C); CAPTURE(K); CAPTURE(S); CAPTURE(sizeof(WT));
  constexpr std::size_t oh = vitcc::kernels::conv_out_size(H, K, S, K / 2);
  constexpr std::size_t ow = vitcc::kernels::conv_out_size(W, K, S, K / 2);
  const Buffer in = random_buffer(H * W * C, 12);
  const Buffer wf = random_buffer(K * K * C, 13), b = random_buffer(C, 14), scale = random_buffer(C, 16);
  const Buffer add = random_buffer(oh * ow * C, 15);
  std::vector<WT> w(K * K * C);
  for (std::size_t i = 0; i < w.size(); ++i) {
    if constexpr (sizeof(WT) == 1) {
      w[i] = WT(std::lround(wf.data()[i] * 100.0f));
    } else {
      std::uint32_t u;
      std::memcpy(&u, wf.data() + i, 4);
      w[i] = WT(u >> 16);
    }
  }
  Buffer serial(oh * ow * C);
  dwconv_low_fixed<Arch, WT, H, W, C, K, S>(in.data(), w.data(), scale.data(), b.data(), add.data(), serial.data());
  check_split(serial, oh * ow * C, [&](const Executor* ex, Buffer& got) {
    vitcc::kernels::dwconv<Arch, WT>(ex, H, W, C, in.data(), C, K, S, K / 2, w.data(), scale.data(), b.data(),
                                     Activation::relu, add.data(), C, got.data(), C);
  });
}

TEST_CASE_TEMPLATE_DEFINE("split invariance: dwconv with bfloat16 and int8 weights", Arch, dwconv_low_split) {
  dwconv_low_case<Arch, std::uint16_t, 14, 14, 64, 3, 1>();
  dwconv_low_case<Arch, std::uint16_t, 13, 9, 37, 5, 2>();  // channel tail
  dwconv_low_case<Arch, std::int8_t, 14, 14, 64, 3, 1>();
  dwconv_low_case<Arch, std::int8_t, 13, 9, 37, 5, 2>();
  dwconv_low_case<Arch, std::int8_t, 7, 7, 24, 7, 1>();
}
TEST_CASE_TEMPLATE_APPLY(dwconv_low_split, vitcc::test::kernel_archs);

// ---- window attention (EfficientViT splits a window's query rows into tasks of 8) ----

template <class Arch, std::size_t N, std::size_t KD, std::size_t VD>
VITCC_TEST_FLATTEN void window_attention_fixed(const float* qkv, const float* bias, float* out, float* scratch) {
  constexpr std::size_t ld = 2 * KD + VD;
  vitcc::kernels::window_attention<Arch>(N, KD, VD, 0.25f, qkv, ld, qkv + KD, ld, qkv + 2 * KD, ld, bias, out, VD,
                                         scratch);
}

template <class Arch, std::size_t N, std::size_t KD, std::size_t VD>
void window_attention_case() {
  CAPTURE(N); CAPTURE(KD); CAPTURE(VD);
  constexpr std::size_t ld = 2 * KD + VD;
  const Buffer qkv = random_buffer(N * ld, 16, -2.0f, 2.0f);
  const Buffer bias = random_buffer(N * N, 17);
  Buffer serial(N * VD);
  Buffer scratch1(vitcc::kernels::window_attention_scratch_floats(N, KD));
  window_attention_fixed<Arch, N, KD, VD>(qkv.data(), bias.data(), serial.data(), scratch1.data());
  for (std::size_t rows : {std::size_t(8), std::size_t(5), std::size_t(1)}) {
    CAPTURE(rows);
    check_split(serial, N * VD, [&](const Executor* ex, Buffer& got) {
      const std::size_t stride = vitcc::kernels::window_attention_scratch_floats(N, KD);
      Buffer scratch(stride * vitcc::worker_count(ex));
      vitcc::parallel_for(ex, (N + rows - 1) / rows, [&](std::size_t task, std::size_t wk) {
        const std::size_t i0 = task * rows, i1 = N - i0 < rows ? N : i0 + rows;
        vitcc::kernels::window_attention_rows<Arch>(i0, i1, N, KD, VD, 0.25f, qkv.data(), ld, qkv.data() + KD, ld,
                                                    qkv.data() + 2 * KD, ld, bias.data(), got.data(), VD,
                                                    scratch.data() + wk * stride);
      });
    });
  }
}

TEST_CASE_TEMPLATE_DEFINE("split invariance: window_attention", Arch, window_attention_split) {
  window_attention_case<Arch, 49, 16, 64>();
  window_attention_case<Arch, 49, 16, 20>();  // value tail
  window_attention_case<Arch, 16, 16, 16>();
}
TEST_CASE_TEMPLATE_APPLY(window_attention_split, vitcc::test::kernel_archs);

}  // namespace
