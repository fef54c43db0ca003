// The heap-allocation counter of tools/common/malloc_counter.hpp, declared for the test files. Its
// one definition is compiled in malloc_counter.cpp: link that into the test executable.
#pragma once

namespace vitcc::tools {
void malloc_counter_start() noexcept;
long malloc_counter_stop() noexcept;  // returns the allocations counted since start, in every thread
}  // namespace vitcc::tools
