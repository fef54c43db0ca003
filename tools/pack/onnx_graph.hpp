// ONNX loader + small graph evaluator for vitcc-pack.
//
// OnnxGraph::load parses a ModelProto (with external data), pins a dynamic batch to 1, propagates static
// shapes, folds every node whose inputs are constant (initializers, Constant nodes, and with batch pinned
// every Shape subgraph), drops Identity / inference Dropout and dead nodes, and keeps a topologically sorted
// list of the remaining nodes. run() interprets that list on one image with ONNX semantics; it is the
// reference the packer checks its recognition against.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "error.hpp"

namespace vitcc::pack {

// Element types the evaluator knows. int32 and bool are held in OnnxTensor::i (bool as 0/1). float16 and
// double constants are converted to float32 on load; a Cast to double computes in float32.
enum class DType { f32, i64, i32, boolean };
const char* dtype_name(DType t);

// Thrown by OnnxTensor::as_int and OnnxNode::attr_int for a float that has no int64 value (NaN,
// Inf, beyond +-2^63); eval_op turns it into a PackError naming the node.
struct ValueError : std::domain_error {
  using std::domain_error::domain_error;
};

struct OnnxTensor {
  DType dtype = DType::f32;
  std::vector<std::int64_t> shape;
  std::vector<float> f;         // data when dtype == f32
  std::vector<std::int64_t> i;  // data for i64 / i32 / boolean
  // false only while shapes are propagated: the value depends on the image, shape and dtype are known
  bool has_data = true;

  std::int64_t numel() const;
  bool is_float() const { return dtype == DType::f32; }
  // Value of element k converted to double / int64 (any dtype; a float truncated toward zero, ValueError
  // when it has no int64 value); k < numel().
  double as_double(std::int64_t k) const;
  std::int64_t as_int(std::int64_t k) const;
};

struct OnnxAttribute {
  enum class Kind { f, i, s, t, floats, ints, strings, other };
  Kind kind = Kind::other;
  float f = 0.0f;
  std::int64_t i = 0;
  std::string s;
  std::shared_ptr<const OnnxTensor> t;
  std::vector<float> floats;
  std::vector<std::int64_t> ints;
  std::vector<std::string> strings;
};

struct OnnxNode {
  std::string name;     // as in the file (may be empty)
  std::string op_type;  // default-domain op
  std::string domain;   // "" (ai.onnx) or, before expansion, com.microsoft (ONNX Runtime's contrib ops)
  // The op as the file spells it when the loader rewrote the node into op_type (e.g. "Gemm" for the
  // MatMul and Add it became, "com.microsoft::Gelu" for its Erf); empty when the file has op_type.
  std::string file_op;
  std::vector<std::string> inputs;   // "" = omitted optional input; Identity/Dropout outputs resolved
  std::vector<std::string> outputs;  // "" = omitted optional output
  std::map<std::string, OnnxAttribute> attrs;

  std::string label() const {
    const std::string op = domain.empty() ? op_type : domain + "::" + op_type;
    return describe_node(name, file_op.empty() ? op : file_op + ", read as " + op, outputs.empty() ? "" : outputs[0]);
  }
  bool has_attr(const std::string& a) const { return attrs.count(a) != 0; }
  // An INT attribute, or a FLOAT one truncated toward zero (ValueError when it has no int64 value).
  std::int64_t attr_int(const std::string& a, std::int64_t dflt) const;
  float attr_float(const std::string& a, float dflt) const;
  std::string attr_string(const std::string& a, const std::string& dflt) const;
  // nullptr when absent
  const std::vector<std::int64_t>* attr_ints(const std::string& a) const;
  const std::vector<float>* attr_floats(const std::string& a) const;
};

struct ValueInfo {
  DType dtype = DType::f32;
  std::vector<std::int64_t> shape;
};

class OnnxGraph {
 public:
  // Throws PackError (unreadable / truncated / not an ONNX protobuf, checker failure, bad external data,
  // unsupported op, shape that depends on the image, cycle, missing input, ...).
  static OnnxGraph load(const std::string& path);

  const std::string& path() const { return path_; }
  std::int64_t opset() const { return opset_; }  // default-domain opset of the model
  std::int64_t ir_version() const { return ir_version_; }
  // "<producer_name> <producer_version>" from the file, e.g. "pytorch 1.13.0" (may be empty).
  const std::string& producer() const { return producer_; }

  // The single image input, [1, C, H, W] after pinning the batch.
  const std::string& input_name() const { return input_name_; }
  const std::vector<std::int64_t>& input_shape() const { return input_shape_; }
  bool dynamic_batch() const { return dynamic_batch_; }  // batch was symbolic/dynamic and pinned to 1

