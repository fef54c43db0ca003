// What the two ONNX fuzz targets run on a model file: vitcc-pack's front end, the protobuf parse,
// the ONNX checker, shape propagation and constant folding (OnnxGraph::load), the graph interpreter
// on a seeded image (OnnxGraph::run), and the architecture recognisers and packers (pack_model).
// Every refusal must be a PackError; anything else escaping (std::out_of_range, std::bad_alloc, ...)
// or any memory error or undefined behaviour is a finding. Whatever the packer accepts, the blob
// reader must accept too.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <stdlib.h>

#include "../../tools/common/self_check.hpp"
#include "error.hpp"
#include "fuzz_common.hpp"
#include "onnx_graph.hpp"
#include "onnx_ops.hpp"
#include "packed_model.hpp"
#include "vitcc/io/blob_reader.hpp"

namespace vitcc::fuzz {

// Keeps every tensor the fuzzer can ask for well inside libFuzzer's memory limit; real models are
// not fuzzed, so the lower cap loses nothing.
inline void limit_pack_tensors() { vitcc::pack::detail::max_tensor_elements = std::int64_t(1) << 22; }

inline void pack_front_end(const std::string& path) {
  using namespace vitcc::pack;
  try {
    const OnnxGraph g = OnnxGraph::load(path);
    std::size_t in_count = 1;
    for (std::size_t i = 1; i < g.input_shape().size(); ++i) in_count *= std::size_t(g.input_shape()[i]);
    try {
      (void)g.run(tools::self_check_input(in_count, 1));
    } catch (const PackError&) {
    }
    const PackedModel m = pack_model(g);
    check_finite(m.tensors, path);
    const std::vector<unsigned char> bytes = serialize_blob(m.tensors);
    void* mem = nullptr;
    if (posix_memalign(&mem, 64, bytes.size()) != 0) std::abort();
    std::memcpy(mem, bytes.data(), bytes.size());
    BlobView view;
    const Status s = view.open(mem, bytes.size());
    std::free(mem);
    if (!s.ok()) {
      std::fprintf(stderr, "the packer wrote a blob its reader refuses: %s\n", s.message());
      std::abort();
    }
  } catch (const PackError&) {
    // a refusal: what the tool is for
  } catch (const std::exception& e) {
    unexpected("vitcc-pack front end", e);
  }
}

}  // namespace vitcc::fuzz
