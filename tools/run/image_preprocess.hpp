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
// The resampling (Pillow's 8-bit resize) is the library's, include/vitcc/preprocess.hpp, where its
// rules are written down; tests/tools/test_tensor_io.cpp holds it to Pillow's pixels.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "tensor_io.hpp"
#include "vitcc/preprocess.hpp"

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
// The work is vitcc::preprocess (include/vitcc/preprocess.hpp), the code a device runs.
Tensor preprocess_image(const unsigned char* rgb, int width, int height, const Preprocess& pp);

// The library's form of a Preprocess (crop_pct as the decimal it was written as). Throws as above.
vitcc::Preprocessing library_preprocessing(const Preprocess& pp);

}  // namespace vitcc::run
