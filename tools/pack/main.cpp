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
#include "smooth.hpp"
#include "../run/image_preprocess.hpp"
#include "../run/tensor_io.hpp"
#include "vitcc/version.hpp"
#include "../common/exit_codes.hpp"

namespace fs = std::filesystem;
using namespace vitcc;
using namespace vitcc::pack;

namespace {

const char* usage =
    "usage: vitcc-pack MODEL.onnx -o OUT_DIR [--name NAME] [--precision fp32|bf16|int8] [--summary] [--no-check]\n"
    "                  [--calibration FILE]... [--smooth auto|off|ALPHA]\n"
    "                  [--mean R,G,B] [--std R,G,B] [--interpolation bicubic|bilinear|nearest]\n"
    "                  [--crop-pct F] [--emit-c-array] [--emit-object [--object-cc CC]]\n"
    "       vitcc-pack --version\n"
    "Writes OUT_DIR/NAME.json (the config; written last, it names the others), OUT_DIR/NAME.hpp (the\n"
    "header to include) and the content-addressed NAME.<checksum>.vitcc (weights) and NAME.<hash>.hpp\n"
    "(NAME: the ONNX file's stem); files of an earlier pack of NAME are removed once the new set is in place.\n"
    "--emit-c-array: also NAME_weights.h, the blob as an aligned const array (small models).\n"
    "--emit-object: also NAME_blob.o (+ NAME_blob.s, NAME_blob.h), the blob linked in via .incbin,\n"
    "  assembled by CC (default $CC, else cc; e.g. --object-cc arm-none-eabi-gcc).\n"
    "--precision: the GEMM weights' precision (default fp32): bf16 (rounded to nearest even, float32\n"
    "  arithmetic) or int8 (symmetric per output channel; activations quantised per token). LayerNorm,\n"
    "  softmax and GELU stay float32; int8 ViTs compute q.k^T from int8 q and k, and attention's P.v in\n"
    "  float32, or bfloat16 where the build measured vdpbf16ps paying (docs/PRECISION.md). The\n"
    "  self-check then also reports the chosen precision against the float32 graph.\n"
    "--calibration FILE: int8 only, repeatable: the images SmoothQuant's smoothing is calibrated on: .npy\n"
    "  (float32 or float64, [N,C,H,W] or [C,H,W], already preprocessed), .bin (raw float32 NCHW) or an\n"
    "  image (.png .jpg .jpeg .ppm .pgm, preprocessed as --mean/--std/--interpolation/--crop-pct say).\n"
    "  Without it the packer calibrates on two seeded probe images of its own (not the self-check's).\n"
    "--smooth: int8 only (default auto). Where a GEMM reads a LayerNorm's output (a ViT's qkv and fc1),\n"
    "  divide the norm's gamma and beta per channel by s = max|x|^alpha / max|w|^(1-alpha) and multiply\n"
    "  the weight's rows by s before quantising (the float32 function is unchanged). auto tries alpha\n"
    "  0.3 to 0.8 and keeps the one whose int8 output is closest (cosine) to float32 on the calibration\n"
    "  images if it removes a tenth of int8's distance (1 - cosine) to float32 there, else none; ALPHA in\n"
    "  [0, 1] fixes it; off disables it. NAME.json \"smoothing\" and --summary record what was done\n"
    "  (docs/PRECISION.md).\n"
    "Preprocessing defaults: ImageNet mean/std, crop_pct 0.875, bicubic (bilinear for torchvision).\n"
    "Exit codes: 0 done, 1 another failure (a compiler, the runner, an internal error), 2 usage, 3 an\n"
    "input file is unreadable or invalid, 4 outputs outside their bound, 5 a model vitcc does not pack,\n"
    "6 an output cannot be written.\n";

struct Options {
  std::string model, out_dir, name;
  Precision precision = Precision::fp32;
  bool summary = false, check = true;
  std::vector<std::string> calibration;  // --calibration files
  bool smooth_set = false;               // --smooth given
  double smooth_alpha = -1;              // -1 auto, -2 off, else the fixed alpha
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
    else if (a[i] == "--calibration") o.calibration.push_back(value(a[i]));
    else if (a[i] == "--smooth") {
      const std::string v = value(a[i]);
      o.smooth_set = true;
      if (v == "auto") o.smooth_alpha = -1;
      else if (v == "off") o.smooth_alpha = -2;
      else {
        char* end = nullptr;
        o.smooth_alpha = std::strtod(v.c_str(), &end);
        if (v.empty() || *end != '\0' || !(o.smooth_alpha >= 0.0 && o.smooth_alpha <= 1.0))
          throw PackError("--smooth: '" + v + "' is not auto, off or a number in [0, 1]");
      }
    }
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
    } else if (a[i] == "--version") {
      std::printf("vitcc-pack %d.%d.%d (writes blob format %u, reads %u to %u)\n", VITCC_VERSION_MAJOR,
                  VITCC_VERSION_MINOR, VITCC_VERSION_PATCH, unsigned(vitcc::blob::format_version),
                  unsigned(vitcc::blob::oldest_format_version), unsigned(vitcc::blob::format_version));
      std::exit(0);
    } else if (!a[i].empty() && a[i][0] == '-') throw PackError("unknown option '" + a[i] + "' (see vitcc-pack --help)");
    else if (o.model.empty()) o.model = a[i];
    else throw PackError("unexpected argument '" + a[i] + "' (see vitcc-pack --help)");
  }
  if (o.model.empty() || o.out_dir.empty()) throw PackError("missing MODEL.onnx or -o OUT_DIR (see vitcc-pack --help)");
  if ((!o.calibration.empty() || o.smooth_set) && o.precision != Precision::int8)
    throw PackError(std::string(o.calibration.empty() ? "--smooth" : "--calibration") +
                    " applies only to --precision int8 (smoothing is for int8 activations)");
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
    << "#pragma once\n#include <cstdint>\n\n#include \"" << m.library_header << "\"\n#include \"vitcc/preprocess.hpp\"\n\n"
    << "namespace vitcc_models {\n\n"
    << "struct " << id << " {\n"
    << "  static constexpr const char* name = \"" << o.name << "\";\n"
    << "  static constexpr const char* architecture = \"" << m.architecture << "\";\n"
    << "  static constexpr const char* blob_file = \"" << blob_file << "\";  // in this header's folder\n";
  for (const std::string& f : m.header_fields) h << "  " << f << "\n";
  // The camera frame -> input transform (vitcc::preprocess), the same numbers as NAME.json's.
  {
    const std::string interp = o.interpolation.empty() ? m.default_interpolation : o.interpolation;
    char pre[400];
    std::snprintf(pre, sizeof pre,
                  "static constexpr vitcc::Preprocessing preprocessing{%lld, %lld, {%#.9gf, %#.9gf, %#.9gf}, "
                  "{%#.9gf, %#.9gf, %#.9gf}, vitcc::Interpolation::%s, %#.17g};",
                  static_cast<long long>(m.input_shape[2]), static_cast<long long>(m.input_shape[3]), o.mean[0],
                  o.mean[1], o.mean[2], o.std[0], o.std[1], o.std[2], interp.c_str(), o.crop_pct);
    h << "  " << pre << "\n";
  }
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

