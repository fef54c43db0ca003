// The main() of a per-model program that measures how much stack forward() uses, for
// tools/memory_report.sh (docs/MEMORY.md). A two-line translation unit includes the model's
// generated header and this file:
//
//   #include "NAME.hpp"
//   #include "stack_probe.hpp"
//   VITCC_STACK_PROBE_MAIN(vitcc_models::NAME_model)
//
//   probe BLOB   ->  prints "workspace_bytes=W forward_stack_bytes=S"
//
// forward() runs on a thread whose stack is a buffer we painted with a pattern; afterwards the
// deepest byte that no longer holds the pattern is its high-water mark. The same thread running an
// empty function gives the baseline (thread start-up), which is subtracted.
#pragma once
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "vitcc/io/blob_reader.hpp"

namespace vitcc::stack_probe {

constexpr std::size_t stack_bytes = 8u << 20;
constexpr unsigned char paint = 0xA5;

struct Job {
  void (*fn)(void*);
  void* arg;
};

inline void* trampoline(void* p) {
  Job* j = static_cast<Job*>(p);
  j->fn(j->arg);
  return nullptr;
}

// Runs fn(arg) on a painted stack; returns the deepest stack use in bytes.
inline std::size_t measure(void (*fn)(void*), void* arg) {
  void* stack = nullptr;
  if (posix_memalign(&stack, 4096, stack_bytes) != 0) return 0;
  std::memset(stack, paint, stack_bytes);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstack(&attr, stack, stack_bytes);
  Job job{fn, arg};
  pthread_t t;
  if (pthread_create(&t, &attr, trampoline, &job) != 0) return 0;
  pthread_join(t, nullptr);
  pthread_attr_destroy(&attr);
  const unsigned char* s = static_cast<const unsigned char*>(stack);
  std::size_t untouched = 0;
  while (untouched < stack_bytes && s[untouched] == paint) ++untouched;
  std::free(stack);
  return stack_bytes - untouched;
}

template <class Model>
struct Call {
  const Model* model;
  const float* in;
  float* out;
  void* ws;
};

template <class Model>
void run_forward(void* p) {
  auto* c = static_cast<Call<Model>*>(p);
  c->model->forward(c->in, c->out, c->ws);
}

inline void nothing(void*) {}

template <class Model>
int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s BLOB\n", argv[0]);
    return 2;
  }
  const int fd = ::open(argv[1], O_RDONLY);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0) {
    std::fprintf(stderr, "%s: cannot open\n", argv[1]);
    return 3;
  }
  void* mapped = ::mmap(nullptr, std::size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (mapped == MAP_FAILED) return 3;
  vitcc::BlobView blob;
  vitcc::Status s = blob.open(mapped, std::size_t(st.st_size));
  static Model model;
  if (s.ok()) s = model.bind(blob);
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", argv[1], s.message());
    return 3;
  }
  std::vector<float> in(Model::input_floats, 0.5f), out(Model::output_floats);
  void* ws = std::aligned_alloc(Model::workspace_alignment,
                                (Model::workspace_bytes + Model::workspace_alignment - 1) /
                                    Model::workspace_alignment * Model::workspace_alignment);
  Call<Model> call{&model, in.data(), out.data(), ws};
  const std::size_t base = measure(nothing, nullptr);
  const std::size_t used = measure(run_forward<Model>, &call);
  std::free(ws);
  std::printf("workspace_bytes=%zu forward_stack_bytes=%zu\n", std::size_t(Model::workspace_bytes),
              used > base ? used - base : 0);
  return 0;
}

}  // namespace vitcc::stack_probe

#define VITCC_STACK_PROBE_MAIN(ModelType) \
  int main(int argc, char** argv) { return vitcc::stack_probe::main<ModelType>(argc, argv); }
