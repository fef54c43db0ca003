// libFuzzer target: vitcc-pack's front end (pack_front_end.hpp), like fuzz_onnx, but with a
// structure-aware mutator. A byte flip in a protobuf mostly breaks the framing, and the few files
// that still parse are refused by the checker long before the constant folder or the interpreter
// sees a surprising value. Here every mutation parses the ModelProto, changes one thing a hostile
// or broken exporter could write, and serialises it again:
//   - an element of an integer or float tensor (initializer or Constant/ConstantOfShape value) set
//     to an edge value (0, +-1, INT32/INT64 limits, 2^62, NaN, Inf, 1e30, ...) or nudged; or all
//     the integer constant operands of one node set to type limits together;
//   - a tensor's dims, its element count (data resized to match, or not), data type or encoding;
//   - an attribute's value (ints, floats, strings), its type, or a new or removed attribute;
//   - a node's op type (any op vitcc supports), one of its inputs or outputs, a new node wired into
//     the graph, a node removed or duplicated, or a new dead node on new constants at type limits;
//   - the opset, the image input's dimensions, which value is the graph output.
// Seeds (tests/fuzz/make_seeds.py): small hand-made graphs whose shape subgraphs use every supported
// op (Shape, Gather, Div, Mul, Concat, Range, Slice, Expand, Pad, ...) with ordinary constants (the
// edge values come from the mutator alone) and tiny ViT exports; the demo models on request
// (tools/fuzz.sh, FUZZ_ONNX_MODELS=1).
// A file that does not parse (a byte-mutated corpus entry) gets libFuzzer's own byte mutation.
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "pack_front_end.hpp"

extern "C" std::size_t LLVMFuzzerMutate(std::uint8_t* data, std::size_t size, std::size_t max_size);

