// Counts the heap allocations a program makes, in any thread, between malloc_counter_start() and
// malloc_counter_stop(): the evidence behind "forward() allocates nothing". Used by the runner that
// vitcc-run compiles for every model (tools/run/runner_main.hpp) and by tests/models.
//
// Include this header in EXACTLY ONE translation unit of a program. It defines malloc and its
// relatives and the two functions below (not inline), so a second inclusion fails at link time with
// "multiple definition"; other translation units declare the two functions (tests/models/malloc_counter.hpp).
//
// How it counts:
// - glibc: malloc, calloc, realloc, reallocarray, aligned_alloc, memalign, posix_memalign, valloc and
//   pvalloc are replaced by versions that count and forward to glibc's own __libc_* entry points
//   (glibc supports replacing its allocator this way). libstdc++'s operator new calls malloc, and its
//   aligned operator new aligned_alloc, through these symbols, so new is counted too; so are glibc's
//   own allocations (pthread_create, fopen, ...). free is glibc's: it releases what __libc_* returned.
// - AddressSanitizer and ThreadSanitizer: the allocator belongs to the sanitizer, and replacing malloc
//   would break its start-up (and hide every heap error). Count through its allocation hook instead,
//   which sees malloc and operator new alike (make test-sanitize, make test-tsan).
// Needs no exceptions and no RTTI: the runner is compiled with -fno-exceptions -fno-rtti.
#pragma once
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdlib>  // defines __GLIBC__ on glibc

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define VITCC_DETAIL_COUNT_WITH_SANITIZER_HOOKS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define VITCC_DETAIL_COUNT_WITH_SANITIZER_HOOKS 1
#endif
#endif
#ifndef VITCC_DETAIL_COUNT_WITH_SANITIZER_HOOKS
#define VITCC_DETAIL_COUNT_WITH_SANITIZER_HOOKS 0
#endif

#if !VITCC_DETAIL_COUNT_WITH_SANITIZER_HOOKS && !defined(__GLIBC__)
#error "malloc_counter.hpp counts allocations through glibc's __libc_* allocator or a sanitizer's hooks"
#endif

namespace vitcc::tools::detail {
inline std::atomic<bool> malloc_counting{false};
inline std::atomic<long> malloc_count{0};
inline void note_malloc() noexcept {
  if (malloc_counting.load(std::memory_order_relaxed)) malloc_count.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace vitcc::tools::detail

#if VITCC_DETAIL_COUNT_WITH_SANITIZER_HOOKS
// From <sanitizer/allocator_interface.h>, which not every compiler installs.
extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*, std::size_t),
                                                         void (*free_hook)(const volatile void*));
namespace vitcc::tools::detail {
inline void on_sanitizer_malloc(const volatile void*, std::size_t) { note_malloc(); }
inline void on_sanitizer_free(const volatile void*) {}
// Installed before main() runs.
const int sanitizer_hooks_installed = __sanitizer_install_malloc_and_free_hooks(on_sanitizer_malloc, on_sanitizer_free);
}  // namespace vitcc::tools::detail
#else
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void* __libc_valloc(std::size_t);
void* __libc_pvalloc(std::size_t);

void* malloc(std::size_t n) {
  vitcc::tools::detail::note_malloc();
  return __libc_malloc(n);
}
void* calloc(std::size_t count, std::size_t n) {
  vitcc::tools::detail::note_malloc();
  return __libc_calloc(count, n);
}
void* realloc(void* p, std::size_t n) {
  vitcc::tools::detail::note_malloc();
  return __libc_realloc(p, n);
}
// glibc's own reallocarray calls its internal realloc, which the replacement above would not see.
void* reallocarray(void* p, std::size_t count, std::size_t n) {
  std::size_t bytes = 0;
  if (__builtin_mul_overflow(count, n, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  return realloc(p, bytes);
}
void* aligned_alloc(std::size_t alignment, std::size_t n) {
  vitcc::tools::detail::note_malloc();
  return __libc_memalign(alignment, n);
}
void* memalign(std::size_t alignment, std::size_t n) {
  vitcc::tools::detail::note_malloc();
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t n) {
  vitcc::tools::detail::note_malloc();
  if (alignment % sizeof(void*) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
  void* p = __libc_memalign(alignment, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
void* valloc(std::size_t n) {
  vitcc::tools::detail::note_malloc();
  return __libc_valloc(n);
}
void* pvalloc(std::size_t n) {
  vitcc::tools::detail::note_malloc();
  return __libc_pvalloc(n);
}
}  // extern "C"
#endif

namespace vitcc::tools {

// Starts counting from zero.
void malloc_counter_start() noexcept {
  detail::malloc_count.store(0);
  detail::malloc_counting.store(true);
}

// Stops counting; returns the allocations made, in every thread, since malloc_counter_start().
// (An allocation in another thread is counted when that thread's work happens-before this call,
// as a thread pool's tasks do before parallel_for returns.)
long malloc_counter_stop() noexcept {
  detail::malloc_counting.store(false);
  return detail::malloc_count.load();
}

}  // namespace vitcc::tools
