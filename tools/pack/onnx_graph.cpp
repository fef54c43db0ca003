#include "onnx_graph.hpp"

#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <queue>
#include <set>
#include <sstream>
#include <unordered_set>

#include "checked_int.hpp"
#include "onnx_ops.hpp"
#include "onnx_proto.hpp"

namespace vitcc::pack {

namespace fs = std::filesystem;

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::i64: return "int64";
    case DType::i32: return "int32";
    case DType::boolean: return "bool";
  }
  return "?";
}

std::int64_t OnnxTensor::numel() const { return detail::shape_numel(shape); }

double OnnxTensor::as_double(std::int64_t k) const {
  return dtype == DType::f32 ? static_cast<double>(f.at(k)) : static_cast<double>(i.at(k));
}

std::int64_t OnnxTensor::as_int(std::int64_t k) const {
  if (dtype != DType::f32) return i.at(k);
  const float v = f.at(k);
  if (!detail::float_fits(DType::i64, v)) throw ValueError("value " + std::to_string(v) + " has no int64 value");
  return static_cast<std::int64_t>(v);
}

std::int64_t OnnxNode::attr_int(const std::string& a, std::int64_t dflt) const {
  auto it = attrs.find(a);
  if (it == attrs.end()) return dflt;
  if (it->second.kind == OnnxAttribute::Kind::i) return it->second.i;
  if (it->second.kind == OnnxAttribute::Kind::f) {
    // Converting NaN, Inf or a float beyond +-2^63 would be undefined behaviour.
    const float v = it->second.f;
    if (!detail::float_fits(DType::i64, v))
      throw ValueError("attribute '" + a + "' is the float " + std::to_string(v) + ", expected an integer");
    return static_cast<std::int64_t>(v);
  }
  return dflt;
}

float OnnxNode::attr_float(const std::string& a, float dflt) const {
  auto it = attrs.find(a);
  if (it == attrs.end()) return dflt;
  if (it->second.kind == OnnxAttribute::Kind::f) return it->second.f;
  if (it->second.kind == OnnxAttribute::Kind::i) return static_cast<float>(it->second.i);
  return dflt;
}

std::string OnnxNode::attr_string(const std::string& a, const std::string& dflt) const {
  auto it = attrs.find(a);
  if (it == attrs.end() || it->second.kind != OnnxAttribute::Kind::s) return dflt;
  return it->second.s;
}

const std::vector<std::int64_t>* OnnxNode::attr_ints(const std::string& a) const {
  auto it = attrs.find(a);
  if (it == attrs.end() || it->second.kind != OnnxAttribute::Kind::ints) return nullptr;
  return &it->second.ints;
}

const std::vector<float>* OnnxNode::attr_floats(const std::string& a) const {
  auto it = attrs.find(a);
  if (it == attrs.end() || it->second.kind != OnnxAttribute::Kind::floats) return nullptr;
  return &it->second.floats;
}

