// The main() of a model's compiled runner. vitcc-run generates a two-line translation unit that
// includes the model's generated header and this file, compiles it once per configuration (cached),
// and talks to it over a fixed command line:
//
//   runner BLOB CHECKSUM CONFIG_HASH IN.raw OUT.raw IMAGES REPEAT THREADS
//   runner --config-hash      (prints the compiled configuration's hash, "0x" + 16 hex digits)
//
// IN.raw holds IMAGES float32 CHW images; OUT.raw receives IMAGES outputs. The runner maps the blob
// read-only (weights are used in place), checks it, binds it, and runs forward() once per image
// (REPEAT times when timing; the median, min, max and every run's time are printed). THREADS > 1
// runs each image on THREADS threads (intra-op: a vitcc::ThreadPool spreads every kernel's tasks),
// one image after another; the output is the same bit for bit as with one thread.
//
// It also holds every model to the library's promise for forward(): vitcc-run always compiles it
// with -fno-exceptions -fno-rtti, and it counts the heap allocations made (in any thread) during
// each forward() call. The summary line reports forward_allocations=N; any N but 0 is an error
// (exit 5). It also names the instruction set compiled in (isa=, vitcc::default_arch), and a runner
// compiled for instructions this CPU lacks exits 7 before anything else. This file is that program's only translation unit, so it may define malloc & co.
#pragma once
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "malloc_counter.hpp"  // tools/common; vitcc-run passes its folder with -I
#include "vitcc/core/arch.hpp"
#include "vitcc/core/cpu_features.hpp"
#include "vitcc/core/thread_pool.hpp"
#include "vitcc/io/blob_reader.hpp"

namespace vitcc::runner {

inline bool read_all(const char* path, void* dst, std::size_t bytes) {
  std::FILE* f = std::fopen(path, "rb");
  if (!f) return false;
  const bool ok = std::fread(dst, 1, bytes, f) == bytes && std::fgetc(f) == EOF;
  std::fclose(f);
  return ok;
}

template <class Model>
int main(int argc, char** argv) {
  using Cfg = typename Model::config;
  // Compiled for a target this CPU does not run (vitcc-run --target): say so, exit 7. Best effort, as
  // this check is compiled with the same flags; vitcc-run also reads a SIGILL as this.
  if (const vitcc::Status cpu = vitcc::cpu::check_cpu(); !cpu.ok()) {
    std::fprintf(stderr, "runner: %s\n", cpu.message());
    return 7;
  }
  // vitcc-run asks a freshly compiled runner which configuration it holds before caching it.
  if (argc == 2 && std::strcmp(argv[1], "--config-hash") == 0) {
    std::printf("0x%016llx\n", static_cast<unsigned long long>(Cfg::config_hash));
    return 0;
  }
  if (argc != 9) {
    std::fprintf(stderr, "usage: %s BLOB CHECKSUM CONFIG_HASH IN.raw OUT.raw IMAGES REPEAT THREADS\n", argv[0]);
    return 2;
  }
  const char* blob_path = argv[1];
  const std::uint64_t checksum = std::strtoull(argv[2], nullptr, 16);
  const std::uint64_t config_hash = std::strtoull(argv[3], nullptr, 16);
  const std::size_t images = std::strtoull(argv[6], nullptr, 10);
  const std::size_t repeat = std::max<std::size_t>(1, std::strtoull(argv[7], nullptr, 10));
  const std::size_t threads = std::max<std::size_t>(1, std::strtoull(argv[8], nullptr, 10));
  if (config_hash != Cfg::config_hash) {
    std::fprintf(stderr, "runner: compiled for config %016llx, asked to run %016llx\n",
                 static_cast<unsigned long long>(Cfg::config_hash), static_cast<unsigned long long>(config_hash));
    return 3;
  }

  const int fd = ::open(blob_path, O_RDONLY);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || st.st_size <= 0) {
    std::fprintf(stderr, "%s: cannot open the weight blob\n", blob_path);
    return 3;
  }
  void* mapped = ::mmap(nullptr, std::size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (mapped == MAP_FAILED) {
    std::fprintf(stderr, "%s: cannot map the weight blob\n", blob_path);
    return 3;
  }
  vitcc::BlobView blob;
  vitcc::Status s = blob.open(mapped, std::size_t(st.st_size));
  static Model model;  // a few hundred bytes of weight views; static keeps it off the stack
  if (s.ok()) s = model.bind(blob, checksum);
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", blob_path, s.message());
    return 3;
  }

  std::vector<float> in(images * Model::input_floats), out(images * Model::output_floats);
  if (!read_all(argv[4], in.data(), in.size() * sizeof(float))) {
    std::fprintf(stderr, "%s: expected %zu float32 values\n", argv[4], in.size());
    return 3;
  }
  std::vector<double> all;
  all.reserve(images * repeat);
  vitcc::ThreadPool pool(threads);
  const vitcc::Executor executor = pool.executor();
  const vitcc::Executor* ex = threads > 1 ? &executor : nullptr;
  const std::size_t ws_bytes = Model::workspace_bytes_for(threads);
  void* ws = std::aligned_alloc(Model::workspace_alignment,
                                (ws_bytes + Model::workspace_alignment - 1) / Model::workspace_alignment *
                                    Model::workspace_alignment);
  long allocations = 0;  // made during forward() calls, the warm-up's included
  for (std::size_t i = 0; i < images; ++i) {
    const float* x = in.data() + i * Model::input_floats;
    float* y = out.data() + i * Model::output_floats;
    if (repeat > 1) {  // warm-up
      vitcc::tools::malloc_counter_start();
      model.forward(x, y, ws, ex);
      allocations += vitcc::tools::malloc_counter_stop();
    }
    for (std::size_t r = 0; r < repeat; ++r) {
      vitcc::tools::malloc_counter_start();
      const auto t0 = std::chrono::steady_clock::now();
      model.forward(x, y, ws, ex);
      const auto t1 = std::chrono::steady_clock::now();
      allocations += vitcc::tools::malloc_counter_stop();
      all.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
  }
  std::free(ws);
  if (allocations != 0) {
    std::fprintf(stderr,
                 "runner: error: forward() made %ld heap allocation(s) over %zu call(s) with %zu thread(s); "
                 "it must allocate nothing (forward_allocations=%ld)\n",
                 allocations, images * (repeat > 1 ? repeat + 1 : 1), threads, allocations);
    return 5;
  }

  std::FILE* f = std::fopen(argv[5], "wb");
  if (!f || std::fwrite(out.data(), sizeof(float), out.size(), f) != out.size() || std::fclose(f) != 0) {
    std::fprintf(stderr, "%s: cannot write the output\n", argv[5]);
    return 6;
  }
  std::printf("runner: times_ms=");
  for (std::size_t i = 0; i < all.size(); ++i) std::printf(i ? ",%.4f" : "%.4f", all[i]);
  std::printf("\n");
  std::sort(all.begin(), all.end());
  std::printf("runner: forward_runs=%zu median_ms=%.4f min_ms=%.4f max_ms=%.4f workspace_bytes=%zu threads=%zu "
              "forward_allocations=%ld isa=%s\n",
              all.size(), all[all.size() / 2], all.front(), all.back(), ws_bytes, threads, allocations,
              vitcc::default_arch::name());
  ::munmap(mapped, std::size_t(st.st_size));
  return 0;
}

}  // namespace vitcc::runner

#define VITCC_RUNNER_MAIN(ModelType) \
  int main(int argc, char** argv) { return vitcc::runner::main<ModelType>(argc, argv); }
