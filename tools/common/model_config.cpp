#include "model_config.hpp"

#include <cctype>
#include <cfloat>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "names.hpp"

namespace vitcc::tools {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr std::int64_t kMaxDim = std::int64_t(1) << 20;
constexpr std::int64_t kMaxPerImage = std::int64_t(1) << 28;

// A value of the config as an error message shows it: JSON-quoted (so a newline in it cannot break
// the one-line message) and cut at 80 characters.
std::string shown(const std::string& s) {
  return json(s.size() > 80 ? s.substr(0, 80) + "..." : s).dump(-1, ' ', false, json::error_handler_t::replace);
}

struct Reader {
  const std::string& label;

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw std::runtime_error(label + ": " + field + ": " + what);
  }

  const json& member(const json& obj, const char* key, const std::string& field) const {
    if (!obj.is_object()) fail(field, "expected an object");
    auto it = obj.find(key);
    if (it == obj.end()) fail(field + "." + key, "missing");
    return *it;
  }

  std::string string(const json& v, const std::string& field) const {
    if (!v.is_string()) fail(field, "expected a string");
    return v.get<std::string>();
  }

  std::string hex64(const json& v, const std::string& field) const {
    const std::string s = string(v, field);
    bool ok = s.size() == 18 && s[0] == '0' && s[1] == 'x';
    for (std::size_t i = 2; ok && i < s.size(); ++i) ok = std::isxdigit(static_cast<unsigned char>(s[i])) != 0;
    if (!ok) fail(field, "expected \"0x\" followed by 16 hex digits");
    return s;
  }

  std::uint64_t unsigned_int(const json& v, const std::string& field) const {
    if (!v.is_number_unsigned()) fail(field, "expected an unsigned integer");
    return v.get<std::uint64_t>();
  }

  // A file next to the config: no folders, so a config cannot point a tool elsewhere; and only
  // characters that need no escaping wherever the name is written into source.
  std::string file_name(const json& v, const std::string& field, const std::string& extension) const {
    const std::string s = string(v, field);
    bool ok = !s.empty() && s.size() <= 255 && s[0] != '.' && s.size() > extension.size() &&
              s.compare(s.size() - extension.size(), extension.size(), extension) == 0;
    for (char c : s) ok = ok && file_name_char(c);
    if (!ok)
      fail(field, shown(s) + " is not a plain file name in the config's folder (1 to 255 letters, digits, '_', '-' or "
                  "'.', not starting with '.', ending in " + extension + ")");
    return s;
  }

  double finite(const json& v, const std::string& field) const {
    if (!v.is_number()) fail(field, "expected a number");
    const double d = v.get<double>();
    if (!std::isfinite(d)) fail(field, "expected a finite number");
    return d;
  }

  // Converted to float later: out-of-range values would be undefined behaviour, not infinity.
  double finite_float(const json& v, const std::string& field) const {
    const double d = finite(v, field);
    if (std::fabs(d) > double(FLT_MAX)) fail(field, "expected a number within the float32 range");
    return d;
  }

  // [1, d1, ...] with rank in [min_rank, 4]; returns the values per image.
  std::size_t shape(const json& v, std::size_t min_rank, const std::string& field, std::vector<std::int64_t>& out) const {
    if (!v.is_array() || v.size() < min_rank || v.size() > 4)
      fail(field, "expected an array of " + std::to_string(min_rank) + " to 4 dimensions");
    out.clear();
    std::int64_t per_image = 1;
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_number_integer()) fail(field, "dimension " + std::to_string(i) + " is not an integer");
      const std::int64_t d = v[i].get<std::int64_t>();
      if (i == 0 && d != 1) fail(field, "the batch dimension must be 1, found " + std::to_string(d));
      if (d < 1 || d > kMaxDim)
        fail(field, "dimension " + std::to_string(i) + " is " + std::to_string(d) + ", expected 1.." + std::to_string(kMaxDim));
      if (i > 0) {
        per_image *= d;  // at most kMaxPerImage * kMaxDim < 2^63 before the check below
        if (per_image > kMaxPerImage)
          fail(field, "more than " + std::to_string(kMaxPerImage) + " values per image");
      }
      out.push_back(d);
    }
    return std::size_t(per_image);
  }
};

