// vitcc-recognize-check: developer tool for the ONNX loader, interpreter and ViT recogniser.
//
//   vitcc-recognize-check MODEL.onnx [--input IN.bin] [--ref REF.bin] [--dump] [--no-recognize] [--seed N]
//
// Loads MODEL.onnx, prints the folded graph's summary (and with --dump every remaining node), recognises
// the ViT and prints its VitSpec, runs the graph interpreter on IN.bin (raw float32 NCHW, one or more
// images; default: a seeded uniform [-1, 1] image) and compares with REF.bin (raw float32, the PyTorch
// output for all images of IN.bin). It also runs an independent plain forward pass written from the
// VitSpec alone and compares it with the interpreter: a recognition mistake shows up there.
// Exit status: 0 all checks passed, 1 error, 2 a comparison failed.
#include <Eigen/Core>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "onnx_graph.hpp"
#include "vit_recognizer.hpp"

using namespace vitcc::pack;
using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace {

std::vector<float> read_floats(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw PackError(path, "", "cannot open");
  std::vector<char> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (b.size() % 4) throw PackError(path, "", "size is not a multiple of 4 bytes");
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), b.size());
  return v;
}

const Tensor& T(const VitSpec& s, const std::string& n) {
  auto it = s.tensors.find(n);
  if (it == s.tensors.end()) throw PackError("VitSpec lacks tensor '" + n + "'");
  return it->second;
}

Eigen::Map<const Mat> mat(const Tensor& t, Eigen::Index r, Eigen::Index c) {
  if (static_cast<Eigen::Index>(t.data.size()) != r * c) throw PackError("tensor from " + t.source + " has the wrong size");
  return Eigen::Map<const Mat>(t.data.data(), r, c);
}

Eigen::Map<const Eigen::RowVectorXf> vec(const Tensor& t) {
  return Eigen::Map<const Eigen::RowVectorXf>(t.data.data(), static_cast<Eigen::Index>(t.data.size()));
}

Mat layer_norm(const Mat& x, const VitSpec& s, const std::string& name) {
  const auto g = vec(T(s, name + ".weight"));
  const auto b = vec(T(s, name + ".bias"));
  Mat y(x.rows(), x.cols());
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    const double mean = x.row(r).cast<double>().mean();
    const double var = (x.row(r).cast<double>().array() - mean).square().mean();
    const double inv = 1.0 / std::sqrt(var + s.ln_eps);
    y.row(r) = (((x.row(r).cast<double>().array() - mean) * inv).cast<float>() * g.array() + b.array()).matrix();
  }
  return y;
}

Mat linear(const Mat& x, const VitSpec& s, const std::string& name, Eigen::Index in, Eigen::Index out, bool bias = true) {
  Mat y = x * mat(T(s, name + ".weight"), out, in).transpose();
  if (bias) y.rowwise() += vec(T(s, name + ".bias"));
  return y;
}

