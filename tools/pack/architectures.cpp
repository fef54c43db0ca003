// The architectures vitcc-pack knows, and how it tells them apart.
#include "packed_model.hpp"

namespace vitcc::pack {

PackedModel pack_model(const OnnxGraph& graph) {
  // Only the ViT family so far: its recogniser names the node where the graph stops looking like one.
  return pack_vit(graph);
}

}  // namespace vitcc::pack
