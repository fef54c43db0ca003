// Names shared by vitcc-pack, vitcc-run and vitcc-compile: what a model name may be, the file names
// of a packed set (docs/FORMAT.md, "Files"), and the identifiers and #include lines made from names.
#pragma once
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <string>

namespace vitcc::tools {

// The C++ identifier of a model's generated config struct (vitcc_models::<id>).
inline std::string cpp_identifier(const std::string& name) {
  std::string id;
  for (char c : name) id += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  if (id.empty() || std::isdigit(static_cast<unsigned char>(id[0]))) id = "m_" + id;
  return id;
}

inline std::uint64_t fnv1a(const std::string& s, std::uint64_t h = 0xcbf29ce484222325ull) {
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// 16 lowercase hex digits, the tag in a content-addressed file name.
inline std::string hex16(std::uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

inline bool is_hex16(const std::string& s, std::size_t from) {
  if (s.size() < from + 16) return false;
  for (std::size_t i = from; i < from + 16; ++i)
    if (!std::isdigit(static_cast<unsigned char>(s[i])) && !(s[i] >= 'a' && s[i] <= 'f')) return false;
  return true;
}

inline bool file_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
}

// A model name is a file stem that every output is named after and that goes, as is or as
// cpp_identifier(), into generated C and C++ source. Returns "" when `name` is one, else what is
// wrong: 1 to 64 letters, digits, '_', '-' or '.', not starting with '.' or '-' (no "..", no hidden
// file, no option-like word), and not ending in '.' + 16 hex digits, the tag of the set's
// content-addressed files (so NAME.TAG.hpp can never be another model's NAME.hpp).
inline std::string model_name_problem(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 64 && name[0] != '.' && name[0] != '-';
  for (char c : name) ok = ok && file_name_char(c);
  if (!ok)
    return "expected 1 to 64 letters, digits, '_', '-' or '.', not starting with '.' or '-' (a file stem, "
           "no folders)";
  if (name.size() >= 17 && name[name.size() - 17] == '.' && is_hex16(name, name.size() - 16))
    return "a name may not end in '.' and 16 hex digits (vitcc-pack tags the files of a set that way)";
  return "";
}

// `#include "PATH"` for a generated translation unit. A header name has no escapes, so a path with a
// quote, a backslash or a control character cannot be written there: returns "" for those.
inline std::string include_directive(const std::string& path) {
  for (char c : path)
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "";
  return "#include \"" + path + "\"\n";
}

// The files of a packed set, in the config's folder (docs/FORMAT.md, "Files"): the blob and the
// config header are content-addressed (their tag is the blob's checksum, the header's FNV-1a), the
// config and the header users include have fixed names.
inline std::string blob_file_name(const std::string& name, std::uint64_t checksum) {
  return name + "." + hex16(checksum) + ".vitcc";
}
inline std::string header_file_name(const std::string& name, std::uint64_t header_hash) {
  return name + "." + hex16(header_hash) + ".hpp";
}

}  // namespace vitcc::tools
