// vitcc-pack MODEL.onnx -o OUT_DIR [--name NAME] [--summary] [preprocessing options]
//
// Reads an ONNX export, recognises the architecture, folds and packs the weights, checks the packed
// model against the ONNX graph itself, and writes OUT_DIR/NAME.vitcc (weight blob), NAME.json
// (config) and NAME.hpp (constexpr config for vitcc::Vit<>). Every output is written through a
// temporary file and a rename; nothing is written unless the whole model was understood.
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../common/names.hpp"
#include "../common/self_check.hpp"
#include "artifacts.hpp"
#include "error.hpp"
#include "onnx_graph.hpp"
#include "vit_recognizer.hpp"
#include "vitcc/version.hpp"

namespace fs = std::filesystem;
using namespace vitcc;
using namespace vitcc::pack;

namespace {

const char* usage =
    "usage: vitcc-pack MODEL.onnx -o OUT_DIR [--name NAME] [--summary] [--no-check]\n"
    "                  [--mean R,G,B] [--std R,G,B] [--interpolation bicubic|bilinear|nearest]\n"
    "                  [--crop-pct F]\n"
    "Writes OUT_DIR/NAME.vitcc, OUT_DIR/NAME.json and OUT_DIR/NAME.hpp (NAME: the ONNX file's stem).\n"
    "Preprocessing defaults: ImageNet mean/std, crop_pct 0.875, bicubic (bilinear for torchvision).\n";

struct Options {
  std::string model, out_dir, name;
  bool summary = false, check = true;
  bool mean_set = false, std_set = false;
  std::array<double, 3> mean{0.485, 0.456, 0.406}, std{0.229, 0.224, 0.225};
  std::string interpolation;
  double crop_pct = 0.875;
};

std::array<double, 3> parse_triple(const std::string& flag, const std::string& v) {
  std::array<double, 3> out{};
  std::stringstream ss(v);
  std::string item;
  int i = 0;
  while (std::getline(ss, item, ',')) {
    if (i == 3) break;
    char* end = nullptr;
    out[i] = std::strtod(item.c_str(), &end);
    if (item.empty() || *end != '\0') throw PackError(flag + ": '" + v + "' is not three comma-separated numbers");
    ++i;
  }
  if (i != 3 || std::getline(ss, item, ',')) throw PackError(flag + ": '" + v + "' is not three comma-separated numbers");
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  std::vector<std::string> a(argv + 1, argv + argc);
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto value = [&](const std::string& flag) -> std::string {
      if (i + 1 >= a.size()) throw PackError(flag + " needs a value (see vitcc-pack --help)");
      return a[++i];
    };
    if (a[i] == "-o" || a[i] == "--out") o.out_dir = value(a[i]);
    else if (a[i] == "--name") o.name = value(a[i]);
    else if (a[i] == "--summary") o.summary = true;
    else if (a[i] == "--no-check") o.check = false;
    else if (a[i] == "--mean") { o.mean = parse_triple("--mean", value(a[i])); o.mean_set = true; }
    else if (a[i] == "--std") { o.std = parse_triple("--std", value(a[i])); o.std_set = true; }
    else if (a[i] == "--interpolation") {
      o.interpolation = value(a[i]);
      if (o.interpolation != "bicubic" && o.interpolation != "bilinear" && o.interpolation != "nearest")
        throw PackError("--interpolation: '" + o.interpolation + "' is not bicubic, bilinear or nearest");
    } else if (a[i] == "--crop-pct") {
      const std::string v = value(a[i]);
      char* end = nullptr;
      o.crop_pct = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !(o.crop_pct > 0.0 && o.crop_pct <= 1.0))
        throw PackError("--crop-pct: '" + v + "' is not a number in (0, 1]");
    } else if (a[i] == "-h" || a[i] == "--help") {
      std::cout << usage;
      std::exit(0);
    } else if (!a[i].empty() && a[i][0] == '-') throw PackError("unknown option '" + a[i] + "' (see vitcc-pack --help)");
    else if (o.model.empty()) o.model = a[i];
    else throw PackError("unexpected argument '" + a[i] + "' (see vitcc-pack --help)");
  }
  if (o.model.empty() || o.out_dir.empty()) throw PackError("missing MODEL.onnx or -o OUT_DIR (see vitcc-pack --help)");
  if (o.name.empty()) o.name = fs::path(o.model).stem().string();
  for (char c : o.name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      throw PackError("--name '" + o.name + "': use letters, digits, '_', '-' or '.'");
  return o;
}