std::string read_file(const std::string& path, const std::string& label, const std::string& what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(label + ": cannot read " + what);
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw std::runtime_error(label + ": cannot read " + what);
  return ss.str();
}

// `file` in `folder` (canonical): must exist, be a regular file and stay in the folder once every
// symbolic link is followed. Returns its canonical path.
std::string resolve(const fs::path& folder, const std::string& file, const Reader& r, const std::string& field,
                    const char* what) {
  const fs::path p = folder / file;
  std::error_code ec;
  const fs::file_status st = fs::status(p, ec);
  if (!fs::exists(st)) r.fail(field, std::string("its ") + what + " " + p.string() + " is missing");
  const fs::path real = fs::canonical(p, ec);
  if (ec) r.fail(field, std::string("cannot resolve its ") + what + " " + p.string() + ": " + ec.message());
  if (real.parent_path() != folder)
    r.fail(field, "'" + file + "' leads outside the config's folder (to " + real.string() + ")");
  if (!fs::is_regular_file(st)) r.fail(field, p.string() + " is not a regular file");
  return real.string();
}

}  // namespace

std::string header_checksum(const std::string& header_text) { return "0x" + hex16(fnv1a(header_text)); }

ModelConfig parse_model_config(const std::string& text, const std::string& label) {
  const Reader r{label};
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw std::runtime_error(label + ": not a valid JSON config: " + e.what());
  }
  if (!j.is_object()) r.fail("(top level)", "expected a JSON object");
  if (r.member(j, "format", "") != "vitcc-config" || !r.member(j, "format_version", "").is_number_integer() ||
      j.at("format_version").get<std::int64_t>() != 1)
    throw std::runtime_error(label + ": not a vitcc config of format version 1");

  ModelConfig c;
  c.name = r.string(r.member(j, "name", ""), "name");
  if (const std::string why = model_name_problem(c.name); !why.empty()) r.fail("name", shown(c.name) + " is not a model name: " + why);
  c.id = cpp_identifier(c.name);
  c.architecture = r.string(r.member(j, "architecture", ""), "architecture");
  bool arch_ok = !c.architecture.empty() && c.architecture.size() <= 32;
  for (char ch : c.architecture)
    arch_ok = arch_ok && ((ch >= 'a' && ch <= 'z') || std::isdigit(static_cast<unsigned char>(ch)) || ch == '_');
  if (!arch_ok) r.fail("architecture", shown(c.architecture) + " is not an architecture: expected 1 to 32 lowercase letters, digits or '_'");
  c.config_hash = r.hex64(r.member(j, "config_hash", ""), "config_hash");
  const json& blob = r.member(j, "blob", "");
  c.blob_file = r.file_name(r.member(blob, "file", "blob"), "blob.file", ".vitcc");
  c.blob_checksum = r.hex64(r.member(blob, "checksum", "blob"), "blob.checksum");
  c.blob_bytes = r.unsigned_int(r.member(blob, "bytes", "blob"), "blob.bytes");
  if (c.blob_bytes < 64) r.fail("blob.bytes", "expected at least 64 (the blob header)");
  c.header_file = r.file_name(r.member(j, "header", ""), "header", ".hpp");
  if (j.contains("header_checksum")) c.header_checksum = r.hex64(j.at("header_checksum"), "header_checksum");

  const json& config = r.member(j, "config", "");
  if (!config.is_object()) r.fail("config", "expected an object");
  c.config = config;
  const json& stats = r.member(j, "stats", "");
  c.stats.parameters = r.unsigned_int(r.member(stats, "parameters", "stats"), "stats.parameters");
  c.stats.flops = r.unsigned_int(r.member(stats, "flops", "stats"), "stats.flops");
  c.stats.weight_bytes = r.unsigned_int(r.member(stats, "weight_bytes", "stats"), "stats.weight_bytes");
  c.stats.workspace_bytes = r.unsigned_int(r.member(stats, "workspace_bytes", "stats"), "stats.workspace_bytes");

  const json& input = r.member(j, "input", "");
  c.input_per_image = r.shape(r.member(input, "shape", "input"), 4, "input.shape", c.input_shape);
  c.c = c.input_shape[1];
  c.h = c.input_shape[2];
  c.w = c.input_shape[3];
  const json& output = r.member(j, "output", "");
  c.output_per_image = r.shape(r.member(output, "shape", "output"), 2, "output.shape", c.output_shape);
  if (output.contains("kind")) c.output_kind = r.string(output.at("kind"), "output.kind");

  const json& pp = r.member(j, "preprocessing", "");
  ModelConfig::Preprocessing& p = c.preprocessing;
  for (const char* key : {"mean", "std"}) {
    const json& v = r.member(pp, key, "preprocessing");
    const std::string field = std::string("preprocessing.") + key;
    if (!v.is_array() || v.size() != 3) r.fail(field, "expected three numbers (R, G, B)");
    for (std::size_t i = 0; i < 3; ++i) {
      const double d = r.finite_float(v[i], field);
      if (key[0] == 's' && d == 0.0) r.fail(field, "a standard deviation of 0");
      (key[0] == 'm' ? p.mean : p.std)[i] = float(d);
    }
  }
  p.interpolation = r.string(r.member(pp, "interpolation", "preprocessing"), "preprocessing.interpolation");
  if (p.interpolation != "bicubic" && p.interpolation != "bilinear" && p.interpolation != "nearest")
    r.fail("preprocessing.interpolation", shown(p.interpolation) + " is not bicubic, bilinear or nearest");
  const double crop = r.finite(r.member(pp, "crop_pct", "preprocessing"), "preprocessing.crop_pct");
  if (!(crop > 0.0 && crop <= 1.0)) r.fail("preprocessing.crop_pct", "expected a number in (0, 1]");
  p.crop_pct = float(crop);

  if (j.contains("self_check")) {
    const json& sc = j.at("self_check");
    const json& seed = r.member(sc, "seed", "self_check");
    if (!seed.is_number_unsigned()) r.fail("self_check.seed", "expected an unsigned integer");
    c.self_check_seed = seed.get<std::uint64_t>();
    const json& count = r.member(sc, "output_count", "self_check");
    if (!count.is_number_unsigned() || count.get<std::uint64_t>() != c.output_per_image)
      r.fail("self_check.output_count", "expected " + std::to_string(c.output_per_image) + ", the output's values per image");
    const json& first = r.member(sc, "output_first", "self_check");
    if (!first.is_array() || first.size() > c.output_per_image)
      r.fail("self_check.output_first", "expected an array of at most output_count numbers");
    for (const json& v : first) r.finite_float(v, "self_check.output_first");
    r.finite(r.member(sc, "output_sum", "self_check"), "self_check.output_sum");
    r.finite(r.member(sc, "output_abs_max", "self_check"), "self_check.output_abs_max");
    if (sc.contains("slack")) {
      const json& slack = sc.at("slack");
      r.finite(slack, "self_check.slack");
      if (slack.get<double>() < 0) r.fail("self_check.slack", "expected a number >= 0");
    }
    c.self_check = sc;
    c.has_self_check = true;
  }
  return c;
}

