// The EfficientViT-M family's packer: recognise, lay the folded weights out for the kernels, and
// describe the config for the driver.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "../common/names.hpp"
#include "efficientvit_recognizer.hpp"
#include "packed_model.hpp"
#include "vitcc/kernels/gemm.hpp"
#include "vitcc/models/efficientvit.hpp"

namespace vitcc::pack {
namespace {

const Tensor& need(const EvitSpec& s, const std::string& name) {
  auto it = s.tensors.find(name);
  if (it == s.tensors.end()) throw PackError("recognised EfficientViT lacks tensor '" + name + "'");
  return it->second;
}

// Conv weight [cout, cin, k, k] as the GEMM's packed B [k*k*cin, cout], K ordered (ky, kx, ci).
BlobTensor packed_conv(const std::string& name, const Tensor& w) {
  const std::size_t co = std::size_t(w.shape[0]), ci = std::size_t(w.shape[1]), k = std::size_t(w.shape[2]);
  const std::size_t K = k * k * ci;
  std::vector<float> b(K * co);
  for (std::size_t o = 0; o < co; ++o)
    for (std::size_t c = 0; c < ci; ++c)
      for (std::size_t ky = 0; ky < k; ++ky)
        for (std::size_t kx = 0; kx < k; ++kx) b[((ky * k + kx) * ci + c) * co + o] = w.data[((o * ci + c) * k + ky) * k + kx];
  std::vector<float> packed(kernels::packed_b_floats(K, co));
  kernels::pack_b(b.data(), co, K, co, packed.data());
  return BlobTensor{name, blob::Layout::gemm_b16, {K, co}, std::move(packed)};
}

// Depthwise weight [c, 1, k, k] as plain [k*k, c] (bf16 blobs: bfloat16; int8 blobs: int8 with a
// float32 scale per channel).
BlobTensor dw_conv(const std::string& name, const Tensor& w) {
  const std::size_t c = std::size_t(w.shape[0]), k = std::size_t(w.shape[2]);
  std::vector<float> d(k * k * c);
  for (std::size_t ch = 0; ch < c; ++ch)
    for (std::size_t t = 0; t < k * k; ++t) d[t * c + ch] = w.data[ch * k * k + t];
  BlobTensor t{name, blob::Layout::plain, {k * k, c}, std::move(d)};
  t.reduce = BlobTensor::Reduce::per_channel;  // bfloat16, or int8 + NAME_scale, in reduced blobs
  return t;
}

BlobTensor plain(const std::string& name, const Tensor& t) {
  std::vector<std::uint64_t> dims(t.shape.begin(), t.shape.end());
  return BlobTensor{name, blob::Layout::plain, dims, t.data};
}

// The attention bias of a block, [heads, N, N] over a win x win window (N = win * win), as the
// bf16 and int8 blobs hold it: when every entry is the entry of its head at the tokens' offset
// (|dy|, |dx|) -- timm's attention_biases[:, attention_bias_idxs], whose first-seen offset order is
// dy * win + dx -- the table [heads, win * win] (NAME.attention_biases, float32: 49 values per head
// instead of 2401), else the expanded tensor in bfloat16.
BlobTensor attention_bias(const std::string& prefix, const Tensor& t, std::size_t win) {
  BlobTensor full = plain(prefix + ".attention_bias", t);
  full.reduce = BlobTensor::Reduce::bf16;
  const std::size_t n = win * win;
  if (t.shape.size() != 3 || std::size_t(t.shape[1]) != n || std::size_t(t.shape[2]) != n) return full;
  const std::size_t heads = std::size_t(t.shape[0]);
  std::vector<float> table(heads * n);
  std::vector<bool> seen(heads * n, false);
  for (std::size_t h = 0; h < heads; ++h)
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        const std::size_t yi = i / win, xi = i % win, yj = j / win, xj = j % win;
        const std::size_t o = h * n + (yi > yj ? yi - yj : yj - yi) * win + (xi > xj ? xi - xj : xj - xi);
        const float v = t.data[(h * n + i) * n + j];
        if (!seen[o]) seen[o] = true, table[o] = v;
        else if (std::memcmp(&table[o], &v, sizeof v) != 0) return full;  // not a relative-offset table
      }
  full.reduced_form.push_back(BlobTensor{prefix + ".attention_biases", blob::Layout::plain, {heads, n}, std::move(table)});
  return full;
}

// Blob order = the order bind_efficientvit() asks for the tensors.
std::vector<BlobTensor> fold_and_pack(const EvitSpec& s) {
  std::vector<BlobTensor> out;
  auto packed = [&](const std::string& n) {
    out.push_back(packed_conv(n + ".weight", need(s, n + ".weight")));
    out.push_back(plain(n + ".bias", need(s, n + ".bias")));
  };
  auto dw = [&](const std::string& n) {
    out.push_back(dw_conv(n + ".weight", need(s, n + ".weight")));
    out.push_back(plain(n + ".bias", need(s, n + ".bias")));
  };
  auto ffn = [&](const std::string& d, const std::string& f) {
    dw(d);
    packed(f + ".pw1");
    packed(f + ".pw2");
  };
  for (int i = 1; i <= 4; ++i) packed("patch_embed.conv" + std::to_string(i));
  for (int st = 0; st < 3; ++st) {
    const std::string sp = "stages." + std::to_string(st);
    if (st > 0) {
      ffn(sp + ".downsample.res1.0.m", sp + ".downsample.res1.1.m");
      packed(sp + ".downsample.patchmerge.conv1");
      dw(sp + ".downsample.patchmerge.conv2");
      packed(sp + ".downsample.patchmerge.se.fc1");
      packed(sp + ".downsample.patchmerge.se.fc2");
      packed(sp + ".downsample.patchmerge.conv3");
      ffn(sp + ".downsample.res2.0.m", sp + ".downsample.res2.1.m");
    }
    for (std::int64_t b = 0; b < s.depth[st]; ++b) {
      const std::string bp = sp + ".blocks." + std::to_string(b);
      ffn(bp + ".dw0.m", bp + ".ffn0.m");
      for (std::int64_t h = 0; h < s.num_heads[st]; ++h) {
        packed(bp + ".mixer.m.attn.qkvs." + std::to_string(h));
        dw(bp + ".mixer.m.attn.dws." + std::to_string(h));
      }
      packed(bp + ".mixer.m.attn.proj.1");
      out.push_back(attention_bias(bp + ".mixer.m.attn", need(s, bp + ".mixer.m.attn.attention_bias"),
                                   std::size_t(s.window_size[st])));
      ffn(bp + ".dw1.m", bp + ".ffn1.m");
    }
  }
  if (s.num_classes > 0) {
    const Tensor& w = need(s, "head.weight");
    const std::size_t n = std::size_t(w.shape[0]), k = std::size_t(w.shape[1]);
    std::vector<float> p(kernels::packed_b_floats(k, n));
    kernels::pack_b_from_linear(w.data.data(), k, n, p.data());
    out.push_back(BlobTensor{"head.weight", blob::Layout::gemm_b16, {k, n}, std::move(p)});
    out.push_back(plain("head.bias", need(s, "head.bias")));
  }
  return out;
}

EfficientVitDynamicConfig dynamic_config(const EvitSpec& s) {
  EfficientVitDynamicConfig c;
  c.in_chans = int(s.in_chans);
  c.img_size = int(s.img_size);
  for (int i = 0; i < 3; ++i) {
    c.embed_dim[i] = int(s.embed_dim[i]);
    c.depth[i] = int(s.depth[i]);
    c.num_heads[i] = int(s.num_heads[i]);
    c.key_dim[i] = int(s.key_dim[i]);
    c.window_size[i] = int(s.window_size[i]);
    c.attn_scale[i] = s.attn_scale[i];
  }
  for (int i = 0; i < 4; ++i) c.kernels[i] = int(s.kernels[i]);
  c.num_classes = int(s.num_classes);
  return c;
}

std::string arr(const std::int64_t* v, int n) {
  std::string o = "{";
  for (int i = 0; i < n; ++i) o += (i ? ", " : "") + std::to_string(v[i]);
  return o + "}";
}
std::string hexf(float v) {
  char b[40];
  std::snprintf(b, sizeof b, "%af", double(v));
  return b;
}

}  // namespace

