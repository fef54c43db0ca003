// End to end: every fixture (ONNX exported from the project's PyTorch modules, with PyTorch's own
// output on a fixed input) goes through vitcc-pack and vitcc-run exactly as a user would run them,
// and the native output is held to the parity bound against PyTorch:
//   max abs error <= 1e-4 x max(1, max|ref|)  and  cosine >= 0.99999.
// Every run also holds the model to forward()'s promise: vitcc-run's runner is compiled with
// -fno-exceptions -fno-rtti and counts heap allocations in forward(); vitcc-run prints the count
// (forward_allocations=0) and fails when it is not 0. The self-check runs on two threads, so for
// ViT models (which spread every kernel over a ThreadPool) the count covers the pool's threads too.
// Environment (set by CTest): VITCC_FIXTURES (folder with manifest.json), VITCC_PACK, VITCC_RUN,
// VITCC_E2E_OUT (scratch folder), VITCC_E2E_SHARD ("i/n": run shard i of n, see assign_shards),
// VITCC_E2E_ONLY (optional: comma-separated fixture names to run), VITCC_E2E_PRECISION (optional:
// fp32, bf16 or int8: packs at that precision and holds the output to that precision's bound against
// PyTorch's float32 reference, tools::parity_for: bf16 cosine >= 0.9999, int8 cosine >= 0.999),
// VITCC_E2E_REWRITE (optional: a command run as `COMMAND IN.onnx OUT.onnx` that rewrites each export
// first, as a simplifier or ONNX Runtime's saved optimised graph does; tests/e2e/rewrite.sh).
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../../tools/common/names.hpp"
#include "../../tools/common/self_check.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  REQUIRE_MESSAGE(v != nullptr, "environment variable ", name, " is not set (run through ctest)");
  return v;
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs a shell command, returning its exit code; stdout+stderr go to `log`.
int sh(const std::string& cmd, std::string& log) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  log.clear();
  while (std::fgets(buf, sizeof buf, p)) log += buf;
  const int status = ::pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::vector<float> read_floats(const fs::path& p) {
  std::ifstream f(p, std::ios::binary | std::ios::ate);
  REQUIRE_MESSAGE(f.good(), "cannot read ", p.string());
  std::vector<float> v(std::size_t(f.tellg()) / sizeof(float));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(v.size() * sizeof(float)));
  return v;
}

// VITCC_E2E_ONLY="a,b,...": only the fixtures named exactly so (an emulated run picks a subset
// that covers every path; unset = all).
bool vitcc_e2e_selected(const std::string& name) {
  const char* only = std::getenv("VITCC_E2E_ONLY");
  if (!only || !*only) return true;
  std::stringstream ss(only);
  std::string item;
  while (std::getline(ss, item, ','))
    if (item == name) return true;
  return false;
}

// Fixtures of one model (names differ only after "_op") share a shard, and so one runner compile.
std::string model_key(const std::string& fixture) { return fixture.substr(0, fixture.find("_op")); }

// Which shard runs each selected model: the largest first, each to the shard with the least work so far.
// A model's work is its fixtures' ONNX bytes plus 30 MB for its runner compile (a rough measure of pack,
// compile and run time). Every shard computes the same table. Drawn by a hash of the name instead, the
// emulated run's shards took 57 s and 261 s.
std::map<std::string, std::size_t> assign_shards(const json& fixtures, std::size_t shards) {
  std::map<std::string, double> work;
  for (const json& fx : fixtures) {
    const std::string name = fx.at("name");
    if (!vitcc_e2e_selected(name)) continue;
    work.emplace(model_key(name), 30e6).first->second += fx.value("bytes", 0.0);
  }
  std::vector<std::pair<std::string, double>> order(work.begin(), work.end());
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<double> load(shards, 0.0);
  std::map<std::string, std::size_t> shard_of;
  for (const auto& [key, w] : order) {
    const std::size_t s = std::size_t(std::min_element(load.begin(), load.end()) - load.begin());
    shard_of[key] = s;
    load[s] += w;
  }
  return shard_of;
}

json manifest() {
  std::ifstream f(fs::path(env("VITCC_FIXTURES")) / "manifest.json");
  REQUIRE_MESSAGE(f.good(), "no fixtures manifest in ", env("VITCC_FIXTURES"));
  return json::parse(f);
}

}  // namespace

