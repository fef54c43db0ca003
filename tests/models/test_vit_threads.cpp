// Intra-op threading: the demo model's output is identical bit for bit with no executor and with 1, 2
// and 3 workers (the shipped ThreadPool and a user executor that runs tasks backwards), on every
// instruction set path; the threaded forward allocates nothing; the workspace formula holds.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "../model_test_archs.hpp"
#include "demo.hpp"
#include "malloc_counter.hpp"
#include "vitcc/core/thread_pool.hpp"
#include "vitcc/kernels/ref/gemm.hpp"

using namespace vitcc;
using Cfg = vitcc_models::demo;

namespace {

std::vector<unsigned char> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  REQUIRE_MESSAGE(f.good(), "cannot read ", path);
  std::vector<unsigned char> v(std::size_t(f.tellg()));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(v.size()));
  return v;
}

struct Aligned {
  void* p;
  explicit Aligned(std::size_t bytes) : p(std::aligned_alloc(64, (bytes + 63) / 64 * 64)) {}
  ~Aligned() { std::free(p); }
};

// A user-supplied executor: runs the tasks on the calling thread, last first, cycling through
// `workers` worker indices -- what an RTOS pool might do, and a different order from the pool's.
struct Backwards {
  std::size_t workers;
  static void run(void* self, std::size_t tasks, TaskFn fn, void* arg) {
    const std::size_t w = static_cast<Backwards*>(self)->workers;
    for (std::size_t t = tasks; t-- > 0;) fn(arg, t, t % w);
  }
  Executor executor() {
    Executor e;
    e.parallel_for = &Backwards::run;
    e.self = this;
    e.workers = workers;
    return e;
  }
};

template <class Model>
std::vector<float> run(const Model& model, const std::vector<float>& in, const Executor* ex) {
  std::vector<float> out(Model::output_floats, -1.0f);
  const std::size_t bytes = Model::workspace_bytes_for(worker_count(ex));
  Aligned ws(bytes);
  std::memset(ws.p, 0xA5, bytes);  // stale data must not matter
  model.forward(in.data(), out.data(), ws.p, ex);
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

static_assert(Vit<Cfg>::workspace_bytes_for(1) == Vit<Cfg>::workspace_bytes, "one worker: the serial workspace");
static_assert(Vit<Cfg>::workspace_bytes_for(0) == Vit<Cfg>::workspace_bytes, "zero workers count as one");
static_assert(Vit<Cfg>::workspace_bytes_for(3) > Vit<Cfg>::workspace_bytes_for(2), "a slice per worker");

TEST_CASE_TEMPLATE("demo model: the same bits with 1, 2 and 3 workers", Arch, VITCC_MODEL_TEST_ARCHS) {
  using Model = Vit<Cfg, Arch>;
  const std::vector<unsigned char> blob = read_bytes(VITCC_DEMO_MODEL_DIR "/demo.vitcc");
  Aligned blob_mem(blob.size());
  std::memcpy(blob_mem.p, blob.data(), blob.size());
  BlobView view;
  REQUIRE(view.open(blob_mem.p, blob.size()).ok());
  static Model model;
  REQUIRE(model.bind(view).ok());

  const std::vector<unsigned char> raw = read_bytes(VITCC_DEMO_DIR "/input.bin");
  std::vector<float> in(Model::input_floats);
  REQUIRE(raw.size() == in.size() * sizeof(float));
  std::memcpy(in.data(), raw.data(), raw.size());

  const std::vector<float> serial = run(model, in, nullptr);
  for (std::size_t workers : {1u, 2u, 3u}) {
    ThreadPool pool(workers);
    const Executor ex = pool.executor();
    for (int rep = 0; rep < 3; ++rep) {  // dynamic task assignment differs from run to run
      INFO("arch ", Arch::name(), ", ThreadPool(", workers, "), run ", rep);
      CHECK(same_bits(run(model, in, &ex), serial));
    }
    Backwards user{workers};
    const Executor uex = user.executor();
    INFO("arch ", Arch::name(), ", backwards executor with ", workers, " workers");
    CHECK(same_bits(run(model, in, &uex), serial));
  }
}

TEST_CASE("the threaded forward() makes no heap allocation") {
  using Model = Vit<Cfg>;
  const std::vector<unsigned char> blob = read_bytes(VITCC_DEMO_MODEL_DIR "/demo.vitcc");
  Aligned blob_mem(blob.size());
  std::memcpy(blob_mem.p, blob.data(), blob.size());
  BlobView view;
  REQUIRE(view.open(blob_mem.p, blob.size()).ok());
  static Model model;
  REQUIRE(model.bind(view).ok());
  std::vector<float> in(Model::input_floats, 0.25f), out(Model::output_floats);
  ThreadPool pool(2);  // allocates here, at construction
  const Executor ex = pool.executor();
  Aligned ws(Model::workspace_bytes_for(2));
  model.forward(in.data(), out.data(), ws.p, &ex);
  vitcc::tools::malloc_counter_start();
  model.forward(in.data(), out.data(), ws.p, &ex);
  model.forward(in.data(), out.data(), ws.p, &ex);
  CHECK(vitcc::tools::malloc_counter_stop() == 0);
}

TEST_CASE("ThreadPool runs every task exactly once with distinct concurrent worker indices") {
  for (std::size_t workers : {1u, 2u, 3u, 5u}) {
    ThreadPool pool(workers);
    const Executor ex = pool.executor();
    for (std::size_t tasks : {0u, 1u, 2u, 7u, 1000u}) {
      std::vector<int> hits(tasks, 0);
      std::vector<int> busy(workers, 0);
      bool overlap = false, bad_worker = false;
      parallel_for(&ex, tasks, [&](std::size_t t, std::size_t w) {
        if (w >= workers) {
          bad_worker = true;
          return;
        }
        if (__atomic_fetch_add(&busy[w], 1, __ATOMIC_SEQ_CST) != 0) overlap = true;
        __atomic_fetch_add(&hits[t], 1, __ATOMIC_SEQ_CST);
        __atomic_fetch_sub(&busy[w], 1, __ATOMIC_SEQ_CST);
      });
      INFO(workers, " workers, ", tasks, " tasks");
      CHECK_FALSE(bad_worker);
      CHECK_FALSE(overlap);
      for (std::size_t t = 0; t < tasks; ++t) CHECK(hits[t] == 1);
    }
  }
}

TEST_CASE("ThreadPool survives many short regions back to back") {
  for (std::size_t workers : {2u, 3u}) {
    ThreadPool pool(workers);
    const Executor ex = pool.executor();
    std::vector<long> slots(8, 0);
    long expected = 0;
    for (int region = 0; region < 20000; ++region) {
      const std::size_t tasks = 1 + std::size_t(region % 7);
      parallel_for(&ex, tasks, [&](std::size_t t, std::size_t) { slots[t] += region; });
      for (std::size_t t = 0; t < tasks; ++t) expected += region;
    }
    long total = 0;
    for (long v : slots) total += v;
    CHECK(total == expected);  // each slot is written by one task per region: no overlap, none lost
  }
}

namespace {
std::vector<float> seeded(std::size_t n, unsigned seed) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    v[i] = float(seed >> 8) / 16777216.0f - 0.5f;
  }
  return v;
}
}  // namespace

