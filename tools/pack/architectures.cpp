// The architectures vitcc-pack knows, and how it tells them apart.
#include "efficientvit_recognizer.hpp"
#include "packed_model.hpp"

namespace vitcc::pack {

PackedModel pack_model(const OnnxGraph& graph) {
  // EfficientViT-M: the image feeds a stride-2 3x3 conv and the graph has depthwise convs (a ViT's
  // first node is its P x P patch conv, with no grouped conv anywhere). Everything else goes to the
  // ViT recogniser, which names the node where the graph stops looking like a ViT.
  if (looks_like_efficientvit(graph)) return pack_efficientvit(graph);
  return pack_vit(graph);
}

}  // namespace vitcc::pack