// A plain ViT forward written from the VitSpec contract alone (model_spec.hpp).
std::vector<float> spec_forward(const VitSpec& s, const std::vector<float>& img) {
  const Eigen::Index C = s.in_chans, H = s.img_h, W = s.img_w, P = s.patch, D = s.dim;
  const Eigen::Index gh = H / P, gw = W / P, N = gh * gw;
  const Eigen::Index K = (s.has_cls_token ? 1 : 0) + s.num_reg_tokens, Tn = K + N;
  Mat patches(N, C * P * P);
  for (Eigen::Index gy = 0; gy < gh; ++gy)
    for (Eigen::Index gx = 0; gx < gw; ++gx)
      for (Eigen::Index c = 0; c < C; ++c)
        for (Eigen::Index ky = 0; ky < P; ++ky)
          for (Eigen::Index kx = 0; kx < P; ++kx)
            patches(gy * gw + gx, (c * P + ky) * P + kx) = img[(c * H + gy * P + ky) * W + gx * P + kx];
  Mat x(Tn, D);
  x.bottomRows(N) = patches * mat(T(s, "patch_embed.weight"), D, C * P * P).transpose();
  x.bottomRows(N).rowwise() += vec(T(s, "patch_embed.bias"));
  if (s.has_cls_token) x.row(0) = vec(T(s, "cls_token"));
  if (s.num_reg_tokens) x.middleRows(s.has_cls_token ? 1 : 0, s.num_reg_tokens) = mat(T(s, "reg_token"), s.num_reg_tokens, D);
  if (s.has_pos_embed) {
    const Tensor& pe = T(s, "pos_embed");
    if (s.pos_embed_covers_prefix) x += mat(pe, Tn, D);
    else x.bottomRows(N) += mat(pe, N, D);
  }
  const Eigen::Index hd = D / s.heads, Hm = s.mlp_hidden;
  for (std::int64_t b = 0; b < s.depth; ++b) {
    const std::string p = "blocks." + std::to_string(b) + ".";
    Mat h = layer_norm(x, s, p + "norm1");
    Mat qkv = linear(h, s, p + "attn.qkv", D, 3 * D, s.qkv_bias);
    Mat ctx(Tn, D);
    for (Eigen::Index hh = 0; hh < s.heads; ++hh) {
      Mat q = qkv.middleCols(hh * hd, hd), k = qkv.middleCols(D + hh * hd, hd), v = qkv.middleCols(2 * D + hh * hd, hd);
      Mat a = (q * k.transpose()) * s.attn_scale;
      for (Eigen::Index r = 0; r < Tn; ++r) {
        const float mx = a.row(r).maxCoeff();
        a.row(r) = (a.row(r).array() - mx).exp().matrix();
        a.row(r) /= a.row(r).sum();
      }
      ctx.middleCols(hh * hd, hd) = a * v;
    }
    Mat o = linear(ctx, s, p + "attn.proj", D, D);
    if (s.tensors.count(p + "ls1.gamma")) o = (o.array().rowwise() * vec(T(s, p + "ls1.gamma")).array()).matrix();
    x += o;
    h = layer_norm(x, s, p + "norm2");
    Mat f = linear(h, s, p + "mlp.fc1", D, Hm);
    f = f.unaryExpr([](float z) { return 0.5f * z * (1.0f + std::erf(z / std::sqrt(2.0f))); });
    o = linear(f, s, p + "mlp.fc2", Hm, D);
    if (s.tensors.count(p + "ls2.gamma")) o = (o.array().rowwise() * vec(T(s, p + "ls2.gamma")).array()).matrix();
    x += o;
  }
  if (s.final_norm) x = layer_norm(x, s, "norm");
  if (s.pool == VitPool::none) return std::vector<float>(x.data(), x.data() + x.size());
  Mat pooled(1, D);
  if (s.pool == VitPool::token) pooled = x.row(0);
  else pooled = x.bottomRows(N).colwise().mean();
  if (s.fc_norm) pooled = layer_norm(pooled, s, "fc_norm");
  if (s.output == VitOutput::logits) pooled = linear(pooled, s, "head", D, s.num_classes);
  return std::vector<float>(pooled.data(), pooled.data() + pooled.size());
}

struct Diff {
  double max_abs = 0, max_ref = 0;
};