  // The single graph output: its name in the file, the value holding it among nodes() (differs when the
  // export ends in Identity/Dropout, which are resolved away) and its static shape.
  const std::string& output_name() const { return output_name_; }
  const std::string& output_value() const { return output_value_; }
  const std::vector<std::int64_t>& output_shape() const;

  // Remaining (non-constant, live) nodes in topological order. Inputs name constants, the image input
  // or outputs of earlier nodes.
  const std::vector<OnnxNode>& nodes() const { return nodes_; }

  bool has_value(const std::string& v) const { return values_.count(v) != 0; }
  const ValueInfo& value_info(const std::string& v) const;  // throws PackError for unknown values
  const std::vector<std::int64_t>& shape(const std::string& v) const { return value_info(v).shape; }

  bool is_constant(const std::string& v) const { return constants_.count(v) != 0; }
  const OnnxTensor* constant(const std::string& v) const;  // nullptr when not a constant
  // Where a constant came from, for messages: "initializer 'x'", "Constant node 'c'", or
  // "folded output of node 'T' (Transpose)".
  std::string constant_source(const std::string& v) const;

  // Index into nodes() of the producer of v, or -1 (image input / constant / unknown).
  int producer_node(const std::string& v) const;
  // Indices into nodes() of the nodes consuming v (each node once, ascending).
  const std::vector<int>& consumers(const std::string& v) const;
  bool is_graph_output(const std::string& v) const { return v == output_value_; }

  // What the normalisation step rewrote (normalize.cpp), as "what" -> how many, e.g.
  // "Gemm read as MatMul + Add" -> 49 (torch.onnx.export itself writes a 2-D Linear as Gemm).
  const std::map<std::string, int>& rewrites() const { return rewrites_; }

  // Interprets the graph on one image, input = [1, C, H, W] row-major; returns the graph output
  // (shape output_shape()).
  std::vector<float> run(const std::vector<float>& input) const;
  // The same, also copying the values named in `keep` (intermediate values, or the input) into `kept`.
  std::vector<float> run(const std::vector<float>& input, const std::set<std::string>& keep,
                         std::unordered_map<std::string, OnnxTensor>& kept) const;

  // Evaluates one node of this graph (e.g. one of nodes()) on the given inputs with the model's opset
  // semantics; inputs[k] == nullptr for omitted optional inputs. Used by the recogniser to trace
  // index maps through layout ops.
  std::vector<OnnxTensor> eval_node(const OnnxNode& node, const std::vector<const OnnxTensor*>& inputs) const;

  // Supported op types (default domain).
  static const std::vector<std::string>& supported_ops();

 private:
  std::string path_, producer_;
  std::int64_t opset_ = 0, ir_version_ = 0;
  std::string input_name_, output_name_, output_value_;
  std::vector<std::int64_t> input_shape_;
  bool dynamic_batch_ = false;
  std::vector<OnnxNode> nodes_;
  std::unordered_map<std::string, ValueInfo> values_;
  std::unordered_map<std::string, std::shared_ptr<const OnnxTensor>> constants_;
  std::unordered_map<std::string, std::string> constant_sources_;
  std::unordered_map<std::string, int> producers_;
  std::unordered_map<std::string, std::vector<int>> consumers_;
  std::vector<std::vector<std::string>> frees_after_;  // per node: values whose last use it is (run())
  std::map<std::string, int> rewrites_;
  std::unordered_set<std::string> reserved_;  // every value name the file uses: fresh_name avoids them

  // ptrs[j]: n's input j, a constant or a placeholder (shape and dtype, no data) in `placeholders`;
  // true when every input is a constant.
  bool bind_inputs(const OnnxNode& n, std::vector<OnnxTensor>& placeholders, std::vector<const OnnxTensor*>& ptrs) const;
  // Shapes of n's outputs from its inputs' (constant or not); records them in values_.
  void infer(const OnnxNode& n);
  // A name no value has yet, from `base`.
  std::string fresh_name(const std::string& base) const;
  void add_constant(const std::string& name, OnnxTensor t, const std::string& source);
  // normalize.cpp: rewrites spellings that simplifiers and optimisers produce into the ones the
  // recognisers read (Gemm as MatMul + Add, Reshape-to-rows around Linears lifted, layout ops that are
  // identities or cancel removed). nodes: topologically ordered, folded; stays so.
  void normalize(std::vector<OnnxNode>& nodes);
  // normalize.cpp: ONNX Runtime's contrib op n (domain com.microsoft) as default-domain nodes, which the
  // caller folds and shape-propagates in order. PackError for one vitcc has no computation for.
  std::vector<OnnxNode> expand_contrib(const OnnxNode& n);
  std::vector<OnnxNode> expand_contrib_checked(const OnnxNode& n);
};


}  // namespace vitcc::pack