// What SmoothQuant's smoothing did to an int8 pack (NAME.json "smoothing", --summary).
struct Smoothing {
  bool applied = false;
  double alpha = 0;
  std::string mode = "auto";        // auto, off, fixed
  std::string calibration = "none";  // none (not calibrated), probe (the packer's seeded images), files
  std::vector<std::string> files;
  std::size_t images = 0, sites = 0;
  std::string why;                   // when not applied
  std::vector<std::pair<double, double>> tried;  // (alpha, mean cosine int8 vs float32 on the calibration images)
  double cosine_off = 0, cosine_chosen = 0;
  double fp32_max_abs_err = 0, fp32_cosine = 0;  // the smoothed float32 model against the unsmoothed one
  // How uneven the sites' channels are: per site, the largest channel's max |x| over the median
  // channel's; the largest and the median of that over the sites (trained ViTs: tens; random: ~2).
  double outlier_max = 0, outlier_median = 0;

  nlohmann::json record() const {
    nlohmann::json j;
    j["applied"] = applied;
    j["alpha"] = applied ? nlohmann::json(alpha) : nlohmann::json(nullptr);
    j["mode"] = mode;
    j["method"] = "smoothquant: norm gamma and beta / s, GEMM weight rows * s, s = max|x|^alpha / max|w|^(1-alpha)";
    j["sites"] = sites;
    j["calibration"] = {{"source", calibration}, {"files", files}, {"images", images}};
    if (!why.empty()) j["note"] = why;
    if (images > 0) {
      nlohmann::json t = nlohmann::json::array();
      for (const auto& [a, c] : tried) t.push_back({{"alpha", a}, {"cosine", c}});
      j["cosine_on_calibration"] = {{"off", cosine_off}, {"chosen", cosine_chosen}, {"tried", t}};
    }
    if (sites > 0 && images > 0) j["channel_outliers"] = {{"max", outlier_max}, {"median", outlier_median}};
    if (fp32_cosine > 0) j["fp32_unchanged"] = {{"max_abs_err", fp32_max_abs_err}, {"cosine", fp32_cosine}};
    return j;
  }
  std::string summary() const {
    char buf[1024];
    const std::string src = calibration == "probe" ? "the packer's " + std::to_string(images) + " seeded probe images"
                                                   : std::to_string(images) + " calibration image(s) from " +
                                                         std::to_string(files.size()) + " file(s)";
    if (applied)
      std::snprintf(buf, sizeof buf,
                    "smoothing    SmoothQuant alpha %.2f (%s) on %zu GEMM inputs, calibrated on %s;\n"
                    "             int8 vs float32 there: cosine %.8f (%.8f without smoothing); largest channel / median\n"
                    "             channel of max|x|: %.1f at the most uneven input, %.1f at the median one\n",
                    alpha, mode.c_str(), sites, src.c_str(), cosine_chosen, cosine_off, outlier_max, outlier_median);
    else if (images > 0)
      std::snprintf(buf, sizeof buf,
                    "smoothing    none (%s);\n             calibrated on %s: int8 vs float32 cosine %.8f; largest channel /\n"
                    "             median channel of max|x|: %.1f at the most uneven input, %.1f at the median one\n",
                    why.c_str(), src.c_str(), cosine_off, outlier_max, outlier_median);
    else std::snprintf(buf, sizeof buf, "smoothing    none (%s)\n", why.c_str());
    return buf;
  }
};

