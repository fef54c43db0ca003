// The enumerations a ViT config is made of; no dependencies, so host tools can use them alone.
#pragma once

namespace vitcc {

enum class VitPool { none = 0, token = 1, avg = 2 };  // none: the model outputs every token
enum class VitOutput { tokens = 0, pooled = 1, logits = 2 };  // [T,D] / [D] / [num_classes] per image

}  // namespace vitcc
