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
#include "model_test_support.hpp"
#include "vitcc/core/thread_pool.hpp"

using namespace vitcc;
using Cfg = vitcc_models::demo;
using vitcc::test::Aligned;
using vitcc::test::AlignedFile;
using vitcc::test::Backwards;
using vitcc::test::read_floats;
using vitcc::test::run_forward;
using vitcc::test::same_bits;

static_assert(Vit<Cfg>::workspace_bytes_for(1) == Vit<Cfg>::workspace_bytes, "one worker: the serial workspace");
static_assert(Vit<Cfg>::workspace_bytes_for(0) == Vit<Cfg>::workspace_bytes, "zero workers count as one");
static_assert(Vit<Cfg>::workspace_bytes_for(3) > Vit<Cfg>::workspace_bytes_for(2), "a slice per worker");

TEST_CASE_TEMPLATE("demo model: the same bits with 1, 2 and 3 workers", Arch, VITCC_MODEL_TEST_ARCHS) {
  using Model = Vit<Cfg, Arch>;
  AlignedFile blob(std::string(VITCC_DEMO_MODEL_DIR "/") + Cfg::blob_file);
  BlobView view;
  REQUIRE(view.open(blob.data(), blob.size).ok());
  static Model model;
  REQUIRE(model.bind(view).ok());

  const std::vector<float> in = read_floats(VITCC_DEMO_DIR "/input.bin");
  REQUIRE(in.size() == Model::input_floats);

  const std::vector<float> serial = run_forward(model, in, nullptr);
  for (std::size_t workers : {1u, 2u, 3u}) {
    ThreadPool pool(workers);
    const Executor ex = pool.executor();
    for (int rep = 0; rep < 3; ++rep) {  // dynamic task assignment differs from run to run
      INFO("arch ", Arch::name(), ", ThreadPool(", workers, "), run ", rep);
      CHECK(same_bits(run_forward(model, in, &ex), serial));
    }
    Backwards user{workers};
    const Executor uex = user.executor();
    INFO("arch ", Arch::name(), ", backwards executor with ", workers, " workers");
    CHECK(same_bits(run_forward(model, in, &uex), serial));
  }
}

TEST_CASE("the threaded forward() makes no heap allocation") {
  using Model = Vit<Cfg>;
  AlignedFile blob(std::string(VITCC_DEMO_MODEL_DIR "/") + Cfg::blob_file);
  BlobView view;
  REQUIRE(view.open(blob.data(), blob.size).ok());
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