// Reads the calibration images (or makes the probe images) as [N, C, H, W].
std::vector<float> calibration_images(const Options& o, const PackedModel& m, Smoothing& sm) {
  const std::int64_t c = m.input_shape[1], h = m.input_shape[2], w = m.input_shape[3];
  std::vector<float> all;
  if (o.calibration.empty()) {
    // Two seeded images of the self-check's kind, with other seeds than the check's own input, so
    // that the check stays an independent measure of the chosen alpha.
    for (std::uint64_t seed : {std::uint64_t(101), std::uint64_t(202)}) {
      const std::vector<float> img = tools::self_check_image(std::size_t(c), std::size_t(h), std::size_t(w), seed);
      all.insert(all.end(), img.begin(), img.end());
    }
    sm.images = 2;
    sm.calibration = "probe";
    return all;
  }
  run::Preprocess pp;
  pp.input_h = h;
  pp.input_w = w;
  for (int k = 0; k < 3; ++k) {
    pp.mean[k] = float(o.mean[k]);
    pp.std[k] = float(o.std[k]);
  }
  pp.interpolation = o.interpolation.empty() ? m.default_interpolation : o.interpolation;
  pp.crop_pct = float(o.crop_pct);
  sm.calibration = "files";
  for (const std::string& f : o.calibration) {
    run::Tensor t;
    try {
      t = run::read_input(f, c, h, w, pp);
    } catch (const std::exception& e) {
      throw PackError(std::string("--calibration: ") + e.what() + " (the model takes [N," + std::to_string(c) + "," +
                      std::to_string(h) + "," + std::to_string(w) + "] float32 images)");
    }
    for (float v : t.data)
      if (!std::isfinite(v)) throw PackError("--calibration: " + f + ": holds NaN or Inf values");
    all.insert(all.end(), t.data.begin(), t.data.end());
    sm.files.push_back(fs::path(f).filename().string());
  }
  sm.images = all.size() / std::size_t(c * h * w);
  return all;
}

