#include "config.hpp"

#include <cctype>
#include <cfloat>
#include <cmath>
#include <stdexcept>

namespace vitcc::run {
namespace {

using nlohmann::json;

constexpr std::int64_t kMaxDim = std::int64_t(1) << 20;
constexpr std::int64_t kMaxPerImage = std::int64_t(1) << 28;

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

  // A file next to the config: no folders, so a config cannot point vitcc-run elsewhere.
  std::string file_name(const json& v, const std::string& field) const {
    const std::string s = string(v, field);
    if (s.empty() || s == "." || s == ".." || s.find('/') != std::string::npos || s.find('\\') != std::string::npos ||
        s.find('\0') != std::string::npos)
      fail(field, "'" + s + "' is not a plain file name in the config's folder");
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

}  // namespace

RunConfig parse_run_config(const std::string& text, const std::string& label) {
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

  RunConfig c;
  c.architecture = r.string(r.member(j, "architecture", ""), "architecture");
  c.name = r.string(r.member(j, "name", ""), "name");
  bool name_ok = !c.name.empty() && c.name.size() <= 64;
  for (char ch : c.name)
    name_ok = name_ok && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.');
  if (!name_ok) r.fail("name", "expected 1 to 64 letters, digits, '_', '-' or '.'");
  c.config_hash = r.hex64(r.member(j, "config_hash", ""), "config_hash");
  const json& blob = r.member(j, "blob", "");
  c.blob_file = r.file_name(r.member(blob, "file", "blob"), "blob.file");
  c.blob_checksum = r.hex64(r.member(blob, "checksum", "blob"), "blob.checksum");
  c.header_file = r.file_name(r.member(j, "header", ""), "header");

  const json& input = r.member(j, "input", "");
  c.input_per_image = r.shape(r.member(input, "shape", "input"), 4, "input.shape", c.input_shape);
  c.c = c.input_shape[1];
  c.h = c.input_shape[2];
  c.w = c.input_shape[3];
  const json& output = r.member(j, "output", "");
  c.output_per_image = r.shape(r.member(output, "shape", "output"), 2, "output.shape", c.output_shape);
  if (output.contains("kind")) c.output_kind = r.string(output.at("kind"), "output.kind");

  const json& pp = r.member(j, "preprocessing", "");
  Preprocess& p = c.preprocessing;
  p.input_h = c.h;
  p.input_w = c.w;
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
    r.fail("preprocessing.interpolation", "'" + p.interpolation + "' is not bicubic, bilinear or nearest");
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
    c.self_check = sc;
    c.has_self_check = true;
  }
  return c;
}

}  // namespace vitcc::run
