// Recognises an EfficientViT-M (timm efficientvit_m0..m5) in a folded ONNX graph and extracts its
// EvitSpec: hyper-parameters plus every weight with BatchNorm folded in, in PyTorch layouts.
//
// Weights are found by their position, never by initializer name. The residual stream is walked from
// the image input: four stride-2 convs (each Conv, optionally followed by an inference
// BatchNormalization, which is folded), then units recognised by how the stream value is consumed:
//   Add + depthwise Conv            residual dw conv         Add + 1x1 Conv     residual FFN
//   a lone 1x1 Conv                 patch merging (... squeeze-excite ...)
//   Add + anything else             the attention mixer: the region between the stream value and the
//                                   Add is collected, its ops checked against a fixed list, its convs /
//                                   softmaxes / bias constants read by position, and then the region is
//                                   *executed* on a random input and compared with the recognised
//                                   cascaded group attention, so any exporter formulation of chunk
//                                   (Split or Slice), window padding (static or computed Pad) and window
//                                   partition is accepted only if it computes the same thing.
//   GlobalAveragePool / ReduceMean  the head (Flatten, BatchNormalization, Gemm or MatMul+Add).
// The unit sequence must then form the M-family layout (stage 0 blocks; for stages 1 and 2 the
// downsample dw/FFN/merge/dw/FFN then blocks). Every node must be accounted for.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "model_spec.hpp"
#include "onnx_graph.hpp"

namespace vitcc::pack {

// Canonical tensors (all BN folded in, PyTorch layouts):
//   <conv>.weight [cout, cin/groups, k, k], <conv>.bias [cout] for every conv, names as timm's
//   state_dict without the ".conv" of ConvBN (e.g. stages.1.blocks.0.ffn0.m.pw1, patch_embed.conv1,
//   stages.1.downsample.patchmerge.se.fc1, stages.0.blocks.0.mixer.m.attn.qkvs.2);
//   stages.{s}.blocks.{b}.mixer.m.attn.attention_bias [heads, N, N] (the Gather already applied);
//   head.weight [classes, C], head.bias [classes] (BatchNorm1d folded; when num_classes > 0).
struct EvitSpec {
  std::int64_t in_chans = 3, img_size = 0;
  std::int64_t embed_dim[3] = {}, depth[3] = {}, num_heads[3] = {}, key_dim[3] = {}, window_size[3] = {};
  std::int64_t kernels[4] = {};
  std::int64_t num_classes = 0;
  float attn_scale[3] = {};
  bool windowed[3] = {};           // the stage's map is split into (padded) windows
  bool bn_in_graph = false;        // BatchNormalization nodes were folded by the packer
  bool head_bn = false;            // the head had a BatchNorm1d
  std::map<std::string, Tensor> tensors;
};

// Throws PackError naming the node and what was expected.
EvitSpec recognize_efficientvit(const OnnxGraph& g);

// Cheap structural test used to pick the family: the graph's image input feeds a stride-2 3x3 Conv
// and the graph contains grouped (depthwise) convolutions.
bool looks_like_efficientvit(const OnnxGraph& g);

}  // namespace vitcc::pack
