// What an architecture's packer hands to vitcc-pack's driver (main.cpp), which then does what is
// common to every architecture: the self-check against the ONNX graph, the blob, the JSON config,
// the generated header and the summary. Adding an architecture = a recogniser plus one function
// returning a PackedModel, registered in architectures.cpp.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "artifacts.hpp"
#include "onnx_graph.hpp"
#include "vitcc/core/error.hpp"
#include "vitcc/io/blob_reader.hpp"

namespace vitcc::pack {

// A GEMM input that comes straight from a LayerNorm: SmoothQuant (smooth.hpp) can move a per-channel
// factor s out of the activations and into the weights by dividing the norm's gamma and beta by s and
// multiplying the weight's input rows by s, which leaves the float32 function unchanged.
struct SmoothSite {
  std::string norm;                // NAME.weight and NAME.bias: plain [K]
  std::vector<std::string> gemms;  // gemm_b16 tensors [K, N] that read that norm's output
  std::vector<float> act_max;      // per input channel: max |x| over every token of the calibration images
};

struct PackedModel {
  std::string architecture;    // "vit", ...: JSON "architecture" and what vitcc-run dispatches on
  std::string source_layout;   // how the graph was written ("timm", "torchvision", ...)
  std::string library_header;  // what the generated header includes, e.g. "vitcc/models/vit.hpp"
  std::string model_template;  // the class template the config instantiates, e.g. "vitcc::Vit"
  std::vector<std::string> header_fields;  // "static constexpr int dim = 384;" lines of the config struct
  nlohmann::json config;                   // every hyper-parameter (JSON "config")
  std::uint64_t config_hash = 0;           // covers everything header_fields fix at compile time
  std::vector<BlobTensor> tensors;         // in blob order
  std::vector<std::int64_t> input_shape;   // [1, C, H, W]
  std::vector<std::int64_t> output_shape;  // [1, ...] per image
  std::string output_kind;                 // "logits", "pooled", "tokens", ...
  std::string default_interpolation = "bicubic";
  std::uint64_t parameters = 0, flops = 0;
  std::vector<std::string> summary;        // architecture-specific lines for --summary
  // The workspace of the model at a precision.
  std::function<std::uint64_t(Precision)> workspace_bytes;
  // The library's forward pass with runtime shapes, at a precision, on the packed blob of that
  // precision: the self-check runs it.
  std::function<Status(const BlobView& blob, Precision precision, const float* input, float* output)> run_packed;
  // The architecture's SmoothSites with their activation maxima, measured by the float32 forward pass
  // on the float32 blob over `count` CHW images; empty when no GEMM input comes from a norm.
  std::function<Status(const BlobView& fp32_blob, const float* images, std::size_t count, std::vector<SmoothSite>& sites)>
      smooth_sites;
};

// Calls f(std::integral_constant<Precision, P>{}) for the P that p names: a run-time precision to the
// compile-time one the model templates take.
template <class F>
decltype(auto) with_precision(Precision p, F&& f) {
  switch (p) {
    case Precision::bf16: return f(std::integral_constant<Precision, Precision::bf16>{});
    case Precision::int8: return f(std::integral_constant<Precision, Precision::int8>{});
    case Precision::fp32: break;
  }
  return f(std::integral_constant<Precision, Precision::fp32>{});
}

PackedModel pack_vit(const OnnxGraph& graph);
PackedModel pack_efficientvit(const OnnxGraph& graph);

// Recognises the graph's architecture and packs it; refuses, naming the node, what it cannot.
PackedModel pack_model(const OnnxGraph& graph);

}  // namespace vitcc::pack
