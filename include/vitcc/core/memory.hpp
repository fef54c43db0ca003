// Memory a model needs, known before it runs. Model::workspace_bytes (also
// vitcc::workspace_bytes<Model>) is a constexpr; workspace_fits turns a memory budget into a
// compile-time check, so a model that outgrows its target fails to build instead of failing on it:
//
//   static_assert(vitcc::workspace_fits<Model, 256 * 1024>);
//   alignas(vitcc::alignment) static unsigned char workspace[Model::workspace_bytes];
//
// Weights need Model's blob bytes (NAME_BLOB_BYTES of vitcc-pack --emit-c-array/--emit-object,
// stats.weight_bytes in NAME.json) wherever they live; forward() needs nothing else but its stack
// (docs/MEMORY.md lists the measured high-water marks).
#pragma once
#include <cstddef>

namespace vitcc {
namespace detail {

// The sizes are template arguments so that the compiler's error names both numbers
// ("required from WorkspaceBudget<NEEDED, BUDGET>").
template <std::size_t NeededBytes, std::size_t BudgetBytes>
struct WorkspaceBudget {
  static_assert(NeededBytes <= BudgetBytes,
                "vitcc: the model's workspace_bytes (first argument below) exceed the budget (second)");
  static constexpr bool value = NeededBytes <= BudgetBytes;
};

}  // namespace detail

template <class Model, std::size_t BudgetBytes>
inline constexpr bool workspace_fits = detail::WorkspaceBudget<Model::workspace_bytes, BudgetBytes>::value;

}  // namespace vitcc