std::string human_bytes(double b) {
  char buf[32];
  if (b >= 1 << 20) std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1 << 20));
  else std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024);
  return buf;
}

const char* pool_name(VitPool p) { return p == VitPool::token ? "token" : p == VitPool::avg ? "avg" : "none"; }
const char* output_name(VitOutput o) {
  return o == VitOutput::logits ? "logits" : o == VitOutput::pooled ? "pooled" : "tokens";
}

std::string header_text(const Options& o, const VitSpec& s, std::uint64_t config_hash, std::uint64_t checksum) {
  const std::string id = tools::cpp_identifier(o.name);
  char eps[64], scale[64];
  std::snprintf(eps, sizeof eps, "%af;  // %.9g", double(s.ln_eps), double(s.ln_eps));
  std::snprintf(scale, sizeof scale, "%af;  // %.9g", double(s.attn_scale), double(s.attn_scale));
  std::ostringstream h;
  h << "// Generated by vitcc-pack " << VITCC_VERSION_MAJOR << '.' << VITCC_VERSION_MINOR << '.' << VITCC_VERSION_PATCH
    << " from " << fs::path(o.model).filename().string() << ". Do not edit: re-run vitcc-pack.\n"
    << "// Weights: " << o.name << ".vitcc (checked against blob_checksum when bound).\n"
    << "#pragma once\n#include <cstdint>\n\n#include \"vitcc/models/vit.hpp\"\n\nnamespace vitcc_models {\n\n"
    << "struct " << id << " {\n"
    << "  static constexpr const char* name = \"" << o.name << "\";\n"
    << "  static constexpr const char* architecture = \"vit\";\n"
    << "  static constexpr int in_chans = " << s.in_chans << ";\n"
    << "  static constexpr int img_h = " << s.img_h << ";\n"
    << "  static constexpr int img_w = " << s.img_w << ";\n"
    << "  static constexpr int patch = " << s.patch << ";\n"
    << "  static constexpr int dim = " << s.dim << ";\n"
    << "  static constexpr int depth = " << s.depth << ";\n"
    << "  static constexpr int heads = " << s.heads << ";\n"
    << "  static constexpr int mlp_hidden = " << s.mlp_hidden << ";\n"
    << "  static constexpr bool has_cls_token = " << (s.has_cls_token ? "true" : "false") << ";\n"
    << "  static constexpr int num_reg_tokens = " << s.num_reg_tokens << ";\n"
    << "  static constexpr bool final_norm = " << (s.final_norm ? "true" : "false") << ";\n"
    << "  static constexpr bool fc_norm = " << (s.fc_norm ? "true" : "false") << ";\n"
    << "  static constexpr vitcc::VitPool pool = vitcc::VitPool::" << pool_name(s.pool) << ";\n"
    << "  static constexpr vitcc::VitOutput output = vitcc::VitOutput::" << output_name(s.output) << ";\n"
    << "  static constexpr int num_classes = " << s.num_classes << ";\n"
    << "  static constexpr float ln_eps = " << eps << "\n"
    << "  static constexpr float attn_scale = " << scale << "\n"
    << "  static constexpr std::uint64_t config_hash = " << hex64(config_hash) << "ull;\n"
    << "  static constexpr std::uint64_t blob_checksum = " << hex64(checksum) << "ull;\n"
    << "};\n\nusing " << id << "_model = vitcc::Vit<" << id << ">;\n\n}  // namespace vitcc_models\n";
  return h.str();
}

}  // namespace