TEST_CASE_TEMPLATE("kernels: the parallel entry points give the serial bits", Arch, VITCC_MODEL_TEST_ARCHS) {
  // Shapes off every tile size, and a tall A that the serial driver cuts into several row blocks.
  const std::size_t shapes[][3] = {{197, 384, 1000}, {700, 1000, 200}, {5, 33, 17}, {1, 384, 1000}};
  for (std::size_t workers : {2u, 3u}) {
    ThreadPool pool(workers);
    const Executor ex = pool.executor();
    for (const auto& sh : shapes) {
      const std::size_t m = sh[0], k = sh[1], n = sh[2];
      const std::vector<float> a = seeded(m * k, 1), w = seeded(k * n, 2), bias = seeded(n, 3), add = seeded(m * n, 4);
      std::vector<float> packed(kernels::packed_b_floats(k, n));
      kernels::pack_b_from_linear(w.data(), k, n, packed.data());
      kernels::GemmEpilogue ep;
      ep.bias = bias.data();
      ep.act = kernels::Activation::gelu_erf;
      ep.add = add.data();
      ep.ld_add = n;
      std::vector<float> serial(m * n), par(m * n, -1.0f), ref(m * n);
      kernels::gemm<Arch>(m, n, k, a.data(), k, packed.data(), serial.data(), n, ep);
      kernels::gemm<Arch>(m, n, k, a.data(), k, packed.data(), par.data(), n, ep, &ex);
      kernels::ref::gemm(m, n, k, a.data(), k, packed.data(), ref.data(), n, ep);
      INFO("arch ", Arch::name(), " gemm ", m, "x", k, "x", n, ", ", workers, " workers");
      CHECK(same_bits(serial, par));
      double worst = 0;
      for (std::size_t i = 0; i < m * n; ++i) worst = std::max(worst, double(std::fabs(serial[i] - ref[i])));
      CHECK(worst < 1e-4);
    }
    for (const std::size_t t : {197u, 300u}) {
      const std::size_t heads = 3, hd = t == 197 ? 64 : 40, d = heads * hd;
      const std::vector<float> qkv = seeded(t * 3 * d, 5);
      std::vector<float> serial(t * d), par(t * d, -1.0f);
      std::vector<float> s1(kernels::attention_scratch_floats(t, hd) + 16);
      std::vector<float> s2(kernels::attention_scratch_floats(t, hd, heads, workers) + 16);
      Aligned sc1(s1.size() * 4), sc2(s2.size() * 4);
      kernels::attention<Arch>(t, heads, hd, 0.125f, qkv.data(), 3 * d, serial.data(), d, static_cast<float*>(sc1.p));
      kernels::attention<Arch>(t, heads, hd, 0.125f, qkv.data(), 3 * d, par.data(), d, static_cast<float*>(sc2.p), &ex);
      INFO("arch ", Arch::name(), " attention t=", t, ", ", workers, " workers");
      CHECK(same_bits(serial, par));
    }
    {
      const std::size_t rows = 197, d = 200;
      const std::vector<float> x = seeded(rows * d, 6), g = seeded(d, 7), b = seeded(d, 8);
      std::vector<float> serial(rows * d), par(rows * d, -1.0f);
      kernels::layer_norm<Arch>(rows, d, x.data(), d, g.data(), b.data(), 1e-6f, serial.data(), d);
      kernels::layer_norm<Arch>(rows, d, x.data(), d, g.data(), b.data(), 1e-6f, par.data(), d, &ex);
      CHECK(same_bits(serial, par));
    }
  }
}
