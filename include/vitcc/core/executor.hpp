// Intra-op parallelism: how a forward pass hands independent tasks to threads.
//
// An Executor is three words: a parallel_for function, its context, and the number of workers.
// parallel_for(self, tasks, fn, arg) must call fn(arg, t, w) exactly once for every t in [0, tasks)
// and return only when all calls have returned. w (0 <= w < workers) names the worker that runs the
// call; two calls running at the same time never share a w, so a kernel may give each worker its own
// slice of the workspace. Nothing else is asked of it: no RTTI, no exceptions, no allocation, no
// particular order. An RTOS task pool, OpenMP (`#pragma omp parallel for` over t, w =
// omp_get_thread_num()) or ThreadPool (core/thread_pool.hpp) all fit.
//
// Determinism: every kernel cuts its work into a fixed list of tasks that depends on the shapes only,
// never on the number of workers, and every output element is computed by exactly one task in a fixed
// order of operations. Results are therefore identical bit for bit whatever the executor and however
// many workers it has (tests/models/test_vit_threads.cpp checks 1, 2 and 3).
//
// No executor (a null pointer) means the calling thread does everything, in task order.
#pragma once
// This header is the interface only (freestanding-friendly: no threads, no allocation); the
// std::thread pool that ships with the library is in core/thread_pool.hpp.
#include <cstddef>
#include <type_traits>

namespace vitcc {

// One task of a parallel region: task index, worker index.
using TaskFn = void (*)(void* arg, std::size_t task, std::size_t worker);

struct Executor {
  void (*parallel_for)(void* self, std::size_t tasks, TaskFn fn, void* arg) = nullptr;
  void* self = nullptr;
  std::size_t workers = 1;  // the number of distinct worker indices parallel_for may pass
};

// The number of workers a forward pass must provide workspace for.
inline std::size_t worker_count(const Executor* ex) noexcept {
  return ex && ex->parallel_for && ex->workers > 1 ? ex->workers : 1;
}

// Runs fn for tasks 0..tasks-1: inline on the calling thread (worker 0, in order) without an
// executor, otherwise through it.
inline void parallel_for(const Executor* ex, std::size_t tasks, TaskFn fn, void* arg) noexcept {
  if (tasks == 0) return;
  if (worker_count(ex) == 1 || tasks == 1) {
    for (std::size_t t = 0; t < tasks; ++t) fn(arg, t, 0);
    return;
  }
  ex->parallel_for(ex->self, tasks, fn, arg);
}

// The same with a callable f(task, worker); f lives on the caller's stack, nothing is allocated.
template <class F>
void parallel_for(const Executor* ex, std::size_t tasks, F&& f) noexcept {
  using Fn = std::remove_reference_t<F>;
  parallel_for(
      ex, tasks,
      [](void* a, std::size_t t, std::size_t w) { (*static_cast<Fn*>(a))(t, w); },
      const_cast<void*>(static_cast<const void*>(&f)));
}

}  // namespace vitcc