// Calibrates the model's SmoothSites on the calibration images and picks alpha: with --smooth auto
// the candidate whose int8 output is closest (mean cosine over the images) to the float32 model's,
// smoothing only if that beats no smoothing. Fills `smoothed` with the chosen float32 tensors.
template <class Run>
Smoothing choose_smoothing(const Options& o, const PackedModel& m, const std::vector<unsigned char>& fp32_bytes, Run& run,
                           std::vector<BlobTensor>& smoothed) {
  Smoothing sm;
  sm.mode = o.smooth_alpha == -2 ? "off" : o.smooth_alpha == -1 ? "auto" : "fixed";
  if (!m.smooth_sites) {
    sm.why = "no GEMM of this architecture (" + m.architecture + ") reads a norm's output directly";
    return sm;
  }
  if (o.smooth_alpha == -2) {
    sm.why = "--smooth off";
    return sm;
  }
  const std::vector<float> images = calibration_images(o, m, sm);
  const std::size_t per = std::size_t(m.input_shape[1] * m.input_shape[2] * m.input_shape[3]);
  std::vector<SmoothSite> sites;
  {
    std::unique_ptr<void, decltype(&std::free)> mem(std::aligned_alloc(64, (fp32_bytes.size() + 63) / 64 * 64), &std::free);
    std::memcpy(mem.get(), fp32_bytes.data(), fp32_bytes.size());
    BlobView view;
    Status st = view.open(mem.get(), fp32_bytes.size());
    if (st.ok()) st = m.smooth_sites(view, images.data(), sm.images, sites);
    if (!st.ok())
      throw PackError(o.model + ": the float32 blob did not bind for calibration: " + st.message(), tools::exit_code::failure);
  }
  sm.sites = sites.size();
  std::vector<double> ratios;
  for (const SmoothSite& s : sites) {
    std::vector<float> v = s.act_max;
    std::sort(v.begin(), v.end());
    if (!v.empty() && v[v.size() / 2] > 0) ratios.push_back(double(v.back()) / double(v[v.size() / 2]));
  }
  std::sort(ratios.begin(), ratios.end());
  if (!ratios.empty()) {
    sm.outlier_max = ratios.back();
    sm.outlier_median = ratios[ratios.size() / 2];
  }
  std::vector<std::vector<float>> ref;
  for (std::size_t n = 0; n < sm.images; ++n) ref.push_back(run(fp32_bytes, Precision::fp32, images.data() + n * per));
  auto score = [&](const std::vector<BlobTensor>& t) {
    const std::vector<unsigned char> bytes = serialize_blob(convert_precision(t, Precision::int8));
    double sum = 0;
    for (std::size_t n = 0; n < sm.images; ++n) {
      const std::vector<float> got = run(bytes, Precision::int8, images.data() + n * per);
      sum += tools::compare(got.data(), ref[n].data(), got.size()).cosine;
    }
    return sum / double(sm.images);
  };
  sm.cosine_off = score(m.tensors);
  const std::vector<double> alphas =
      o.smooth_alpha >= 0 ? std::vector<double>{o.smooth_alpha} : std::vector<double>{0.3, 0.4, 0.5, 0.6, 0.7, 0.8};
  // auto smooths only when the best alpha removes at least a tenth of int8's distance (1 - cosine)
  // from float32 on the calibration images: on a model without outlier channels (the randomly
  // initialised fixtures) the alphas differ by noise, and the best of six noisy scores on a few
  // images would otherwise be picked for luck, not for a gain.
  double best = o.smooth_alpha >= 0 ? -2.0 : 1.0 - 0.9 * (1.0 - sm.cosine_off);
  for (double a : alphas) {
    std::vector<BlobTensor> t = apply_smoothing(m.tensors, sites, a);
    const double c = score(t);
    sm.tried.push_back({a, c});
    if (c > best) {
      best = c;
      sm.applied = true;
      sm.alpha = a;
      smoothed = std::move(t);
    }
  }
  sm.cosine_chosen = sm.applied ? best : sm.cosine_off;
  if (!sm.applied) {
    sm.why = "no alpha tried removed a tenth of int8's distance (1 - cosine) to float32 on the calibration images";
    return sm;
  }
  // The fold must leave the float32 function as it was: the smoothed weights and norms, run at float32,
  // against the unsmoothed model on the first calibration image, within the float32 parity bound.
  const std::vector<float> fp32_smoothed = run(serialize_blob(smoothed), Precision::fp32, images.data());
  const tools::Agreement a = tools::compare(fp32_smoothed.data(), ref[0].data(), ref[0].size());
  sm.fp32_max_abs_err = a.max_abs_err;
  sm.fp32_cosine = a.cosine;
  if (!a.within(tools::fp32_parity))
    throw PackError(o.model + ": smoothing (alpha " + std::to_string(sm.alpha) +
                    ") changed the float32 model's output (max abs error " + std::to_string(a.max_abs_err) + ", allowed " +
                    std::to_string(a.allowed(tools::fp32_parity, 0)) + ", cosine " + std::to_string(a.cosine) +
                    "): the fold is wrong; refusing to write it",
                    tools::exit_code::failure);
  return sm;
}

}  // namespace

