// vitcc-pack MODEL.onnx -o OUT_DIR [--name NAME] [--summary] [preprocessing options]
//
// Reads an ONNX export, recognises the architecture, folds and packs the weights, checks the packed
// model against the ONNX graph itself, and writes into OUT_DIR one set of files (docs/FORMAT.md,
// "Files"): NAME.<checksum>.vitcc (weight blob), NAME.<hash>.hpp (constexpr config for vitcc::Vit<>),
// NAME.hpp (includes it) and NAME.json (config), last, naming the others. Every output is written
// through a temporary file and a rename, in the order of output_set.hpp, so that a reader or a kill
// at any moment finds the old set or the new one whole; nothing is written unless the whole model
// was understood.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../common/names.hpp"
#include "../common/process.hpp"
#include "../common/self_check.hpp"
#include "artifacts.hpp"
#include "embed.hpp"
#include "error.hpp"
#include "onnx_graph.hpp"
#include "output_set.hpp"
#include "packed_model.hpp"
#include "vitcc/version.hpp"

namespace fs = std::filesystem;
using namespace vitcc;
using namespace vitcc::pack;

namespace {

const char* usage =
    "usage: vitcc-pack MODEL.onnx -o OUT_DIR [--name NAME] [--precision fp32|bf16|int8] [--summary] [--no-check]\n"
    "                  [--mean R,G,B] [--std R,G,B] [--interpolation bicubic|bilinear|nearest]\n"
    "                  [--crop-pct F] [--emit-c-array] [--emit-object [--object-cc CC]]\n"
    "Writes OUT_DIR/NAME.json (the config; written last, it names the others), OUT_DIR/NAME.hpp (the\n"
    "header to include) and the content-addressed NAME.<checksum>.vitcc (weights) and NAME.<hash>.hpp\n"
    "(NAME: the ONNX file's stem); files of an earlier pack of NAME are removed once the new set is in place.\n"
    "--emit-c-array: also NAME_weights.h, the blob as an aligned const array (small models).\n"
    "--emit-object: also NAME_blob.o (+ NAME_blob.s, NAME_blob.h), the blob linked in via .incbin,\n"
    "  assembled by CC (default $CC, else cc; e.g. --object-cc arm-none-eabi-gcc).\n"
    "--precision: the GEMM weights' precision (default fp32): bf16 (rounded to nearest even, float32\n"
    "  arithmetic) or int8 (symmetric per output channel; activations quantised per token). LayerNorm,\n"
    "  softmax, GELU and attention stay float32. The self-check then also reports the chosen precision\n"
    "  against the float32 graph.\n"
    "Preprocessing defaults: ImageNet mean/std, crop_pct 0.875, bicubic (bilinear for torchvision).\n";

struct Options {
  std::string model, out_dir, name;
  Precision precision = Precision::fp32;
  bool summary = false, check = true;
  bool emit_c_array = false, emit_object = false;
  std::string object_cc;
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
  bool name_given = false;
  std::vector<std::string> a(argv + 1, argv + argc);
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto value = [&](const std::string& flag) -> std::string {
      if (i + 1 >= a.size()) throw PackError(flag + " needs a value (see vitcc-pack --help)");
      return a[++i];
    };
    if (a[i] == "-o" || a[i] == "--out") o.out_dir = value(a[i]);
    else if (a[i] == "--name") {
      o.name = value(a[i]);
      name_given = true;
    }
    else if (a[i] == "--summary") o.summary = true;
    else if (a[i] == "--precision") {
      const std::string v = value(a[i]);
      if (!precision_from_name(v.c_str(), o.precision)) throw PackError("--precision: '" + v + "' is not fp32, bf16 or int8");
    }
    else if (a[i] == "--no-check") o.check = false;
    else if (a[i] == "--emit-c-array") o.emit_c_array = true;
    else if (a[i] == "--emit-object") o.emit_object = true;
    else if (a[i] == "--object-cc") o.object_cc = value(a[i]);
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
  if (const std::string why = tools::model_name_problem(o.name); !why.empty())
    throw PackError("--name '" + o.name + "': " + why + (name_given ? "" : " (the ONNX file's stem; give --name)"));
  return o;
}

std::string human_bytes(double b) {
  char buf[32];
  if (b >= 1 << 20) std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1 << 20));
  else std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024);
  return buf;
}

