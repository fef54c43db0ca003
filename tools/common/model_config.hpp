// The one reader of a packed model's JSON config (NAME.json, docs/FORMAT.md "JSON config"), for
// every tool that reads one: vitcc-run, vitcc-compile, the model benchmarks, the tests and the fuzz
// target; scripts ask `vitcc-run NAME.json --info` for the same checked fields.
//
// The config is untrusted input: it names files that the tools open, and its name, hashes, file
// names and numbers end up in generated C and C++ source (vitcc-run's runner, vitcc-compile's C API
// and C header) and in the names of files vitcc-compile writes. So every field a tool uses is
// checked here, once, before anything acts on it:
//   - format "vitcc-config", format_version 1;
//   - name: tools::model_name_problem() (a file stem: 1..64 of [A-Za-z0-9_.-], not starting with
//     '.' or '-', so no folder, no "..", nothing that needs escaping in source);
//   - architecture: 1..32 of [a-z0-9_];
//   - config_hash, blob.checksum, header_checksum (when present): "0x" + 16 hex digits;
//   - blob.file, header: plain file names in the config's own folder, 1..255 of [A-Za-z0-9_.-], not
//     starting with '.', ending in ".vitcc" / ".hpp" (nothing to escape in an #include, a string
//     literal or an .incbin);
//   - blob.bytes >= 64, stats.* unsigned integers;
//   - input.shape [1, C, H, W] and output.shape [1, ...] (rank 2..4): dimensions 1..2^20, at most
//     2^28 values per image, so every size computed from them fits;
//   - preprocessing: three finite means, three finite non-zero stds, interpolation bicubic,
//     bilinear or nearest, crop_pct in (0, 1];
//   - self_check (when present): an unsigned seed, output_count equal to the output's values per
//     image, output_first no longer than output_count, all numbers finite;
//   - config: an object (the architecture's own fields; the compiled header, not these, shapes
//     the code, and binding checks every tensor against it).
// load_model_config() then resolves the two files: each must exist, be a regular file and lie in
// the config's folder once symbolic links are followed; the blob must have blob.bytes bytes and
// the header must hash to header_checksum (when recorded). Anything else is a std::runtime_error
// "<config path>: <field>: <what was expected>", one line.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vitcc::tools {

struct ModelConfig {
  std::string name, architecture;
  std::string id;             // cpp_identifier(name): the generated struct is vitcc_models::<id>
  std::string config_hash;    // "0x" + 16 hex digits
  std::string blob_file;      // file name in the config's folder
  std::string blob_checksum;  // "0x" + 16 hex digits
  std::uint64_t blob_bytes = 0;
  std::string header_file;      // file name in the config's folder
  std::string header_checksum;  // "0x" + 16 hex digits, or "" in configs written before it existed
  std::string output_kind;      // "logits", "pooled", "tokens", ... (may be empty)
  std::vector<std::int64_t> input_shape, output_shape;
  std::int64_t c = 0, h = 0, w = 0;
  std::size_t input_per_image = 0, output_per_image = 0;
  struct Preprocessing {
    std::array<float, 3> mean{}, std{};
    std::string interpolation;  // bicubic, bilinear or nearest
    float crop_pct = 1.0f;
  } preprocessing;
  struct Stats {
    std::uint64_t parameters = 0, flops = 0, weight_bytes = 0, workspace_bytes = 0;
  } stats;
  bool has_self_check = false;
  std::uint64_t self_check_seed = 0;
  nlohmann::json self_check;  // the checked record, for tools::self_check_verify
  nlohmann::json config;      // the architecture's fields (an object; see the note above)

  // Set by load_model_config: the config's own path and the two files, absolute, links resolved.
  std::string path, blob_path, header_path;
};

// Parses and checks `text`; `label` (the config's path) starts every error message. Touches no file.
ModelConfig parse_model_config(const std::string& text, const std::string& label);

// Reads the config at `path`, parses it and resolves its blob and header (see above).
ModelConfig load_model_config(const std::string& path);

// The checksum recorded for a config header: FNV-1a 64 over its bytes, as "0x" + 16 hex digits.
std::string header_checksum(const std::string& header_text);

}  // namespace vitcc::tools
