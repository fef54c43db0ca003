// The one exception type of vitcc-pack. Every message names the file, then the ONNX node (name and op
// type) or tensor it is about, then what was expected and what was found, e.g.
//   model.onnx: node 'MatMul_42' (MatMul): expected the qkv projection of block 3 with weight [384, 1152],
//   found [384, 384]
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "../common/exit_codes.hpp"

namespace vitcc::pack {

struct PackError : std::runtime_error {
  explicit PackError(const std::string& message, int exit_code = 0) : std::runtime_error(message), code(exit_code) {}
  // "<file>: <where>: <what>" (where: e.g. describe_node(...) or describe_tensor(...); may be empty)
  // A `what` starting "internal:" is the packer's own fault, whatever the step (exit 1).
  PackError(const std::string& file, const std::string& where, const std::string& what, int exit_code = 0)
      : std::runtime_error(where.empty() ? file + ": " + what : file + ": " + where + ": " + what),
        code(exit_code ? exit_code : what.rfind("internal:", 0) == 0 ? tools::exit_code::failure : 0) {}
  // vitcc-pack's exit code for it (tools/common/exit_codes.hpp); 0: the step it failed in decides.
  int code;
};
// A valid model that vitcc does not pack: an operator, an option of one, an architecture (exit 5).
inline constexpr int unsupported_code = tools::exit_code::unsupported;

// "node 'MatMul_42' (MatMul)"; an unnamed node is named by its first output.
inline std::string describe_node(const std::string& name, const std::string& op_type,
                                 const std::string& first_output = std::string()) {
  if (name.empty()) return "unnamed node producing '" + first_output + "' (" + op_type + ")";
  return "node '" + name + "' (" + op_type + ")";
}

inline std::string describe_tensor(const std::string& name) { return "tensor '" + name + "'"; }

// "[384, 1152]"
inline std::string shape_str(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace vitcc::pack