// A file name as it may appear in a // comment of generated source: no line break and no backslash
// (which would splice the next line into the comment).
std::string comment_safe(std::string s) {
  for (char& c : s)
    if (c == '\\' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return s;
}

// The config header, NAME.<hash>.hpp. It names its blob (blob_file) as well as its checksum, so a
// program that loads the file the header names binds the weights the header was made for.
std::string header_text(const Options& o, const PackedModel& m, std::uint64_t checksum, const std::string& blob_file) {
  const std::string id = tools::cpp_identifier(o.name);
  std::ostringstream h;
  h << "// Generated by vitcc-pack " << VITCC_VERSION_MAJOR << '.' << VITCC_VERSION_MINOR << '.' << VITCC_VERSION_PATCH
    << " from " << comment_safe(fs::path(o.model).filename().string()) << ". Do not edit: re-run vitcc-pack.\n"
    << "// Weights: " << blob_file << " (blob_file; checked against blob_checksum when bound).\n"
    << "#pragma once\n#include <cstdint>\n\n#include \"" << m.library_header << "\"\n\nnamespace vitcc_models {\n\n"
    << "struct " << id << " {\n"
    << "  static constexpr const char* name = \"" << o.name << "\";\n"
    << "  static constexpr const char* architecture = \"" << m.architecture << "\";\n"
    << "  static constexpr const char* blob_file = \"" << blob_file << "\";  // in this header's folder\n";
  for (const std::string& f : m.header_fields) h << "  " << f << "\n";
  h << "  static constexpr std::uint64_t config_hash = " << hex64(m.config_hash) << "ull;\n"
    << "  static constexpr std::uint64_t blob_checksum = " << hex64(checksum) << "ull;\n"
    << "};\n\nusing " << id << "_model = " << m.model_template << "<" << id << ">;\n\n}  // namespace vitcc_models\n";
  return h.str();
}

// NAME.hpp, the header users include: the set's config header, whatever its tag.
std::string forwarding_header(const std::string& name, const std::string& header_file, const std::string& blob_file) {
  return "// Generated by vitcc-pack: the model of " + name + ".json (config header " + header_file + ", weights\n" +
         "// " + blob_file + ": vitcc_models::" + tools::cpp_identifier(name) + "::blob_file). Do not edit.\n" +
         "#pragma once\n#include \"" + header_file + "\"\n";
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    const OnnxGraph graph = OnnxGraph::load(o.model);
    PackedModel m = pack_model(graph);
    check_finite(m.tensors, o.model);
    // The float32 blob first: the recognition is checked on it, with the tight float32 bound.
    const std::vector<unsigned char> fp32_bytes = serialize_blob(m.tensors);
    if (o.precision != Precision::fp32) {
      m.header_fields.push_back(std::string("static constexpr vitcc::Precision precision = vitcc::Precision::") +
                                precision_name(o.precision) + ";");
      m.config["precision"] = precision_name(o.precision);
      m.config_hash = tools::fnv1a(hex64(m.config_hash) + ";precision=" + precision_name(o.precision));
    }
    const std::vector<unsigned char> blob_bytes =
        o.precision == Precision::fp32 ? fp32_bytes : serialize_blob(convert_precision(m.tensors, o.precision));
    const std::uint64_t checksum = blob::read_u64(blob_bytes.data() + blob::checksum_offset);
    std::size_t out_count = 1;
    for (std::size_t i = 1; i < m.output_shape.size(); ++i) out_count *= std::size_t(m.output_shape[i]);

    // Self-check: the packed model, run by the library's own forward pass, must reproduce the ONNX
    // graph (run by the packer's interpreter) on a seeded input. A recognition mistake cannot pass.
    const std::uint64_t seed = 20240607;
    const std::vector<float> check_in =
        tools::self_check_image(std::size_t(m.input_shape[1]), std::size_t(m.input_shape[2]), std::size_t(m.input_shape[3]), seed);
    const std::vector<float> expected = graph.run(check_in);
    if (expected.size() != out_count)
      throw PackError(o.model + ": the graph output has " + std::to_string(expected.size()) +
                      " values per image, the recognised model " + std::to_string(out_count));
    double slack = 0;  // the bound's widening for a graph that amplifies rounding (recorded for --check)
    tools::Agreement reduced;  // the chosen precision against the float32 graph (bf16, int8)
    if (o.check) {
      // The packed model, on a blob 64-byte aligned as on a device.
      auto run = [&](const std::vector<unsigned char>& bytes, Precision p) {
        std::unique_ptr<void, decltype(&std::free)> mem(std::aligned_alloc(64, (bytes.size() + 63) / 64 * 64), &std::free);
        std::memcpy(mem.get(), bytes.data(), bytes.size());
        BlobView view;
        std::vector<float> got(out_count);
        Status st = view.open(mem.get(), bytes.size());
        if (st.ok()) st = m.run_packed(view, p, check_in.data(), got.data());
        if (!st.ok()) throw PackError(o.model + ": packed blob did not bind: " + st.message());
        return got;
      };
      const std::vector<float> got = run(fp32_bytes, Precision::fp32);
      const tools::Agreement a = tools::compare(got.data(), expected.data(), expected.size());
      // Two float32 implementations of one graph differ by their roundings, amplified by the graph.
      // Most graphs hardly amplify, and the parity bound holds. A few (randomly initialised ones with
      // outputs near 100, say) amplify by orders of magnitude: then even PyTorch's float32 output is
      // as far from the exact one as the bound. So when the bound fails, measure the graph's own
      // amplification -- how far its output moves when every input value moves by one rounding -- and
      // allow a few times that, never without the cosine. A recognition mistake moves outputs by a
      // share of their size, far beyond it.
      if (!a.within()) {
        std::vector<float> nudged = check_in;
        for (std::size_t i = 0; i < nudged.size(); ++i) nudged[i] *= i % 2 ? 1.0f + 0x1p-23f : 1.0f - 0x1p-23f;
        const std::vector<float> moved = graph.run(nudged);
        double sensitivity = 0;
        for (std::size_t i = 0; i < moved.size(); ++i)
          sensitivity = std::max(sensitivity, std::fabs(double(moved[i]) - double(expected[i])));
        slack = 8 * sensitivity;
      }
      if (!a.within(tools::fp32_parity, slack))
        throw PackError(o.model + ": recognised a " + m.architecture +
                        ", but the packed model disagrees with the ONNX graph (max abs error " +
                        std::to_string(a.max_abs_err) + ", allowed " + std::to_string(a.allowed(tools::fp32_parity, slack)) +
                        ", cosine " + std::to_string(a.cosine) +
                        "): the graph computes something this recogniser does not model; refusing to write it");
      if (o.summary) {
        std::printf("self-check   packed model vs ONNX graph on a seeded input: max abs error %.3g (max |ref| %.3g), cosine %.8f\n",
                    a.max_abs_err, a.max_abs_ref, a.cosine);
        if (slack > 0)
          std::printf("             (the graph amplifies rounding: one rounding of the input moves its output by %.3g,\n"
                      "             so the bound was widened by 8x that to %.3g)\n", slack / 8, a.allowed(tools::fp32_parity, slack));
      }
      if (o.precision != Precision::fp32) {
        // The chosen precision against the float32 graph: its own, looser bound (tools::parity_for).
        const std::vector<float> low = run(blob_bytes, o.precision);
        reduced = tools::compare(low.data(), expected.data(), expected.size());
        const tools::ParityBound bound = tools::parity_for(o.precision);
        if (!reduced.within(bound, slack))
          throw PackError(o.model + ": at " + precision_name(o.precision) + " the packed model is too far from the float32 graph (max abs error " +
                          std::to_string(reduced.max_abs_err) + ", allowed " + std::to_string(reduced.allowed(bound, slack)) +
                          ", cosine " + std::to_string(reduced.cosine) + ", at least " + std::to_string(bound.min_cosine) +
                          " needed); refusing to write it");
        if (o.summary)
          std::printf("precision    %s vs the float32 graph on the same input: max abs error %.3g, cosine %.8f\n",
                      precision_name(o.precision), reduced.max_abs_err, reduced.cosine);
      }
    }

    // vitcc-run --check holds the packed model to the recorded output with this slack: at bf16 and int8
    // it must include that precision's wider bound, checked above or not (--no-check).
    if (o.precision != Precision::fp32) {
      double max_abs = 0;
      for (float v : expected) max_abs = std::max(max_abs, double(std::fabs(v)));
      slack += (tools::parity_for(o.precision).rel - tools::fp32_parity.rel) * std::max(1.0, max_abs);
    }

    nlohmann::json j;
    j["format"] = "vitcc-config";
    j["format_version"] = 1;
    j["vitcc_version"] = std::to_string(VITCC_VERSION_MAJOR) + "." + std::to_string(VITCC_VERSION_MINOR) + "." +
                         std::to_string(VITCC_VERSION_PATCH);
    j["name"] = o.name;
    j["architecture"] = m.architecture;
    j["source"] = {{"file", fs::path(o.model).filename().string()},
                   {"opset", graph.opset()},
                   {"producer", graph.producer()},
                   {"layout", m.source_layout},
                   {"dynamic_batch", graph.dynamic_batch()}};
    j["config"] = m.config;
    j["config_hash"] = hex64(m.config_hash);
    j["input"] = {{"name", graph.input_name()}, {"shape", m.input_shape}, {"dtype", "float32"}, {"layout", "NCHW"}};
    j["output"] = {{"name", graph.output_name()}, {"shape", m.output_shape}, {"dtype", "float32"}, {"kind", m.output_kind}};
    const std::string interp = o.interpolation.empty() ? m.default_interpolation : o.interpolation;
    j["preprocessing"] = {{"input_size", {m.input_shape[1], m.input_shape[2], m.input_shape[3]}}, {"mean", o.mean},
                          {"std", o.std}, {"interpolation", interp}, {"crop_pct", o.crop_pct}, {"crop_mode", "center"}};
    const std::string blob_file = tools::blob_file_name(o.name, checksum);
    const std::string header = header_text(o, m, checksum, blob_file);
    const std::string header_file = tools::header_file_name(o.name, tools::fnv1a(header));
    j["blob"] = {{"file", blob_file}, {"bytes", blob_bytes.size()}, {"checksum", hex64(checksum)}};
    j["header"] = header_file;
    j["header_checksum"] = hex64(tools::fnv1a(header));
    const std::uint64_t workspace_bytes = m.workspace_bytes(o.precision);
    j["precision"] = precision_name(o.precision);
    j["stats"] = {{"parameters", m.parameters}, {"flops", m.flops}, {"weight_bytes", blob_bytes.size()},
                  {"workspace_bytes", workspace_bytes}};
    j["self_check"] = tools::self_check_record(seed, expected);
    if (slack > 0) j["self_check"]["slack"] = slack;
    if (o.check && o.precision != Precision::fp32)
      j["self_check"]["precision_vs_fp32"] = {{"precision", precision_name(o.precision)}, {"max_abs_err", reduced.max_abs_err},
                                              {"max_abs_ref", reduced.max_abs_ref}, {"cosine", reduced.cosine}};

    // The order of output_set.hpp: content-addressed files, the stable names users build with,
    // NAME.json (the commit), then the previous set's files are removed.
    OutputSet set(o.out_dir, o.name);
    set.write(blob_file, blob_bytes.data(), blob_bytes.size(), blob_check(checksum));  // verified as written
    set.write(header_file, header);
    if (o.emit_c_array || o.emit_object) {
      const EmbedRequest req{o.name, blob_file, checksum, o.object_cc};
      if (o.emit_c_array) emit_c_array(set, req, blob_bytes);
      if (o.emit_object) emit_object(set, req, blob_bytes.size());
    }
    set.write(o.name + ".hpp", forwarding_header(o.name, header_file, blob_file));
    set.commit(j.dump(2) + "\n");

    if (o.summary) {
      std::printf("model        %s (%s)\n", o.model.c_str(), graph.producer().c_str());
      std::printf("architecture %s (%s layout), opset %lld%s\n", m.architecture.c_str(), m.source_layout.c_str(),
                  static_cast<long long>(graph.opset()), graph.dynamic_batch() ? ", dynamic batch packed as 1" : "");
      for (const std::string& line : m.summary) std::printf("%s\n", line.c_str());
      std::printf("parameters   %llu (%.2f M)\n", static_cast<unsigned long long>(m.parameters), m.parameters / 1e6);
      std::printf("FLOPs        %.3f GFLOP per image (multiply-add = 2)\n", m.flops / 1e9);
      std::printf("weights      %s blob (%zu bytes, packed)\n", human_bytes(double(blob_bytes.size())).c_str(), blob_bytes.size());
      std::printf("precision    %s weights\n", precision_name(o.precision));
      std::printf("workspace    %s (%llu bytes)\n", human_bytes(double(workspace_bytes)).c_str(),
                  static_cast<unsigned long long>(workspace_bytes));
      std::printf("wrote        %s/%s.json, %s.hpp, %s, %s\n", o.out_dir.c_str(), o.name.c_str(), o.name.c_str(),
                  blob_file.c_str(), header_file.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    // One line on stderr, whatever the message holds (some come from the ONNX library).
    std::fprintf(stderr, "vitcc-pack: error: %s\n", tools::one_line(e.what()).c_str());
    return 1;
  }
}
