// Recognises a Vision Transformer in a folded ONNX graph (see OnnxGraph) and extracts its VitSpec.
//
// Weights are matched by their position in the graph, never by initializer name. Idioms are normalised
// first (LayerNorm decomposed or fused, exact erf-GELU in any association order, Linear as MatMul(+Add) or
// Gemm), then the residual stream is walked from the image input: patch Conv -> tokens -> class/register
// tokens and position embedding -> blocks -> final norm -> pooling -> fc_norm -> head. Layout ops between
// the qkv projection and the attention products (Reshape/Transpose/Split/Gather/Slice/Squeeze/...) are
// checked by tracing element indices through them, so any exporter's formulation of the head split is
// accepted as long as it computes the same thing, and anything else is refused. Every node of the graph
// must be accounted for by the recognised structure.
#pragma once
#include "model_spec.hpp"
#include "onnx_graph.hpp"

namespace vitcc::pack {

// Throws PackError naming the node and what was expected when the graph is not a ViT this packer models.
VitSpec recognize_vit(const OnnxGraph& g);

// One line per field plus the tensor list, for --summary style output and the developer check.
std::string describe_vit_spec(const VitSpec& spec);

}  // namespace vitcc::pack