namespace {

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = (h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1f;
  std::uint32_t mant = h & 0x3ffu;
  std::uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while (!(mant & 0x400u)) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_float(std::uint16_t h) {
  const std::uint32_t bits = static_cast<std::uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

struct Loader {
  std::string file;   // path as given, for messages
  fs::path base_dir;  // canonical folder of the model file

  [[noreturn]] void fail(const std::string& where, const std::string& what) const { throw PackError(file, where, what); }

  // The file an external tensor's data lives in, checked to be a regular file inside base_dir.
  // Runs before the ONNX checker, which would otherwise follow the location wherever it points.
  fs::path external_file(const onnx::TensorProto& t, const std::string& where) const {
    std::string location;
    for (const auto& e : t.external_data())
      if (e.key() == "location") location = e.value();
    if (location.empty()) fail(where, "external data without a location");
    const fs::path rel(location);
    if (rel.is_absolute()) fail(where, "external data location '" + location + "' is absolute; it must be relative to the model's folder");
    std::error_code ec;
    const fs::path full = fs::weakly_canonical(base_dir / rel, ec);
    if (ec) fail(where, "external data file '" + location + "' cannot be resolved: " + ec.message());
    const fs::path inside = full.lexically_relative(base_dir);
    if (inside.empty() || *inside.begin() == "..")
      fail(where, "external data location '" + location + "' escapes the model's folder " + base_dir.string());
    if (!fs::is_regular_file(full, ec)) fail(where, "external data file '" + location + "' is missing (looked for " + full.string() + ")");
    return full;
  }

  // Bytes of an external tensor, checked to stay inside base_dir and to be long enough.
  std::string external_bytes(const onnx::TensorProto& t, std::size_t need, const std::string& where) const {
    std::string location;
    std::int64_t offset = 0, length = -1;
    for (const auto& e : t.external_data()) {
      try {
        if (e.key() == "location") location = e.value();
        else if (e.key() == "offset") offset = std::stoll(e.value());
        else if (e.key() == "length") length = std::stoll(e.value());
      } catch (const std::exception&) {
        fail(where, "external data entry '" + e.key() + "' has the non-numeric value '" + e.value() + "'");
      }
    }
    if (offset < 0 || length < -1) fail(where, "negative external data offset or length");
    const fs::path full = external_file(t, where);
    std::error_code ec;
    const auto size = static_cast<std::int64_t>(fs::file_size(full, ec));
    if (ec) fail(where, "cannot stat external data file '" + location + "': " + ec.message());
    if (length >= 0 && static_cast<std::size_t>(length) != need)
      fail(where, "external data length " + std::to_string(length) + " does not match the " + std::to_string(need) + " bytes the tensor needs");
    if (offset > size || static_cast<std::int64_t>(need) > size - offset)  // no overflow for offsets near 2^63
      fail(where, "external data file '" + location + "' is too short: " + std::to_string(size) + " bytes, the tensor needs " +
                      std::to_string(need) + " bytes at offset " + std::to_string(offset));
    std::ifstream in(full, std::ios::binary);
    if (!in) fail(where, "cannot open external data file '" + location + "'");
    std::string buf(need, '\0');
    in.seekg(offset);
    in.read(buf.data(), static_cast<std::streamsize>(need));
    if (static_cast<std::size_t>(in.gcount()) != need) fail(where, "short read from external data file '" + location + "'");
    return buf;
  }

  OnnxTensor tensor(const onnx::TensorProto& t, const std::string& where) const {
    OnnxTensor o;
    for (auto d : t.dims()) {
      if (d < 0) fail(where, "negative dimension in " + shape_str({t.dims().begin(), t.dims().end()}));
      o.shape.push_back(d);
    }
    if (t.has_segment()) fail(where, "segmented tensors are not supported");
    std::int64_t n = 0;
    try {
      n = o.numel();
    } catch (const detail::ShapeError& e) {
      fail(where, e.what());
    }
    const int dt = t.data_type();
    std::size_t esize = 0;
    switch (dt) {
      case onnx::TensorProto::FLOAT: o.dtype = DType::f32; esize = 4; break;
      case onnx::TensorProto::DOUBLE: o.dtype = DType::f32; esize = 8; break;
      case onnx::TensorProto::FLOAT16: o.dtype = DType::f32; esize = 2; break;
      case onnx::TensorProto::BFLOAT16: o.dtype = DType::f32; esize = 2; break;
      case onnx::TensorProto::INT64: o.dtype = DType::i64; esize = 8; break;
      case onnx::TensorProto::INT32: o.dtype = DType::i32; esize = 4; break;
      case onnx::TensorProto::INT16: o.dtype = DType::i32; esize = 2; break;
      case onnx::TensorProto::INT8: o.dtype = DType::i32; esize = 1; break;
      case onnx::TensorProto::UINT8: o.dtype = DType::i32; esize = 1; break;
      case onnx::TensorProto::BOOL: o.dtype = DType::boolean; esize = 1; break;
      default:
        fail(where, "data type " + std::to_string(dt) +
                        " is not supported (float32, float16, bfloat16, double, int64, int32, int16, int8, uint8, bool are)");
    }
    const std::size_t need = static_cast<std::size_t>(n) * esize;
    std::string external;
    const std::string* raw = nullptr;
    if (t.data_location() == onnx::TensorProto::EXTERNAL) {
      external = external_bytes(t, need, where);
      raw = &external;
    } else if (t.has_raw_data()) {
      raw = &t.raw_data();
      if (raw->size() != need)
        fail(where, "raw data holds " + std::to_string(raw->size()) + " bytes, shape " + shape_str(o.shape) + " needs " + std::to_string(need));
    }
    if (!raw) {  // counted before anything is allocated for them
      const std::int64_t have = dt == onnx::TensorProto::FLOAT    ? t.float_data_size()
                                : dt == onnx::TensorProto::DOUBLE ? t.double_data_size()
                                : dt == onnx::TensorProto::INT64  ? t.int64_data_size()
                                                                  : t.int32_data_size();
      if (have != n)
        fail(where, "holds " + std::to_string(have) + " values, shape " + shape_str(o.shape) + " needs " + std::to_string(n));
    }
    if (o.dtype == DType::f32) o.f.resize(n);
    else o.i.resize(n);
    if (raw) {
      const char* p = raw->data();
      for (std::int64_t k = 0; k < n; ++k, p += esize) {
        switch (dt) {
          case onnx::TensorProto::FLOAT: std::memcpy(&o.f[k], p, 4); break;
          case onnx::TensorProto::DOUBLE: { double v; std::memcpy(&v, p, 8); o.f[k] = static_cast<float>(v); break; }
          case onnx::TensorProto::FLOAT16: { std::uint16_t v; std::memcpy(&v, p, 2); o.f[k] = half_to_float(v); break; }
          case onnx::TensorProto::BFLOAT16: { std::uint16_t v; std::memcpy(&v, p, 2); o.f[k] = bf16_to_float(v); break; }
          case onnx::TensorProto::INT64: std::memcpy(&o.i[k], p, 8); break;
          case onnx::TensorProto::INT32: { std::int32_t v; std::memcpy(&v, p, 4); o.i[k] = v; break; }
          case onnx::TensorProto::INT16: { std::int16_t v; std::memcpy(&v, p, 2); o.i[k] = v; break; }
          case onnx::TensorProto::INT8: o.i[k] = static_cast<std::int8_t>(*p); break;
          case onnx::TensorProto::UINT8: o.i[k] = static_cast<std::uint8_t>(*p); break;
          case onnx::TensorProto::BOOL: o.i[k] = *p != 0; break;
        }
      }
      return o;
    }
    auto count_fail = [&](std::int64_t have) {
      fail(where, "holds " + std::to_string(have) + " values, shape " + shape_str(o.shape) + " needs " + std::to_string(n));
    };
    switch (dt) {
      case onnx::TensorProto::FLOAT:
        if (t.float_data_size() != n) count_fail(t.float_data_size());
        for (std::int64_t k = 0; k < n; ++k) o.f[k] = t.float_data(static_cast<int>(k));
        break;
      case onnx::TensorProto::DOUBLE:
        if (t.double_data_size() != n) count_fail(t.double_data_size());
        for (std::int64_t k = 0; k < n; ++k) o.f[k] = static_cast<float>(t.double_data(static_cast<int>(k)));
        break;
      case onnx::TensorProto::INT64:
        if (t.int64_data_size() != n) count_fail(t.int64_data_size());
        for (std::int64_t k = 0; k < n; ++k) o.i[k] = t.int64_data(static_cast<int>(k));
        break;
      default:  // everything else is carried in int32_data
        if (t.int32_data_size() != n) count_fail(t.int32_data_size());
        for (std::int64_t k = 0; k < n; ++k) {
          const std::int32_t v = t.int32_data(static_cast<int>(k));
          if (dt == onnx::TensorProto::FLOAT16) o.f[k] = half_to_float(static_cast<std::uint16_t>(v));
          else if (dt == onnx::TensorProto::BFLOAT16) o.f[k] = bf16_to_float(static_cast<std::uint16_t>(v));
          else if (dt == onnx::TensorProto::BOOL) o.i[k] = v != 0;
          else o.i[k] = v;
        }
    }
    return o;
  }

  OnnxNode node(const onnx::NodeProto& np) const {
    OnnxNode n;
    n.name = np.name();
    n.op_type = np.op_type();
    n.inputs.assign(np.input().begin(), np.input().end());
    n.outputs.assign(np.output().begin(), np.output().end());
    for (const auto& a : np.attribute()) n.attrs[a.name()] = attribute(a, n.label());
    return n;
  }

  OnnxAttribute attribute(const onnx::AttributeProto& a, const std::string& where) const {
    OnnxAttribute o;
    switch (a.type()) {
      case onnx::AttributeProto::FLOAT: o.kind = OnnxAttribute::Kind::f; o.f = a.f(); break;
      case onnx::AttributeProto::INT: o.kind = OnnxAttribute::Kind::i; o.i = a.i(); break;
      case onnx::AttributeProto::STRING: o.kind = OnnxAttribute::Kind::s; o.s = a.s(); break;
      case onnx::AttributeProto::TENSOR:
        o.kind = OnnxAttribute::Kind::t;
        o.t = std::make_shared<OnnxTensor>(tensor(a.t(), where + ", attribute '" + a.name() + "'"));
        break;
      case onnx::AttributeProto::FLOATS: o.kind = OnnxAttribute::Kind::floats; o.floats.assign(a.floats().begin(), a.floats().end()); break;
      case onnx::AttributeProto::INTS: o.kind = OnnxAttribute::Kind::ints; o.ints.assign(a.ints().begin(), a.ints().end()); break;
      case onnx::AttributeProto::STRINGS: o.kind = OnnxAttribute::Kind::strings; o.strings.assign(a.strings().begin(), a.strings().end()); break;
      default: o.kind = OnnxAttribute::Kind::other; break;
    }
    return o;
  }
};

std::string dim_str(const onnx::TensorShapeProto::Dimension& d) {
  if (d.has_dim_value()) return std::to_string(d.dim_value());
  if (d.has_dim_param()) return "'" + d.dim_param() + "'";
  return "?";
}

}  // namespace

const std::vector<std::string>& OnnxGraph::supported_ops() { return detail::supported_op_list(); }

namespace detail {

namespace {
Loader loader_for(const std::string& file) {
  Loader L;
  L.file = file;
  std::error_code ec;
  L.base_dir = fs::weakly_canonical(fs::absolute(fs::path(file)).parent_path(), ec);
  return L;
}
}  // namespace

OnnxTensor tensor_from_proto(const onnx::TensorProto& t, const std::string& file, const std::string& where) {
  return loader_for(file).tensor(t, where);
}

OnnxNode node_from_proto(const onnx::NodeProto& n, const std::string& file) { return loader_for(file).node(n); }

}  // namespace detail

const std::vector<std::int64_t>& OnnxGraph::output_shape() const { return value_info(output_value_).shape; }

const ValueInfo& OnnxGraph::value_info(const std::string& v) const {
  auto it = values_.find(v);
  if (it == values_.end()) throw PackError(path_, describe_tensor(v), "no such value in the graph");
  return it->second;
}

const OnnxTensor* OnnxGraph::constant(const std::string& v) const {
  auto it = constants_.find(v);
  return it == constants_.end() ? nullptr : it->second.get();
}

std::string OnnxGraph::constant_source(const std::string& v) const {
  auto it = constant_sources_.find(v);
  return it == constant_sources_.end() ? describe_tensor(v) : it->second;
}

int OnnxGraph::producer_node(const std::string& v) const {
  auto it = producers_.find(v);
  return it == producers_.end() ? -1 : it->second;
}

const std::vector<int>& OnnxGraph::consumers(const std::string& v) const {
  static const std::vector<int> none;
  auto it = consumers_.find(v);
  return it == consumers_.end() ? none : it->second;
}

std::vector<OnnxTensor> OnnxGraph::eval_node(const OnnxNode& node, const std::vector<const OnnxTensor*>& inputs) const {
  const detail::EvalContext ctx{path_, opset_};
  return detail::eval_op(node, inputs, ctx);
}

OnnxGraph OnnxGraph::load(const std::string& path) {
  OnnxGraph g;
  g.path_ = path;
  Loader L;
  L.file = path;

  // ---- read and parse ------------------------------------------------------------------------------------
  std::error_code ec;
  if (!fs::exists(path, ec)) throw PackError(path, "", "no such file");
  if (fs::is_directory(path, ec)) throw PackError(path, "", "is a directory, expected an .onnx file");
  const auto file_size = fs::file_size(path, ec);
  if (ec) throw PackError(path, "", "cannot read: " + ec.message());
  if (file_size == 0) throw PackError(path, "", "file is empty, expected an ONNX model");
  if (file_size >= static_cast<std::uintmax_t>(INT_MAX))
    throw PackError(path, "", "file is larger than 2 GiB; protobuf cannot parse it: export with external data");
  L.base_dir = fs::weakly_canonical(fs::absolute(fs::path(path)).parent_path(), ec);

  onnx::ModelProto model;
  {
    // Parsed straight from the file, so the bytes are never held twice.
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) throw PackError(path, "", std::string("cannot open: ") + std::strerror(errno));
    google::protobuf::io::FileInputStream fis(fd);
    fis.SetCloseOnDelete(true);
    google::protobuf::io::CodedInputStream cis(&fis);
    cis.SetTotalBytesLimit(INT_MAX);
    const bool parsed = model.ParseFromCodedStream(&cis) && cis.ConsumedEntireMessage();
    if (fis.GetErrno() != 0) throw PackError(path, "", std::string("read error: ") + std::strerror(fis.GetErrno()));
    if (!parsed)
      throw PackError(path, "", "not a valid ONNX model: protobuf parsing failed (truncated file, or not an ONNX protobuf)");
  }
  if (model.ir_version() <= 0 || !model.has_graph() || model.graph().node_size() == 0)
    throw PackError(path, "", "not an ONNX model: no ir_version or no graph nodes (is this really an .onnx file?)");
  if (model.ir_version() > INT_MAX)  // the checker takes an int
    throw PackError(path, "", "ir_version " + std::to_string(model.ir_version()) + " is out of range");
  g.ir_version_ = model.ir_version();
  g.producer_ = model.producer_name();
  if (!model.producer_version().empty()) g.producer_ += (g.producer_.empty() ? "" : " ") + model.producer_version();

  std::unordered_map<std::string, int> opsets;  // int: what the checker takes
  for (const auto& op : model.opset_import()) {
    const std::string dom = op.domain() == "ai.onnx" ? "" : op.domain();
    // Checked before narrowing: version 2^32 + 13 must not pass as opset 13.
    if (op.version() < 1 || op.version() > INT_MAX)
      throw PackError(path, "", "opset version " + std::to_string(op.version()) + " of domain '" + op.domain() + "' is out of range");
    opsets[dom] = static_cast<int>(op.version());
  }
  if (!opsets.count("")) throw PackError(path, "", "the model imports no default-domain (ai.onnx) opset");
  g.opset_ = opsets[""];
  if (g.opset_ < 7 || g.opset_ > 18)
    throw PackError(path, "", "opset " + std::to_string(g.opset_) + " is not supported (7..18 are; exports use 10..17)",
                    unsupported_code);

  const onnx::GraphProto& graph = model.graph();
  if (graph.sparse_initializer_size() > 0)
    throw PackError(path, describe_tensor(graph.sparse_initializer(0).values().name()), "sparse initializers are not supported",
                    unsupported_code);

  // ---- names of initializers (converted after the checks) ----------------------------------------------
  std::unordered_set<std::string> defined, init_names;
  for (const auto& init : graph.initializer()) {
    if (init.name().empty()) throw PackError(path, "", "an initializer has no name");
    if (!init_names.insert(init.name()).second) throw PackError(path, "initializer '" + init.name() + "'", "defined twice");
    defined.insert(init.name());
  }

  // ---- the image input ------------------------------------------------------------------------------------
  std::vector<const onnx::ValueInfoProto*> image_inputs;
  for (const auto& vi : graph.input())
    if (!init_names.count(vi.name())) image_inputs.push_back(&vi);
  if (image_inputs.size() != 1) {
    std::string names;
    for (auto* vi : image_inputs) names += (names.empty() ? "'" : ", '") + vi->name() + "'";
    throw PackError(path, "", "expected exactly one graph input that is not an initializer (the image), found " +
                                  std::to_string(image_inputs.size()) + (names.empty() ? "" : ": " + names));
  }
  {
    const onnx::ValueInfoProto& vi = *image_inputs[0];
    const std::string where = "graph input '" + vi.name() + "'";
    g.input_name_ = vi.name();
    if (!vi.type().has_tensor_type()) throw PackError(path, where, "is not a tensor");
    const auto& tt = vi.type().tensor_type();
    if (tt.elem_type() != onnx::TensorProto::FLOAT)
      throw PackError(path, where, "expected element type float32, found ONNX data type " + std::to_string(tt.elem_type()));
    if (!tt.has_shape()) throw PackError(path, where, "has no shape; expected [N, C, H, W]");
    const auto& sh = tt.shape();
    std::string declared = "[";
    for (int d = 0; d < sh.dim_size(); ++d) declared += (d ? ", " : "") + dim_str(sh.dim(d));
    declared += "]";
    if (sh.dim_size() != 4) throw PackError(path, where, "expected rank 4 [N, C, H, W], found " + declared);
    const auto& n = sh.dim(0);
    if (n.has_dim_value() && n.dim_value() > 0) {
      if (n.dim_value() != 1)
        throw PackError(path, where, "static batch " + std::to_string(n.dim_value()) + " in " + declared +
                                         "; export with batch 1 or a dynamic batch axis");
    } else {
      g.dynamic_batch_ = true;
    }
    g.input_shape_.push_back(1);
    const char* names[] = {"N", "C", "H", "W"};
    for (int d = 1; d < 4; ++d) {
      if (!sh.dim(d).has_dim_value() || sh.dim(d).dim_value() <= 0)
        throw PackError(path, where, std::string("dimension ") + names[d] + " must be static, found " + declared);
      g.input_shape_.push_back(sh.dim(d).dim_value());
    }
    try {
      detail::shape_numel(g.input_shape_);
    } catch (const detail::ShapeError& e) {
      throw PackError(path, where, e.what());
    }
    g.values_[g.input_name_] = {DType::f32, g.input_shape_};
    defined.insert(g.input_name_);
  }
  if (graph.output_size() != 1)
    throw PackError(path, "", "expected exactly one graph output, found " + std::to_string(graph.output_size()));
  const onnx::ValueInfoProto& out_vi = graph.output(0);

  // ---- nodes ----------------------------------------------------------------------------------------------
  std::vector<OnnxNode> raw(graph.node_size());
  std::unordered_map<std::string, int> produced_by;
  for (int k = 0; k < graph.node_size(); ++k) {
    const onnx::NodeProto& np = graph.node(k);
    const std::string named = np.name().empty() ? (np.output().empty() ? "" : np.output(0)) : np.name();
    const std::string dom = np.domain() == "ai.onnx" ? "" : np.domain();
    // ONNX Runtime's own ops (an optimised graph it saved): expanded below when vitcc has their computation.
    const std::string why = detail::contrib_op_refusal(dom, np.op_type(), g.opset_);
    if (!why.empty())
      throw PackError(path, "", "unsupported op '" + (dom.empty() ? "" : dom + "::") + np.op_type() + "' at node '" + named + "': " + why,
                      unsupported_code);
    if (dom.empty() && !detail::op_supported(np.op_type()))
      throw PackError(path, "", "unsupported op '" + np.op_type() + "' at node '" + named + "'", unsupported_code);
    raw[k] = L.node(np);
    raw[k].domain = dom;
    const OnnxNode& n = raw[k];
    for (const std::string& o : n.outputs) {
      if (o.empty()) continue;
      if (defined.count(o)) throw PackError(path, n.label(), "output '" + o + "' redefines a graph input or initializer");
      if (!produced_by.emplace(o, k).second)
        throw PackError(path, n.label(), "output '" + o + "' is also produced by " + raw[produced_by[o]].label());
    }
  }

  g.reserved_ = defined;
  for (const auto& [v, k] : produced_by) g.reserved_.insert(v);

  // ---- topological order (Kahn, stable in file order) -----------------------------------------------------
  std::vector<int> indeg(raw.size(), 0);
  std::vector<std::vector<int>> users(raw.size());
  for (std::size_t k = 0; k < raw.size(); ++k) {
    for (const std::string& i : raw[k].inputs) {
      if (i.empty()) continue;
      auto it = produced_by.find(i);
      if (it != produced_by.end()) {
        ++indeg[k];
        users[it->second].push_back(static_cast<int>(k));
      } else if (!defined.count(i)) {
        throw PackError(path, raw[k].label(), "input '" + i + "' is not produced by any node, initializer or graph input");
      }
    }
  }
  std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
  for (std::size_t k = 0; k < raw.size(); ++k)
    if (indeg[k] == 0) ready.push(static_cast<int>(k));
  std::vector<int> order;
  while (!ready.empty()) {
    const int k = ready.top();
    ready.pop();
    order.push_back(k);
    for (int u : users[k])
      if (--indeg[u] == 0) ready.push(u);
  }
  if (order.size() != raw.size()) {
    for (std::size_t k = 0; k < raw.size(); ++k)
      if (indeg[k] > 0) throw PackError(path, raw[k].label(), "is part of a cycle in the graph");
  }

  // ---- ONNX checker (structure, attributes, schemas; not shape inference). Skipped for opsets newer than the
  // installed ONNX knows: it would reject them for that reason alone.
  const auto& known = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
  for (const auto& init : model.graph().initializer())
    if (init.data_location() == onnx::TensorProto::EXTERNAL) L.external_file(init, "initializer '" + init.name() + "'");
  const bool checker_knows_opset = known.count("") && g.opset_ <= known.at("").second;
  if (checker_knows_opset) try {
    onnx::checker::CheckerContext ctx;
    ctx.set_ir_version(static_cast<int>(model.ir_version()));
    ctx.set_opset_imports(opsets);
    ctx.set_model_dir(L.base_dir.string());
    onnx::checker::LexicalScopeContext lex;
    onnx::checker::check_graph(model.graph(), ctx, lex);
  } catch (const std::exception& e) {
    std::string msg;
    for (char ch : std::string(e.what())) {  // one line
      if (ch == '\n') ch = ' ';
      if (!(ch == ' ' && !msg.empty() && msg.back() == ' ')) msg += ch;
    }
    while (!msg.empty() && msg.back() == ' ') msg.pop_back();
    throw PackError(path, "", "the ONNX checker rejects the model: " + msg);
  }

  // ---- constants: initializers (their protobuf copy is released as soon as it is converted) -------------
  std::unordered_map<std::string, std::string> root;  // constant -> the initializer its data comes from
  for (auto& init : *model.mutable_graph()->mutable_initializer()) {
    const std::string where = "initializer '" + init.name() + "'";
    auto t = std::make_shared<OnnxTensor>(L.tensor(init, where));
    std::string().swap(*init.mutable_raw_data());
    google::protobuf::RepeatedField<float>().Swap(init.mutable_float_data());
    g.values_[init.name()] = {t->dtype, t->shape};
    g.constants_[init.name()] = std::move(t);
    g.constant_sources_[init.name()] = where;
    root[init.name()] = where;
  }

  // ---- shape propagation + constant folding ---------------------------------------------------------------
  const detail::EvalContext ectx{path, g.opset_};
  std::unordered_map<std::string, std::string> alias;
  auto resolve = [&](const std::string& v) {
    auto it = alias.find(v);
    return it == alias.end() ? v : it->second;
  };
  std::vector<OnnxNode> kept;
  std::function<void(OnnxNode)> process = [&](OnnxNode n) {
    for (std::string& i : n.inputs)
      if (!i.empty()) i = resolve(i);
    if (!n.domain.empty()) {  // ONNX Runtime's contrib op: its default-domain nodes, folded like the rest
      for (OnnxNode& e : g.expand_contrib(n)) process(std::move(e));
      return;
    }
    std::vector<OnnxTensor> placeholders;
    std::vector<const OnnxTensor*> ptrs;
    const bool all_const = g.bind_inputs(n, placeholders, ptrs);
    if (!all_const && (n.op_type == "Identity" || n.op_type == "Dropout")) {
      // Validate (training mode, ...) and compute the optional mask, then forward the data input.
      std::vector<OnnxTensor> outs = detail::eval_op(n, ptrs, ectx);
      alias[n.outputs[0]] = n.inputs[0];
      for (std::size_t j = 1; j < n.outputs.size(); ++j) {
        if (n.outputs[j].empty()) continue;
        g.values_[n.outputs[j]] = {outs[j].dtype, outs[j].shape};
        g.constants_[n.outputs[j]] = std::make_shared<OnnxTensor>(std::move(outs[j]));
        g.constant_sources_[n.outputs[j]] = "folded output of " + n.label();
      }
      return;
    }
    std::vector<OnnxTensor> outs = detail::eval_op(n, ptrs, ectx);
    bool any_dynamic = false;
    for (std::size_t j = 0; j < n.outputs.size(); ++j) {
      const std::string& o = n.outputs[j];
      if (o.empty()) continue;
      g.values_[o] = {outs[j].dtype, outs[j].shape};
      if (outs[j].has_data) {
        g.constants_[o] = std::make_shared<OnnxTensor>(std::move(outs[j]));
        if (n.op_type == "Constant") {
          g.constant_sources_[o] = "Constant " + n.label();
        } else {
          // name the initializer the data came from, e.g. a weight transposed by an unfolded export
          std::string from;
          if (!n.inputs.empty() && !n.inputs[0].empty()) {
            auto it = root.find(n.inputs[0]);
            if (it != root.end()) from = it->second;
          }
          if (!from.empty()) root[o] = from;
          g.constant_sources_[o] = "folded output of " + n.label() + (from.empty() ? "" : " from " + from);
        }
      } else {
        any_dynamic = true;
      }
    }
    if (any_dynamic) kept.push_back(std::move(n));
  };
  for (int k : order) process(std::move(raw[k]));

  // ---- the output -----------------------------------------------------------------------------------------
  g.output_name_ = out_vi.name();
  g.output_value_ = resolve(out_vi.name());
  if (!g.values_.count(g.output_value_))
    throw PackError(path, "graph output '" + out_vi.name() + "'", "is not produced by any node");
  if (g.is_constant(g.output_value_))
    throw PackError(path, "graph output '" + out_vi.name() + "'", "does not depend on the image input");
  if (g.values_.at(g.output_value_).dtype != DType::f32)
    throw PackError(path, "graph output '" + out_vi.name() + "'", std::string("expected float32, found ") + dtype_name(g.values_.at(g.output_value_).dtype));
  if (g.output_value_ == g.input_name_) throw PackError(path, "graph output '" + out_vi.name() + "'", "is the input itself");
  if (out_vi.type().has_tensor_type() && out_vi.type().tensor_type().has_shape()) {
    const auto& sh = out_vi.type().tensor_type().shape();
    const auto& got = g.values_.at(g.output_value_).shape;
    bool ok = sh.dim_size() == static_cast<int>(got.size());
    for (int d = 0; ok && d < sh.dim_size(); ++d)
      if (sh.dim(d).has_dim_value() && !(d == 0 && g.dynamic_batch_)) ok = sh.dim(d).dim_value() == got[d];
    if (!ok) {
      std::string declared = "[";
      for (int d = 0; d < sh.dim_size(); ++d) declared += (d ? ", " : "") + dim_str(sh.dim(d));
      throw PackError(path, "graph output '" + out_vi.name() + "'", "is declared " + declared + "] but the graph computes " + shape_str(got));
    }
  }

  // ---- one spelling for what simplifiers and optimisers rewrite (normalize.cpp) ---------------------------
  g.normalize(kept);

  // ---- dead node elimination ------------------------------------------------------------------------------
  std::unordered_map<std::string, int> kept_producer;
  for (std::size_t k = 0; k < kept.size(); ++k)
    for (const std::string& o : kept[k].outputs)
      if (!o.empty()) kept_producer[o] = static_cast<int>(k);
  std::vector<bool> live(kept.size(), false);
  std::vector<int> stack;
  if (kept_producer.count(g.output_value_)) stack.push_back(kept_producer[g.output_value_]);
  while (!stack.empty()) {
    const int k = stack.back();
    stack.pop_back();
    if (live[k]) continue;
    live[k] = true;
    for (const std::string& i : kept[k].inputs) {
      auto it = kept_producer.find(i);
      if (it != kept_producer.end() && !live[it->second]) stack.push_back(it->second);
    }
  }
  std::unordered_set<std::string> used_constants;
  bool input_used = false;
  for (std::size_t k = 0; k < kept.size(); ++k) {
    if (!live[k]) continue;
    for (const std::string& i : kept[k].inputs) {
      if (g.is_constant(i)) used_constants.insert(i);
      input_used = input_used || i == g.input_name_;
    }
    g.nodes_.push_back(std::move(kept[k]));
  }
  if (!input_used) throw PackError(path, "graph input '" + g.input_name_ + "'", "is not used by the graph output");
  for (auto it = g.constants_.begin(); it != g.constants_.end();) {
    if (used_constants.count(it->first)) ++it;
    else it = g.constants_.erase(it);
  }

  // ---- producer / consumer indices and buffer lifetimes for run() -----------------------------------------
  std::unordered_map<std::string, int> last_use;
  for (std::size_t k = 0; k < g.nodes_.size(); ++k) {
    const OnnxNode& n = g.nodes_[k];
    for (const std::string& o : n.outputs)
      if (!o.empty()) g.producers_[o] = static_cast<int>(k);
    for (const std::string& i : n.inputs) {
      if (i.empty() || g.is_constant(i)) continue;
      auto& c = g.consumers_[i];
      if (c.empty() || c.back() != static_cast<int>(k)) c.push_back(static_cast<int>(k));
      last_use[i] = static_cast<int>(k);
    }
  }
  g.frees_after_.assign(g.nodes_.size(), {});
  for (const auto& [v, k] : last_use)
    if (v != g.output_value_) g.frees_after_[k].push_back(v);
  for (std::size_t k = 0; k < g.nodes_.size(); ++k)
    for (const std::string& o : g.nodes_[k].outputs)
      if (!o.empty() && !last_use.count(o) && o != g.output_value_ && !g.is_constant(o)) g.frees_after_[k].push_back(o);
  return g;
}

bool OnnxGraph::bind_inputs(const OnnxNode& n, std::vector<OnnxTensor>& placeholders,
                            std::vector<const OnnxTensor*>& ptrs) const {
  placeholders.assign(n.inputs.size(), OnnxTensor{});
  ptrs.assign(n.inputs.size(), nullptr);
  bool all_const = true;
  for (std::size_t j = 0; j < n.inputs.size(); ++j) {
    const std::string& i = n.inputs[j];
    if (i.empty()) continue;
    if (const OnnxTensor* c = constant(i)) {
      ptrs[j] = c;
    } else {
      const ValueInfo& vi = value_info(i);
      placeholders[j].dtype = vi.dtype;
      placeholders[j].shape = vi.shape;
      placeholders[j].has_data = false;
      ptrs[j] = &placeholders[j];
      all_const = false;
    }
  }
  return all_const;
}

void OnnxGraph::infer(const OnnxNode& n) {
  std::vector<OnnxTensor> placeholders;
  std::vector<const OnnxTensor*> ptrs;
  bind_inputs(n, placeholders, ptrs);
  const detail::EvalContext ectx{path_, opset_};
  std::vector<OnnxTensor> outs = detail::eval_op(n, ptrs, ectx);
  for (std::size_t j = 0; j < n.outputs.size() && j < outs.size(); ++j)
    if (!n.outputs[j].empty()) values_[n.outputs[j]] = {outs[j].dtype, outs[j].shape};
}

std::string OnnxGraph::fresh_name(const std::string& base) const {
  std::string v = base;
  for (int k = 2; values_.count(v) || constants_.count(v) || reserved_.count(v); ++k) v = base + "_" + std::to_string(k);
  return v;
}

void OnnxGraph::add_constant(const std::string& name, OnnxTensor t, const std::string& source) {
  values_[name] = {t.dtype, t.shape};
  constants_[name] = std::make_shared<OnnxTensor>(std::move(t));
  constant_sources_[name] = source;
}

std::vector<float> OnnxGraph::run(const std::vector<float>& input) const {
  std::unordered_map<std::string, OnnxTensor> kept;
  return run(input, {}, kept);
}

std::vector<float> OnnxGraph::run(const std::vector<float>& input, const std::set<std::string>& keep,
                                  std::unordered_map<std::string, OnnxTensor>& kept) const {
  const std::int64_t want = detail::shape_numel(input_shape_);
  if (static_cast<std::int64_t>(input.size()) != want)
    throw PackError(path_, "graph input '" + input_name_ + "'", "run() expects " + std::to_string(want) + " values " +
                                                                  shape_str(input_shape_) + ", got " + std::to_string(input.size()));
  const detail::EvalContext ctx{path_, opset_};
  std::unordered_map<std::string, OnnxTensor> vals;
  {
    OnnxTensor x;
    x.dtype = DType::f32;
    x.shape = input_shape_;
    x.f = input;
    if (keep.count(input_name_)) kept[input_name_] = x;
    vals.emplace(input_name_, std::move(x));
  }
  std::vector<const OnnxTensor*> ptrs;
  for (std::size_t k = 0; k < nodes_.size(); ++k) {
    const OnnxNode& n = nodes_[k];
    ptrs.assign(n.inputs.size(), nullptr);
    for (std::size_t j = 0; j < n.inputs.size(); ++j) {
      const std::string& i = n.inputs[j];
      if (i.empty()) continue;
      if (const OnnxTensor* c = constant(i)) {
        ptrs[j] = c;
      } else {
        auto it = vals.find(i);
        if (it == vals.end()) throw PackError(path_, n.label(), "internal: input '" + i + "' was not computed");
        ptrs[j] = &it->second;
      }
    }
    std::vector<OnnxTensor> outs = detail::eval_op(n, ptrs, ctx);
    for (std::size_t j = 0; j < n.outputs.size(); ++j) {
      const std::string& o = n.outputs[j];
      if (o.empty() || is_constant(o)) continue;
      const ValueInfo& vi = values_.at(o);
      if (outs[j].shape != vi.shape || outs[j].dtype != vi.dtype)
        throw PackError(path_, n.label(), "internal: output '" + o + "' computed as " + shape_str(outs[j].shape) +
                                              " but propagated as " + shape_str(vi.shape));
      if (keep.count(o)) kept[o] = outs[j];
      vals[o] = std::move(outs[j]);
    }
    for (const std::string& v : frees_after_[k]) vals.erase(v);
  }
  auto it = vals.find(output_value_);
  if (it == vals.end()) throw PackError(path_, "graph output '" + output_name_ + "'", "internal: not computed");
  return std::move(it->second.f);
}

}  // namespace vitcc::pack
