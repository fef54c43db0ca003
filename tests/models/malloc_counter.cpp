// The one translation unit of a test executable that defines malloc & co. and the counter
// (tools/common/malloc_counter.hpp); the declarations come first so that the two must agree.
#include "malloc_counter.hpp"

#include "../../tools/common/malloc_counter.hpp"
