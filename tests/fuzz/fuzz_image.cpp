// libFuzzer target: vitcc-run's image inputs (stb_image decoding of PNG, JPEG, PPM/PGM, then
// timm's eval preprocessing) into a small model input (3 x 32 x 32, to keep resampling cheap).
// The extension is chosen from the content's first bytes, as a user would name the file.
// Refusals are std::runtime_error naming the file; an accepted image gives 3 x 32 x 32 values.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz_common.hpp"
#include "image_preprocess.hpp"
#include "tensor_io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const char* ext = ".png";
  if (size >= 2 && data[0] == 0xff && data[1] == 0xd8) ext = ".jpg";
  else if (size >= 2 && data[0] == 'P') ext = data[1] == '5' ? ".pgm" : ".ppm";
  const std::string path = vitcc::fuzz::write_input(std::string("in") + ext, data, size);
  vitcc::run::Preprocess pp;
  pp.input_h = pp.input_w = 32;
  pp.interpolation = size > 0 && (data[size - 1] & 1) ? "bilinear" : "bicubic";
  try {
    const vitcc::run::Tensor t = vitcc::run::read_input(path, 3, 32, 32, pp);
    if (t.shape != std::vector<std::int64_t>{1, 3, 32, 32} || t.data.size() != 3 * 32 * 32) std::abort();
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).rfind(path, 0) != 0) std::abort();
  } catch (const std::exception& e) {
    vitcc::fuzz::unexpected("read_input (image)", e);
  }
  return 0;
}
