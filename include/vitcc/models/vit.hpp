// Vision Transformer (timm VisionTransformer / DeiT / DINOv2, torchvision ViT), fp32, batch 1.
//
// Mirrors timm's VisionTransformer.forward (models/vision_transformer.py):
//   patch_embed -> [cls][reg x R][patches] + pos_embed -> blocks -> norm -> pool -> fc_norm -> head
// with Block: x += ls1 * attn(norm1(x)); x += ls2 * mlp(norm2(x)).
// The packer has already folded what is constant: LayerScale into proj/fc2, the class/register
// tokens with their positional rows into `prefix_tokens`, and the patch conv bias into the
// patches' positional rows (`patch_pos_bias`).
//
// A config C (the struct vitcc-pack generates, or VitDynamicConfig for runtime shapes) provides:
//   in_chans img_h img_w patch dim depth heads mlp_hidden has_cls_token num_reg_tokens
//   final_norm fc_norm pool output num_classes ln_eps attn_scale config_hash blob_checksum, and
//   precision (float32 when absent: configs generated before there were precisions).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "vitcc/core/aligned.hpp"
#include "vitcc/core/arch.hpp"
#include "vitcc/core/error.hpp"
#include "vitcc/core/executor.hpp"
#include "vitcc/io/bind.hpp"
#include "vitcc/io/blob_reader.hpp"
#include "vitcc/kernels/attention.hpp"
#include "vitcc/kernels/layer_norm.hpp"
#include "vitcc/kernels/patch_embed.hpp"
#include "vitcc/kernels/pooling.hpp"
#include "vitcc/core/precision.hpp"
#include "vitcc/layers/linear.hpp"
#include "vitcc/layers/norm.hpp"
#include "vitcc/models/model.hpp"
#include "vitcc/models/vit_types.hpp"

namespace vitcc {

// Sizes derived from a config; constexpr for generated configs, runtime for VitDynamicConfig.
struct VitDims {
  std::size_t c, h, w, p, gh, gw, patches, prefix, tokens, d, heads, hd, hidden, classes, depth, out;
  Precision prec;

  template <class C>
  static constexpr VitDims of(const C& cfg) noexcept {
    VitDims v{};
    v.c = std::size_t(cfg.in_chans);
    v.h = std::size_t(cfg.img_h);
    v.w = std::size_t(cfg.img_w);
    v.p = std::size_t(cfg.patch);
    v.gh = v.h / v.p;
    v.gw = v.w / v.p;
    v.patches = v.gh * v.gw;
    v.prefix = (cfg.has_cls_token ? 1u : 0u) + std::size_t(cfg.num_reg_tokens);
    v.tokens = v.prefix + v.patches;
    v.d = std::size_t(cfg.dim);
    v.heads = std::size_t(cfg.heads);
    v.hd = v.d / v.heads;
    v.hidden = std::size_t(cfg.mlp_hidden);
    v.classes = std::size_t(cfg.num_classes);
    v.depth = std::size_t(cfg.depth);
    v.out = cfg.output == VitOutput::logits ? v.classes : cfg.output == VitOutput::pooled ? v.d : v.tokens * v.d;
    v.prec = precision_of(cfg);
    return v;
  }

  // Workspace floats: residual stream, normalised stream, qkv/mlp hidden, kernel scratch, pooling.
  // Only the kernel scratch grows with the number of workers of an executor.
  constexpr std::size_t workspace_floats(std::size_t workers = 1) const noexcept {
    const std::size_t wide = 3 * d > hidden ? 3 * d : hidden;
    return align_floats(tokens * d) * 2 + align_floats(tokens * wide) + align_floats(scratch_floats(workers)) +
           align_floats(d) * 2;
  }

