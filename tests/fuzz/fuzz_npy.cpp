// libFuzzer target: vitcc-run's .npy and .bin input readers (tools/run/tensor_io.cpp) with the
// demo model's input size (3 x 96 x 96), which the seeds match. Refusals are std::runtime_error
// naming the file; an accepted input has exactly N x 3 x 96 x 96 values.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz_common.hpp"
#include "image_preprocess.hpp"
#include "tensor_io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The first byte picks the reader, so one corpus serves both.
  const bool npy = size == 0 || (data[0] & 1) == 0 || data[0] == 0x93;
  const std::string path = vitcc::fuzz::write_input(npy ? "in.npy" : "in.bin", data, size);
  try {
    const vitcc::run::Tensor t = vitcc::run::read_input(path, 3, 96, 96, vitcc::run::Preprocess{});
    if (t.shape.size() != 4 || t.shape[0] < 1 || t.shape[1] != 3 || t.shape[2] != 96 || t.shape[3] != 96 ||
        t.data.size() != std::size_t(t.shape[0]) * 3 * 96 * 96)
      std::abort();
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).rfind(path, 0) != 0) std::abort();
  } catch (const std::exception& e) {
    vitcc::fuzz::unexpected("read_input (.npy/.bin)", e);
  }
  return 0;
}
