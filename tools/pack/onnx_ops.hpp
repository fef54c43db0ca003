// Internal to vitcc-pack: ONNX operator semantics shared by constant folding, shape propagation and the
// reference interpreter (OnnxGraph::run).
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

#include "onnx_graph.hpp"

namespace vitcc::pack::detail {

struct EvalContext {
  const std::string& file;  // for messages
  std::int64_t opset;       // default-domain opset of the model
};

bool op_supported(const std::string& op_type);
// normalize.cpp: "" when the loader reads op_type of `domain` (by expanding it), else why not (one line,
// naming the optimisation level that writes it and what to do instead).
std::string contrib_op_refusal(const std::string& domain, const std::string& op_type, std::int64_t opset);
const std::vector<std::string>& supported_op_list();

// Evaluates node n on the given inputs (inputs[k] == nullptr: omitted optional input). When an input the
// result depends on has has_data == false, only shape and dtype of the outputs are computed
// (has_data == false); inputs that determine shapes (Reshape's shape, Slice's starts, ...) must have data.
// Shape produces data from shapes alone. Returns one tensor per entry of n.outputs (omitted outputs are
// returned empty). Throws PackError naming the node.
std::vector<OnnxTensor> eval_op(const OnnxNode& n, const std::vector<const OnnxTensor*>& inputs,
                                const EvalContext& ctx);

// Broadcast result of two shapes (numpy rules); throws std::invalid_argument when incompatible.
std::vector<std::int64_t> broadcast_shapes(const std::vector<std::int64_t>& a, const std::vector<std::int64_t>& b);

// Element count of a shape. Throws ShapeError for a negative dimension or when the non-zero dimensions
// multiply to more than max_tensor_elements (2^28 by default, 1 GiB as float32: far above any ViT
// tensor; the fuzz targets lower it). Every tensor the loader and eval_op create passes it, so no
// product of any of a tensor's dimensions (an element count, a stride, an outer or inner size, even
// of an empty tensor) can overflow.
struct ShapeError : std::length_error {
  using std::length_error::length_error;
};
extern std::int64_t max_tensor_elements;
std::int64_t shape_numel(const std::vector<std::int64_t>& s);

}  // namespace vitcc::pack::detail
