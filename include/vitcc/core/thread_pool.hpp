// ThreadPool: the std::thread implementation of the Executor interface (core/executor.hpp).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "vitcc/core/executor.hpp"

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#include <immintrin.h>
#define VITCC_DETAIL_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define VITCC_DETAIL_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define VITCC_DETAIL_CPU_RELAX() ((void)0)
#endif

namespace vitcc {

// A small fixed pool of std::threads. The constructor starts workers - 1 threads (the thread that
// calls parallel_for is worker 0 and works too) and returns once they all run, so that whatever a
// thread's start-up allocates (AddressSanitizer's per-thread state, for one) is allocated by then,
// not during a forward pass; nothing is allocated after that. Between regions the helpers spin
// briefly (regions follow each other within microseconds inside a forward pass), then sleep on a
// condition variable, so an idle pool costs no CPU.
//
// One parallel_for at a time per pool: it is an intra-op pool, not a task queue. Use one pool per
// thread that runs forward passes.
class ThreadPool {
 public:
  explicit ThreadPool(std::size_t workers) : workers_(workers < 1 ? 1 : workers) {
    threads_.reserve(workers_ - 1);
    for (std::size_t i = 1; i < workers_; ++i) threads_.emplace_back([this, i] { helper(i); });
    for (unsigned spins = 0; started_.load(std::memory_order_acquire) != workers_ - 1; ++spins) relax(spins);
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      gen_.fetch_add(2, std::memory_order_seq_cst);
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }

  std::size_t workers() const noexcept { return workers_; }

  Executor executor() noexcept {
    Executor e;
    e.parallel_for = &ThreadPool::run;
    e.self = this;
    e.workers = workers_;
    return e;
  }

 private:
  // gen_ is even while a region is open and odd once it is closed; a helper that sees an even
  // generation it has not served yet enters it. `inside_` counts helpers that have entered and not
  // left: the caller closes the region, then waits for inside_ to drop to zero before the job fields
  // may be rewritten (seq_cst on both sides: either the helper sees the region closed, or the caller
  // sees the helper inside).
  static void run(void* self, std::size_t tasks, TaskFn fn, void* arg) {
    auto& p = *static_cast<ThreadPool*>(self);
    p.fn_ = fn;
    p.arg_ = arg;
    p.tasks_ = tasks;
    p.next_.store(0, std::memory_order_relaxed);
    p.done_.store(0, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(p.mutex_);
      p.gen_.fetch_add(1, std::memory_order_seq_cst);  // odd (closed) -> even (open)
      if (p.sleepers_ > 0) p.wake_.notify_all();
    }
    p.work(0);
    for (unsigned spins = 0; p.done_.load(std::memory_order_acquire) != tasks; ++spins) relax(spins);
    p.gen_.fetch_add(1, std::memory_order_seq_cst);  // close
    for (unsigned spins = 0; p.inside_.load(std::memory_order_seq_cst) != 0; ++spins) relax(spins);
  }

  void work(std::size_t worker) {
    for (;;) {
      const std::size_t t = next_.fetch_add(1, std::memory_order_relaxed);
      if (t >= tasks_) return;
      fn_(arg_, t, worker);
      done_.fetch_add(1, std::memory_order_release);
    }
  }

  static void relax(unsigned spins) {
    if (spins < 4096) VITCC_DETAIL_CPU_RELAX();
    else std::this_thread::yield();
  }

  void helper(std::size_t worker) {
    started_.fetch_add(1, std::memory_order_release);
    std::uint64_t served = gen_.load(std::memory_order_seq_cst);
    if (served % 2 == 0) served -= 1;  // pretend the (closed) region before this one was served
    for (;;) {
      std::uint64_t g = gen_.load(std::memory_order_seq_cst);
      for (unsigned spins = 0; (g == served || g % 2 == 1) && spins < spin_limit; ++spins) {
        VITCC_DETAIL_CPU_RELAX();
        g = gen_.load(std::memory_order_seq_cst);
      }
      if (g == served || g % 2 == 1) {
        std::unique_lock<std::mutex> lock(mutex_);
        ++sleepers_;
        wake_.wait(lock, [&] {
          g = gen_.load(std::memory_order_seq_cst);
          return stop_ || (g != served && g % 2 == 0);
        });
        --sleepers_;
        if (stop_) return;
      }
      served = g;
      inside_.fetch_add(1, std::memory_order_seq_cst);
      if (gen_.load(std::memory_order_seq_cst) == g) work(worker);
      inside_.fetch_sub(1, std::memory_order_seq_cst);
    }
  }

  static constexpr unsigned spin_limit = 1u << 14;

  std::size_t workers_;
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::size_t sleepers_ = 0;
  bool stop_ = false;
  alignas(64) std::atomic<std::uint64_t> gen_{1};
  alignas(64) std::atomic<std::size_t> next_{0};
  alignas(64) std::atomic<std::size_t> done_{0};
  alignas(64) std::atomic<std::size_t> inside_{0};
  std::atomic<std::size_t> started_{0};  // helpers that have begun to run
  TaskFn fn_ = nullptr;
  void* arg_ = nullptr;
  std::size_t tasks_ = 0;
};

}  // namespace vitcc