PackedModel pack_efficientvit(const OnnxGraph& graph) {
  const EvitSpec s = recognize_efficientvit(graph);
  if (s.img_size % 32 != 0) {
    const std::int64_t below = s.img_size / 32 * 32, above = below + 32;
    throw PackError(graph.path(), describe_tensor(graph.input_name()),
                    "EfficientViT input is " + std::to_string(s.img_size) + "x" + std::to_string(s.img_size) +
                        ": expected a side that is a multiple of 32 (EfficientVitM static_asserts it); export at " +
                        (below > 0 ? std::to_string(below) + " or " : std::string()) + std::to_string(above));
  }
  const EfficientVitDynamicConfig cfg = dynamic_config(s);
  const EvitDims dims = EvitDims::of(cfg);
  PackedModel m;
  m.architecture = "efficientvit";
  m.source_layout = "timm";
  m.library_header = "vitcc/models/efficientvit.hpp";
  m.model_template = "vitcc::EfficientVitM";
  m.tensors = fold_and_pack(s);
  auto ai = [](const char* n, const std::int64_t* v, int k) {
    return "static constexpr int " + std::string(n) + "[" + std::to_string(k) + "] = " + arr(v, k) + ";";
  };
  const std::string scales = "{" + hexf(s.attn_scale[0]) + ", " + hexf(s.attn_scale[1]) + ", " + hexf(s.attn_scale[2]) + "}";
  m.header_fields = {"static constexpr int in_chans = " + std::to_string(s.in_chans) + ";",
                     "static constexpr int img_size = " + std::to_string(s.img_size) + ";",
                     ai("embed_dim", s.embed_dim, 3), ai("depth", s.depth, 3), ai("num_heads", s.num_heads, 3),
                     ai("key_dim", s.key_dim, 3), ai("window_size", s.window_size, 3), ai("kernels", s.kernels, 4),
                     "static constexpr int num_classes = " + std::to_string(s.num_classes) + ";",
                     "static constexpr float attn_scale[3] = " + scales + ";"};
  std::ostringstream h;
  h << "efficientvit/1;" << s.in_chans << ';' << s.img_size;
  for (int i = 0; i < 3; ++i)
    h << ';' << s.embed_dim[i] << ',' << s.depth[i] << ',' << s.num_heads[i] << ',' << s.key_dim[i] << ','
      << s.window_size[i] << ',' << hexf(s.attn_scale[i]);
  for (int i = 0; i < 4; ++i) h << ';' << s.kernels[i];
  h << ';' << s.num_classes;
  m.config_hash = tools::fnv1a(h.str());
  auto ja = [](const std::int64_t* v, int n) { return std::vector<std::int64_t>(v, v + n); };
  m.config = {{"in_chans", s.in_chans}, {"img_size", s.img_size}, {"embed_dim", ja(s.embed_dim, 3)},
              {"depth", ja(s.depth, 3)}, {"num_heads", ja(s.num_heads, 3)}, {"key_dim", ja(s.key_dim, 3)},
              {"window_size", ja(s.window_size, 3)}, {"kernels", ja(s.kernels, 4)}, {"num_classes", s.num_classes},
              {"attn_scale", {double(s.attn_scale[0]), double(s.attn_scale[1]), double(s.attn_scale[2])}},
              {"resolution", {dims.st[0].res, dims.st[1].res, dims.st[2].res}},
              {"head_batchnorm_folded", s.head_bn}, {"batchnorm_nodes_folded", s.bn_in_graph}};
  m.input_shape = {1, s.in_chans, s.img_size, s.img_size};
  m.output_shape = {1, std::int64_t(dims.out)};
  m.output_kind = s.num_classes > 0 ? "logits" : "pooled";
  // Parameters: the canonical tensors; FLOPs: multiply-adds x 2 of convs, attention and head.
  std::uint64_t params = 0;
  for (const auto& [name, t] : s.tensors)
    if (name.find("attention_bias") == std::string::npos) params += t.data.size();
  std::uint64_t macs = 0;
  std::size_t r = dims.img, c = dims.cin;
  for (int i = 0; i < 4; ++i) {
    macs += dims.pe_res[i] * dims.pe_res[i] * 9 * c * dims.pe_ch[i];
    r = dims.pe_res[i];
    c = dims.pe_ch[i];
  }
  auto dwffn = [&](std::size_t rr, std::size_t cc) { return rr * rr * (9 * cc + 4 * cc * cc); };
  for (int st = 0; st < 3; ++st) {
    const EvitStageDims& t = dims.st[st];
    if (st > 0) {
      macs += dwffn(r, c) + r * r * c * t.pm_hidden + t.res * t.res * (9 * t.pm_hidden + t.pm_hidden * t.c) +
              2 * t.pm_hidden * t.se_rd + dwffn(t.res, t.c);
    }
    const std::size_t windows = t.nwin * t.nwin;
    const std::size_t attn = windows * t.heads *
                             (t.n * t.cin_head * (2 * t.kd + t.vd) + t.n * t.kd * 49 + t.n * t.n * (t.kd + t.vd));
    macs += t.depth * (2 * dwffn(t.res, t.c) + attn + t.res * t.res * t.c * t.c);
    r = t.res;
    c = t.c;
  }
  macs += c * dims.classes;
  m.parameters = params;
  m.flops = 2 * macs;
  m.workspace_bytes = [cfg](Precision p) {
    EfficientVitDynamicConfig c = cfg;
    c.precision = p;
    return std::uint64_t(EvitDims::of(c).workspace_floats() * sizeof(float));
  };

  char line[256];
  std::snprintf(line, sizeof line, "input        1x%zux%zux%zu; patch embedding 4 x (3x3 s2 conv) -> %zux%zu x %zu",
                dims.cin, dims.img, dims.img, dims.pe_res[3], dims.pe_res[3], dims.pe_ch[3]);
  m.summary.push_back(line);
  for (int st = 0; st < 3; ++st) {
    const EvitStageDims& t = dims.st[st];
    std::string ks;
    for (std::size_t h = 0; h < t.heads; ++h) ks += (h ? "," : "") + std::to_string(t.kernels[h]);
    std::snprintf(line, sizeof line,
                  "stage %d      %s%zu x %zu, dim %zu, %zu block%s, %zu heads (key %zu, value %zu, q kernels %s), %s",
                  st, st > 0 ? "patch merging -> " : "", t.res, t.res, t.c, t.depth, t.depth == 1 ? "" : "s", t.heads, t.kd, t.vd, ks.c_str(),
                  t.nwin > 1 ? (std::to_string(t.nwin * t.nwin) + " windows of " + std::to_string(t.win) + "x" +
                                std::to_string(t.win) + (t.nwin * t.win > t.res ? " (padded)" : ""))
                                   .c_str()
                             : (std::string("whole map attended (") + std::to_string(t.n) + " tokens)").c_str());
    m.summary.push_back(line);
  }
  std::snprintf(line, sizeof line, "head         global average pool%s, output %s [%zu]%s",
                s.head_bn ? ", BatchNorm1d (folded into the Linear)" : "", m.output_kind.c_str(), dims.out,
                s.bn_in_graph ? "; Conv+BatchNorm folded by the packer" : "; Conv+BatchNorm already fused");
  m.summary.push_back(line);
  std::snprintf(line, sizeof line, "layout       NHWC inside (1x1 convs as GEMMs on packed weights)");
  m.summary.push_back(line);

  m.run_packed = [cfg](const BlobView& blob, Precision p, const float* input, float* output) -> Status {
    EfficientVitDynamicConfig c = cfg;
    c.precision = p;
    const EvitDims d = EvitDims::of(c);
    auto w = std::make_unique<EvitWeights>();
    std::vector<EvitBlockWeights> blocks(std::size_t(c.depth[0] + c.depth[1] + c.depth[2]));
    Status st = detail::bind_efficientvit(c, blob, *w, blocks.data());
    if (!st.ok()) return st;
    std::unique_ptr<void, decltype(&std::free)> ws(
        std::aligned_alloc(64, (d.workspace_floats() * sizeof(float) + 63) / 64 * 64), &std::free);
    with_precision(p, [&](auto P) {
      detail::efficientvit_forward<default_arch, decltype(P)::value>(c, *w, blocks.data(), input, output,
                                                                      static_cast<float*>(ws.get()));
    });
    return st;
  };
  return m;
}

}  // namespace vitcc::pack
