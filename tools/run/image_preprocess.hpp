// timm's evaluation transform (transforms_imagenet_eval, crop_mode 'center') for 8-bit
// RGB images, reproducing what torchvision does on PIL images:
//
//   1. scale_h = floor(input_h / crop_pct), scale_w = floor(input_w / crop_pct), computed in
//      double from the shortest decimal form of crop_pct (so 0.9f behaves like Python's 0.9).
//   2. If scale_h == scale_w (the usual square case): torchvision Resize(scale) resizes the
//      shorter side to scale and the longer to int(scale * long / short), with
//      pp.interpolation.
//      Otherwise timm uses ResizeKeepRatio(scale_size): ratio = min(H / scale_h, W / scale_w),
//      new size = (round(H / ratio), round(W / ratio)) with Python's round-half-even, and —
//      as timm's code does, since it does not pass the interpolation on — always bilinear.
//   3. torchvision CenterCrop(input_h, input_w): top = round((H' - input_h) / 2) (half-even),
//      likewise left; if the resized image is smaller than the crop it is first padded with
//      black (pixel value 0) as torchvision does.
//   4. x / 255 then (x - mean) / std in float32, output [1, 3, input_h, input_w] (CHW).
//
// Resampling follows Pillow's (9.x) 8-bit resize: bilinear (triangle, support 1) and bicubic
// (a = -0.5, support 2) are separable convolutions with pixel centres at +0.5 and the
// support widened by the downscale factor (antialiasing); weights normalised to sum 1 and
// quantised to 22-bit fixed point; horizontal pass first, and — by choice, to match PIL —
// the result is rounded and clamped to uint8 after each pass. Nearest takes source pixel
// floor((x + 0.5) * in / out) per axis, computed as Pillow does (a running double sum
// truncated), which matters for exact ties.
// With these choices the output matches torchvision-on-PIL to float32 rounding on the images
// tested (see tests/tools/test_tensor_io.cpp).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "tensor_io.hpp"

namespace vitcc::run {

struct Preprocess {
  std::int64_t input_h = 224, input_w = 224;
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};  // timm IMAGENET_DEFAULT_MEAN
  std::array<float, 3> std{0.229f, 0.224f, 0.225f};   // timm IMAGENET_DEFAULT_STD
  std::string interpolation = "bicubic";              // "bicubic" | "bilinear" | "nearest"
  float crop_pct = 0.875f;                            // timm DEFAULT_CROP_PCT
};

// rgb: height rows of width pixels, 3 bytes (R, G, B) each, no row padding.
// Returns shape [1, 3, pp.input_h, pp.input_w]. Throws std::runtime_error on a bad
// Preprocess (non-positive sizes or crop_pct, zero std, unknown interpolation) or image size.
Tensor preprocess_image(const unsigned char* rgb, int width, int height, const Preprocess& pp);

}  // namespace vitcc::run