namespace {

using Rng = std::mt19937_64;
using I64 = std::int64_t;
using U64 = std::uint64_t;

constexpr I64 kMin64 = std::numeric_limits<I64>::min(), kMax64 = std::numeric_limits<I64>::max();
// The limits of the integer types and the values next to them, where arithmetic overflows ...
const I64 kLimits[] = {kMin64, kMax64, -1, 0, 1, 2, (I64(1) << 31) - 1, -(I64(1) << 31), I64(1) << 31,
                       I64(1) << 32, I64(1) << 62, -(I64(1) << 62)};
// ... and ordinary sizes and indices.
const I64 kInts[] = {-2, 3, 4, 7, 8, 16, 255, 256, 65536, kMax64 - 1, kMin64 + 1};
const float kFloats[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.5f, 2.0f, 1e-30f, 1e30f, 3e9f, -3e9f, 9.3e18f, -9.3e18f,
                         std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
                         std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                         std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::denorm_min()};

// Everything OnnxGraph::load accepts (vitcc::pack::detail::supported_op_list) plus a few it refuses.
const char* const kOps[] = {"Add", "Sub", "Mul", "Div", "Pow", "Equal", "Neg", "Relu", "Sqrt", "Erf", "Exp", "Tanh",
                            "Sigmoid", "Reciprocal", "Where", "MatMul", "Gemm", "Conv", "BatchNormalization",
                            "GlobalAveragePool", "Pad", "Softmax", "ReduceMean", "LayerNormalization", "Reshape",
                            "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Gather", "Slice", "Split", "Concat",
                            "Expand", "Shape", "Cast", "Constant", "ConstantOfShape", "Range", "Identity", "Dropout",
                            "Mod", "Tile", "ReduceSum"};
// ONNX Runtime's contrib ops (domain com.microsoft) that vitcc-pack expands, and one it refuses.
const char* const kContribOps[] = {"FusedMatMul", "Gelu", "BiasGelu", "SkipLayerNormalization", "FusedConv", "FastGelu"};
const char* const kAttrNames[] = {"transBatchA", "transBatchB", "activation", "axis", "axes", "perm", "keepdims", "split", "starts", "ends", "group", "strides",
                                  "pads", "dilations", "to", "transA", "transB", "allowzero", "num_outputs", "start",
                                  "end", "noop_with_empty_axes", "training_mode", "kernel_shape", "epsilon", "alpha",
                                  "beta", "value_int", "value_ints", "value_float", "mode", "auto_pad"};
const char* const kStrings[] = {"NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER", "constant", "reflect", "edge", ""};
const int kOpsets[] = {7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18};
const int kTypes[] = {onnx::TensorProto::FLOAT,  onnx::TensorProto::INT64, onnx::TensorProto::INT32,
                      onnx::TensorProto::BOOL,   onnx::TensorProto::INT8,  onnx::TensorProto::UINT8,
                      onnx::TensorProto::DOUBLE, onnx::TensorProto::FLOAT16, onnx::TensorProto::INT16};

template <class T, std::size_t N>
const T& pick(Rng& r, const T (&a)[N]) {
  return a[r() % N];
}

std::size_t below(Rng& r, std::size_t n) { return n ? static_cast<std::size_t>(r() % n) : 0; }

// An edge value, a small step from the old one (in unsigned arithmetic: the mutator itself must
// not overflow), its negation, or a random 64-bit value.
I64 mutate_int(Rng& r, I64 old) {
  switch (r() % 10) {
    case 0: return static_cast<I64>(static_cast<U64>(old) + 1);
    case 1: return static_cast<I64>(static_cast<U64>(old) - 1);
    case 2: return static_cast<I64>(U64(0) - static_cast<U64>(old));
    case 3: return static_cast<I64>(r());
    case 4: return pick(r, kInts);
    default: return pick(r, kLimits);
  }
}

float mutate_float(Rng& r, float old) {
  switch (r() % 4) {
    case 0: return -old;
    case 1: return old * 2.0f;
    default: return pick(r, kFloats);
  }
}

// ---------------------------------------------------------------------------------------- tensors

std::size_t elem_size(int dt) {
  switch (dt) {
    case onnx::TensorProto::DOUBLE: case onnx::TensorProto::INT64: case onnx::TensorProto::UINT64: return 8;
    case onnx::TensorProto::FLOAT: case onnx::TensorProto::INT32: case onnx::TensorProto::UINT32: return 4;
    case onnx::TensorProto::FLOAT16: case onnx::TensorProto::BFLOAT16: case onnx::TensorProto::INT16:
    case onnx::TensorProto::UINT16: return 2;
    default: return 1;
  }
}

bool is_float_type(int dt) {
  return dt == onnx::TensorProto::FLOAT || dt == onnx::TensorProto::DOUBLE || dt == onnx::TensorProto::FLOAT16 ||
         dt == onnx::TensorProto::BFLOAT16;
}

// A tensor's values as doubles or int64s, whatever its encoding (raw bytes or typed fields), and back.
struct Values {
  std::vector<I64> i;
  std::vector<double> f;
  bool floating = false;
};

std::uint16_t float_to_half_bits(float v) {  // crude: enough to write edge values
  std::uint32_t b;
  std::memcpy(&b, &v, 4);
  const std::uint32_t sign = (b >> 16) & 0x8000u;
  const int exp = static_cast<int>((b >> 23) & 0xff) - 127 + 15;
  if (((b >> 23) & 0xff) == 0xff) return static_cast<std::uint16_t>(sign | 0x7c00u | ((b & 0x7fffffu) ? 0x200u : 0u));
  if (exp <= 0) return static_cast<std::uint16_t>(sign);
  if (exp >= 31) return static_cast<std::uint16_t>(sign | 0x7c00u);
  return static_cast<std::uint16_t>(sign | (static_cast<std::uint32_t>(exp) << 10) | ((b >> 13) & 0x3ffu));
}

float half_bits_to_float(std::uint16_t h) {  // crude too; the loader's own conversion is what is tested
  const int exp = (h >> 10) & 0x1f;
  const float m = static_cast<float>(h & 0x3ff) / 1024.0f;
  const float s = (h & 0x8000) ? -1.0f : 1.0f;
  if (exp == 0) return s * m * std::ldexp(1.0f, -14);
  if (exp == 31) return m ? std::numeric_limits<float>::quiet_NaN() : s * std::numeric_limits<float>::infinity();
  return s * (1.0f + m) * std::ldexp(1.0f, exp - 15);
}

Values read_values(const onnx::TensorProto& t) {
  Values v;
  const int dt = t.data_type();
  v.floating = is_float_type(dt);
  if (t.has_raw_data()) {
    const std::string& raw = t.raw_data();
    const std::size_t es = elem_size(dt);
    for (std::size_t k = 0; k + es <= raw.size(); k += es) {
      const char* p = raw.data() + k;
      if (dt == onnx::TensorProto::FLOAT) { float x; std::memcpy(&x, p, 4); v.f.push_back(x); }
      else if (dt == onnx::TensorProto::DOUBLE) { double x; std::memcpy(&x, p, 8); v.f.push_back(x); }
      else if (v.floating) { std::uint16_t h; std::memcpy(&h, p, 2); v.f.push_back(half_bits_to_float(h)); }
      else if (es == 8) { I64 x; std::memcpy(&x, p, 8); v.i.push_back(x); }
      else if (es == 4) { std::int32_t x; std::memcpy(&x, p, 4); v.i.push_back(x); }
      else if (es == 2) { std::int16_t x; std::memcpy(&x, p, 2); v.i.push_back(x); }
      else v.i.push_back(static_cast<signed char>(*p));
    }
    return v;
  }
  if (dt == onnx::TensorProto::FLOAT) v.f.assign(t.float_data().begin(), t.float_data().end());
  else if (dt == onnx::TensorProto::DOUBLE) v.f.assign(t.double_data().begin(), t.double_data().end());
  else if (dt == onnx::TensorProto::INT64) v.i.assign(t.int64_data().begin(), t.int64_data().end());
  else if (dt == onnx::TensorProto::UINT64 || dt == onnx::TensorProto::UINT32)
    for (U64 x : t.uint64_data()) v.i.push_back(static_cast<I64>(x));
  else if (v.floating)
    for (std::int32_t x : t.int32_data()) v.f.push_back(half_bits_to_float(static_cast<std::uint16_t>(x)));
  else v.i.assign(t.int32_data().begin(), t.int32_data().end());
  return v;
}

// A double as a float without undefined behaviour (out-of-range doubles become +-Inf).
float to_float(double d) {
  if (std::isnan(d)) return std::numeric_limits<float>::quiet_NaN();
  if (d > std::numeric_limits<float>::max()) return std::numeric_limits<float>::infinity();
  if (d < -std::numeric_limits<float>::max()) return -std::numeric_limits<float>::infinity();
  return static_cast<float>(d);
}

void write_values(onnx::TensorProto& t, const Values& v, bool raw) {
  const int dt = t.data_type();
  t.clear_raw_data();
  t.clear_float_data();
  t.clear_double_data();
  t.clear_int64_data();
  t.clear_int32_data();
  t.clear_uint64_data();
  const std::size_t n = v.floating ? v.f.size() : v.i.size();
  auto as_i = [&](std::size_t k) -> I64 {
    if (!v.floating) return v.i[k];
    const double d = v.f[k];  // only where the mutator changed the data type: truncate, saturate
    if (!(d == d)) return 0;
    if (d >= 9.2e18) return kMax64;
    if (d <= -9.2e18) return kMin64;
    return static_cast<I64>(d);
  };
  auto as_f = [&](std::size_t k) -> double { return v.floating ? v.f[k] : static_cast<double>(v.i[k]); };
  if (raw) {
    const std::size_t es = elem_size(dt);
    std::string bytes(n * es, '\0');
    for (std::size_t k = 0; k < n; ++k) {
      char* p = bytes.data() + k * es;
      if (dt == onnx::TensorProto::FLOAT) { const float x = to_float(as_f(k)); std::memcpy(p, &x, 4); }
      else if (dt == onnx::TensorProto::DOUBLE) { const double x = as_f(k); std::memcpy(p, &x, 8); }
      else if (is_float_type(dt)) { const std::uint16_t h = float_to_half_bits(to_float(as_f(k))); std::memcpy(p, &h, 2); }
      else { const U64 x = static_cast<U64>(as_i(k)); for (std::size_t b = 0; b < es; ++b) p[b] = static_cast<char>(x >> (8 * b)); }
    }
    t.set_raw_data(bytes);
    return;
  }
  for (std::size_t k = 0; k < n; ++k) {
    if (dt == onnx::TensorProto::FLOAT) t.add_float_data(to_float(as_f(k)));
    else if (dt == onnx::TensorProto::DOUBLE) t.add_double_data(as_f(k));
    else if (dt == onnx::TensorProto::INT64) t.add_int64_data(as_i(k));
    else if (dt == onnx::TensorProto::UINT64 || dt == onnx::TensorProto::UINT32) t.add_uint64_data(static_cast<U64>(as_i(k)));
    else if (is_float_type(dt)) t.add_int32_data(float_to_half_bits(to_float(as_f(k))));
    else t.add_int32_data(static_cast<std::int32_t>(static_cast<std::uint32_t>(static_cast<U64>(as_i(k)))));
  }
}

void resize_values(Values& v, std::size_t n) {
  if (v.floating) v.f.resize(n, v.f.empty() ? 1.0 : v.f.back());
  else v.i.resize(n, v.i.empty() ? 1 : v.i.back());
}

bool mutate_tensor(Rng& r, onnx::TensorProto& t) {
  if (t.data_location() == onnx::TensorProto::EXTERNAL) return false;
  Values v = read_values(t);
  const bool raw = t.has_raw_data();
  const std::size_t n = v.floating ? v.f.size() : v.i.size();
  switch (r() % 10) {
    case 0: case 1: case 2: case 3:  // one element
      if (n == 0) return false;
      if (v.floating) { double& x = v.f[below(r, n)]; x = mutate_float(r, to_float(x)); }
      else { I64& x = v.i[below(r, n)]; x = mutate_int(r, x); }
      break;
    case 4: {  // one dimension, the data resized to match (a small new count) or not
      if (t.dims_size() == 0) t.add_dims(1);
      const int d = static_cast<int>(below(r, static_cast<std::size_t>(t.dims_size())));
      const I64 nd = r() % 3 ? static_cast<I64>(r() % 9) : mutate_int(r, t.dims(d));
      t.set_dims(d, nd);
      if (r() % 2) {
        U64 count = 1;
        for (I64 x : t.dims()) count = x < 0 || x > 4096 ? 4097 : count * static_cast<U64>(x);
        if (count <= 4096) resize_values(v, static_cast<std::size_t>(count));
      }
      break;
    }
    case 5:  // a dimension more or fewer (the data as it was)
      if (t.dims_size() > 0 && r() % 2) t.mutable_dims()->RemoveLast();
      else t.add_dims(r() % 2 ? 1 : static_cast<I64>(n));
      break;
    case 6: {  // an element more or fewer, dims unchanged (the loader must notice)
      if (r() % 2 && n > 0) resize_values(v, n - 1);
      else resize_values(v, n + 1);
      break;
    }
    case 7: {  // another data type, values converted
      const int to = pick(r, kTypes);
      if (to == t.data_type()) return false;
      Values c;
      c.floating = is_float_type(to);
      for (std::size_t k = 0; k < n; ++k) {
        if (c.floating) c.f.push_back(v.floating ? v.f[k] : static_cast<double>(v.i[k]));
        else if (!v.floating) c.i.push_back(v.i[k]);
        else c.i.push_back(std::isfinite(v.f[k]) && std::fabs(v.f[k]) < 9e18 ? static_cast<I64>(v.f[k]) : 0);
      }
      t.set_data_type(to);
      write_values(t, c, raw);
      return true;
    }
    case 8:  // the other encoding (raw bytes <-> typed fields)
      write_values(t, v, !raw);
      return true;
    default: {  // every element set to one value (e.g. a whole shape of -1s or of 2^32s)
      if (n == 0) return false;
      if (v.floating) { const double x = mutate_float(r, 1.0f); for (double& y : v.f) y = x; }
      else { const I64 x = mutate_int(r, 1); for (I64& y : v.i) y = x; }
      break;
    }
  }
  write_values(t, v, raw);
  return true;
}

// ---------------------------------------------------------------------------------------- the model

struct Model {
  onnx::ModelProto& m;
  onnx::GraphProto& g;
  explicit Model(onnx::ModelProto& mp) : m(mp), g(*mp.mutable_graph()) {}

