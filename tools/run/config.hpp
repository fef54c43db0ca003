// vitcc-run's reading of a model's JSON config (docs/FORMAT.md, "JSON config"), separate from the
// rest of the tool so that it can be tested and fuzzed on its own (tests/fuzz/fuzz_config.cpp).
//
// The config is untrusted input: it names files that vitcc-run opens, and its name and hashes
// end up in the C++ translation unit vitcc-run compiles. parse_run_config therefore checks every
// field it uses before anything acts on it:
//   - format "vitcc-config", format_version 1, a string architecture;
//   - name: 1..64 of [A-Za-z0-9_.-] (the same rule vitcc-pack applies to --name);
//   - config_hash, blob.checksum: "0x" + 16 hex digits;
//   - blob.file, header: plain file names in the config's own folder (no '/', not "." or "..");
//   - input.shape [1, C, H, W] and output.shape [1, ...] (rank 2..4): dimensions 1..2^20, at
//     most 2^28 values per image, so every size computed from them fits;
//   - preprocessing: three finite means, three finite non-zero stds, interpolation bicubic,
//     bilinear or nearest, crop_pct in (0, 1];
//   - self_check (when present): an unsigned seed, output_count equal to the output's values per
//     image, output_first no longer than output_count, all numbers finite.
// Anything else is a std::runtime_error "<label>: <field>: <what was expected>".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "image_preprocess.hpp"

namespace vitcc::run {

struct RunConfig {
  std::string name, architecture;
  std::string config_hash;    // "0x" + 16 hex digits
  std::string blob_file;      // file name, relative to the config's folder
  std::string blob_checksum;  // "0x" + 16 hex digits
  std::string header_file;    // file name, relative to the config's folder
  std::string output_kind;    // "logits", "pooled", "tokens", ... (may be empty)
  std::vector<std::int64_t> input_shape, output_shape;
  std::int64_t c = 0, h = 0, w = 0;
  std::size_t input_per_image = 0, output_per_image = 0;
  Preprocess preprocessing;   // input_h, input_w = h, w
  bool has_self_check = false;
  std::uint64_t self_check_seed = 0;
  nlohmann::json self_check;  // the checked record, for tools::self_check_verify
};

// Parses and checks `text`; `label` (the config's path) starts every error message.
RunConfig parse_run_config(const std::string& text, const std::string& label);

}  // namespace vitcc::run