  // Kernel scratch (attention, patch embedding, or an int8 product's quantised rows: never two at
  // once) for `workers` workers.
  constexpr std::size_t scratch_floats(std::size_t workers = 1) const noexcept {
    const std::size_t w = workers < 1 ? 1 : workers;
    const std::size_t a = kernels::attention_scratch_floats(tokens, hd, heads, w, prec);
    const std::size_t pe = w * kernels::patch_embed_scratch_floats(c, p, prec);
    const std::size_t q = (kernels::matmul_scratch_bytes(prec, tokens, hidden > d ? hidden : d) + 3) / 4;
    const std::size_t m = a > pe ? a : pe;
    return m > q ? m : q;
  }
};

// A config whose values are known only at run time (the packer's self-check uses it). It has the
// shape fields only: the hashes that tie a generated config to its blob are not needed there.
struct VitDynamicConfig {
  int in_chans = 3, img_h = 0, img_w = 0, patch = 0, dim = 0, depth = 0, heads = 0, mlp_hidden = 0;
  bool has_cls_token = false;
  int num_reg_tokens = 0;
  bool final_norm = true, fc_norm = false;
  VitPool pool = VitPool::token;
  VitOutput output = VitOutput::logits;
  int num_classes = 0;
  float ln_eps = 1e-6f, attn_scale = 0.0f;
  Precision precision = Precision::fp32;
};

struct VitBlockWeights {
  Norm norm1, norm2;
  Linear qkv, proj, fc1, fc2;  // proj and fc2 carry LayerScale when the model has it
};

struct VitWeights {
  const float* prefix_tokens = nullptr;   // [prefix, D]: cls/reg tokens plus their pos rows
  kernels::PackedB patch_weight;          // packed [C*P*P, D]
  const float* patch_pos_bias = nullptr;  // [patches, D]: pos rows of the patches plus conv bias
  Norm norm, fc_norm;
  Linear head;
};

namespace detail {

template <class C>
Status bind_vit(const C& cfg, const BlobView& blob, VitWeights& w, VitBlockWeights* blocks) noexcept {
  const VitDims v = VitDims::of(cfg);
  Binder b(blob);
  w = VitWeights{};
  if (v.prefix > 0) w.prefix_tokens = b.plain({v.prefix, v.d}, "prefix_tokens");
  w.patch_weight = b.packed(v.c * v.p * v.p, v.d, v.prec, "patch_embed.weight");
  w.patch_pos_bias = b.plain({v.patches, v.d}, "patch_embed.pos_bias");
  for (std::size_t i = 0; i < v.depth; ++i) {
    VitBlockWeights& k = blocks[i];
    const unsigned n = unsigned(i);
    k.norm1 = {b.plain({v.d}, "blocks.%u.norm1.weight", n), b.plain({v.d}, "blocks.%u.norm1.bias", n)};
    k.qkv = {b.packed(v.d, 3 * v.d, v.prec, "blocks.%u.attn.qkv.weight", n), b.plain({3 * v.d}, "blocks.%u.attn.qkv.bias", n)};
    k.proj = {b.packed(v.d, v.d, v.prec, "blocks.%u.attn.proj.weight", n), b.plain({v.d}, "blocks.%u.attn.proj.bias", n)};
    k.norm2 = {b.plain({v.d}, "blocks.%u.norm2.weight", n), b.plain({v.d}, "blocks.%u.norm2.bias", n)};
    k.fc1 = {b.packed(v.d, v.hidden, v.prec, "blocks.%u.mlp.fc1.weight", n), b.plain({v.hidden}, "blocks.%u.mlp.fc1.bias", n)};
    k.fc2 = {b.packed(v.hidden, v.d, v.prec, "blocks.%u.mlp.fc2.weight", n), b.plain({v.d}, "blocks.%u.mlp.fc2.bias", n)};
  }
  if (cfg.final_norm) w.norm = {b.plain({v.d}, "norm.weight"), b.plain({v.d}, "norm.bias")};
  if (cfg.fc_norm) w.fc_norm = {b.plain({v.d}, "fc_norm.weight"), b.plain({v.d}, "fc_norm.bias")};
  if (cfg.output == VitOutput::logits)
    w.head = {b.packed(v.d, v.classes, v.prec, "head.weight"), b.plain({v.classes}, "head.bias")};
  return b.finish();
}

// The forward pass for one image: CHW `image` in, `out` (v.out floats) out. `ws` is 64-byte aligned
// with v.workspace_floats(worker_count(ex)) floats. Allocates nothing, throws nothing. With an
// executor every kernel spreads its fixed list of tasks over the workers; the result is the same bit
// for bit as without one (core/executor.hpp). P: the config's precision (the GEMMs' weights).
template <class Arch, Precision P, class C>
void vit_forward(const C& cfg, const VitWeights& w, const VitBlockWeights* blocks, const float* image,
                 float* out, float* ws, const Executor* ex = nullptr) noexcept {
  using kernels::Activation;
  // The weights were bound (and the workspace sized) for the config's precision; P picks the
  // kernels that read them. A mismatch would read bfloat16 or int8 bytes as another type.
  VITCC_ASSERT(precision_of(cfg) == P && "vit_forward: the config's precision is not the template's P");
  const VitDims v = VitDims::of(cfg);
  const std::size_t T = v.tokens, D = v.d, H = v.hidden;
  const std::size_t wide = 3 * D > H ? 3 * D : H;

  float* x = ws;                                // [T, D] residual stream
  float* xn = x + align_floats(T * D);          // [T, D] normalised tokens, then attention output
  float* big = xn + align_floats(T * D);        // [T, 3D] qkv, then [T, H] MLP hidden
  float* scratch = big + align_floats(T * wide);
  float* pooled = scratch + align_floats(v.scratch_floats(worker_count(ex)));  // [D]
  float* pooled_norm = pooled + align_floats(D);            // [D]

  // Tokens: prefix rows are constants; patch rows = conv(image) + conv bias + pos_embed.
  if (v.prefix > 0) std::memcpy(x, w.prefix_tokens, v.prefix * D * sizeof(float));
  kernels::patch_embed<Arch, P>(image, v.c, v.h, v.w, v.p, w.patch_weight, D, w.patch_pos_bias, D,
                             x + v.prefix * D, D, scratch, ex);

  for (std::size_t i = 0; i < v.depth; ++i) {
    const VitBlockWeights& b = blocks[i];
    // x = x + ls1 * proj(attention(norm1(x)))
    kernels::layer_norm<Arch>(T, D, x, D, b.norm1.weight, b.norm1.bias, cfg.ln_eps, xn, D, ex);
    b.qkv.template apply<Arch, P>(ex, T, D, 3 * D, xn, D, big, 3 * D, Activation::none, nullptr, 0, scratch);
    kernels::attention<Arch, P>(T, v.heads, v.hd, cfg.attn_scale, big, 3 * D, xn, D, scratch, ex);
    b.proj.template apply<Arch, P>(ex, T, D, D, xn, D, x, D, Activation::none, x, D, scratch);
    // x = x + ls2 * fc2(gelu(fc1(norm2(x))))
    kernels::layer_norm<Arch>(T, D, x, D, b.norm2.weight, b.norm2.bias, cfg.ln_eps, xn, D, ex);
    b.fc1.template apply<Arch, P>(ex, T, D, H, xn, D, big, H, Activation::gelu_erf, nullptr, 0, scratch);
    b.fc2.template apply<Arch, P>(ex, T, H, D, big, H, x, D, Activation::none, x, D, scratch);
  }

  // Final norm over the rows the output needs.
  const float* feats = x;
  if (cfg.output == VitOutput::tokens) {
    if (cfg.final_norm) kernels::layer_norm<Arch>(T, D, x, D, w.norm.weight, w.norm.bias, cfg.ln_eps, out, D, ex);
    else std::memcpy(out, x, T * D * sizeof(float));
    return;
  }
  if (cfg.final_norm) {
    const std::size_t first = cfg.pool == VitPool::token ? 0 : v.prefix;
    const std::size_t rows = cfg.pool == VitPool::token ? 1 : T - v.prefix;
    kernels::layer_norm<Arch>(rows, D, x + first * D, D, w.norm.weight, w.norm.bias, cfg.ln_eps, xn + first * D, D);
    feats = xn;
  }
  // Pool: the class token, or the mean of the patch tokens (timm's 'avg' skips the prefix).
  if (cfg.pool == VitPool::token) std::memcpy(pooled, feats, D * sizeof(float));
  else kernels::mean_rows(T - v.prefix, D, feats + v.prefix * D, D, pooled);
  const float* f = pooled;
  if (cfg.fc_norm) {
    kernels::layer_norm<Arch>(1, D, pooled, D, w.fc_norm.weight, w.fc_norm.bias, cfg.ln_eps, pooled_norm, D);
    f = pooled_norm;
  }
  if (cfg.output == VitOutput::pooled) {
    std::memcpy(out, f, D * sizeof(float));
    return;
  }
  w.head.template apply<Arch, P>(ex, 1, D, v.classes, f, D, out, v.classes, Activation::none, nullptr, 0, scratch);
}

}  // namespace detail

// A ViT whose every shape is fixed at compile time by Cfg (the struct vitcc-pack generates).
// bind(), bound() and the checked and unchecked forward() are ModelBase's (models/model.hpp).
template <class Cfg, class Arch = default_arch>
class Vit : public ModelBase<Vit<Cfg, Arch>, Cfg> {
  static constexpr VitDims dims = VitDims::of(Cfg{});
  static_assert(Cfg::patch > 0 && Cfg::img_h % Cfg::patch == 0 && Cfg::img_w % Cfg::patch == 0,
                "image size must be a multiple of the patch size");
  static_assert(Cfg::heads > 0 && Cfg::dim % Cfg::heads == 0, "dim must divide into heads");
  static_assert(Cfg::output != VitOutput::logits || Cfg::num_classes > 0, "logits need num_classes > 0");
  static_assert(Cfg::output == VitOutput::tokens || Cfg::pool != VitPool::none,
                "a pooled or logits output needs a pooling mode");

