// Compiles: the demo model's workspace fits an exact budget and a generous one, and the static
// workspace a firmware would declare has exactly the constexpr's size.
#include "demo.hpp"
#include "vitcc/core/memory.hpp"

using Model = vitcc_models::demo_model;
static_assert(vitcc::workspace_fits<Model, Model::workspace_bytes>, "an exact budget fits");
static_assert(vitcc::workspace_fits<Model, 16u << 20>, "16 MiB is plenty for the demo model");
static_assert(vitcc::workspace_bytes<Model> == Model::workspace_bytes, "one constant, two spellings");
alignas(vitcc::alignment) static unsigned char workspace[Model::workspace_bytes];
static_assert(sizeof workspace == Model::workspace_bytes, "sized by the constexpr");
int main() { return workspace[0]; }
