// Names shared by vitcc-pack and vitcc-run.
#pragma once
#include <cctype>
#include <cstdint>
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

}  // namespace vitcc::tools