int main(int argc, char** argv) {
  std::string stage = "reading arguments";
  try {
    const Options o = parse(argc, argv);
    stage = "reading " + o.model;
    const OnnxGraph graph = OnnxGraph::load(o.model);
    const VitSpec spec = recognize_vit(graph);
    const std::vector<BlobTensor> tensors = fold_and_pack_vit(spec);
    const std::vector<unsigned char> blob_bytes = serialize_blob(tensors);
    const std::uint64_t checksum = blob::read_u64(blob_bytes.data() + blob::checksum_offset);
    const std::uint64_t config_hash = vit_config_hash(spec);
    VitDynamicConfig cfg = dynamic_config(spec);
    cfg.blob_checksum = checksum;
    const VitDims dims = VitDims::of(cfg);
    const ModelStats stats = vit_stats(spec, blob_bytes.size());

    // Self-check: the packed model, run by the library's own forward pass, must reproduce the ONNX
    // graph (run by the packer's interpreter) on a seeded input. A recognition mistake cannot pass.
    const std::uint64_t seed = 20240607;
    const std::vector<float> check_in = tools::self_check_input(dims.c * dims.h * dims.w, seed);
    stage = "running the ONNX graph on the self-check input";
    const std::vector<float> expected = graph.run(check_in);
    if (expected.size() != dims.out)
      throw PackError(o.model + ": the graph output has " + std::to_string(expected.size()) +
                      " values per image, the recognised model " + std::to_string(dims.out));
    if (o.check) {
      stage = "checking the packed model against the ONNX graph";
      void* mem = std::aligned_alloc(64, (blob_bytes.size() + 63) / 64 * 64);
      std::memcpy(mem, blob_bytes.data(), blob_bytes.size());
      void* ws = std::aligned_alloc(64, (dims.workspace_floats() * sizeof(float) + 63) / 64 * 64);
      BlobView view;
      Status st = view.open(mem, blob_bytes.size());
      VitWeights w;
      std::vector<VitBlockWeights> blocks(dims.depth);
      if (st.ok()) st = detail::bind_vit(cfg, view, w, blocks.data());
      std::vector<float> got(dims.out);
      if (st.ok()) detail::vit_forward<default_arch>(cfg, w, blocks.data(), check_in.data(), got.data(), static_cast<float*>(ws));
      std::free(ws);
      std::free(mem);
      if (!st.ok()) throw PackError(o.model + ": packed blob did not bind: " + st.message());
      const tools::Agreement a = tools::compare(got.data(), expected.data(), expected.size());
      if (!a.within())
        throw PackError(o.model + ": recognised a ViT, but the packed model disagrees with the ONNX graph (max abs error " +
                        std::to_string(a.max_abs_err) + ", cosine " + std::to_string(a.cosine) +
                        "): the graph computes something this recognizer does not model; refusing to write it");
      if (o.summary)
        std::printf("self-check: packed model vs ONNX graph on a seeded input: max abs error %.3g (max |ref| %.3g), cosine %.8f\n",
                    a.max_abs_err, a.max_abs_ref, a.cosine);
    }

    nlohmann::json j;
    j["format"] = "vitcc-config";
    j["format_version"] = 1;
    j["vitcc_version"] = std::to_string(VITCC_VERSION_MAJOR) + "." + std::to_string(VITCC_VERSION_MINOR) + "." +
                         std::to_string(VITCC_VERSION_PATCH);
    j["name"] = o.name;
    j["architecture"] = "vit";
    j["source"] = {{"file", fs::path(o.model).filename().string()},
                   {"opset", graph.opset()},
                   {"producer", graph.producer()},
                   {"layout", spec.source_layout},
                   {"dynamic_batch", graph.dynamic_batch()}};
    j["config"] = {{"in_chans", spec.in_chans}, {"img_h", spec.img_h}, {"img_w", spec.img_w}, {"patch", spec.patch},
                   {"dim", spec.dim}, {"depth", spec.depth}, {"heads", spec.heads}, {"mlp_hidden", spec.mlp_hidden},
                   {"has_cls_token", spec.has_cls_token}, {"num_reg_tokens", spec.num_reg_tokens},
                   {"has_pos_embed", spec.has_pos_embed}, {"pos_embed_covers_prefix", spec.pos_embed_covers_prefix},
                   {"qkv_bias", spec.qkv_bias}, {"final_norm", spec.final_norm}, {"fc_norm", spec.fc_norm},
                   {"pool", pool_name(spec.pool)}, {"output", output_name(spec.output)},
                   {"num_classes", spec.num_classes}, {"ln_eps", double(spec.ln_eps)},
                   {"attn_scale", double(spec.attn_scale)}, {"num_tokens", dims.tokens}};
    j["config_hash"] = hex64(config_hash);
    std::vector<std::size_t> out_shape;
    if (spec.output == VitOutput::tokens) out_shape = {1, dims.tokens, dims.d};
    else out_shape = {1, dims.out};
    j["input"] = {{"name", graph.input_name()}, {"shape", {1, dims.c, dims.h, dims.w}}, {"dtype", "float32"}, {"layout", "NCHW"}};
    j["output"] = {{"name", graph.output_name()}, {"shape", out_shape}, {"dtype", "float32"}, {"kind", output_name(spec.output)}};
    const std::string interp = o.interpolation.empty() ? (spec.source_layout == "torchvision" ? "bilinear" : "bicubic") : o.interpolation;
    j["preprocessing"] = {{"input_size", {dims.c, dims.h, dims.w}}, {"mean", o.mean}, {"std", o.std},
                          {"interpolation", interp}, {"crop_pct", o.crop_pct}, {"crop_mode", "center"}};
    j["blob"] = {{"file", o.name + ".vitcc"}, {"bytes", blob_bytes.size()}, {"checksum", hex64(checksum)}};
    j["header"] = o.name + ".hpp";
    j["stats"] = {{"parameters", stats.parameters}, {"flops", stats.flops}, {"weight_bytes", stats.weight_bytes},
                  {"workspace_bytes", stats.workspace_bytes}};
    j["self_check"] = tools::self_check_record(seed, expected);

    stage = "writing to " + o.out_dir;
    std::error_code ec;
    fs::create_directories(o.out_dir, ec);
    if (ec) throw PackError(o.out_dir + ": cannot create the output folder: " + ec.message());
    const fs::path dir(o.out_dir);
    const std::string json_text = j.dump(2) + "\n";
    const std::string header = header_text(o, spec, config_hash, checksum);
    // The blob first and the config last: a config never names a blob that is not in place.
    write_file_atomically((dir / (o.name + ".vitcc")).string(), blob_bytes.data(), blob_bytes.size());
    write_file_atomically((dir / (o.name + ".hpp")).string(), header.data(), header.size());
    write_file_atomically((dir / (o.name + ".json")).string(), json_text.data(), json_text.size());

    if (o.summary) {
      std::printf("model        %s (%s)\n", o.model.c_str(), graph.producer().c_str());
      std::printf("architecture ViT (%s layout), opset %lld%s\n", spec.source_layout.c_str(),
                  static_cast<long long>(graph.opset()), graph.dynamic_batch() ? ", dynamic batch packed as 1" : "");
      std::printf("input        1x%zux%zux%zu, patch %zu -> %zux%zu grid, %zu tokens (%s%lld register)\n", dims.c, dims.h,
                  dims.w, dims.p, dims.gh, dims.gw, dims.tokens, spec.has_cls_token ? "class token, " : "",
                  static_cast<long long>(spec.num_reg_tokens));
      std::printf("blocks       %lld x (dim %lld, %lld heads of %zu, mlp %lld)%s%s\n", static_cast<long long>(spec.depth),
                  static_cast<long long>(spec.dim), static_cast<long long>(spec.heads), dims.hd,
                  static_cast<long long>(spec.mlp_hidden), spec.qkv_bias ? ", qkv bias" : "",
                  spec.tensors.count("blocks.0.ls1.gamma") ? ", LayerScale (folded)" : "");
      std::printf("head         pool %s%s%s, output %s [%s]\n", pool_name(spec.pool), spec.final_norm ? ", final norm" : "",
                  spec.fc_norm ? ", fc_norm" : "", output_name(spec.output),
                  spec.output == VitOutput::logits ? (std::to_string(spec.num_classes) + " classes").c_str()
                                                   : (std::to_string(dims.out) + " values").c_str());
      std::printf("parameters   %llu (%.2f M)\n", static_cast<unsigned long long>(stats.parameters), stats.parameters / 1e6);
      std::printf("FLOPs        %.3f GFLOP per image (multiply-add = 2)\n", stats.flops / 1e9);
      std::printf("weights      %s blob (%llu bytes, packed)\n", human_bytes(double(stats.weight_bytes)).c_str(),
                  static_cast<unsigned long long>(stats.weight_bytes));
      std::printf("workspace    %s (%llu bytes)\n", human_bytes(double(stats.workspace_bytes)).c_str(),
                  static_cast<unsigned long long>(stats.workspace_bytes));
      std::printf("wrote        %s/%s.{vitcc,json,hpp}\n", o.out_dir.c_str(), o.name.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    // One line on stderr, whatever the message holds (some come from the ONNX library).
    std::string line;
    for (const char* c = e.what(); *c; ++c) {
      if (*c == '\n' || *c == '\r' || *c == '\t') {
        if (!line.empty() && line.back() != ' ') line += ' ';
      } else {
        line += *c;
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::fprintf(stderr, "vitcc-pack: error: %s\n", line.c_str());
    return 1;
  }
}