TEST_CASE("every fixture packs, runs natively and matches PyTorch") {
  const json m = manifest();
  const fs::path fixtures = env("VITCC_FIXTURES"), out_root = env("VITCC_E2E_OUT");
  const std::string pack = env("VITCC_PACK"), run = env("VITCC_RUN");
  std::size_t shard = 0, shards = 1;
  if (const char* s = std::getenv("VITCC_E2E_SHARD")) std::sscanf(s, "%zu/%zu", &shard, &shards);
  REQUIRE(shards >= 1);
  REQUIRE(m.at("fixtures").size() > 0);
  vitcc::Precision precision = vitcc::Precision::fp32;
  if (const char* p = std::getenv("VITCC_E2E_PRECISION"); p && *p)
    REQUIRE_MESSAGE(vitcc::precision_from_name(p, precision), "VITCC_E2E_PRECISION=", p, " is not fp32, bf16 or int8");
  const vitcc::tools::ParityBound bound = vitcc::tools::parity_for(precision);

  std::size_t ran = 0;
  const std::map<std::string, std::size_t> shard_of = assign_shards(m.at("fixtures"), shards);
  for (const json& fx : m.at("fixtures")) {
    const std::string name = fx.at("name");
    if (!vitcc_e2e_selected(name)) continue;
    if (shard_of.at(model_key(name)) != shard) continue;
    const fs::path dir = fixtures / fx.at("dir").get<std::string>();
    const fs::path out = out_root / name;
    fs::remove_all(out);
    CAPTURE(name);
    std::string log;
    fs::path model = dir / "model.onnx";
    if (const char* rewrite = std::getenv("VITCC_E2E_REWRITE"); rewrite && *rewrite) {
      // the export as a simplifier or ONNX Runtime's optimiser saves it; same input, same PyTorch reference
      fs::create_directories(out);
      const fs::path rewritten = out / "model.onnx";
      const int rc = sh(std::string(rewrite) + " " + quote(model.string()) + " " + quote(rewritten.string()), log);
      CHECK_MESSAGE(rc == 0, "VITCC_E2E_REWRITE failed on ", name, ":\n", log);
      if (rc != 0) continue;
      model = rewritten;
    }
    const int pack_rc = sh(quote(pack) + " " + quote(model.string()) + " -o " + quote(out.string()) +
                               " --name " + quote(name) + " --precision " + vitcc::precision_name(precision),
                           log);
    CHECK_MESSAGE(pack_rc == 0, "vitcc-pack failed on ", name, ":\n", log);
    if (pack_rc != 0) continue;
    const json cfg = json::parse(std::ifstream(out / (name + ".json")));
    CHECK(cfg.at("source").at("opset").get<int>() == fx.at("opset").get<int>());
    CHECK(cfg.at("source").at("dynamic_batch").get<bool>() == fx.at("dynamic_batch").get<bool>());

    const int run_rc = sh(quote(run) + " " + quote((out / (name + ".json")).string()) + " --input " +
                              quote((dir / "input.bin").string()) + " --output " + quote((out / "output.bin").string()),
                          log);
    CHECK_MESSAGE(run_rc == 0, "vitcc-run failed on ", name, ":\n", log);
    if (run_rc != 0) continue;
    CHECK_MESSAGE(log.find("forward_allocations=0") != std::string::npos,
                  "vitcc-run did not report forward_allocations=0 on ", name, ":\n", log);
    const std::vector<float> got = read_floats(out / "output.bin");
    const std::vector<float> ref = read_floats(dir / "reference.bin");
    REQUIRE_MESSAGE(got.size() == ref.size(), name, ": ", got.size(), " outputs, PyTorch gave ", ref.size());
    const vitcc::tools::Agreement a = vitcc::tools::compare(got.data(), ref.data(), ref.size());
    std::printf("parity %s %-44s opset %2d fold %-3s dyn %-3s batch %d  max_abs_err %.3e  max|ref| %8.3f  cosine %.9f\n",
                vitcc::precision_name(precision), name.c_str(), fx.at("opset").get<int>(), fx.at("constant_folding").get<bool>() ? "on" : "off",
                fx.at("dynamic_batch").get<bool>() ? "yes" : "no", fx.at("batch").get<int>(), a.max_abs_err,
                a.max_abs_ref, a.cosine);
    CHECK_MESSAGE(a.within(bound), name, " at ", std::string(vitcc::precision_name(precision)), ": max abs error ", a.max_abs_err,
                  " (allowed ", a.allowed(bound), "), cosine ", a.cosine, " (at least ", bound.min_cosine, ")");

    // Intra-op threads split every step into tasks fixed by the shapes alone, so three workers (an
    // uneven split of most task lists) must give the one-thread output bit for bit, still without
    // a heap allocation in forward().
    const int threads_rc = sh(quote(run) + " " + quote((out / (name + ".json")).string()) + " --input " +
                                  quote((dir / "input.bin").string()) + " --output " +
                                  quote((out / "output_t3.bin").string()) + " --threads 3",
                              log);
    CHECK_MESSAGE(threads_rc == 0, "vitcc-run --threads 3 failed on ", name, ":\n", log);
    if (threads_rc == 0) {
      CHECK_MESSAGE(log.find("forward_allocations=0") != std::string::npos,
                    "vitcc-run --threads 3 did not report forward_allocations=0 on ", name, ":\n", log);
      const std::vector<float> got3 = read_floats(out / "output_t3.bin");
      CHECK_MESSAGE((got3.size() == got.size() && std::memcmp(got3.data(), got.data(), got.size() * sizeof(float)) == 0),
                    name, ": --threads 3 output differs from one thread's");
    }

    // The artifact's own record: the packer's ONNX interpreter output on the seeded input.
    const int check_rc = sh(quote(run) + " " + quote((out / (name + ".json")).string()) + " --check", log);
    CHECK_MESSAGE(check_rc == 0, "vitcc-run --check failed on ", name, ":\n", log);
    CHECK_MESSAGE(log.find("forward_allocations=0") != std::string::npos,
                  "vitcc-run --check did not report forward_allocations=0 on ", name, ":\n", log);
    ++ran;
    fs::remove(out / cfg.at("blob").at("file").get<std::string>());  // the blobs of big fixtures add up; keep the rest
    if (model != dir / "model.onnx") fs::remove(model);
  }
  if (const char* only = std::getenv("VITCC_E2E_ONLY"); only && *only) {
    // Every name asked for must exist (a typo must not shrink the run silently); a shard may be empty.
    std::size_t asked = 1, found = 0;
    for (const char* c = only; *c; ++c) asked += *c == ',';
    for (const json& fx : m.at("fixtures")) found += vitcc_e2e_selected(fx.at("name").get<std::string>());
    CHECK_MESSAGE(found == asked, "VITCC_E2E_ONLY names ", asked, " fixtures, the manifest has ", found, " of them");
  } else {
    CHECK(ran > 0);
  }
}
