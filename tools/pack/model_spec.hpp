// What the ONNX recogniser hands to the rest of vitcc-pack: the architecture's hyper-parameters and
// its weights under canonical names, in PyTorch's layouts, before any folding or packing.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "vitcc/models/vit_types.hpp"

namespace vitcc::pack {

struct Tensor {
  std::vector<std::int64_t> shape;
  std::vector<float> data;  // row-major
  std::string source;       // ONNX initializer/node it came from, for error messages
};

using vitcc::VitOutput;  // tokens [1,T,D] / pooled [1,D] / logits [1,num_classes]
using vitcc::VitPool;    // none (the graph outputs every token) / token / avg

// A timm VisionTransformer (and what other exporters produce with the same maths).
//
// Canonical tensor names, all float32, PyTorch layouts (Linear weight is [out, in]):
//   patch_embed.weight [D, C, P, P]   patch_embed.bias [D]
//   cls_token [1, D]                  (has_cls_token)
//   reg_token [R, D]                  (num_reg_tokens = R > 0)
//   pos_embed [rows, D]               (has_pos_embed; rows = num_patches when pos_embed_covers_prefix
//                                      is false, num_patches + num_prefix otherwise)
//   blocks.{i}.norm1.weight [D]       blocks.{i}.norm1.bias [D]
//   blocks.{i}.attn.qkv.weight [3D, D] blocks.{i}.attn.qkv.bias [3D]   (bias optional)
//       rows: q of every head, then k, then v; head h uses rows h*hd .. h*hd+hd-1 of each third
//   blocks.{i}.attn.proj.weight [D, D] blocks.{i}.attn.proj.bias [D]
//   blocks.{i}.ls1.gamma [D]          (optional LayerScale after attention)
//   blocks.{i}.norm2.weight [D]       blocks.{i}.norm2.bias [D]
//   blocks.{i}.mlp.fc1.weight [H, D]  blocks.{i}.mlp.fc1.bias [H]
//   blocks.{i}.mlp.fc2.weight [D, H]  blocks.{i}.mlp.fc2.bias [D]
//   blocks.{i}.ls2.gamma [D]          (optional LayerScale after the MLP)
//   norm.weight [D] norm.bias [D]     (final_norm)
//   fc_norm.weight [D] fc_norm.bias [D] (fc_norm)
//   head.weight [num_classes, D]      head.bias [num_classes]  (output == logits)
//
// Token order is [cls?][reg x R][patches in row-major grid order], as timm builds it.
// Block: x += ls1 * proj(attn(norm1(x))); x += ls2 * fc2(gelu_erf(fc1(norm2(x)))).
// Attention: softmax(attn_scale * q k^T) v per head (no mask, no attention bias).
struct VitSpec {
  std::int64_t in_chans = 3, img_h = 0, img_w = 0, patch = 0;
  std::int64_t dim = 0, depth = 0, heads = 0, mlp_hidden = 0;
  bool has_cls_token = false;
  std::int64_t num_reg_tokens = 0;
  bool has_pos_embed = true;
  bool pos_embed_covers_prefix = true;  // false: timm no_embed_class (pos only on patches)
  bool qkv_bias = true;
  bool final_norm = true;
  bool fc_norm = false;
  VitPool pool = VitPool::token;
  VitOutput output = VitOutput::logits;
  std::int64_t num_classes = 0;
  float ln_eps = 1e-6f;       // every LayerNorm of the model uses the same epsilon
  float attn_scale = 0.0f;    // what the graph multiplies q.k by (1/sqrt(head_dim) normally)
  std::string source_layout;  // "timm" or "torchvision": how the graph was written, for --summary
  std::map<std::string, Tensor> tensors;
};

}  // namespace vitcc::pack