 public:
  using config = Cfg;
  using arch = Arch;
  static constexpr std::size_t input_floats = dims.c * dims.h * dims.w;   // one CHW image
  static constexpr std::size_t output_floats = dims.out;
  static constexpr std::size_t workspace_bytes = dims.workspace_floats() * sizeof(float);
  // Workspace for a forward pass run by an executor with `workers` workers (workspace_bytes for 1).
  static constexpr std::size_t workspace_bytes_for(std::size_t workers) noexcept {
    return dims.workspace_floats(workers) * sizeof(float);
  }
  static constexpr std::size_t workspace_alignment = alignment;

  // image: CHW float [in_chans, img_h, img_w], normalised as the model expects.
  // output: output_floats floats (logits, pooled features or every token, as the config says).

 private:
  friend class ModelBase<Vit<Cfg, Arch>, Cfg>;
  Status bind_weights(const BlobView& blob) noexcept { return detail::bind_vit(Cfg{}, blob, weights_, blocks_.data()); }
  void run(const float* image, float* output, float* ws, const Executor* ex) const noexcept {
    detail::vit_forward<Arch, precision_of(Cfg{})>(Cfg{}, weights_, blocks_.data(), image, output, ws, ex);
  }

  VitWeights weights_;
  std::array<VitBlockWeights, std::size_t(Cfg::depth)> blocks_{};
};

template <class Model>
inline constexpr std::size_t workspace_bytes = Model::workspace_bytes;

}  // namespace vitcc
