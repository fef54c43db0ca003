// Determinism (docs/SECURITY.md, "Determinism and ISA paths"):
//   1. On one instruction-set path, the same input gives bit-identical outputs across repeated
//      runs, across workspaces (fresh, reused, or filled with garbage: forward() must not read
//      what it did not write), and across threads running the same model at the same time.
//   2. Between paths (scalar reference, AVX2+FMA, AVX-512; NEON is checked on ARM), outputs
//      differ only by float32 re-association, bounded by kIsaBound x max(1, max|scalar output|)
//      per value. The bound is the one documented; this test fails if a path exceeds it.
// vitcc-run's --threads determinism (whatever it parallelises) is checked end to end by
// cli_hardening.sh.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

#include "../../tools/common/self_check.hpp"
#include "../model_test_archs.hpp"
#include "demo.hpp"

using namespace vitcc;
using Cfg = vitcc_models::demo;

namespace {

// Documented in docs/SECURITY.md: max |simd - scalar| <= kIsaBound * max(1, max |scalar|).
constexpr double kIsaBound = 2e-5;

struct Aligned {
  void* p = nullptr;
  explicit Aligned(std::size_t bytes) { p = std::aligned_alloc(64, (bytes + 63) / 64 * 64); }
  ~Aligned() { std::free(p); }
};

// The demo blob, read once into an aligned buffer (never freed: tests end with the process).
struct BlobFile {
  void* p = nullptr;
  std::size_t size = 0;
  BlobFile() {
    std::ifstream f(std::string(VITCC_DEMO_MODEL_DIR "/") + Cfg::blob_file, std::ios::binary | std::ios::ate);
    size = std::size_t(f.tellg());
    p = std::aligned_alloc(64, (size + 63) / 64 * 64);
    f.seekg(0);
    f.read(static_cast<char*>(p), std::streamsize(size));
  }
};
const BlobFile& blob_file() {
  static const BlobFile b;
  return b;
}

// The demo input and seeded inputs of growing magnitude (uniform in [-2, 2) times 1, 4, 16).
std::vector<std::vector<float>> inputs() {
  std::vector<std::vector<float>> v;
  std::ifstream f(VITCC_DEMO_DIR "/input.bin", std::ios::binary);
  std::vector<float> demo(Vit<Cfg>::input_floats);
  f.read(reinterpret_cast<char*>(demo.data()), std::streamsize(demo.size() * 4));
  v.push_back(demo);
  for (int k = 0; k < 3; ++k) {
    std::vector<float> x = tools::self_check_input(Vit<Cfg>::input_floats, 1000 + std::uint64_t(k));
    for (float& e : x) e *= float(1 << (2 * k));
    v.push_back(std::move(x));
  }
  return v;
}

template <class Arch>
std::vector<float> run_all(const std::vector<std::vector<float>>& xs, unsigned char fill) {
  using Model = Vit<Cfg, Arch>;
  BlobView view;
  REQUIRE(view.open(blob_file().p, blob_file().size).ok());
  static Model model;
  REQUIRE(model.bind(view).ok());
  Aligned ws(Model::workspace_bytes);
  std::memset(ws.p, fill, Model::workspace_bytes);  // 0xff bytes are NaNs: reading them shows
  std::vector<float> out;
  for (const auto& x : xs) {
    std::vector<float> y(Model::output_floats);
    model.forward(x.data(), y.data(), ws.p);
    out.insert(out.end(), y.begin(), y.end());
  }
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE_TEMPLATE("the same input gives the same bits: runs, workspaces, threads", Arch, VITCC_MODEL_TEST_ARCHS) {
  const auto xs = inputs();
  const std::vector<float> first = run_all<Arch>(xs, 0x00);
  for (float v : first) REQUIRE(std::isfinite(v));
  CHECK(same_bits(first, run_all<Arch>(xs, 0x00)));  // repeated
  CHECK(same_bits(first, run_all<Arch>(xs, 0xff)));  // a workspace full of NaNs
  CHECK(same_bits(first, run_all<Arch>(xs, 0x5a)));  // ... or of other garbage

  // Two threads, each with its own workspace, running the one bound model at the same time
  // (what vitcc-run --threads does with the images of a batch).
  using Model = Vit<Cfg, Arch>;
  BlobView view;
  REQUIRE(view.open(blob_file().p, blob_file().size).ok());
  static Model model;
  REQUIRE(model.bind(view).ok());
  std::vector<std::vector<float>> outs(2, std::vector<float>(xs.size() * Model::output_floats));
  auto work = [&](int t) {
    Aligned ws(Model::workspace_bytes);
    for (int r = 0; r < 3; ++r)
      for (std::size_t i = 0; i < xs.size(); ++i) model.forward(xs[i].data(), outs[t].data() + i * Model::output_floats, ws.p);
  };
  std::thread a(work, 0), b(work, 1);
  a.join();
  b.join();
  CHECK(same_bits(first, outs[0]));
  CHECK(same_bits(first, outs[1]));
}

#ifdef VITCC_SIMD_TEST_ARCHS
TEST_CASE_TEMPLATE("ISA paths agree with the scalar path within the documented bound", Arch, VITCC_SIMD_TEST_ARCHS) {
  const auto xs = inputs();
  const std::vector<float> ref = run_all<vitcc::scalar_arch>(xs, 0);
  const std::vector<float> got = run_all<Arch>(xs, 0);
  REQUIRE(ref.size() == got.size());
  const std::size_t per = Vit<Cfg>::output_floats;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    double max_ref = 0, max_err = 0;
    for (std::size_t k = i * per; k < (i + 1) * per; ++k) {
      max_ref = std::max(max_ref, std::fabs(double(ref[k])));
      max_err = std::max(max_err, std::fabs(double(got[k]) - double(ref[k])));
    }
    INFO(std::string(Arch::name()), " input ", i, ": max |simd - scalar| = ", max_err, ", max |scalar| = ", max_ref,
         ", relative ", max_err / std::max(1.0, max_ref));
    CHECK(max_err <= kIsaBound * std::max(1.0, max_ref));
    MESSAGE(std::string(Arch::name()), " input ", i, ": relative difference to scalar ", max_err / std::max(1.0, max_ref));
  }
}
#else
TEST_CASE("ISA paths agree with the scalar path within the documented bound") {
  MESSAGE("this build has the scalar path only: no other path to compare it with (skipped)");
}
#endif
