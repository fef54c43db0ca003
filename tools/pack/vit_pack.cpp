// The ViT family's packer: recognise, fold and pack, and describe the config for the driver.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "packed_model.hpp"
#include "vit_recognizer.hpp"
#include "vitcc/models/vit.hpp"

namespace vitcc::pack {
namespace {

const char* pool_name(VitPool p) { return p == VitPool::token ? "token" : p == VitPool::avg ? "avg" : "none"; }
const char* output_name(VitOutput o) {
  return o == VitOutput::logits ? "logits" : o == VitOutput::pooled ? "pooled" : "tokens";
}
std::string hexfloat(float v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%af;  // %.9g", double(v), double(v));
  return buf;
}
const char* flag(bool b) { return b ? "true" : "false"; }

}  // namespace

PackedModel pack_vit(const OnnxGraph& graph) {
  const VitSpec s = recognize_vit(graph);
  const VitDynamicConfig cfg = dynamic_config(s);
  const VitDims dims = VitDims::of(cfg);
  PackedModel m;
  m.architecture = "vit";
  m.source_layout = s.source_layout;
  m.library_header = "vitcc/models/vit.hpp";
  m.model_template = "vitcc::Vit";
  m.default_interpolation = s.source_layout == "torchvision" ? "bilinear" : "bicubic";
  m.tensors = fold_and_pack_vit(s);
  m.config_hash = vit_config_hash(s);
  auto i = [](const char* name, std::int64_t v) { return "static constexpr int " + std::string(name) + " = " + std::to_string(v) + ";"; };
  auto b = [](const char* name, bool v) { return "static constexpr bool " + std::string(name) + " = " + flag(v) + ";"; };
  m.header_fields = {i("in_chans", s.in_chans), i("img_h", s.img_h), i("img_w", s.img_w), i("patch", s.patch),
                     i("dim", s.dim), i("depth", s.depth), i("heads", s.heads), i("mlp_hidden", s.mlp_hidden),
                     b("has_cls_token", s.has_cls_token), i("num_reg_tokens", s.num_reg_tokens),
                     b("final_norm", s.final_norm), b("fc_norm", s.fc_norm),
                     std::string("static constexpr vitcc::VitPool pool = vitcc::VitPool::") + pool_name(s.pool) + ";",
                     std::string("static constexpr vitcc::VitOutput output = vitcc::VitOutput::") + output_name(s.output) + ";",
                     i("num_classes", s.num_classes), "static constexpr float ln_eps = " + hexfloat(s.ln_eps),
                     "static constexpr float attn_scale = " + hexfloat(s.attn_scale)};
  m.config = {{"in_chans", s.in_chans}, {"img_h", s.img_h}, {"img_w", s.img_w}, {"patch", s.patch}, {"dim", s.dim},
              {"depth", s.depth}, {"heads", s.heads}, {"mlp_hidden", s.mlp_hidden}, {"has_cls_token", s.has_cls_token},
              {"num_reg_tokens", s.num_reg_tokens}, {"has_pos_embed", s.has_pos_embed},
              {"pos_embed_covers_prefix", s.pos_embed_covers_prefix}, {"qkv_bias", s.qkv_bias},
              {"final_norm", s.final_norm}, {"fc_norm", s.fc_norm}, {"pool", pool_name(s.pool)},
              {"output", output_name(s.output)}, {"num_classes", s.num_classes}, {"ln_eps", double(s.ln_eps)},
              {"attn_scale", double(s.attn_scale)}, {"num_tokens", dims.tokens}};
  m.input_shape = {1, std::int64_t(dims.c), std::int64_t(dims.h), std::int64_t(dims.w)};
  if (s.output == VitOutput::tokens) m.output_shape = {1, std::int64_t(dims.tokens), std::int64_t(dims.d)};
  else m.output_shape = {1, std::int64_t(dims.out)};
  m.output_kind = output_name(s.output);
  const ModelStats st = vit_stats(s);
  m.parameters = st.parameters;
  m.flops = st.flops;
  m.workspace_bytes = [cfg](Precision p) {
    VitDynamicConfig c = cfg;
    c.precision = p;
    return std::uint64_t(VitDims::of(c).workspace_floats() * sizeof(float));
  };

  char line[256];
  std::snprintf(line, sizeof line, "input        1x%zux%zux%zu, patch %zu -> %zux%zu grid, %zu tokens (%s%lld register)",
                dims.c, dims.h, dims.w, dims.p, dims.gh, dims.gw, dims.tokens, s.has_cls_token ? "class token, " : "",
                static_cast<long long>(s.num_reg_tokens));
  m.summary.push_back(line);
  std::snprintf(line, sizeof line, "blocks       %lld x (dim %lld, %lld heads of %zu, mlp %lld)%s%s",
                static_cast<long long>(s.depth), static_cast<long long>(s.dim), static_cast<long long>(s.heads), dims.hd,
                static_cast<long long>(s.mlp_hidden), s.qkv_bias ? ", qkv bias" : "",
                s.tensors.count("blocks.0.ls1.gamma") ? ", LayerScale (folded)" : "");
  m.summary.push_back(line);
  const std::string out = s.output == VitOutput::logits ? std::to_string(s.num_classes) + " classes"
                                                          : std::to_string(dims.out) + " values";
  std::snprintf(line, sizeof line, "head         pool %s%s%s, output %s [%s]", pool_name(s.pool),
                s.final_norm ? ", final norm" : "", s.fc_norm ? ", fc_norm" : "", output_name(s.output), out.c_str());
  m.summary.push_back(line);

  m.run_packed = [cfg](const BlobView& blob, Precision p, const float* input, float* output) -> Status {
    VitDynamicConfig c = cfg;
    c.precision = p;
    const VitDims d = VitDims::of(c);
    VitWeights w;
    std::vector<VitBlockWeights> blocks(d.depth);
    Status st = detail::bind_vit(c, blob, w, blocks.data());
    if (!st.ok()) return st;
    std::unique_ptr<void, decltype(&std::free)> ws(
        std::aligned_alloc(64, (d.workspace_floats() * sizeof(float) + 63) / 64 * 64), &std::free);
    with_precision(p, [&](auto P) {
      detail::vit_forward<default_arch, decltype(P)::value>(c, w, blocks.data(), input, output, static_cast<float*>(ws.get()));
    });
    return st;
  };

  // Each block's norm1 feeds qkv and norm2 feeds fc1 directly: the SmoothQuant sites. proj reads the
  // attention output and fc2 reads GELU's, neither through an affine op a factor could be folded into
  // (GELU is not homogeneous); the head reads one row, which per-token scales already fit exactly.
  // The statistics come from the library's own float32 forward pass (vit_forward's block loop, here
  // with the normalised tokens recorded before each GEMM reads them).
  m.smooth_sites = [cfg](const BlobView& blob, const float* images, std::size_t count, std::vector<SmoothSite>& sites) -> Status {
    VitDynamicConfig c = cfg;
    c.precision = Precision::fp32;
    const VitDims v = VitDims::of(c);
    VitWeights w;
    std::vector<VitBlockWeights> blocks(v.depth);
    Status st = detail::bind_vit(c, blob, w, blocks.data());
    if (!st.ok()) return st;
    const std::size_t T = v.tokens, D = v.d, H = v.hidden, wide = 3 * D > H ? 3 * D : H;
    sites.clear();
    for (std::size_t i = 0; i < v.depth; ++i) {
      const std::string b = "blocks." + std::to_string(i);
      sites.push_back({b + ".norm1", {b + ".attn.qkv.weight"}, std::vector<float>(D, 0.0f)});
      sites.push_back({b + ".norm2", {b + ".mlp.fc1.weight"}, std::vector<float>(D, 0.0f)});
    }
    std::unique_ptr<void, decltype(&std::free)> mem(
        std::aligned_alloc(64, (v.workspace_floats() * sizeof(float) + 63) / 64 * 64), &std::free);
    float* x = static_cast<float*>(mem.get());
    float* xn = x + align_floats(T * D);
    float* big = xn + align_floats(T * D);
    float* scratch = big + align_floats(T * wide);
    auto record = [&](std::vector<float>& mx) {
      for (std::size_t t = 0; t < T; ++t)
        for (std::size_t k = 0; k < D; ++k) mx[k] = std::max(mx[k], std::fabs(xn[t * D + k]));
    };
    using A = default_arch;
    constexpr Precision F = Precision::fp32;
    using kernels::Activation;
    for (std::size_t n = 0; n < count; ++n) {
      const float* image = images + n * v.c * v.h * v.w;
      if (v.prefix > 0) std::memcpy(x, w.prefix_tokens, v.prefix * D * sizeof(float));
      kernels::patch_embed<A, F>(image, v.c, v.h, v.w, v.p, w.patch_weight, D, w.patch_pos_bias, D, x + v.prefix * D, D, scratch);
      for (std::size_t i = 0; i < v.depth; ++i) {
        const VitBlockWeights& b = blocks[i];
        kernels::layer_norm<A>(T, D, x, D, b.norm1.weight, b.norm1.bias, c.ln_eps, xn, D);
        record(sites[2 * i].act_max);
        b.qkv.template apply<A, F>(nullptr, T, D, 3 * D, xn, D, big, 3 * D, Activation::none, nullptr, 0, scratch);
        kernels::attention<A>(T, v.heads, v.hd, c.attn_scale, big, 3 * D, xn, D, scratch);
        b.proj.template apply<A, F>(nullptr, T, D, D, xn, D, x, D, Activation::none, x, D, scratch);
        kernels::layer_norm<A>(T, D, x, D, b.norm2.weight, b.norm2.bias, c.ln_eps, xn, D);
        record(sites[2 * i + 1].act_max);
        b.fc1.template apply<A, F>(nullptr, T, D, H, xn, D, big, H, Activation::gelu_erf, nullptr, 0, scratch);
        b.fc2.template apply<A, F>(nullptr, T, H, D, big, H, x, D, Activation::none, x, D, scratch);
      }
    }
    return st;
  };
  return m;
}

}  // namespace vitcc::pack
