// vitcc-pack's evaluator (detail::eval_op: what constant folding, shape propagation and
// OnnxGraph::run compute) against ONNX Runtime, op by op. make_ort_op_cases.py writes one-node
// graphs and their inputs, ort_op_runner.js runs them in onnxruntime-node, and this test evaluates
// the same node from the same files (read by vitcc's own loader) and compares: floats within each
// case's rtol/atol, integers and booleans exactly, shapes and types exactly. Run through
// ort_ops.sh, which installs onnxruntime-node into the build tree (VITCC_ORT_CASES = the cases).
#include <doctest/doctest.h>

#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "onnx_graph.hpp"
#include "onnx_ops.hpp"
#include "onnx_proto.hpp"

using namespace vitcc::pack;
using nlohmann::json;

namespace {

std::string cases_dir() {
  const char* d = std::getenv("VITCC_ORT_CASES");
  REQUIRE_MESSAGE(d != nullptr, "VITCC_ORT_CASES is not set: run this test through tests/tools/ort_ops.sh");
  return d;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE_MESSAGE(f.good(), "cannot read ", path);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

OnnxTensor read_pb(const std::string& path) {
  onnx::TensorProto t;
  REQUIRE_MESSAGE(t.ParseFromString(slurp(path)), "not a TensorProto: ", path);
  return detail::tensor_from_proto(t, path, "tensor '" + t.name() + "'");
}

// An output ORT wrote raw; float64 (Cast to double) is narrowed as vitcc computes it, in float32.
OnnxTensor read_ort(const std::string& path, const std::string& dtype, const std::vector<std::int64_t>& dims) {
  const std::string raw = slurp(path);
  OnnxTensor t;
  t.shape = dims;
  std::size_t n = 1;
  for (std::int64_t d : dims) n *= static_cast<std::size_t>(d);
  const char* p = raw.data();
  auto need = [&](std::size_t es) { REQUIRE_MESSAGE(raw.size() == n * es, path, " holds ", raw.size(), " bytes"); };
  if (dtype == "float32") {
    need(4);
    t.dtype = DType::f32;
    t.f.resize(n);
    if (n) std::memcpy(t.f.data(), p, 4 * n);
  } else if (dtype == "float64") {
    need(8);
    t.dtype = DType::f32;
    for (std::size_t k = 0; k < n; ++k) {
      double v;
      std::memcpy(&v, p + 8 * k, 8);
      t.f.push_back(static_cast<float>(v));
    }
  } else if (dtype == "int64") {
    need(8);
    t.dtype = DType::i64;
    t.i.resize(n);
    if (n) std::memcpy(t.i.data(), p, 8 * n);
  } else if (dtype == "int32") {
    need(4);
    t.dtype = DType::i32;
    for (std::size_t k = 0; k < n; ++k) {
      std::int32_t v;
      std::memcpy(&v, p + 4 * k, 4);
      t.i.push_back(v);
    }
  } else if (dtype == "bool") {
    need(1);
    t.dtype = DType::boolean;
    for (std::size_t k = 0; k < n; ++k) t.i.push_back(p[k] != 0);
  } else {
    FAIL("ORT returned an output of type ", dtype, " that this test does not read");
  }
  return t;
}

std::string show(const OnnxTensor& t, std::int64_t k) {
  std::ostringstream s;
  if (t.dtype == DType::f32) s.precision(9), s << t.f[static_cast<std::size_t>(k)];
  else s << t.i[static_cast<std::size_t>(k)];
  return s.str();
}

// "" when equal, else what differs.
std::string compare(const OnnxTensor& got, const OnnxTensor& want, double rtol, double atol) {
  if (got.dtype != want.dtype)
    return std::string("type ") + dtype_name(got.dtype) + ", reference " + dtype_name(want.dtype);
  if (got.shape != want.shape) return "shape " + shape_str(got.shape) + ", reference " + shape_str(want.shape);
  const std::int64_t n = want.numel();
  for (std::int64_t k = 0; k < n; ++k) {
    bool same;
    if (want.dtype == DType::f32) {
      const double a = got.f[static_cast<std::size_t>(k)], b = want.f[static_cast<std::size_t>(k)];
      if (std::isnan(a) || std::isnan(b)) same = std::isnan(a) && std::isnan(b);
      else if (std::isinf(a) || std::isinf(b)) same = a == b;
      else same = std::fabs(a - b) <= atol + rtol * std::fabs(b);
    } else {
      same = got.i[static_cast<std::size_t>(k)] == want.i[static_cast<std::size_t>(k)];
    }
    if (!same) return "element " + std::to_string(k) + " is " + show(got, k) + ", reference " + show(want, k);
  }
  return "";
}

bool contains(const std::string& s, const std::string& w) { return s.find(w) != std::string::npos; }

struct Evaluated {
  std::vector<OnnxTensor> outputs;
  std::string refusal;  // the PackError, when vitcc refused
  std::string path;
};

Evaluated evaluate(const std::string& dir, const json& c) {
  Evaluated r;
  r.path = dir + "/model.onnx";
  onnx::ModelProto m;
  REQUIRE(m.ParseFromString(slurp(r.path)));
  REQUIRE(m.graph().node_size() == 1);
  const OnnxNode node = detail::node_from_proto(m.graph().node(0), r.path);
  std::vector<OnnxTensor> held;
  held.reserve(node.inputs.size());
  std::vector<const OnnxTensor*> ptrs;
  for (std::size_t k = 0; k < node.inputs.size(); ++k) {
    if (node.inputs[k].empty()) {
      ptrs.push_back(nullptr);
      continue;
    }
    held.push_back(read_pb(dir + "/in_" + std::to_string(k) + ".pb"));
    ptrs.push_back(&held.back());
  }
  const detail::EvalContext ctx{r.path, c["opset"].get<std::int64_t>()};
  try {
    r.outputs = detail::eval_op(node, ptrs, ctx);
  } catch (const PackError& e) {
    r.refusal = e.what();
    return r;
  }
  // Shape propagation must agree with the computation: the same node with its first input known
  // by shape and type only (as the image and what depends on it are while loading) gives the same
  // output shapes and types, or refuses because that input determines a shape.
  if (!held.empty() && ptrs[0]) {
    OnnxTensor placeholder;
    placeholder.dtype = held[0].dtype;
    placeholder.shape = held[0].shape;
    placeholder.has_data = false;
    std::vector<const OnnxTensor*> p2 = ptrs;
    p2[0] = &placeholder;
    try {
      const std::vector<OnnxTensor> shapes = detail::eval_op(node, p2, ctx);
      for (std::size_t k = 0; k < shapes.size(); ++k) {
        CHECK_MESSAGE(shapes[k].shape == r.outputs[k].shape, c["name"].get<std::string>(), ": propagated shape ",
                      shape_str(shapes[k].shape), ", computed ", shape_str(r.outputs[k].shape));
        CHECK_MESSAGE(shapes[k].dtype == r.outputs[k].dtype, c["name"].get<std::string>(), ": propagated type differs");
      }
    } catch (const PackError& e) {
      const bool shape_input = contains(e.what(), "on the image");  // "depends on", "depend on"
      CHECK_MESSAGE(shape_input, c["name"].get<std::string>(),
                    ": shape propagation refuses what evaluation accepts: ", std::string(e.what()));
    }
  }
  return r;
}

}  // namespace

TEST_CASE("every op the evaluator implements is compared with ONNX Runtime") {
  const json cases = json::parse(slurp(cases_dir() + "/cases.json"))["cases"];
  std::set<std::string> covered;
  for (const json& c : cases)
    if (c["expect"] == "match" && c["ort"].get<bool>()) covered.insert(c["op"].get<std::string>());
  for (const std::string& op : OnnxGraph::supported_ops())
    CHECK_MESSAGE(covered.count(op) == 1, "no case compares ", op, " with ONNX Runtime (tests/tools/make_ort_op_cases.py)");
}

TEST_CASE("one-node graphs: vitcc's evaluator and ONNX Runtime agree") {
  const std::string dir = cases_dir();
  const json cases = json::parse(slurp(dir + "/cases.json"))["cases"];
  const json ort = json::parse(slurp(dir + "/ort_results.json"));
  MESSAGE("onnxruntime-node ", ort["version"].get<std::string>(), ", ", cases.size(), " cases");
  const json& results = ort["results"];
  std::map<std::string, int> tally;
  for (const json& c : cases) {
    const std::string name = c["name"], expect = c["expect"], cdir = dir + "/" + name;
    INFO("case ", name, " (", c["op"].get<std::string>(), ", opset ", c["opset"].get<int>(), ")");
    const Evaluated v = evaluate(cdir, c);
    const bool ran = c["ort"].get<bool>();
    const bool have = !ran || results.contains(name);
    REQUIRE_MESSAGE(have, "ORT has no result for ", name);
    const json* o = ran ? &results[name] : nullptr;
    ++tally[expect];
    if (expect == "match") {
      REQUIRE_MESSAGE(o, "a 'match' case must be run by ORT");
      REQUIRE_MESSAGE((*o)["ok"].get<bool>(), "ORT refused: ", (*o)["error"].get<std::string>());
      REQUIRE_MESSAGE(v.refusal.empty(), "vitcc refused: ", v.refusal);
      const json& outs = (*o)["outputs"];
      REQUIRE(outs.size() == v.outputs.size());
      for (std::size_t k = 0; k < outs.size(); ++k) {
        const OnnxTensor want = read_ort(cdir + "/" + outs[k]["file"].get<std::string>(), outs[k]["dtype"],
                                         outs[k]["dims"].get<std::vector<std::int64_t>>());
        const std::string diff = compare(v.outputs[k], want, c["rtol"], c["atol"]);
        CHECK_MESSAGE(diff.empty(), "output ", k, ": ", diff);
      }
    } else if (expect == "expect") {
      REQUIRE_MESSAGE(v.refusal.empty(), "vitcc refused: ", v.refusal);
      const json& files = c["expected"];
      REQUIRE(files.size() == v.outputs.size());
      for (std::size_t k = 0; k < files.size(); ++k) {
        const std::string diff = compare(v.outputs[k], read_pb(cdir + "/" + files[k].get<std::string>()), c["rtol"], c["atol"]);
        CHECK_MESSAGE(diff.empty(), "output ", k, ": ", diff);
      }
    } else {  // refuse, both_refuse
      REQUIRE_MESSAGE(!v.refusal.empty(), "vitcc accepted it");
      // One line that names the file, then the node, as every vitcc-pack error does.
      const std::string prefix = v.path + ": node '" + name + "' (" + c["op"].get<std::string>() + "): ";
      CHECK_MESSAGE(v.refusal.rfind(prefix, 0) == 0, "the refusal does not start with '", prefix, "': ", v.refusal);
      CHECK(!contains(v.refusal, "\n"));
      for (const json& w : c["words"]) CHECK_MESSAGE(contains(v.refusal, w.get<std::string>()), "the refusal lacks '", w.get<std::string>(), "': ", v.refusal);
      if (expect == "both_refuse") {
        REQUIRE(o);
        CHECK_MESSAGE(!(*o)["ok"].get<bool>(), "ORT accepted what vitcc refused: ", v.refusal);
      }
    }
  }
  MESSAGE(tally["match"], " equal to ORT, ", tally["both_refuse"], " refused by both, ", tally["refuse"],
          " refused by vitcc (int overflow and the like, ", tally["expect"], " more computed from the spec)");
}
