// libFuzzer target: vitcc-pack's front end (pack_front_end.hpp) on arbitrary bytes as MODEL.onnx,
// mutated byte by byte. fuzz_onnx_graph mutates the same front end's input structurally.
#include <cstdint>

#include "pack_front_end.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  vitcc::fuzz::limit_pack_tensors();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  vitcc::fuzz::pack_front_end(vitcc::fuzz::write_input("model.onnx", data, size));
  return 0;
}
