// Must NOT compile: the demo model's workspace checked against a budget one byte too small.
// (The test expects the compiler to fail and to print the budget check's message.)
#include "demo.hpp"
#include "vitcc/core/memory.hpp"

using Model = vitcc_models::demo_model;
static_assert(vitcc::workspace_fits<Model, Model::workspace_bytes>, "an exact budget fits");
static_assert(vitcc::workspace_fits<Model, Model::workspace_bytes - 1>, "one byte less does not");
int main() { return 0; }