  std::vector<onnx::TensorProto*> tensors() {
    std::vector<onnx::TensorProto*> out;
    for (auto& t : *g.mutable_initializer()) out.push_back(&t);
    for (auto& n : *g.mutable_node())
      for (auto& a : *n.mutable_attribute())
        if (a.type() == onnx::AttributeProto::TENSOR) out.push_back(a.mutable_t());
    return out;
  }
  // Integer tensors are the shape constants: mutated more often than the (many) float weights, and
  // the small ones (scalars, shapes, axes) more often than index tables.
  onnx::TensorProto* some_tensor(Rng& r, bool integer) {
    std::vector<onnx::TensorProto*> all = tensors(), chosen, small;
    for (auto* t : all)
      if (is_float_type(t->data_type()) != integer) chosen.push_back(t);
    if (chosen.empty()) chosen = all;
    for (auto* t : chosen) {
      I64 n = 1;
      for (I64 d : t->dims()) n = d < 0 || d > 16 ? 17 : n * d;
      if (n <= 16) small.push_back(t);
    }
    if (!small.empty() && r() % 4) chosen = small;
    return chosen.empty() ? nullptr : chosen[below(r, chosen.size())];
  }
  std::vector<std::string> values() {
    std::vector<std::string> out;
    for (const auto& i : g.input()) out.push_back(i.name());
    for (const auto& t : g.initializer()) out.push_back(t.name());
    for (const auto& n : g.node())
      for (const auto& o : n.output())
        if (!o.empty()) out.push_back(o);
    return out;
  }
  std::string some_value(Rng& r) {
    const std::vector<std::string> v = values();
    return v.empty() ? std::string() : v[below(r, v.size())];
  }
  std::string fresh_name(Rng& r) {
    std::string base = "fz" + std::to_string(r() % 100000);
    const std::vector<std::string> v = values();
    while (std::find(v.begin(), v.end(), base) != v.end()) base += "_";
    return base;
  }
  onnx::NodeProto* some_node(Rng& r) {
    return g.node_size() ? g.mutable_node(static_cast<int>(below(r, static_cast<std::size_t>(g.node_size())))) : nullptr;
  }
};

bool mutate_attribute(Rng& r, onnx::NodeProto& n) {
  if (n.attribute_size() == 0 || r() % 6 == 0) {  // a new attribute
    auto* a = n.add_attribute();
    a->set_name(pick(r, kAttrNames));
    switch (r() % 3) {
      case 0: a->set_type(onnx::AttributeProto::INT); a->set_i(mutate_int(r, 0)); break;
      case 1: {
        a->set_type(onnx::AttributeProto::INTS);
        for (std::size_t k = 1 + below(r, 4); k-- > 0;) a->add_ints(r() % 2 ? mutate_int(r, 0) : static_cast<I64>(r() % 4));
        break;
      }
      default: a->set_type(onnx::AttributeProto::FLOAT); a->set_f(mutate_float(r, 1.0f));
    }
    return true;
  }
  const int k = static_cast<int>(below(r, static_cast<std::size_t>(n.attribute_size())));
  onnx::AttributeProto& a = *n.mutable_attribute(k);
  if (r() % 10 == 0) {  // removed
    n.mutable_attribute()->DeleteSubrange(k, 1);
    return true;
  }
  switch (a.type()) {
    case onnx::AttributeProto::INT:
      if (r() % 8 == 0) { a.set_type(onnx::AttributeProto::FLOAT); a.set_f(static_cast<float>(a.i())); a.clear_i(); }
      else a.set_i(mutate_int(r, a.i()));
      return true;
    case onnx::AttributeProto::FLOAT:
      if (r() % 8 == 0) {
        const float f = mutate_float(r, a.f());
        a.set_type(onnx::AttributeProto::INT);
        a.set_i(std::isfinite(f) && std::fabs(f) < 9e18f ? static_cast<I64>(f) : 0);
        a.clear_f();
      } else {
        a.set_f(mutate_float(r, a.f()));
      }
      return true;
    case onnx::AttributeProto::INTS:
      if (a.ints_size() == 0 || r() % 5 == 0) a.add_ints(mutate_int(r, 1));
      else if (r() % 5 == 0) a.mutable_ints()->RemoveLast();
      else { const int j = static_cast<int>(below(r, static_cast<std::size_t>(a.ints_size()))); a.set_ints(j, mutate_int(r, a.ints(j))); }
      return true;
    case onnx::AttributeProto::FLOATS:
      if (a.floats_size() == 0) a.add_floats(mutate_float(r, 1.0f));
      else { const int j = static_cast<int>(below(r, static_cast<std::size_t>(a.floats_size()))); a.set_floats(j, mutate_float(r, a.floats(j))); }
      return true;
    case onnx::AttributeProto::STRING: a.set_s(pick(r, kStrings)); return true;
    case onnx::AttributeProto::TENSOR: return mutate_tensor(r, *a.mutable_t());
    default: return false;
  }
}

// A default-domain op, or now and then one of ONNX Runtime's (with its domain imported).
void set_op(Rng& r, Model& md, onnx::NodeProto* n) {
  if (r() % 6) {
    n->set_op_type(pick(r, kOps));
    n->clear_domain();
    return;
  }
  n->set_op_type(pick(r, kContribOps));
  n->set_domain("com.microsoft");
  for (const auto& o : md.m.opset_import())
    if (o.domain() == "com.microsoft") return;
  auto* o = md.m.add_opset_import();
  o->set_domain("com.microsoft");
  o->set_version(1);
}

bool mutate_node(Rng& r, Model& md) {
  if (md.g.node_size() == 0) return false;
  const int index = static_cast<int>(below(r, static_cast<std::size_t>(md.g.node_size())));
  onnx::NodeProto* n = md.g.mutable_node(index);
  switch (r() % 10) {
    case 0: set_op(r, md, n); return true;
    case 9: {  // an operand replaced by a new int64 constant (a scalar or a 1-element list) of an edge value
      if (n->input_size() == 0) return false;
      onnx::TensorProto* c = md.g.add_initializer();
      c->set_name(md.fresh_name(r));
      c->set_data_type(onnx::TensorProto::INT64);
      if (r() % 2) c->add_dims(1);
      c->add_int64_data(mutate_int(r, 1));
      n->set_input(static_cast<int>(below(r, static_cast<std::size_t>(n->input_size()))), c->name());
      return true;
    }
    case 1: case 2: {  // one input rewired to another value, or omitted
      if (n->input_size() == 0) { n->add_input(md.some_value(r)); return true; }
      const int k = static_cast<int>(below(r, static_cast<std::size_t>(n->input_size())));
      n->set_input(k, r() % 8 ? md.some_value(r) : std::string());
      return true;
    }
    case 3: n->add_input(md.some_value(r)); return true;
    case 4: if (n->input_size() == 0) return false; n->mutable_input()->RemoveLast(); return true;
    case 5: n->add_output(md.fresh_name(r)); return true;
    case 6: if (n->output_size() <= 1) return false; n->mutable_output()->RemoveLast(); return true;
    case 7:  // removed
      md.g.mutable_node()->DeleteSubrange(index, 1);
      return true;
    default: {  // duplicated under new output names
      onnx::NodeProto copy = *n;
      for (int k = 0; k < copy.output_size(); ++k)
        if (!copy.output(k).empty()) copy.set_output(k, md.fresh_name(r));
      *md.g.add_node() = copy;
      return true;
    }
  }
}

// A new node of any op between existing values; often one existing node then reads its output.
bool insert_node(Rng& r, Model& md) {
  onnx::NodeProto n;
  set_op(r, md, &n);
  n.set_name(md.fresh_name(r));
  for (std::size_t k = 1 + below(r, 3); k-- > 0;) n.add_input(md.some_value(r));
  const std::string out = md.fresh_name(r);
  n.add_output(out);
  if (r() % 4 == 0) {  // an int64 constant operand, as shape subgraphs have
    onnx::TensorProto* c = md.g.add_initializer();
    c->set_name(md.fresh_name(r));
    c->set_data_type(onnx::TensorProto::INT64);
    if (r() % 2) c->add_dims(1);
    c->add_int64_data(mutate_int(r, 1));
    n.add_input(c->name());
  }
  onnx::NodeProto* user = md.some_node(r);
  *md.g.add_node() = n;
  if (user && r() % 2 && user->input_size() > 0)
    user->set_input(static_cast<int>(below(r, static_cast<std::size_t>(user->input_size()))), out);
  return true;
}

bool mutate_graph(Rng& r, Model& md) {
  switch (r() % 4) {
    case 0: {
      if (md.m.opset_import_size() == 0) return false;
      md.m.mutable_opset_import(0)->set_version(pick(r, kOpsets));
      return true;
    }
    case 1: {  // a dimension of a graph input
      if (md.g.input_size() == 0) return false;
      auto* tt = md.g.mutable_input(0)->mutable_type()->mutable_tensor_type();
      if (!tt->has_shape() || tt->shape().dim_size() == 0) return false;
      auto* d = tt->mutable_shape()->mutable_dim(static_cast<int>(below(r, static_cast<std::size_t>(tt->shape().dim_size()))));
      if (r() % 6 == 0) d->set_dim_param("N");
      else d->set_dim_value(r() % 2 ? static_cast<I64>(r() % 33) : mutate_int(r, d->dim_value()));
      return true;
    }
    case 2: {  // the graph output is another value
      if (md.g.output_size() == 0) return false;
      md.g.mutable_output(0)->set_name(md.some_value(r));
      return true;
    }
    default: {  // the output's declared shape dropped or changed
      if (md.g.output_size() == 0) return false;
      auto* tt = md.g.mutable_output(0)->mutable_type()->mutable_tensor_type();
      if (r() % 2) tt->clear_shape();
      else tt->mutable_shape()->add_dim()->set_dim_value(static_cast<I64>(r() % 8));
      return true;
    }
  }
}

// The extremes among the limits: what two overflowing operands are made of.
const I64 kExtremes[] = {kMin64, kMax64, -1, 0, 1};

// Every constant integer operand of one node set to a type limit at once (one element of each, or
// all of it). Overflow takes two operands at their edges together (INT64_MIN / -1, INT64_MAX + 1),
// and one edge value alone rarely changes anything the fuzzer could keep as a stepping stone. Half
// of the time the node is one whose operands are all constants: what the folder computes on load.
bool limit_operands(Rng& r, Model& md) {
  std::map<std::string, onnx::TensorProto*> consts;  // initializers and Constant outputs, by name
  for (auto& t : *md.g.mutable_initializer()) consts[t.name()] = &t;
  for (auto& n : *md.g.mutable_node())
    if (n.op_type() == "Constant" && n.output_size() == 1)
      for (auto& a : *n.mutable_attribute())
        if (a.name() == "value" && a.type() == onnx::AttributeProto::TENSOR) consts[n.output(0)] = a.mutable_t();
  std::vector<std::vector<onnx::TensorProto*>> nodes, folded;  // per node with integer constant operands
  for (const auto& n : md.g.node()) {
    std::vector<onnx::TensorProto*> operands;
    bool all_constant = true;
    for (const std::string& in : n.input()) {
      auto it = consts.find(in);
      if (it != consts.end() && !is_float_type(it->second->data_type()) &&
          it->second->data_location() != onnx::TensorProto::EXTERNAL)
        operands.push_back(it->second);
      else if (!in.empty())
        all_constant = false;
    }
    if (!operands.empty()) nodes.push_back(operands);
    if (!operands.empty() && all_constant) folded.push_back(operands);
  }
  if (!folded.empty() && r() % 2) nodes = folded;
  if (nodes.empty()) return false;
  for (onnx::TensorProto* t : nodes[below(r, nodes.size())]) {
    Values v = read_values(*t);
    if (v.i.empty()) continue;
    const I64 x = r() % 2 ? pick(r, kExtremes) : pick(r, kLimits);
    if (r() % 2) v.i[below(r, v.i.size())] = x;
    else for (I64& y : v.i) y = x;
    write_values(*t, v, t->has_raw_data());
  }
  return true;
}

// A new node whose operands are all new integer constants at type limits, its output read by nothing.
// The folder computes it anyway (constants are folded before dead nodes are dropped): what a hostile
// file can put beside any model. It goes first in the file, so that the loader (topological order,
// ties in file order) folds it before any other node of the graph can be refused.
bool constant_subgraph(Rng& r, Model& md) {
  struct Op {
    const char* type;
    int inputs;  // 0: one to three
  };
  static const Op ops[] = {{"Add", 2}, {"Sub", 2}, {"Mul", 2}, {"Div", 2}, {"Neg", 1}, {"Range", 3},
                           {"Slice", 0}, {"Pad", 2}, {"Split", 0}, {"Concat", 0}, {"ConstantOfShape", 1},
                           {"Expand", 2}};
  const Op& op = pick(r, ops);
  onnx::NodeProto n;
  n.set_op_type(op.type);
  n.set_name(md.fresh_name(r));
  const int inputs = op.inputs ? op.inputs : 1 + static_cast<int>(below(r, 3));
  for (int k = 0; k < inputs; ++k) {
    onnx::TensorProto* c = md.g.add_initializer();
    c->set_name(md.fresh_name(r));
    c->set_data_type(r() % 4 ? onnx::TensorProto::INT64 : onnx::TensorProto::INT32);
    if (r() % 2) c->add_dims(1);
    const I64 x = r() % 2 ? pick(r, kExtremes) : pick(r, kLimits);
    if (c->data_type() == onnx::TensorProto::INT64) c->add_int64_data(x);
    else c->add_int32_data(static_cast<std::int32_t>(static_cast<std::uint32_t>(static_cast<U64>(x))));
    n.add_input(c->name());
  }
  n.add_output(md.fresh_name(r));
  if (std::string(op.type) == "Concat") {
    auto* a = n.add_attribute();
    a->set_name("axis");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(0);
  }
  *md.g.add_node() = n;
  for (int k = md.g.node_size() - 1; k > 0; --k) md.g.mutable_node()->SwapElements(k, k - 1);
  return true;
}

bool mutate(Rng& r, onnx::ModelProto& m) {
  Model md(m);
  const unsigned what = r() % 24;
  if (what >= 22) return constant_subgraph(r, md);
  if (what < 6) {  // the shape constants first: integer tensors
    onnx::TensorProto* t = md.some_tensor(r, true);
    return t && mutate_tensor(r, *t);
  }
  if (what < 8) return limit_operands(r, md);
  if (what < 10) {
    onnx::TensorProto* t = md.some_tensor(r, false);
    return t && mutate_tensor(r, *t);
  }
  if (what < 14) {
    onnx::NodeProto* n = md.some_node(r);
    return n && mutate_attribute(r, *n);
  }
  if (what < 18) return mutate_node(r, md);
  if (what < 20) return insert_node(r, md);
  return mutate_graph(r, md);
}

std::size_t emit(const onnx::ModelProto& m, std::uint8_t* data, std::size_t max_size) {
  std::string bytes;
  if (!m.SerializeToString(&bytes) || bytes.size() > max_size || bytes.empty()) return 0;
  std::memcpy(data, bytes.data(), bytes.size());
  return bytes.size();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  vitcc::fuzz::limit_pack_tensors();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  vitcc::fuzz::pack_front_end(vitcc::fuzz::write_input("model.onnx", data, size));
  return 0;
}

extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size, std::size_t max_size,
                                               unsigned int seed) {
  onnx::ModelProto m;
  Rng r(seed);
  if (size > 0 && m.ParseFromArray(data, static_cast<int>(size)) && m.has_graph()) {
    for (int attempt = 0; attempt < 4; ++attempt)
      if (mutate(r, m)) {
        const std::size_t n = emit(m, data, max_size);
        if (n) return n;
        break;
      }
  }
  return LLVMFuzzerMutate(data, size, max_size);
}

