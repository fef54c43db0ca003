// Whole-model benchmarks, batch 1: every model of models.txt that has been packed into
// $VITCC_BENCH_MODELS/NAME/NAME.json (tools/bench/compare.sh packs them into build-bench/bench-models).
// The shapes come from the JSON at run time (VitDynamicConfig): the kernels take their sizes as
// arguments either way, so this runs the code a generated Vit<Cfg> runs. Reports ms per image,
// GFLOP/s and % of (threads x the measured one-core peak).
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../tools/common/model_config.hpp"
#include "bench_common.hpp"
#include "vitcc/io/blob_reader.hpp"
#include "vitcc/models/vit.hpp"

namespace vb = vitcc::bench;
using vb::Arch;

namespace {

struct LoadedVit {
  std::string dir, name;
  bool tried = false, ok = false;
  vitcc::VitDynamicConfig cfg;
  vb::Buffer blob;
  std::size_t blob_bytes = 0;
  vitcc::VitWeights weights;
  std::vector<vitcc::VitBlockWeights> blocks;
  double flops = 0;
};

// The architecture's fields of a checked config (tools/common/model_config.hpp). They need no
// checks of their own: binding refuses a blob whose tensors do not fit them.
vitcc::VitDynamicConfig parse_config(const nlohmann::json& c) {
  vitcc::VitDynamicConfig v;
  v.in_chans = c.at("in_chans");
  v.img_h = c.at("img_h");
  v.img_w = c.at("img_w");
  v.patch = c.at("patch");
  v.dim = c.at("dim");
  v.depth = c.at("depth");
  v.heads = c.at("heads");
  v.mlp_hidden = c.at("mlp_hidden");
  v.has_cls_token = c.at("has_cls_token");
  v.num_reg_tokens = c.at("num_reg_tokens");
  v.final_norm = c.at("final_norm");
  v.fc_norm = c.at("fc_norm");
  const std::string pool = c.at("pool"), out = c.at("output");
  v.pool = pool == "token" ? vitcc::VitPool::token : pool == "avg" ? vitcc::VitPool::avg : vitcc::VitPool::none;
  v.output = out == "logits" ? vitcc::VitOutput::logits : out == "pooled" ? vitcc::VitOutput::pooled : vitcc::VitOutput::tokens;
  v.num_classes = c.at("num_classes");
  v.ln_eps = float(c.at("ln_eps").get<double>());
  v.attn_scale = float(c.at("attn_scale").get<double>());
  return v;
}

// FLOPs of one forward pass: the GEMMs and the two attention products (2 per multiply-add).
double vit_flops(const vitcc::VitDims& v) {
  const double t = double(v.tokens), d = double(v.d);
  const double per_block = 2.0 * t * (3 * d * d + d * d + 2 * d * double(v.hidden)) + 4.0 * t * t * d;
  return double(v.depth) * per_block + 2.0 * double(v.patches) * double(v.c * v.p * v.p) * d +
         2.0 * d * double(v.classes);
}

bool load(const std::string& dir, const std::string& name, LoadedVit& m) {
  vitcc::tools::ModelConfig cfg;
  try {
    cfg = vitcc::tools::load_model_config(dir + "/" + name + "/" + name + ".json");
    if (cfg.architecture != "vit") {
      std::fprintf(stderr, "%s: architecture %s has no benchmark here yet\n", name.c_str(), cfg.architecture.c_str());
      return false;
    }
    m.cfg = parse_config(cfg.config);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return false;
  }
  m.name = name;
  std::ifstream bf(cfg.blob_path, std::ios::binary | std::ios::ate);
  if (!bf) return false;
  m.blob_bytes = std::size_t(bf.tellg());
  m.blob = vb::aligned_floats(m.blob_bytes / sizeof(float) + 1);
  bf.seekg(0);
  bf.read(reinterpret_cast<char*>(m.blob.get()), std::streamsize(m.blob_bytes));
  vitcc::BlobView view;
  vitcc::Status s = view.open(m.blob.get(), m.blob_bytes);
  const vitcc::VitDims v = vitcc::VitDims::of(m.cfg);
  m.blocks.resize(v.depth);
  if (s.ok()) s = vitcc::detail::bind_vit(m.cfg, view, m.weights, m.blocks.data());
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), s.message());
    return false;
  }
  m.flops = vit_flops(v);
  return true;
}

// Blobs are read when a model's first benchmark runs (not for models a filter leaves out).
void run_model(benchmark::State& state, LoadedVit* m) {
  if (!m->tried) {
    m->tried = true;
    m->ok = load(m->dir, m->name, *m);
  }
  if (!m->ok) {
    state.SkipWithError("cannot load the packed model");
    return;
  }
  const std::size_t threads = state.range(0);
  const vitcc::VitDims v = vitcc::VitDims::of(m->cfg);
  vb::Buffer image = vb::random_floats(v.c * v.h * v.w, 42), out = vb::aligned_floats(v.out);
  vb::Buffer ws = vb::aligned_floats(v.workspace_floats(threads));
  const vitcc::Executor* ex = vb::executor_for(threads);
  for (auto _ : state) {
    vitcc::detail::vit_forward<Arch>(m->cfg, m->weights, m->blocks.data(), image.get(), out.get(), ws.get(), ex);
    benchmark::ClobberMemory();
  }
  vb::set_flops(state, m->flops, threads);
  state.counters["weights_MB"] = double(m->blob_bytes) / 1e6;
  state.counters["workspace_MB"] = double(v.workspace_floats(threads) * sizeof(float)) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  const char* env = std::getenv("VITCC_BENCH_MODELS");
  const std::string dir = env ? env : "build-bench/bench-models";
  static std::vector<LoadedVit> models;
  models.reserve(64);
  std::ifstream list(VITCC_BENCH_MODEL_LIST);
  std::string line;
  while (std::getline(list, line)) {
    std::istringstream ls(line);
    std::string name, fixture;
    if (!(ls >> name >> fixture) || name[0] == '#') continue;
    if (!std::ifstream(dir + "/" + name + "/" + name + ".json")) {
      std::fprintf(stderr, "skipping %s: not packed in %s (run tools/bench/compare.sh, or vitcc-pack)\n", name.c_str(),
                   dir.c_str());
      continue;
    }
    LoadedVit m;
    m.dir = dir;
    m.name = name;
    models.push_back(std::move(m));
  }
  for (LoadedVit& m : models)
    for (int threads : {1, 2})
      benchmark::RegisterBenchmark(("model/" + m.name).c_str(), run_model, &m)->Arg(threads)->ArgName("threads")
          ->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);
  benchmark::Initialize(&argc, argv);
  std::printf("vitcc models from %s, arch %s, measured fp32 peak of one core: %.1f GFLOP/s\n", dir.c_str(), Arch::name(),
              vb::peak_flops_1core() * 1e-9);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
