// Input and output files for vitcc-run.
//
// Inputs (read_input, chosen by the file name's extension, case-insensitive):
//   .bin                 raw little-endian float32, NCHW, already preprocessed; N >= 1 is
//                        inferred from the file size, which must be a whole, non-zero number
//                        of c*h*w*4-byte images.
//   .npy                 NumPy format 1.0 / 2.0 / 3.0, dtype '<f4' (or '<f8', converted to
//                        float32), C order, shape [N,C,H,W] or [C,H,W] (read as N = 1); C,H,W
//                        must equal c,h,w. Already preprocessed.
//   .png .jpg .jpeg .ppm .pgm
//                        decoded with stb_image as 8-bit RGB (greyscale expanded), then run
//                        through timm's eval transform (see image_preprocess.hpp), giving
//                        [1,3,h,w]. Requires c == 3.
// Outputs (write_output): .bin (raw little-endian float32) or .npy (format 1.0, '<f4',
// shape t.shape), written atomically: "<path>.tmp.<pid>" in the same folder, fsync, rename.
//
// Errors are std::runtime_error whose message starts with the file name and says what
// was expected and what was found.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace vitcc::run {

struct Preprocess;  // image_preprocess.hpp

struct Tensor {
  std::vector<std::int64_t> shape;
  std::vector<float> data;  // row-major (C order), size == product of shape
};

// Reads a model input of c x h x w per image; see the table above. For images, pp gives
// the preprocessing; pp.input_h / pp.input_w must equal h / w, or be 0 meaning "use h, w".
Tensor read_input(const std::string& path, std::int64_t c, std::int64_t h, std::int64_t w,
                  const Preprocess& pp);

// Writes t as .bin or .npy (by extension), atomically. t.data.size() must equal the
// product of t.shape.
void write_output(const std::string& path, const Tensor& t);

// Throws write_output's error for a path it would refuse by its extension (to refuse before running).
void check_output_path(const std::string& path);

// Whether read_input reads path as an image (by extension), not as a .bin or .npy tensor.
bool is_image_path(const std::string& path);

// The k highest scores as (index, score), highest first; equal scores in index order;
// NaN scores rank below every number. k is clamped to n. n must fit in an int.
std::vector<std::pair<int, float>> top_k(const float* scores, std::size_t n, std::size_t k);

}  // namespace vitcc::run
