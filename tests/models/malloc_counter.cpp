#include "malloc_counter.hpp"

#include <atomic>
#include <cstdlib>

// Under AddressSanitizer the allocator belongs to the sanitizer: replacing malloc would crash its
// start-up and hide every heap error. Count through its allocation hook instead (make test-sanitize).
#if defined(__SANITIZE_ADDRESS__)
#define VITCC_COUNT_WITH_SANITIZER_HOOKS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VITCC_COUNT_WITH_SANITIZER_HOOKS 1
#endif
#endif

#if VITCC_COUNT_WITH_SANITIZER_HOOKS
// From <sanitizer/allocator_interface.h>, which not every compiler installs.
extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*, std::size_t),
                                                         void (*free_hook)(const volatile void*));

namespace {
std::atomic<bool> counting{false};
std::atomic<long> count{0};
void on_malloc(const volatile void*, std::size_t) {
  if (counting.load(std::memory_order_relaxed)) count.fetch_add(1, std::memory_order_relaxed);
}
void on_free(const volatile void*) {}
const int hooks_installed = __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
}  // namespace
#else
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
}

namespace {
std::atomic<bool> counting{false};
std::atomic<long> count{0};
void note() {
  if (counting.load(std::memory_order_relaxed)) count.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

extern "C" {
void* malloc(std::size_t n) {
  note();
  return __libc_malloc(n);
}
void* calloc(std::size_t a, std::size_t b) {
  note();
  return __libc_calloc(a, b);
}
void* realloc(void* p, std::size_t n) {
  note();
  return __libc_realloc(p, n);
}
void* aligned_alloc(std::size_t al, std::size_t n) {
  note();
  return __libc_memalign(al, n);
}
void* memalign(std::size_t al, std::size_t n) {
  note();
  return __libc_memalign(al, n);
}
int posix_memalign(void** out, std::size_t al, std::size_t n) {
  note();
  *out = __libc_memalign(al, n);
  return *out ? 0 : 12;
}
}
#endif

namespace vitcc::test {
void malloc_counter_start() {
  count = 0;
  counting = true;
}
long malloc_counter_stop() {
  counting = false;
  return count.load();
}
}  // namespace vitcc::test
