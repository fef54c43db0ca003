// preprocess_dump: one image file through vitcc-run's input path (vitcc::run::read_input, as vitcc-run
// calls it), written as a [1,3,H,W] float32 .npy with vitcc-run's own writer. For
// tests/tools/preprocess_files.py, which compares it with timm's eval transform on PIL + torchvision.
//
//   preprocess_dump IMAGE OUT.npy H W INTERP CROP_PCT [MEAN_R MEAN_G MEAN_B STD_R STD_G STD_B]
//
// INTERP: bicubic | bilinear | nearest. Mean and std default to timm's ImageNet values (Preprocess's
// defaults). Exits 1 with the message on any error, 2 on bad usage.
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>

#include "image_preprocess.hpp"
#include "tensor_io.hpp"

namespace {

std::int64_t parse_size(const char* s, const char* what) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v <= 0 || v > (1 << 16))
    throw std::runtime_error(std::string(what) + ": expected an integer in 1..65536, found '" + s + "'");
  return v;
}

float parse_float(const char* s, const char* what) {
  errno = 0;
  char* end = nullptr;
  const float v = std::strtof(s, &end);
  if (errno != 0 || end == s || *end != '\0')
    throw std::runtime_error(std::string(what) + ": expected a number, found '" + s + "'");
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7 && argc != 13) {
    std::fprintf(stderr,
                 "usage: %s IMAGE OUT.npy H W INTERP CROP_PCT [MEAN_R MEAN_G MEAN_B STD_R STD_G STD_B]\n",
                 argc > 0 ? argv[0] : "preprocess_dump");
    return 2;
  }
  try {
    vitcc::run::Preprocess pp;  // as vitcc-run fills it from the model's config
    const std::int64_t h = parse_size(argv[3], "H"), w = parse_size(argv[4], "W");
    pp.input_h = h;
    pp.input_w = w;
    pp.interpolation = argv[5];
    pp.crop_pct = parse_float(argv[6], "CROP_PCT");
    if (argc == 13) {
      for (int c = 0; c < 3; ++c) {
        pp.mean[c] = parse_float(argv[7 + c], "MEAN");
        pp.std[c] = parse_float(argv[10 + c], "STD");
      }
    }
    vitcc::run::check_output_path(argv[2]);
    const vitcc::run::Tensor t = vitcc::run::read_input(argv[1], 3, h, w, pp);
    vitcc::run::write_output(argv[2], t);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "preprocess_dump: %s\n", e.what());
    return 1;
  }
  return 0;
}