// One node of the other model (with the initializers it reads that this one lacks) added to this one.
extern "C" std::size_t LLVMFuzzerCustomCrossOver(const std::uint8_t* d1, std::size_t s1, const std::uint8_t* d2,
                                                 std::size_t s2, std::uint8_t* out, std::size_t max_out,
                                                 unsigned int seed) {
  onnx::ModelProto a, b;
  if (!a.ParseFromArray(d1, static_cast<int>(s1)) || !b.ParseFromArray(d2, static_cast<int>(s2)) ||
      b.graph().node_size() == 0) {
    const std::size_t n = std::min(s1, max_out);
    std::memcpy(out, d1, n);
    return n;
  }
  Rng r(seed);
  const onnx::NodeProto& n = b.graph().node(static_cast<int>(below(r, static_cast<std::size_t>(b.graph().node_size()))));
  onnx::GraphProto& g = *a.mutable_graph();
  for (const std::string& in : n.input())
    for (const auto& t : b.graph().initializer())
      if (t.name() == in) {
        bool have = false;
        for (const auto& u : g.initializer()) have = have || u.name() == in;
        if (!have) *g.add_initializer() = t;
      }
  *g.add_node() = n;
  const std::size_t written = emit(a, out, max_out);
  if (written) return written;
  const std::size_t k = std::min(s1, max_out);
  std::memcpy(out, d1, k);
  return k;
}