Diff compare(const float* a, const float* ref, std::size_t n) {
  Diff d;
  for (std::size_t k = 0; k < n; ++k) {
    d.max_abs = std::max(d.max_abs, static_cast<double>(std::fabs(a[k] - ref[k])));
    d.max_ref = std::max(d.max_ref, static_cast<double>(std::fabs(ref[k])));
  }
  return d;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, in_path, ref_path;
  bool dump = false, recognize = true;
  unsigned seed = 1;
  for (int k = 1; k < argc; ++k) {
    const std::string a = argv[k];
    if (a == "--input" && k + 1 < argc) in_path = argv[++k];
    else if (a == "--ref" && k + 1 < argc) ref_path = argv[++k];
    else if (a == "--seed" && k + 1 < argc) seed = static_cast<unsigned>(std::stoul(argv[++k]));
    else if (a == "--dump") dump = true;
    else if (a == "--no-recognize") recognize = false;
    else if (model.empty() && a[0] != '-') model = a;
    else {
      std::fprintf(stderr, "usage: %s MODEL.onnx [--input IN.bin] [--ref REF.bin] [--dump] [--no-recognize] [--seed N]\n", argv[0]);
      return 1;
    }
  }
  if (model.empty()) {
    std::fprintf(stderr, "usage: %s MODEL.onnx [--input IN.bin] [--ref REF.bin] [--dump] [--no-recognize] [--seed N]\n", argv[0]);
    return 1;
  }
  int status = 0;
  try {
    auto t0 = std::chrono::steady_clock::now();
    const OnnxGraph g = OnnxGraph::load(model);
    std::printf("loaded %s in %.2fs: %s, opset %lld, %zu nodes after folding, input '%s' %s%s, output '%s' %s\n", model.c_str(),
                seconds_since(t0), g.producer().c_str(), static_cast<long long>(g.opset()), g.nodes().size(), g.input_name().c_str(),
                shape_str(g.input_shape()).c_str(), g.dynamic_batch() ? " (dynamic batch pinned to 1)" : "", g.output_name().c_str(),
                shape_str(g.output_shape()).c_str());
    if (dump) {
      for (const OnnxNode& n : g.nodes()) {
        std::printf("  %s:", n.label().c_str());
        for (const std::string& i : n.inputs)
          std::printf(" %s%s", i.c_str(), g.is_constant(i) ? ("=const" + shape_str(g.constant(i)->shape)).c_str() : "");
        std::printf(" -> %s %s\n", n.outputs[0].c_str(), shape_str(g.shape(n.outputs[0])).c_str());
      }
    }
    VitSpec spec;
    bool have_spec = false;
    if (recognize) {
      t0 = std::chrono::steady_clock::now();
      spec = recognize_vit(g);
      have_spec = true;
      std::printf("recognised in %.2fs:\n%s", seconds_since(t0), describe_vit_spec(spec).c_str());
    }
    std::size_t per_image = 1, out_per_image = 1;
    for (std::int64_t d : g.input_shape()) per_image *= static_cast<std::size_t>(d);
    for (std::int64_t d : g.output_shape()) out_per_image *= static_cast<std::size_t>(d);
    std::vector<float> input;
    if (!in_path.empty()) {
      input = read_floats(in_path);
      if (input.empty() || input.size() % per_image) throw PackError(in_path, "", "does not hold whole images of " + std::to_string(per_image) + " floats");
    } else {
      input.resize(per_image);
      std::uint32_t st = seed * 2654435761u + 12345u;
      for (float& v : input) {
        st = st * 1664525u + 1013904223u;
        v = static_cast<float>(st >> 8) / static_cast<float>(1u << 24) * 2.0f - 1.0f;
      }
    }
    std::vector<float> ref;
    if (!ref_path.empty()) {
      ref = read_floats(ref_path);
      if (ref.size() != input.size() / per_image * out_per_image)
        throw PackError(ref_path, "", "holds " + std::to_string(ref.size()) + " floats, expected " + std::to_string(input.size() / per_image * out_per_image));
    }
    for (std::size_t img = 0; img < input.size() / per_image; ++img) {
      const std::vector<float> x(input.begin() + img * per_image, input.begin() + (img + 1) * per_image);
      t0 = std::chrono::steady_clock::now();
      const std::vector<float> y = g.run(x);
      const double dt = seconds_since(t0);
      std::printf("image %zu: run() %.2fs", img, dt);
      if (!ref.empty()) {
        const Diff d = compare(y.data(), ref.data() + img * out_per_image, out_per_image);
        const bool ok = d.max_abs <= 1e-4 * std::max(1.0, d.max_ref);
        std::printf(", vs reference: max abs err %.3g (max |ref| %.3g) %s", d.max_abs, d.max_ref, ok ? "OK" : "MISMATCH");
        if (!ok) status = 2;
      }
      if (have_spec) {
        const std::vector<float> z = spec_forward(spec, x);
        if (z.size() != y.size()) {
          std::printf(", spec forward gives %zu values, graph %zu MISMATCH", z.size(), y.size());
          status = 2;
        } else {
          const Diff d = compare(z.data(), y.data(), y.size());
          const bool ok = d.max_abs <= 1e-4 * std::max(1.0, d.max_ref);
          std::printf(", spec forward vs run(): max abs err %.3g %s", d.max_abs, ok ? "OK" : "MISMATCH");
          if (!ok) status = 2;
        }
      }
      std::printf("\n");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return status;
}
