// Counts calls to malloc/calloc/realloc/aligned allocation made while counting is on, by
// interposing glibc's allocator entry points in the test executable (operator new ends in malloc).
#pragma once
#include <cstddef>

namespace vitcc::test {
void malloc_counter_start();
long malloc_counter_stop();  // returns the allocations counted since start
}  // namespace vitcc::test