ModelConfig load_model_config(const std::string& path) {
  ModelConfig c = parse_model_config(read_file(path, path, "the config"), path);
  const Reader r{path};
  std::error_code ec;
  const fs::path given = fs::path(path).parent_path();
  const fs::path folder = fs::canonical(given.empty() ? fs::path(".") : given, ec);
  if (ec) throw std::runtime_error(path + ": cannot resolve the config's folder: " + ec.message());
  c.path = path;
  c.blob_path = resolve(folder, c.blob_file, r, "blob.file", "weight blob");
  c.header_path = resolve(folder, c.header_file, r, "header", "config header");
  const std::uintmax_t bytes = fs::file_size(c.blob_path, ec);
  if (ec || bytes != c.blob_bytes)
    r.fail("blob.bytes", "the config records " + std::to_string(c.blob_bytes) + " bytes, " + c.blob_path + " has " +
                             (ec ? "an unknown size" : std::to_string(bytes)) + " (a blob from another pack?)");
  if (!c.header_checksum.empty()) {
    const std::string got = header_checksum(read_file(c.header_path, path, "its config header " + c.header_path));
    if (got != c.header_checksum)
      r.fail("header_checksum", c.header_path + " hashes to " + got + ", the config records " + c.header_checksum +
                                    " (a header from another pack?)");
  }
  return c;
}

}  // namespace vitcc::tools
