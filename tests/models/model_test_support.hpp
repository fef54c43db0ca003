// Shared by the whole-model tests: an aligned copy of a file, float files, a bit-exact comparison and
// a user executor that runs tasks in another order than the ThreadPool.
#pragma once
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "vitcc/core/executor.hpp"

namespace vitcc::test {

// A 64-byte aligned heap buffer (a blob or a workspace), freed at scope end.
struct Aligned {
  void* p;
  explicit Aligned(std::size_t bytes) : p(std::aligned_alloc(64, (bytes + 63) / 64 * 64)) {}
  ~Aligned() { std::free(p); }
  Aligned(const Aligned&) = delete;
  Aligned& operator=(const Aligned&) = delete;
  unsigned char* bytes() const { return static_cast<unsigned char*>(p); }
};

// A whole file in a 64-byte aligned buffer (how a blob must be given to BlobView::open).
struct AlignedFile {
  std::size_t size = 0;
  Aligned mem;
  explicit AlignedFile(const std::string& path) : size(file_size(path)), mem(size) {
    std::ifstream f(path, std::ios::binary);
    f.read(reinterpret_cast<char*>(mem.p), std::streamsize(size));
    REQUIRE_MESSAGE(f.good(), "cannot read ", path);
  }
  unsigned char* data() const { return mem.bytes(); }

 private:
  static std::size_t file_size(const std::string& path) {
    std::ifstream f(path, std::ios::binary | std::ios::ate);
    REQUIRE_MESSAGE(f.good(), "cannot read ", path);
    return std::size_t(f.tellg());
  }
};

inline std::vector<float> read_floats(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  REQUIRE_MESSAGE(f.good(), "cannot read ", path);
  std::vector<float> v(std::size_t(f.tellg()) / sizeof(float));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(v.size() * sizeof(float)));
  return v;
}

inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// One forward pass with a fresh workspace filled with stale bytes (which must not matter), sized for
// the executor's workers.
template <class Model>
std::vector<float> run_forward(const Model& model, const std::vector<float>& in, const Executor* ex) {
  std::vector<float> out(Model::output_floats, -1.0f);
  const std::size_t bytes = Model::workspace_bytes_for(worker_count(ex));
  Aligned ws(bytes);
  std::memset(ws.p, 0xA5, bytes);
  model.forward(in.data(), out.data(), ws.p, ex);
  return out;
}

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

}  // namespace vitcc::test