int main(int argc, char** argv) {
  // The exit code of a failure in the current step (tools/common/exit_codes.hpp), unless the error
  // names its own (PackError::code): a malformed file is the input's fault, a valid model the packer
  // does not model is "unsupported", an output that cannot be written is I/O.
  int step = tools::exit_code::usage;
  try {
    const Options o = parse(argc, argv);
    step = tools::exit_code::input;
    const OnnxGraph graph = OnnxGraph::load(o.model);
    step = tools::exit_code::unsupported;
    PackedModel m = pack_model(graph);
    step = tools::exit_code::input;  // the weights, then --calibration's files
    check_finite(m.tensors, o.model);
    // The float32 blob first: the recognition is checked on it, with the tight float32 bound.
    const std::vector<unsigned char> fp32_bytes = serialize_blob(m.tensors);
    if (o.precision != Precision::fp32) {
      m.header_fields.push_back(std::string("static constexpr vitcc::Precision precision = vitcc::Precision::") +
                                precision_name(o.precision) + ";");
      m.config["precision"] = precision_name(o.precision);
      m.config_hash = tools::fnv1a(hex64(m.config_hash) + ";precision=" + precision_name(o.precision));
    }
    std::size_t out_count = 1;
    for (std::size_t i = 1; i < m.output_shape.size(); ++i) out_count *= std::size_t(m.output_shape[i]);
    // The packed model, on a blob 64-byte aligned as on a device.
    auto run = [&](const std::vector<unsigned char>& bytes, Precision p, const float* input) {
      std::unique_ptr<void, decltype(&std::free)> mem(std::aligned_alloc(64, (bytes.size() + 63) / 64 * 64), &std::free);
      std::memcpy(mem.get(), bytes.data(), bytes.size());
      BlobView view;
      std::vector<float> got(out_count);
      Status st = view.open(mem.get(), bytes.size());
      if (st.ok()) st = m.run_packed(view, p, input, got.data());
      if (!st.ok()) throw PackError(o.model + ": packed blob did not bind: " + st.message(), tools::exit_code::failure);
      return got;
    };
    const std::size_t C = std::size_t(m.input_shape[1]), H = std::size_t(m.input_shape[2]), W = std::size_t(m.input_shape[3]);

    // int8: SmoothQuant's smoothing, calibrated and chosen before the weights are quantised.
    std::vector<BlobTensor> low_tensors;
    Smoothing smooth = o.precision == Precision::int8 ? choose_smoothing(o, m, fp32_bytes, run, low_tensors) : Smoothing{};
    std::vector<unsigned char> blob_bytes =
        o.precision == Precision::fp32 ? fp32_bytes
                                       : serialize_blob(convert_precision(smooth.applied ? low_tensors : m.tensors, o.precision));
    low_tensors.clear();
    step = tools::exit_code::failure;

    // Self-check: the packed model, run by the library's own forward pass, must reproduce the ONNX
    // graph (run by the packer's interpreter) on a seeded input. A recognition mistake cannot pass.
    const std::uint64_t seed = 20240607;
    const std::vector<float> check_in =
        tools::self_check_image(C, H, W, seed);
    const std::vector<float> expected = graph.run(check_in);
    if (expected.size() != out_count)
      throw PackError(o.model + ": the graph output has " + std::to_string(expected.size()) +
                      " values per image, the recognised model " + std::to_string(out_count),
                      tools::exit_code::unsupported);
    double slack = 0;  // the bound's widening for a graph that amplifies rounding (recorded for --check)
    tools::Agreement reduced;  // the chosen precision against the float32 graph (bf16, int8)
    if (o.check) {
      const std::vector<float> got = run(fp32_bytes, Precision::fp32, check_in.data());
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
                        "): the graph computes something this recogniser does not model; refusing to write it",
                        tools::exit_code::unsupported);
      if (o.summary) {
        std::printf("self-check   packed model vs ONNX graph on a seeded input: max abs error %.3g (max |ref| %.3g), cosine %.8f\n",
                    a.max_abs_err, a.max_abs_ref, a.cosine);
        if (slack > 0)
          std::printf("             (the graph amplifies rounding: one rounding of the input moves its output by %.3g,\n"
                      "             so the bound was widened by 8x that to %.3g)\n", slack / 8, a.allowed(tools::fp32_parity, slack));
      }
      if (o.precision != Precision::fp32) {
        // The chosen precision against the float32 graph: its own, looser bound (tools::parity_for).
        const std::vector<float> low = run(blob_bytes, o.precision, check_in.data());
        reduced = tools::compare(low.data(), expected.data(), expected.size());
        const tools::ParityBound bound = tools::parity_for(o.precision);
        if (!reduced.within(bound, slack) && smooth.applied && smooth.mode == "auto") {
          // Chosen on the calibration images, smoothing can still do worse on the check's input than
          // none: auto never refuses a model that the unsmoothed int8 blob would pass.
          std::vector<unsigned char> plain = serialize_blob(convert_precision(m.tensors, o.precision));
          const std::vector<float> plain_out = run(plain, o.precision, check_in.data());
          const tools::Agreement p = tools::compare(plain_out.data(), expected.data(), expected.size());
          if (p.within(bound, slack)) {
            char why[200];
            std::snprintf(why, sizeof why, "alpha %.2f missed the self-check (cosine %.8f), no smoothing passed it (%.8f)",
                          smooth.alpha, reduced.cosine, p.cosine);
            smooth.applied = false;
            smooth.why = why;
            smooth.cosine_chosen = smooth.cosine_off;
            blob_bytes = std::move(plain);
            reduced = p;
          }
        }
        if (!reduced.within(bound, slack))
          throw PackError(o.model + ": at " + precision_name(o.precision) + " the packed model is too far from the float32 graph (max abs error " +
                          std::to_string(reduced.max_abs_err) + ", allowed " + std::to_string(reduced.allowed(bound, slack)) +
                          ", cosine " + std::to_string(reduced.cosine) + ", at least " + std::to_string(bound.min_cosine) +
                          " needed); refusing to write it",
                          tools::exit_code::parity);
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

    const std::uint64_t checksum = blob::read_u64(blob_bytes.data() + blob::checksum_offset);
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
    if (!graph.rewrites().empty()) j["source"]["normalised"] = graph.rewrites();
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
    if (o.precision == Precision::int8) j["smoothing"] = smooth.record();

    // The order of output_set.hpp: content-addressed files, the stable names users build with,
    // NAME.json (the commit), then the previous set's files are removed.
    step = tools::exit_code::io;
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
      if (!graph.rewrites().empty()) {
        std::string what;
        for (const auto& [k, v] : graph.rewrites()) what += (what.empty() ? "" : ", ") + std::to_string(v) + " " + k;
        std::printf("normalised   %s\n", what.c_str());
      }
      for (const std::string& line : m.summary) std::printf("%s\n", line.c_str());
      std::printf("parameters   %llu (%.2f M)\n", static_cast<unsigned long long>(m.parameters), m.parameters / 1e6);
      std::printf("FLOPs        %.3f GFLOP per image (multiply-add = 2)\n", m.flops / 1e9);
      std::printf("weights      %s blob (%zu bytes, packed)\n", human_bytes(double(blob_bytes.size())).c_str(), blob_bytes.size());
      std::printf("precision    %s weights\n", precision_name(o.precision));
      if (o.precision == Precision::int8) std::printf("%s", smooth.summary().c_str());
      std::printf("workspace    %s (%llu bytes)\n", human_bytes(double(workspace_bytes)).c_str(),
                  static_cast<unsigned long long>(workspace_bytes));
      {
        const std::string interp = o.interpolation.empty() ? m.default_interpolation : o.interpolation;
        const double sh = std::floor(double(m.input_shape[2]) / o.crop_pct), sw = std::floor(double(m.input_shape[3]) / o.crop_pct);
        const std::string resize = sh == sw ? "shorter side to " + std::to_string(long(sh)) + " (" + interp + ", crop_pct "
                                            : "keep-ratio resize to cover " + std::to_string(long(sh)) + "x" +
                                                  std::to_string(long(sw)) + " (bilinear, as timm; crop_pct ";
        std::printf("preprocess   %s%.4g), centre crop %lldx%lld, mean %.4g,%.4g,%.4g, std %.4g,%.4g,%.4g (vitcc::preprocess)\n",
                    resize.c_str(), o.crop_pct,
                    static_cast<long long>(m.input_shape[2]), static_cast<long long>(m.input_shape[3]), o.mean[0],
                    o.mean[1], o.mean[2], o.std[0], o.std[1], o.std[2]);
      }
      std::printf("wrote        %s/%s.json, %s.hpp, %s, %s\n", o.out_dir.c_str(), o.name.c_str(), o.name.c_str(),
                  blob_file.c_str(), header_file.c_str());
    }
    return 0;
  } catch (const PackError& e) {
    std::fprintf(stderr, "vitcc-pack: error: %s\n", tools::one_line(e.what()).c_str());
    return e.code ? e.code : step;
  } catch (const std::exception& e) {
    // One line on stderr, whatever the message holds (some come from the ONNX library).
    std::fprintf(stderr, "vitcc-pack: error: %s\n", tools::one_line(e.what()).c_str());
    return step;
  }
}
