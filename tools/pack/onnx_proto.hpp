// ONNX protobuf messages as the evaluator's types, converted exactly as OnnxGraph::load converts a
// model's initializers, Constant values and nodes (element types narrowed or widened as
// OnnxTensor documents, sizes checked before anything is allocated, external data read only from
// inside the folder of `file`). For tests and tools that evaluate single nodes (detail::eval_op)
// outside a whole graph; OnnxGraph::load uses the same code.
#pragma once
#include <onnx/onnx_pb.h>

#include <string>

#include "onnx_graph.hpp"

namespace vitcc::pack::detail {

// Throws PackError naming `file` and `where` (e.g. "initializer 'w'").
OnnxTensor tensor_from_proto(const onnx::TensorProto& t, const std::string& file, const std::string& where);
// Name, op type, inputs, outputs and attributes; throws PackError for an unreadable tensor attribute.
OnnxNode node_from_proto(const onnx::NodeProto& n, const std::string& file);

}  // namespace vitcc::pack::detail
