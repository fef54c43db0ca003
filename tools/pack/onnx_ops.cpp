// ONNX operator semantics (default domain, opsets 7..18 where the variants matter: Slice/Split/Squeeze/
// Unsqueeze/ReduceMean attributes-vs-inputs, Softmax before/after opset 13, Shape start/end, ...).
#include "onnx_ops.hpp"

#include <Eigen/Core>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <set>
#include <stdexcept>

#include "checked_int.hpp"

namespace vitcc::pack::detail {
namespace {

using Shape = std::vector<std::int64_t>;
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

const std::vector<std::string> kSupported = {
    "Add",     "Cast",      "Concat",   "Constant", "ConstantOfShape", "Conv",     "Div",
    "Dropout", "Equal",     "Erf",      "Exp",      "Expand",          "Flatten",  "Gather",
    "Gemm",    "Identity",  "LayerNormalization",   "MatMul",          "Mul",      "Neg",
    "Pow",     "Range",     "Reciprocal",           "ReduceMean",      "Relu",     "Reshape",
    "Shape",   "Sigmoid",   "Slice",    "Softmax",  "Split",           "Sqrt",     "Squeeze",
    "Sub",     "Tanh",      "Transpose", "Unsqueeze", "Where",
    "BatchNormalization", "GlobalAveragePool", "Pad"};

// ---------------------------------------------------------------------------------------------------------
// Per-call context: inputs, attributes and error reporting.
struct Call {
  const OnnxNode& n;
  const std::vector<const OnnxTensor*>& in;
  const EvalContext& ec;

  [[noreturn]] void fail(const std::string& what) const { throw PackError(ec.file, n.label(), what); }
  // Valid ONNX that the packer does not implement (vitcc-pack exits 5, not 3).
  [[noreturn]] void unsupported(const std::string& what) const { throw PackError(ec.file, n.label(), what, unsupported_code); }

  std::size_t count() const { return in.size(); }
  const OnnxTensor* opt(std::size_t k) const { return k < in.size() ? in[k] : nullptr; }
  const OnnxTensor& input(std::size_t k) const {
    const OnnxTensor* t = opt(k);
    if (!t) fail("missing required input #" + std::to_string(k));
    return *t;
  }
  // Input k as a list of integers (it determines shapes, so it must be known before the image is).
  std::vector<std::int64_t> ints(std::size_t k, const char* what) const {
    const OnnxTensor& t = input(k);
    if (!t.has_data)
      fail(std::string("input '") + n.inputs[k] + "' (" + what +
           ") depends on the image; only static shapes are supported");
    if (t.dtype != DType::i64 && t.dtype != DType::i32)
      fail(std::string("input '") + n.inputs[k] + "' (" + what + ") must be int64/int32, found " +
           dtype_name(t.dtype));
    return t.i;
  }
  std::int64_t axis(std::int64_t a, std::int64_t rank, const char* what = "axis") const {
    std::int64_t r = a < 0 ? a + rank : a;
    if (r < 0 || r >= rank)
      fail(std::string(what) + " " + std::to_string(a) + " is out of range for rank " + std::to_string(rank));
    return r;
  }
};

std::int64_t numel(const Shape& s) { return shape_numel(s); }

// Refuses an integer result that does not fit its type (expr: the computation, e.g. "INT64_MIN / -1").
[[noreturn]] void overflow(const Call& c, const std::string& expr, DType t) {
  const bool i32 = t == DType::i32;
  c.fail(expr + " overflows " + dtype_name(t) + "; expected every result in [" +
         std::to_string(i32 ? std::numeric_limits<std::int32_t>::min() : std::numeric_limits<std::int64_t>::min()) + ", " +
         std::to_string(i32 ? std::numeric_limits<std::int32_t>::max() : std::numeric_limits<std::int64_t>::max()) + "]");
}

Shape strides_of(const Shape& s) {
  Shape st(s.size(), 1);
  for (std::size_t d = s.size(); d-- > 1;) st[d - 1] = st[d] * s[d];
  return st;
}

OnnxTensor make(DType t, Shape shape, bool data) {
  OnnxTensor o;
  o.dtype = t;
  o.shape = std::move(shape);
  o.has_data = data;
  if (data) {
    if (t == DType::f32)
      o.f.assign(static_cast<std::size_t>(numel(o.shape)), 0.0f);
    else
      o.i.assign(static_cast<std::size_t>(numel(o.shape)), 0);
  }
  return o;
}

// Iterates every index of `out` (row-major); for each of K operands, idx[k] = offset[k] + sum_d i_d*st[k][d].
template <std::size_t K, class Fn>
void for_each_strided(const Shape& out, const std::array<Shape, K>& st, const std::array<std::int64_t, K>& offset,
                      Fn&& fn) {
  const std::int64_t n = numel(out);
  if (n == 0) return;
  const std::size_t r = out.size();
  if (r == 0) {
    fn(std::int64_t{0}, offset);
    return;
  }
  const std::int64_t inner = out[r - 1];
  std::array<std::int64_t, K> inner_st{};
  for (std::size_t k = 0; k < K; ++k) inner_st[k] = st[k][r - 1];
  Shape ctr(r, 0);
  std::array<std::int64_t, K> base = offset;
  for (std::int64_t o = 0; o < n; o += inner) {
    std::array<std::int64_t, K> idx = base;
    for (std::int64_t j = 0; j < inner; ++j) {
      fn(o + j, idx);
      for (std::size_t k = 0; k < K; ++k) idx[k] += inner_st[k];
    }
    for (std::size_t d = r - 1; d-- > 0;) {
      ++ctr[d];
      for (std::size_t k = 0; k < K; ++k) base[k] += st[k][d];
      if (ctr[d] < out[d]) break;
      for (std::size_t k = 0; k < K; ++k) base[k] -= st[k][d] * out[d];
      ctr[d] = 0;
    }
  }
}

// Strides of `s` seen as broadcast to `out` (0 along broadcast dimensions).
Shape bcast_strides(const Shape& s, const Shape& out) {
  Shape st(out.size(), 0);
  const std::size_t off = out.size() - s.size();
  std::int64_t acc = 1;
  for (std::size_t d = s.size(); d-- > 0;) {
    if (s[d] != 1) st[d + off] = acc;
    acc *= s[d];
  }
  return st;
}

// Copies elements of src into a new tensor of shape `out`: element o takes src[idx].
template <class IndexFn>
OnnxTensor gather_elements(const OnnxTensor& src, const Shape& out, IndexFn&& fill_indices) {
  OnnxTensor o = make(src.dtype, out, src.has_data);
  if (!src.has_data) return o;
  if (src.dtype == DType::f32)
    fill_indices([&](std::int64_t dst, std::int64_t s) { o.f[dst] = src.f[s]; });
  else
    fill_indices([&](std::int64_t dst, std::int64_t s) { o.i[dst] = src.i[s]; });
  return o;
}

OnnxTensor strided_copy(const OnnxTensor& src, const Shape& out, const Shape& st, std::int64_t offset) {
  return gather_elements(src, out, [&](auto&& put) {
    for_each_strided<1>(out, {st}, {offset}, [&](std::int64_t o, const std::array<std::int64_t, 1>& idx) {
      put(o, idx[0]);
    });
  });
}

OnnxTensor reshaped(const OnnxTensor& src, Shape shape) {
  OnnxTensor o = src;
  o.shape = std::move(shape);
  return o;
}

// ---------------------------------------------------------------------------------------------------------
// Elementwise
std::vector<OnnxTensor> unary(const Call& c) {
  const OnnxTensor& x = c.input(0);
  const std::string& op = c.n.op_type;
  const bool int_ok = op == "Neg" || op == "Relu";
  if (x.dtype != DType::f32 && !(int_ok && (x.dtype == DType::i64 || x.dtype == DType::i32)))
    c.fail("expected a float tensor, found " + std::string(dtype_name(x.dtype)));
  OnnxTensor o = make(x.dtype, x.shape, x.has_data);
  if (!x.has_data) return {o};
  if (x.dtype != DType::f32) {
    for (std::size_t k = 0; k < x.i.size(); ++k) {
      const std::int64_t v = x.i[k];
      std::int64_t r = std::max<std::int64_t>(v, 0);
      if (op == "Neg" && (!sub_ok(0, v, &r) || !fits(x.dtype, r))) overflow(c, "-(" + std::to_string(v) + ")", x.dtype);
      o.i[k] = r;
    }
    return {o};
  }
  const float* a = x.f.data();
  float* y = o.f.data();
  const std::size_t n = x.f.size();
  if (op == "Sqrt") for (std::size_t k = 0; k < n; ++k) y[k] = std::sqrt(a[k]);
  else if (op == "Erf") for (std::size_t k = 0; k < n; ++k) y[k] = std::erf(a[k]);
  else if (op == "Relu") for (std::size_t k = 0; k < n; ++k) y[k] = a[k] > 0.0f ? a[k] : 0.0f;
  else if (op == "Tanh") for (std::size_t k = 0; k < n; ++k) y[k] = std::tanh(a[k]);
  else if (op == "Sigmoid") for (std::size_t k = 0; k < n; ++k) y[k] = 1.0f / (1.0f + std::exp(-a[k]));
  else if (op == "Neg") for (std::size_t k = 0; k < n; ++k) y[k] = -a[k];
  else if (op == "Exp") for (std::size_t k = 0; k < n; ++k) y[k] = std::exp(a[k]);
  else if (op == "Reciprocal") for (std::size_t k = 0; k < n; ++k) y[k] = 1.0f / a[k];
  else c.fail("internal: unary op not handled");
  return {o};
}

template <class T, class F>
void binary_loop(const Shape& out, const Shape& sa, const std::vector<T>& a, const Shape& sb,
                 const std::vector<T>& b, T* y, F&& f) {
  const std::int64_t n = numel(out);
  if (sa == out && sb == out) {
    for (std::int64_t k = 0; k < n; ++k) y[k] = f(a[k], b[k]);
  } else if (sa == out && b.size() == 1) {
    const T bv = b[0];
    for (std::int64_t k = 0; k < n; ++k) y[k] = f(a[k], bv);
  } else if (sb == out && a.size() == 1) {
    const T av = a[0];
    for (std::int64_t k = 0; k < n; ++k) y[k] = f(av, b[k]);
  } else {
    for_each_strided<2>(out, {bcast_strides(sa, out), bcast_strides(sb, out)}, {0, 0},
                        [&](std::int64_t o, const std::array<std::int64_t, 2>& idx) { y[o] = f(a[idx[0]], b[idx[1]]); });
  }
}

std::vector<OnnxTensor> binary(const Call& c) {
  const OnnxTensor& a = c.input(0);
  const OnnxTensor& b = c.input(1);
  const std::string& op = c.n.op_type;
  Shape out;
  try {
    out = broadcast_shapes(a.shape, b.shape);
  } catch (const std::invalid_argument&) {
    c.fail("cannot broadcast " + shape_str(a.shape) + " with " + shape_str(b.shape));
  }
  const bool data = a.has_data && b.has_data;
  if (op == "Equal") {
    if (a.dtype != b.dtype) c.fail(std::string("operand types differ: ") + dtype_name(a.dtype) + " vs " + dtype_name(b.dtype));
    OnnxTensor o = make(DType::boolean, out, data);
    if (!data) return {o};
    if (a.dtype == DType::f32) {
      std::vector<float> tmp(o.i.size());
      binary_loop<float>(out, a.shape, a.f, b.shape, b.f, tmp.data(), [](float x, float y) { return x == y ? 1.0f : 0.0f; });
      for (std::size_t k = 0; k < tmp.size(); ++k) o.i[k] = tmp[k] != 0.0f;
    } else {
      binary_loop<std::int64_t>(out, a.shape, a.i, b.shape, b.i, o.i.data(),
                                [](std::int64_t x, std::int64_t y) -> std::int64_t { return x == y; });
    }
    return {o};
  }
  if (op == "Pow") {
    if (a.dtype != DType::f32) c.fail("Pow base must be float, found " + std::string(dtype_name(a.dtype)));
    OnnxTensor o = make(DType::f32, out, data);
    if (!data) return {o};
    std::vector<float> e = b.f;
    if (b.dtype != DType::f32) {
      e.resize(b.i.size());
      for (std::size_t k = 0; k < e.size(); ++k) e[k] = static_cast<float>(b.i[k]);
    }
    if (e.size() == 1 && e[0] == 2.0f && a.shape == out) {
      for (std::size_t k = 0; k < o.f.size(); ++k) o.f[k] = a.f[k] * a.f[k];
    } else {
      binary_loop<float>(out, a.shape, a.f, b.shape, e, o.f.data(), [](float x, float y) { return std::pow(x, y); });
    }
    return {o};
  }
  if (a.dtype != b.dtype)
    c.fail(std::string("operand types differ: ") + dtype_name(a.dtype) + " vs " + dtype_name(b.dtype));
  if (a.dtype == DType::boolean) c.fail("arithmetic on bool tensors is not supported");
  OnnxTensor o = make(a.dtype, out, data);
  if (!data) return {o};
  if (a.dtype == DType::f32) {
    float* y = o.f.data();
    if (op == "Add") binary_loop<float>(out, a.shape, a.f, b.shape, b.f, y, [](float x, float z) { return x + z; });
    else if (op == "Sub") binary_loop<float>(out, a.shape, a.f, b.shape, b.f, y, [](float x, float z) { return x - z; });
    else if (op == "Mul") binary_loop<float>(out, a.shape, a.f, b.shape, b.f, y, [](float x, float z) { return x * z; });
    else binary_loop<float>(out, a.shape, a.f, b.shape, b.f, y, [](float x, float z) { return x / z; });
  } else {
    // Every result checked: the operands are file data (shape subgraphs are folded before dead
    // nodes are dropped, so whatever a file holds is computed).
    std::int64_t* y = o.i.data();
    using I = std::int64_t;
    const DType t = a.dtype;
    auto checked = [&](bool ok, I x, const char* sym, I z, I r) {
      if (!ok || !fits(t, r)) overflow(c, std::to_string(x) + sym + std::to_string(z), t);
      return r;
    };
    if (op == "Add") {
      binary_loop<I>(out, a.shape, a.i, b.shape, b.i, y, [&](I x, I z) { I r = 0; const bool ok = add_ok(x, z, &r); return checked(ok, x, " + ", z, r); });
    } else if (op == "Sub") {
      binary_loop<I>(out, a.shape, a.i, b.shape, b.i, y, [&](I x, I z) { I r = 0; const bool ok = sub_ok(x, z, &r); return checked(ok, x, " - ", z, r); });
    } else if (op == "Mul") {
      binary_loop<I>(out, a.shape, a.i, b.shape, b.i, y, [&](I x, I z) { I r = 0; const bool ok = mul_ok(x, z, &r); return checked(ok, x, " * ", z, r); });
    } else {
      for (I z : b.i)
        if (z == 0) c.fail("integer division by zero");
      // Truncated toward zero, as C and ONNX Runtime divide.
      binary_loop<I>(out, a.shape, a.i, b.shape, b.i, y, [&](I x, I z) { I r = 0; const bool ok = div_ok(x, z, &r); return checked(ok, x, " / ", z, r); });
    }
  }
  return {o};
}

std::vector<OnnxTensor> where(const Call& c) {
  const OnnxTensor& cond = c.input(0);
  const OnnxTensor& x = c.input(1);
  const OnnxTensor& y = c.input(2);
  if (cond.dtype != DType::boolean) c.fail("condition must be bool, found " + std::string(dtype_name(cond.dtype)));
  if (x.dtype != y.dtype) c.fail(std::string("operand types differ: ") + dtype_name(x.dtype) + " vs " + dtype_name(y.dtype));
  Shape out;
  try {
    out = broadcast_shapes(broadcast_shapes(cond.shape, x.shape), y.shape);
  } catch (const std::invalid_argument&) {
    c.fail("cannot broadcast " + shape_str(cond.shape) + ", " + shape_str(x.shape) + " and " + shape_str(y.shape));
  }
  const bool data = cond.has_data && x.has_data && y.has_data;
  OnnxTensor o = make(x.dtype, out, data);
  if (!data) return {o};
  for_each_strided<3>(out, {bcast_strides(cond.shape, out), bcast_strides(x.shape, out), bcast_strides(y.shape, out)},
                      {0, 0, 0}, [&](std::int64_t k, const std::array<std::int64_t, 3>& idx) {
                        const bool t = cond.i[idx[0]] != 0;
                        if (o.dtype == DType::f32)
                          o.f[k] = t ? x.f[idx[1]] : y.f[idx[2]];
                        else
                          o.i[k] = t ? x.i[idx[1]] : y.i[idx[2]];
                      });
  return {o};
}

// ---------------------------------------------------------------------------------------------------------
// Linear algebra
std::vector<OnnxTensor> matmul(const Call& c) {
  const OnnxTensor& a0 = c.input(0);
  const OnnxTensor& b0 = c.input(1);
  if (a0.dtype != DType::f32 || b0.dtype != DType::f32) c.fail("only float MatMul is supported");
  if (a0.shape.empty() || b0.shape.empty()) c.fail("MatMul operands must have rank >= 1");
  Shape sa = a0.shape, sb = b0.shape;
  const bool a_vec = sa.size() == 1, b_vec = sb.size() == 1;
  if (a_vec) sa.insert(sa.begin(), 1);
  if (b_vec) sb.push_back(1);
  const std::int64_t M = sa[sa.size() - 2], K = sa.back(), K2 = sb[sb.size() - 2], N = sb.back();
  if (K != K2) c.fail("inner dimensions differ: " + shape_str(a0.shape) + " x " + shape_str(b0.shape));
  Shape ba(sa.begin(), sa.end() - 2), bb(sb.begin(), sb.end() - 2), batch;
  try {
    batch = broadcast_shapes(ba, bb);
  } catch (const std::invalid_argument&) {
    c.fail("batch dimensions do not broadcast: " + shape_str(a0.shape) + " x " + shape_str(b0.shape));
  }
  Shape out = batch;
  if (!a_vec) out.push_back(M);
  if (!b_vec) out.push_back(N);
  const bool data = a0.has_data && b0.has_data;
  OnnxTensor o = make(DType::f32, out, data);
  if (!data) return {o};
  const float* pa = a0.f.data();
  const float* pb = b0.f.data();
  float* py = o.f.data();
  auto mm = [&](std::int64_t ia, std::int64_t ib, std::int64_t iy) {
    Eigen::Map<const RowMat> A(pa + ia * M * K, M, K);
    Eigen::Map<const RowMat> B(pb + ib * K * N, K, N);
    Eigen::Map<RowMat> Y(py + iy * M * N, M, N);
    Y.noalias() = A * B;
  };
  if (batch.empty()) {
    mm(0, 0, 0);
  } else {
    for_each_strided<2>(batch, {bcast_strides(ba, batch), bcast_strides(bb, batch)}, {0, 0},
                        [&](std::int64_t o2, const std::array<std::int64_t, 2>& idx) { mm(idx[0], idx[1], o2); });
  }
  return {o};
}

std::vector<OnnxTensor> gemm(const Call& c) {
  const OnnxTensor& a = c.input(0);
  const OnnxTensor& b = c.input(1);
  const OnnxTensor* cc = c.opt(2);
  if (a.dtype != DType::f32 || b.dtype != DType::f32 || (cc && cc->dtype != DType::f32))
    c.fail("only float Gemm is supported");
  if (a.shape.size() != 2 || b.shape.size() != 2)
    c.fail("Gemm operands must be 2-D, found " + shape_str(a.shape) + " and " + shape_str(b.shape));
  const bool ta = c.n.attr_int("transA", 0) != 0, tb = c.n.attr_int("transB", 0) != 0;
  const float alpha = c.n.attr_float("alpha", 1.0f), beta = c.n.attr_float("beta", 1.0f);
  const std::int64_t M = ta ? a.shape[1] : a.shape[0], K = ta ? a.shape[0] : a.shape[1];
  const std::int64_t K2 = tb ? b.shape[1] : b.shape[0], N = tb ? b.shape[0] : b.shape[1];
  if (K != K2) c.fail("inner dimensions differ: " + shape_str(a.shape) + " x " + shape_str(b.shape));
  const Shape out{M, N};
  if (cc) {
    Shape bs;
    try {
      bs = broadcast_shapes(cc->shape, out);
    } catch (const std::invalid_argument&) {
      bs.clear();
    }
    if (bs != out) c.fail("C " + shape_str(cc->shape) + " does not broadcast to " + shape_str(out));
  }
  const bool data = a.has_data && b.has_data && (!cc || cc->has_data);
  OnnxTensor o = make(DType::f32, out, data);
  if (!data) return {o};
  Eigen::Map<const RowMat> A(a.f.data(), a.shape[0], a.shape[1]);
  Eigen::Map<const RowMat> B(b.f.data(), b.shape[0], b.shape[1]);
  Eigen::Map<RowMat> Y(o.f.data(), M, N);
  if (ta && tb) Y.noalias() = A.transpose() * B.transpose();
  else if (ta) Y.noalias() = A.transpose() * B;
  else if (tb) Y.noalias() = A * B.transpose();
  else Y.noalias() = A * B;
  if (alpha != 1.0f) Y *= alpha;
  if (cc && beta != 0.0f) {
    const Shape st = bcast_strides(cc->shape, out);
    for (std::int64_t i = 0; i < M; ++i)
      for (std::int64_t j = 0; j < N; ++j) Y(i, j) += beta * cc->f[i * st[0] + j * st[1]];
  }
  return {o};
}

std::vector<OnnxTensor> conv(const Call& c) {
  const OnnxTensor& x = c.input(0);
  const OnnxTensor& w = c.input(1);
  const OnnxTensor* b = c.opt(2);
  if (x.dtype != DType::f32 || w.dtype != DType::f32 || (b && b->dtype != DType::f32))
    c.fail("only float Conv is supported");
  if (x.shape.size() != 4 || w.shape.size() != 4)
    c.fail("only 2-D convolution is supported (input " + shape_str(x.shape) + ", weight " + shape_str(w.shape) + ")");
  const std::int64_t G = c.n.attr_int("group", 1);
  const std::int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  const std::int64_t M = w.shape[0], kh = w.shape[2], kw = w.shape[3];
  if (G < 1 || C % G != 0 || M % G != 0) c.fail("group=" + std::to_string(G) + " does not divide the channels");
  std::int64_t wc = 0;
  if (!mul_ok(w.shape[1], G, &wc) || wc != C) c.fail("weight " + shape_str(w.shape) + " does not match " + std::to_string(C) + " input channels in " + std::to_string(G) + " groups");
  if (kh < 1 || kw < 1) c.fail("weight " + shape_str(w.shape) + " has an empty kernel");
  if (b && (b->shape.size() != 1 || b->shape[0] != M)) c.fail("bias " + shape_str(b->shape) + " is not [" + std::to_string(M) + "]");
  if (const auto* ks = c.n.attr_ints("kernel_shape"))
    if (ks->size() != 2 || (*ks)[0] != kh || (*ks)[1] != kw) c.fail("kernel_shape attribute does not match the weight " + shape_str(w.shape));
  Shape strides{1, 1}, dil{1, 1}, pads{0, 0, 0, 0};
  if (const auto* s = c.n.attr_ints("strides")) { if (s->size() != 2) c.fail("strides must have 2 values"); strides = *s; }
  if (const auto* d = c.n.attr_ints("dilations")) { if (d->size() != 2) c.fail("dilations must have 2 values"); dil = *d; }
  if (const auto* p = c.n.attr_ints("pads")) { if (p->size() != 4) c.fail("pads must have 4 values"); pads = *p; }
  for (std::int64_t v : strides) if (v < 1) c.fail("strides must be >= 1");
  for (std::int64_t v : dil) if (v < 1) c.fail("dilations must be >= 1");
  for (std::int64_t v : pads) if (v < 0) c.fail("pads must be >= 0, found " + shape_str(pads));
  // Attributes are file data: every size below is computed with overflow checks. With the output
  // size checked, the im2col index arithmetic stays within in + pads + the effective kernel.
  auto size_fail = [&]() {
    c.fail("kernel " + shape_str(w.shape) + " with strides " + shape_str(strides) + ", pads " + shape_str(pads) +
           " and dilations " + shape_str(dil) + " on " + shape_str(x.shape) + ": an output size overflows int64");
  };
  const std::string auto_pad = c.n.attr_string("auto_pad", "NOTSET");
  const std::int64_t in_sz[2] = {H, W}, k_sz[2] = {kh, kw};
  std::int64_t out_sz[2];
  for (int d = 0; d < 2; ++d) {
    std::int64_t ek = 0, padded = 0;
    if (!mul_ok(dil[d], k_sz[d] - 1, &ek) || !add_ok(ek, 1, &ek)) size_fail();
    if (auto_pad == "NOTSET") {
      if (!add_ok(in_sz[d], pads[d], &padded) || !add_ok(padded, pads[d + 2], &padded)) size_fail();
      if (padded < ek) c.fail("output would be empty");
      out_sz[d] = (padded - ek) / strides[d] + 1;
    } else if (auto_pad == "VALID") {
      pads[d] = pads[d + 2] = 0;
      if (in_sz[d] < ek) c.fail("output would be empty");
      out_sz[d] = (in_sz[d] - ek) / strides[d] + 1;
    } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      out_sz[d] = in_sz[d] / strides[d] + (in_sz[d] % strides[d] != 0);  // ceil without in + stride - 1
      // (out - 1) * stride < in, so only adding the effective kernel can overflow
      std::int64_t total = (out_sz[d] - 1) * strides[d] - in_sz[d];
      if (!add_ok(total, ek, &total)) size_fail();
      total = std::max<std::int64_t>(0, total);
      pads[d] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      pads[d + 2] = total - pads[d];
    } else {
      c.fail("unknown auto_pad '" + auto_pad + "'");
    }
    if (out_sz[d] < 1) c.fail("output would be empty");
  }
  const std::int64_t OH = out_sz[0], OW = out_sz[1];
  const bool data = x.has_data && w.has_data && (!b || b->has_data);
  OnnxTensor o = make(DType::f32, {N, M, OH, OW}, data);
  if (!data) return {o};
  // Per group g: input channels g*Cg.., output channels g*Mg..; im2col then one matrix product.
  const std::int64_t Cg = C / G, Mg = M / G;
  const std::int64_t ckk = Cg * kh * kw;
  numel({ckk, OH, OW});  // the im2col buffer is a tensor too: bounded like one
  RowMat cols(ckk, OH * OW);
  for (std::int64_t n = 0; n < N; ++n)
  for (std::int64_t g = 0; g < G; ++g) {
    Eigen::Map<const RowMat> Wm(w.f.data() + g * Mg * ckk, Mg, ckk);
    const float* xn = x.f.data() + (n * C + g * Cg) * H * W;
    for (std::int64_t ch = 0; ch < Cg; ++ch)
      for (std::int64_t ki = 0; ki < kh; ++ki)
        for (std::int64_t kj = 0; kj < kw; ++kj) {
          float* row = cols.data() + ((ch * kh + ki) * kw + kj) * OH * OW;
          for (std::int64_t oh = 0; oh < OH; ++oh) {
            const std::int64_t ih = oh * strides[0] - pads[0] + ki * dil[0];
            for (std::int64_t ow = 0; ow < OW; ++ow) {
              const std::int64_t iw = ow * strides[1] - pads[1] + kj * dil[1];
              row[oh * OW + ow] = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? xn[(ch * H + ih) * W + iw] : 0.0f;
            }
          }
        }
    Eigen::Map<RowMat> Y(o.f.data() + (n * M + g * Mg) * OH * OW, Mg, OH * OW);
    Y.noalias() = Wm * cols;
    if (b)
      for (std::int64_t m = 0; m < Mg; ++m) Y.row(m).array() += b->f[g * Mg + m];
  }
  return {o};
}

// BatchNormalization in inference form: y = (x - mean) / sqrt(var + eps) * scale + bias per channel
// (axis 1). A node exported in training mode (training_mode=1 or extra outputs) is refused.
std::vector<OnnxTensor> batch_norm(const Call& c) {
  const OnnxTensor& x = c.input(0);
  if (x.dtype != DType::f32) c.fail("BatchNormalization needs a float input");
  if (x.shape.size() < 2) c.fail("input " + shape_str(x.shape) + " has no channel axis");
  if (c.n.attr_int("training_mode", 0) != 0) c.fail("training_mode=1 (batch statistics) is not inference");
  for (std::size_t k = 1; k < c.n.outputs.size(); ++k)
    if (!c.n.outputs[k].empty()) c.fail("running-statistics outputs are not inference");
  const std::int64_t C = x.shape[1];
  const OnnxTensor* p[4];
  for (std::size_t k = 0; k < 4; ++k) {
    p[k] = &c.input(k + 1);
    if (p[k]->dtype != DType::f32 || numel(p[k]->shape) != C)
      c.fail("parameter '" + c.n.inputs[k + 1] + "' is not " + std::to_string(C) + " floats");
  }
  const float eps = c.n.attr_float("epsilon", 1e-5f);
  bool data = x.has_data;
  for (const OnnxTensor* t : p) data = data && t->has_data;
  OnnxTensor o = make(DType::f32, x.shape, data);
  if (!data) return {o};
  const std::int64_t inner = numel(Shape(x.shape.begin() + 2, x.shape.end()));  // not numel / (N * C): N * C may be 0
  for (std::int64_t n = 0; n < x.shape[0]; ++n)
    for (std::int64_t ch = 0; ch < C; ++ch) {
      const float s = p[0]->f[ch] / std::sqrt(p[3]->f[ch] + eps);
      const float sh = p[1]->f[ch] - p[2]->f[ch] * s;
      const std::int64_t base = (n * C + ch) * inner;
      for (std::int64_t k = 0; k < inner; ++k) o.f[base + k] = x.f[base + k] * s + sh;
    }
  return {o};
}

std::vector<OnnxTensor> global_avg_pool(const Call& c) {
  const OnnxTensor& x = c.input(0);
  if (x.dtype != DType::f32 || x.shape.size() < 3) c.fail("GlobalAveragePool needs a float [N, C, spatial...] input");
  Shape out{x.shape[0], x.shape[1]};
  for (std::size_t d = 2; d < x.shape.size(); ++d) out.push_back(1);
  OnnxTensor o = make(DType::f32, out, x.has_data);
  if (!x.has_data) return {o};
  const std::int64_t rows = x.shape[0] * x.shape[1], inner = numel(x.shape) / std::max<std::int64_t>(1, rows);
  for (std::int64_t r = 0; r < rows; ++r) {
    double s = 0.0;
    for (std::int64_t k = 0; k < inner; ++k) s += x.f[r * inner + k];
    o.f[r] = static_cast<float>(s / double(inner));
  }
  return {o};
}

// Pad, mode constant only; pads from the attribute (opset < 11) or the second input (11+).
std::vector<OnnxTensor> pad(const Call& c) {
  const OnnxTensor& x = c.input(0);
  const std::string mode = c.n.attr_string("mode", "constant");
  if (mode != "constant") c.unsupported("Pad mode '" + mode + "' is not supported (constant only)");
  const std::int64_t rank = static_cast<std::int64_t>(x.shape.size());
  Shape pads;
  float value = 0.0f;
  std::int64_t ivalue = 0;  // the value for integer tensors, exact
  if (c.ec.opset < 11) {
    const auto* a = c.n.attr_ints("pads");
    if (!a) c.fail("missing pads attribute");
    pads = *a;
    value = c.n.attr_float("value", 0.0f);
    if (x.dtype != DType::f32) {
      if (!float_fits(x.dtype, value)) c.fail("value " + std::to_string(value) + " is out of the range of " + dtype_name(x.dtype));
      ivalue = static_cast<std::int64_t>(value);
    }
  } else {
    pads = c.ints(1, "pads");
    if (const OnnxTensor* v = c.opt(2)) {
      if (!v->has_data || numel(v->shape) != 1) c.fail("constant_value must be a known scalar");
      if ((v->dtype == DType::f32) != (x.dtype == DType::f32))
        c.fail(std::string("constant_value is ") + dtype_name(v->dtype) + ", the input " + dtype_name(x.dtype));
      value = static_cast<float>(v->as_double(0));
      ivalue = v->dtype == DType::f32 ? 0 : v->i[0];
    }
    if (c.opt(3)) c.unsupported("Pad with an axes input is not supported");
  }
  if (static_cast<std::int64_t>(pads.size()) != 2 * rank) c.fail("pads has " + std::to_string(pads.size()) + " values for rank " + std::to_string(rank));
  Shape out(x.shape);
  for (std::int64_t d = 0; d < rank; ++d) {
    if (pads[d] < 0 || pads[d + rank] < 0) c.unsupported("negative pads (cropping) are not supported");
    if (!add_ok(out[d], pads[d], &out[d]) || !add_ok(out[d], pads[d + rank], &out[d]))
      c.fail("pads " + shape_str(pads) + " on " + shape_str(x.shape) + ": a padded dimension overflows int64");
  }
  OnnxTensor o = make(x.dtype, out, x.has_data);
  if (!x.has_data) return {o};
  const bool f = x.dtype == DType::f32;
  if (f) std::fill(o.f.begin(), o.f.end(), value);
  else std::fill(o.i.begin(), o.i.end(), ivalue);
  const Shape ost = strides_of(out);
  std::int64_t off = 0;
  for (std::int64_t d = 0; d < rank; ++d) off += pads[d] * ost[d];
  for_each_strided<1>(x.shape, {ost}, {off}, [&](std::int64_t k, const std::array<std::int64_t, 1>& idx) {
    if (f) o.f[idx[0]] = x.f[k];
    else o.i[idx[0]] = x.i[k];
  });
  return {o};
}

// ---------------------------------------------------------------------------------------------------------
// Normalisation / reductions
std::vector<OnnxTensor> softmax(const Call& c) {
  const OnnxTensor& x = c.input(0);
  if (x.dtype != DType::f32) c.fail("Softmax needs a float input");
  const std::int64_t rank = static_cast<std::int64_t>(x.shape.size());
  if (rank == 0) c.fail("Softmax of a scalar");
  const bool legacy = c.ec.opset < 13;  // before 13: input coerced to 2-D at `axis`, normalised over [axis:]
  const std::int64_t ax = c.axis(c.n.attr_int("axis", legacy ? 1 : -1), rank);
  OnnxTensor o = make(DType::f32, x.shape, x.has_data);
  if (!x.has_data) return {o};
  std::int64_t outer = 1, len = 1, inner = 1;
  for (std::int64_t d = 0; d < ax; ++d) outer *= x.shape[d];
  if (legacy) {
    for (std::int64_t d = ax; d < rank; ++d) len *= x.shape[d];
  } else {
    len = x.shape[ax];
    for (std::int64_t d = ax + 1; d < rank; ++d) inner *= x.shape[d];
  }
  for (std::int64_t a = 0; a < outer; ++a)
    for (std::int64_t b = 0; b < inner; ++b) {
      const float* src = x.f.data() + a * len * inner + b;
      float* dst = o.f.data() + a * len * inner + b;
      float mx = -std::numeric_limits<float>::infinity();
      for (std::int64_t k = 0; k < len; ++k) mx = std::max(mx, src[k * inner]);
      double sum = 0.0;
      for (std::int64_t k = 0; k < len; ++k) {
        const float e = std::exp(src[k * inner] - mx);
        dst[k * inner] = e;
        sum += e;
      }
      const float inv = static_cast<float>(1.0 / sum);
      for (std::int64_t k = 0; k < len; ++k) dst[k * inner] *= inv;
    }
  return {o};
}

std::vector<OnnxTensor> reduce_mean(const Call& c) {
  const OnnxTensor& x = c.input(0);
  if (x.dtype != DType::f32) c.fail("ReduceMean needs a float input");
  const std::int64_t rank = static_cast<std::int64_t>(x.shape.size());
  std::vector<std::int64_t> axes;
  bool have_axes = false;
  if (c.ec.opset >= 18) {
    if (c.opt(1)) {
      axes = c.ints(1, "axes");
      have_axes = true;
    }
    if (!have_axes || axes.empty()) {
      if (c.n.attr_int("noop_with_empty_axes", 0) != 0) return {*c.in[0]};
    }
  } else if (const auto* a = c.n.attr_ints("axes")) {
    axes = *a;
    have_axes = true;
  }
  std::vector<bool> red(rank, false);
  if (!have_axes || axes.empty()) {
    std::fill(red.begin(), red.end(), true);
  } else {
    for (std::int64_t a : axes) red[c.axis(a, rank)] = true;
  }
  const bool keep = c.n.attr_int("keepdims", 1) != 0;
  Shape kshape(x.shape), out;
  for (std::int64_t d = 0; d < rank; ++d) {
    if (red[d]) kshape[d] = 1;
    if (!red[d] || keep) out.push_back(kshape[d]);
  }
  OnnxTensor o = make(DType::f32, out, x.has_data);
  if (!x.has_data) return {o};
  const std::int64_t count = numel(x.shape) / std::max<std::int64_t>(1, numel(kshape));
  std::vector<double> acc(static_cast<std::size_t>(numel(kshape)), 0.0);
  // Fast path: reduce over the trailing axes only.
  std::int64_t first_red = rank;
  while (first_red > 0 && red[first_red - 1]) --first_red;
  bool trailing = true;
  for (std::int64_t d = 0; d < first_red; ++d) trailing = trailing && !red[d];
  if (trailing) {
    const std::int64_t groups = numel(kshape);
    for (std::int64_t g = 0; g < groups; ++g) {
      double s = 0.0;
      const float* p = x.f.data() + g * count;
      for (std::int64_t k = 0; k < count; ++k) s += p[k];
      acc[g] = s;
    }
  } else {
    for_each_strided<1>(x.shape, {bcast_strides(kshape, x.shape)}, {0},
                        [&](std::int64_t k, const std::array<std::int64_t, 1>& idx) { acc[idx[0]] += x.f[k]; });
  }
  for (std::size_t g = 0; g < acc.size(); ++g) o.f[g] = count ? static_cast<float>(acc[g] / count) : NAN;
  return {o};
}

// Expands a float tensor to `target` (unidirectional broadcast); used for LayerNormalization scale/bias.
std::vector<float> expand_float(const Call& c, const OnnxTensor& t, const Shape& target, const char* what) {
  Shape bs;
  try {
    bs = broadcast_shapes(t.shape, target);
  } catch (const std::invalid_argument&) {
  }
  if (bs != target) c.fail(std::string(what) + " " + shape_str(t.shape) + " does not broadcast to " + shape_str(target));
  if (!t.has_data) return {};
  std::vector<float> out(static_cast<std::size_t>(numel(target)));
  for_each_strided<1>(target, {bcast_strides(t.shape, target)}, {0},
                      [&](std::int64_t k, const std::array<std::int64_t, 1>& idx) { out[k] = t.f[idx[0]]; });
  return out;
}

std::vector<OnnxTensor> layer_norm(const Call& c) {
  const OnnxTensor& x = c.input(0);
  const OnnxTensor& scale = c.input(1);
  const OnnxTensor* bias = c.opt(2);
  if (x.dtype != DType::f32 || scale.dtype != DType::f32 || (bias && bias->dtype != DType::f32))
    c.fail("LayerNormalization needs float tensors");
  const std::int64_t rank = static_cast<std::int64_t>(x.shape.size());
  const std::int64_t ax = c.axis(c.n.attr_int("axis", -1), rank);
  const float eps = c.n.attr_float("epsilon", 1e-5f);
  const Shape norm_shape(x.shape.begin() + ax, x.shape.end());
  Shape stat_shape(x.shape);
  for (std::int64_t d = ax; d < rank; ++d) stat_shape[d] = 1;
  const bool data = x.has_data && scale.has_data && (!bias || bias->has_data);
  std::vector<OnnxTensor> outs(c.n.outputs.size());
  outs[0] = make(DType::f32, x.shape, data);
  if (outs.size() > 1) outs[1] = make(DType::f32, stat_shape, data);
  if (outs.size() > 2) outs[2] = make(DType::f32, stat_shape, data);
  std::vector<float> g = expand_float(c, scale, norm_shape, "Scale");
  std::vector<float> bv = bias ? expand_float(c, *bias, norm_shape, "B") : std::vector<float>(g.size(), 0.0f);
  if (!data) return outs;
  const std::int64_t len = numel(norm_shape), groups = numel(stat_shape);
  for (std::int64_t r = 0; r < groups; ++r) {
    const float* p = x.f.data() + r * len;
    float* y = outs[0].f.data() + r * len;
    double s = 0.0;
    for (std::int64_t k = 0; k < len; ++k) s += p[k];
    const double mean = s / len;
    double v = 0.0;
    for (std::int64_t k = 0; k < len; ++k) v += (p[k] - mean) * (p[k] - mean);
    const double inv = 1.0 / std::sqrt(v / len + static_cast<double>(eps));
    for (std::int64_t k = 0; k < len; ++k) y[k] = static_cast<float>((p[k] - mean) * inv) * g[k] + bv[k];
    if (outs.size() > 1 && !c.n.outputs[1].empty()) outs[1].f[r] = static_cast<float>(mean);
    if (outs.size() > 2 && !c.n.outputs[2].empty()) outs[2].f[r] = static_cast<float>(inv);
  }
  return outs;
}

// ---------------------------------------------------------------------------------------------------------
// Shape / layout ops
std::vector<OnnxTensor> reshape(const Call& c) {
  const OnnxTensor& x = c.input(0);
  std::vector<std::int64_t> spec;
  if (c.count() >= 2 && c.opt(1)) spec = c.ints(1, "shape");
  else if (const auto* s = c.n.attr_ints("shape")) spec = *s;
  else c.fail("no target shape");
  const bool allowzero = c.n.attr_int("allowzero", 0) != 0;
  Shape out(spec.size());
  std::int64_t known = 1, infer = -1;
  for (std::size_t d = 0; d < spec.size(); ++d) {
    std::int64_t v = spec[d];
    if (v == 0 && !allowzero) {
      if (d >= x.shape.size()) c.fail("shape " + shape_str(spec) + " copies dimension " + std::to_string(d) + " of a rank-" + std::to_string(x.shape.size()) + " input");
      v = x.shape[d];
    }
    if (v == -1) {
      if (infer >= 0) c.fail("shape " + shape_str(spec) + " has more than one -1");
      infer = static_cast<std::int64_t>(d);
      continue;
    }
    if (v < 0) c.fail("invalid shape " + shape_str(spec));
    // Checked: the target shape comes from the file (found by tests/fuzz/fuzz_onnx.cpp).
    if (v != 0 && known > std::numeric_limits<std::int64_t>::max() / v)
      c.fail("shape " + shape_str(spec) + " has too many elements");
    out[d] = v;
    known *= v;
  }
  const std::int64_t total = numel(x.shape);
  if (infer >= 0) {
    if (known == 0 || total % known != 0) c.fail("cannot reshape " + shape_str(x.shape) + " to " + shape_str(spec));
    out[infer] = total / known;
  } else if (known != total) {
    c.fail("cannot reshape " + shape_str(x.shape) + " to " + shape_str(spec));
  }
  return {reshaped(x, out)};
}

std::vector<OnnxTensor> flatten(const Call& c) {
  const OnnxTensor& x = c.input(0);
  const std::int64_t rank = static_cast<std::int64_t>(x.shape.size());
  std::int64_t ax = c.n.attr_int("axis", 1);
  if (ax < 0) ax += rank;
  if (ax < 0 || ax > rank) c.fail("axis out of range");
  std::int64_t a = 1, b = 1;
  for (std::int64_t d = 0; d < rank; ++d) (d < ax ? a : b) *= x.shape[d];
  return {reshaped(x, {a, b})};
}

std::vector<std::int64_t> axes_arg(const Call& c, std::size_t input_k, bool* present) {
  *present = false;
  if (c.ec.opset >= 13) {
    if (c.opt(input_k)) {
      *present = true;
      return c.ints(input_k, "axes");
    }
    return {};
  }
  if (const auto* a = c.n.attr_ints("axes")) {
    *present = true;
    return *a;
  }
  return {};
}

std::vector<OnnxTensor> squeeze(const Call& c) {
  const OnnxTensor& x = c.input(0);
  const std::int64_t rank = static_cast<std::int64_t>(x.shape.size());
  bool present = false;
  std::vector<std::int64_t> axes = axes_arg(c, 1, &present);
  std::vector<bool> drop(rank, false);
  if (!present) {
    for (std::int64_t d = 0; d < rank; ++d) drop[d] = x.shape[d] == 1;
  } else {
    for (std::int64_t a : axes) {
      const std::int64_t d = c.axis(a, rank);
      if (x.shape[d] != 1) c.fail("cannot squeeze axis " + std::to_string(a) + " of " + shape_str(x.shape));
      drop[d] = true;
    }
  }
  Shape out;
  for (std::int64_t d = 0; d < rank; ++d)
    if (!drop[d]) out.push_back(x.shape[d]);
  return {reshaped(x, out)};
}

std::vector<OnnxTensor> unsqueeze(const Call& c) {
  const OnnxTensor& x = c.input(0);
  bool present = false;
  std::vector<std::int64_t> axes = axes_arg(c, 1, &present);
  if (!present) c.fail("no axes given");
  const std::int64_t rank = static_cast<std::int64_t>(x.shape.size() + axes.size());
  std::vector<bool> ins(rank, false);
  for (std::int64_t a : axes) {
    const std::int64_t d = c.axis(a, rank);
    if (ins[d]) c.fail("axis " + std::to_string(a) + " given twice");
    ins[d] = true;
  }
  Shape out;
  std::size_t k = 0;
  for (std::int64_t d = 0; d < rank; ++d) out.push_back(ins[d] ? 1 : x.shape[k++]);
  return {reshaped(x, out)};
}

std::vector<OnnxTensor> transpose(const Call& c) {
  const OnnxTensor& x = c.input(0);
  const std::size_t rank = x.shape.size();
  std::vector<std::int64_t> perm;
  if (const auto* p = c.n.attr_ints("perm")) perm = *p;
  else for (std::size_t d = 0; d < rank; ++d) perm.push_back(static_cast<std::int64_t>(rank - 1 - d));
  if (perm.size() != rank) c.fail("perm " + shape_str(perm) + " does not match rank " + std::to_string(rank));
  std::vector<bool> seen(rank, false);
  for (std::int64_t p : perm) {
    if (p < 0 || p >= static_cast<std::int64_t>(rank) || seen[p]) c.fail("invalid perm " + shape_str(perm));
    seen[p] = true;
  }
  const Shape st = strides_of(x.shape);
  Shape out(rank), ost(rank);
  for (std::size_t d = 0; d < rank; ++d) {
    out[d] = x.shape[perm[d]];
    ost[d] = st[perm[d]];
  }
  return {strided_copy(x, out, ost, 0)};
}

std::vector<OnnxTensor> gather(const Call& c) {
  const OnnxTensor& x = c.input(0);
  const OnnxTensor& idx_t = c.input(1);
  const std::int64_t rank = static_cast<std::int64_t>(x.shape.size());
  if (rank == 0) c.fail("Gather on a scalar");
  const std::int64_t ax = c.axis(c.n.attr_int("axis", 0), rank);
  std::vector<std::int64_t> idx = c.ints(1, "indices");
  const std::int64_t dim = x.shape[ax];
  for (std::size_t k = 0; k < idx.size(); ++k) {
    std::int64_t& v = idx[k];
    if (v < -dim || v >= dim)
      c.fail("indices '" + c.n.inputs[1] + "' hold " + std::to_string(v) + " at element " + std::to_string(k) +
             ": index out of range, expected values in [" + std::to_string(-dim) + ", " + std::to_string(dim - 1) +
             "] for an axis of size " + std::to_string(dim));
    if (v < 0) v += dim;
  }
  Shape out(x.shape.begin(), x.shape.begin() + ax);
  out.insert(out.end(), idx_t.shape.begin(), idx_t.shape.end());
  out.insert(out.end(), x.shape.begin() + ax + 1, x.shape.end());
  std::int64_t outer = 1, inner = 1;
  for (std::int64_t d = 0; d < ax; ++d) outer *= x.shape[d];
  for (std::int64_t d = ax + 1; d < rank; ++d) inner *= x.shape[d];
  const std::int64_t nidx = static_cast<std::int64_t>(idx.size());
  return {gather_elements(x, out, [&](auto&& put) {
    std::int64_t o = 0;
    for (std::int64_t a = 0; a < outer; ++a)
      for (std::int64_t k = 0; k < nidx; ++k)
        for (std::int64_t b = 0; b < inner; ++b) put(o++, (a * dim + idx[k]) * inner + b);
  })};
}

struct SliceDim {
  std::int64_t start, step, len;
};

std::vector<OnnxTensor> slice(const Call& c) {
  const OnnxTensor& x = c.input(0);
  const std::int64_t rank = static_cast<std::int64_t>(x.shape.size());
  std::vector<std::int64_t> starts, ends, axes, steps;
  if (c.ec.opset < 10) {
    const auto* s = c.n.attr_ints("starts");
    const auto* e = c.n.attr_ints("ends");
    if (!s || !e) c.fail("starts/ends attributes missing");
    starts = *s;
    ends = *e;
    if (const auto* a = c.n.attr_ints("axes")) axes = *a;
  } else {
    starts = c.ints(1, "starts");
    ends = c.ints(2, "ends");
    if (c.opt(3)) axes = c.ints(3, "axes");
    if (c.opt(4)) steps = c.ints(4, "steps");
  }
  if (ends.size() != starts.size()) c.fail("starts and ends differ in length");
  if (axes.empty())
    for (std::size_t k = 0; k < starts.size(); ++k) axes.push_back(static_cast<std::int64_t>(k));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (axes.size() != starts.size() || steps.size() != starts.size()) c.fail("starts/ends/axes/steps differ in length");
  std::vector<SliceDim> dims(rank);
  for (std::int64_t d = 0; d < rank; ++d) dims[d] = {0, 1, x.shape[d]};
  std::vector<bool> seen(rank, false);
  for (std::size_t k = 0; k < starts.size(); ++k) {
    const std::int64_t d = c.axis(axes[k], rank);
    if (seen[d]) c.fail("axis " + std::to_string(axes[k]) + " sliced twice");
    seen[d] = true;
    const std::int64_t n = x.shape[d];
    std::int64_t step = steps[k];
    if (step == 0) c.fail("step 0");
    std::int64_t s = starts[k], e = ends[k];
    if (s < 0) s += n;  // no overflow: a negative value plus a dimension
    if (e < 0) e += n;
    // len = ceil(|e - s| / |step|) once start and end are clamped (ONNX's rules); |e - s| <= n + 1,
    // and |step| is taken in unsigned arithmetic (step may be INT64_MIN).
    const std::uint64_t mag = step > 0 ? static_cast<std::uint64_t>(step) : std::uint64_t(0) - static_cast<std::uint64_t>(step);
    std::uint64_t span = 0;
    if (step > 0) {
      s = std::clamp<std::int64_t>(s, 0, n);
      e = std::clamp<std::int64_t>(e, 0, n);
      if (e > s) span = static_cast<std::uint64_t>(e - s);
    } else if (n == 0) {
      s = 0;  // nothing to take (and no valid index to clamp to)
    } else {
      s = std::clamp<std::int64_t>(s, 0, n - 1);
      e = std::clamp<std::int64_t>(e, -1, n - 1);
      if (s > e) span = static_cast<std::uint64_t>(s - e);
    }
    const std::int64_t len = static_cast<std::int64_t>(span / mag + (span % mag != 0));
    if (len <= 1) step = 1;  // one element or none: the step is never taken, and must not scale a stride
    dims[d] = {s, step, len};
  }
  const Shape st = strides_of(x.shape);
  Shape out(rank), ost(rank);
  std::int64_t offset = 0;
  for (std::int64_t d = 0; d < rank; ++d) {
    out[d] = dims[d].len;
    ost[d] = dims[d].step * st[d];
    offset += dims[d].start * st[d];
  }
  return {strided_copy(x, out, ost, offset)};
}

std::vector<OnnxTensor> split(const Call& c) {
  const OnnxTensor& x = c.input(0);
  const std::int64_t rank = static_cast<std::int64_t>(x.shape.size());
  const std::int64_t ax = c.axis(c.n.attr_int("axis", 0), rank);
  const std::int64_t nout = static_cast<std::int64_t>(c.n.outputs.size());
  if (nout < 1) c.fail("Split without outputs");
  const std::int64_t dim = x.shape[ax];
  std::vector<std::int64_t> sizes;
  if (c.ec.opset >= 13) {
    if (c.opt(1)) sizes = c.ints(1, "split");
  } else if (const auto* s = c.n.attr_ints("split")) {
    sizes = *s;
  }
  if (sizes.empty()) {
    std::int64_t parts = nout;
    if (c.ec.opset >= 18 && c.n.has_attr("num_outputs")) parts = c.n.attr_int("num_outputs", nout);
    if (parts != nout) c.fail("num_outputs does not match the number of outputs");
    if (c.ec.opset >= 18) {
      const std::int64_t chunk = (dim + parts - 1) / parts;
      for (std::int64_t k = 0; k < parts; ++k) sizes.push_back(std::max<std::int64_t>(0, std::min(chunk, dim - k * chunk)));
    } else {
      if (dim % parts != 0) c.fail("axis of size " + std::to_string(dim) + " does not split into " + std::to_string(parts) + " equal parts");
      sizes.assign(parts, dim / parts);
    }
  }
  if (static_cast<std::int64_t>(sizes.size()) != nout) c.fail("split sizes " + shape_str(sizes) + " do not match " + std::to_string(nout) + " outputs");
  std::int64_t total = 0;  // each size is <= dim once it passes, so the sum cannot overflow
  for (std::int64_t v : sizes) {
    if (v < 0) c.fail("split sizes " + shape_str(sizes) + " hold a negative size");
    if (v > dim - total) c.fail("split sizes " + shape_str(sizes) + " do not add up to " + std::to_string(dim));
    total += v;
  }
  if (total != dim) c.fail("split sizes " + shape_str(sizes) + " do not add up to " + std::to_string(dim));
  const Shape st = strides_of(x.shape);
  std::vector<OnnxTensor> outs;
  std::int64_t start = 0;
  for (std::int64_t k = 0; k < nout; ++k) {
    Shape out = x.shape;
    out[ax] = sizes[k];
    outs.push_back(strided_copy(x, out, st, start * st[ax]));
    start += sizes[k];
  }
  return outs;
}

std::vector<OnnxTensor> concat(const Call& c) {
  if (c.count() == 0) c.fail("no inputs");
  const OnnxTensor& first = c.input(0);
  const std::int64_t rank = static_cast<std::int64_t>(first.shape.size());
  if (rank == 0) c.fail("Concat of scalars");
  if (!c.n.has_attr("axis")) c.fail("attribute 'axis' missing");
  const std::int64_t ax = c.axis(c.n.attr_int("axis", 0), rank);
  Shape out = first.shape;
  out[ax] = 0;
  bool data = true;
  for (std::size_t k = 0; k < c.count(); ++k) {
    const OnnxTensor& t = c.input(k);
    if (t.dtype != first.dtype) c.fail("inputs have different types");
    if (static_cast<std::int64_t>(t.shape.size()) != rank) c.fail("inputs have different ranks");
    for (std::int64_t d = 0; d < rank; ++d)
      if (d != ax && t.shape[d] != first.shape[d])
        c.fail("input shapes " + shape_str(first.shape) + " and " + shape_str(t.shape) + " differ off the concat axis");
    if (!add_ok(out[ax], t.shape[ax], &out[ax])) c.fail("the concatenated axis has more than 2^63 elements");
    data = data && t.has_data;
  }
  OnnxTensor o = make(first.dtype, out, data);
  if (!data) return {o};
  std::int64_t outer = 1, inner = 1;
  for (std::int64_t d = 0; d < ax; ++d) outer *= out[d];
  for (std::int64_t d = ax + 1; d < rank; ++d) inner *= out[d];
  std::int64_t pos = 0;
  for (std::size_t k = 0; k < c.count(); ++k) {
    const OnnxTensor& t = c.input(k);
    const std::int64_t chunk = t.shape[ax] * inner;
    for (std::int64_t a = 0; a < outer; ++a) {
      const std::int64_t dst = a * out[ax] * inner + pos * inner;
      if (o.dtype == DType::f32)
        std::copy_n(t.f.begin() + a * chunk, chunk, o.f.begin() + dst);
      else
        std::copy_n(t.i.begin() + a * chunk, chunk, o.i.begin() + dst);
    }
    pos += t.shape[ax];
  }
  return {o};
}

std::vector<OnnxTensor> expand(const Call& c) {
  const OnnxTensor& x = c.input(0);
  const std::vector<std::int64_t> spec = c.ints(1, "shape");
  Shape out;
  try {
    out = broadcast_shapes(x.shape, spec);
  } catch (const std::invalid_argument&) {
    c.fail("cannot expand " + shape_str(x.shape) + " to " + shape_str(spec));
  }
  return {strided_copy(x, out, bcast_strides(x.shape, out), 0)};
}

std::vector<OnnxTensor> shape_op(const Call& c) {
  const OnnxTensor& x = c.input(0);
  const std::int64_t rank = static_cast<std::int64_t>(x.shape.size());
  std::int64_t s = 0, e = rank;
  if (c.ec.opset >= 15) {
    s = c.n.attr_int("start", 0);
    e = c.n.attr_int("end", rank);
    if (s < 0) s += rank;
    if (e < 0) e += rank;
    s = std::clamp<std::int64_t>(s, 0, rank);
    e = std::clamp<std::int64_t>(e, 0, rank);
  }
  OnnxTensor o;
  o.dtype = DType::i64;
  for (std::int64_t d = s; d < e; ++d) o.i.push_back(x.shape[d]);
  o.shape = {static_cast<std::int64_t>(o.i.size())};
  return {o};
}

// ---------------------------------------------------------------------------------------------------------
// Constants and casts
DType cast_target(const Call& c, std::int64_t to) {
  switch (to) {
    case 1: return DType::f32;
    case 11: return DType::f32;  // double: computed in float32 (documented limit)
    case 6: return DType::i32;
    case 7: return DType::i64;
    case 9: return DType::boolean;
    case 10: c.unsupported("Cast to float16 is not supported");
    case 16: c.unsupported("Cast to bfloat16 is not supported");
    default: c.unsupported("Cast to ONNX data type " + std::to_string(to) + " is not supported (float, double, int32, int64, bool are)");
  }
}

std::vector<OnnxTensor> cast(const Call& c) {
  const OnnxTensor& x = c.input(0);
  if (!c.n.has_attr("to")) c.fail("attribute 'to' missing");
  const DType to = cast_target(c, c.n.attr_int("to", 1));
  OnnxTensor o = make(to, x.shape, x.has_data);
  if (!x.has_data) return {o};
  const std::int64_t n = x.numel();
  for (std::int64_t k = 0; k < n; ++k) {
    if (to == DType::f32) {
      o.f[k] = x.dtype == DType::f32 ? x.f[k] : static_cast<float>(x.i[k]);
    } else if (to == DType::boolean) {
      o.i[k] = x.dtype == DType::f32 ? (x.f[k] != 0.0f) : (x.i[k] != 0);
    } else if (x.dtype == DType::f32) {
      if (!std::isfinite(x.f[k])) c.fail("Cast of a non-finite value to an integer");
      // Out of range, the conversion is undefined behaviour in C++ (and ONNX Runtime returns whatever
      // the instruction gives): refused.
      if (!float_fits(to, x.f[k]))
        c.fail("Cast of " + std::to_string(x.f[k]) + " (element " + std::to_string(k) + ") is out of the range of " + dtype_name(to));
      o.i[k] = static_cast<std::int64_t>(x.f[k]);  // truncation toward zero
    } else {
      o.i[k] = to == DType::i32 ? static_cast<std::int64_t>(static_cast<std::int32_t>(x.i[k])) : x.i[k];
    }
  }
  return {o};
}

std::vector<OnnxTensor> constant(const Call& c) {
  const OnnxNode& n = c.n;
  OnnxTensor o;
  if (n.has_attr("value")) {
    const auto& a = n.attrs.at("value");
    if (a.kind != OnnxAttribute::Kind::t || !a.t) c.fail("attribute 'value' is not a tensor");
    o = *a.t;
  } else if (n.has_attr("value_float")) {
    o.dtype = DType::f32;
    o.f = {n.attr_float("value_float", 0.0f)};
  } else if (const auto* fs = n.attr_floats("value_floats")) {
    o.dtype = DType::f32;
    o.f = *fs;
    o.shape = {static_cast<std::int64_t>(fs->size())};
  } else if (n.has_attr("value_int")) {
    o.dtype = DType::i64;
    o.i = {n.attr_int("value_int", 0)};
  } else if (const auto* is = n.attr_ints("value_ints")) {
    o.dtype = DType::i64;
    o.i = *is;
    o.shape = {static_cast<std::int64_t>(is->size())};
  } else if (n.has_attr("sparse_value")) {
    c.unsupported("sparse constants are not supported");
  } else {
    c.fail("no supported value attribute (value, value_float(s), value_int(s))");
  }
  return {o};
}

std::vector<OnnxTensor> constant_of_shape(const Call& c) {
  const std::vector<std::int64_t> spec = c.ints(0, "shape");
  for (std::int64_t v : spec)
    if (v < 0) c.fail("negative dimension in " + shape_str(spec));
  OnnxTensor fill;
  fill.dtype = DType::f32;
  fill.f = {0.0f};
  if (c.n.has_attr("value")) {
    const auto& a = c.n.attrs.at("value");
    if (a.kind != OnnxAttribute::Kind::t || !a.t || a.t->numel() != 1) c.fail("attribute 'value' must be a one-element tensor");
    fill = *a.t;
  }
  OnnxTensor o = make(fill.dtype, spec, true);
  if (o.dtype == DType::f32) std::fill(o.f.begin(), o.f.end(), fill.f[0]);
  else std::fill(o.i.begin(), o.i.end(), fill.i[0]);
  return {o};
}

std::vector<OnnxTensor> range(const Call& c) {
  const OnnxTensor& s = c.input(0);
  const OnnxTensor& l = c.input(1);
  const OnnxTensor& d = c.input(2);
  if (!s.has_data || !l.has_data || !d.has_data) c.fail("Range bounds depend on the image; only static shapes are supported");
  if (s.numel() != 1 || l.numel() != 1 || d.numel() != 1) c.fail("Range inputs must be scalars");
  if (s.dtype != l.dtype || s.dtype != d.dtype) c.fail("Range inputs have different types");
  if (s.dtype == DType::boolean) c.fail("Range of bool values");
  auto val = [](const OnnxTensor& t) { return t.dtype == DType::f32 ? std::to_string(t.f[0]) : std::to_string(t.i[0]); };
  auto too_long = [&](const std::string& count) {
    c.fail("Range(" + val(s) + ", " + val(l) + ", " + val(d) + ") would have " + count + " elements; expected at most " +
           std::to_string(max_tensor_elements));
  };
  if (s.dtype == DType::f32) {
    // max(ceil((limit - start) / delta), 0) elements, start + k * delta (the spec's formula).
    const double start = s.f[0], limit = l.f[0], delta = d.f[0];
    if (delta == 0.0) c.fail("delta 0");
    const double q = std::ceil((limit - start) / delta);
    if (std::isnan(q)) c.fail("Range bounds are not finite: start " + std::to_string(start) + ", limit " + std::to_string(limit) + ", delta " + std::to_string(delta));
    if (q > static_cast<double>(max_tensor_elements)) too_long(std::to_string(q));
    const std::int64_t n = q > 0.0 ? static_cast<std::int64_t>(q) : 0;
    OnnxTensor o = make(DType::f32, {n}, true);
    for (std::int64_t k = 0; k < n; ++k) o.f[k] = static_cast<float>(start + static_cast<double>(k) * delta);
    return {o};
  }
  // Integers: the count ceil(|limit - start| / |delta|) in unsigned 64-bit arithmetic, where
  // limit - start (up to 2^64 - 1) and -delta (for INT64_MIN) are exact.
  const std::int64_t start = s.i[0], limit = l.i[0], delta = d.i[0];
  if (delta == 0) c.fail("delta 0");
  std::uint64_t n = 0;
  if (delta > 0 ? limit > start : limit < start) {
    const std::uint64_t span = delta > 0 ? static_cast<std::uint64_t>(limit) - static_cast<std::uint64_t>(start)
                                         : static_cast<std::uint64_t>(start) - static_cast<std::uint64_t>(limit);
    const std::uint64_t step = delta > 0 ? static_cast<std::uint64_t>(delta) : std::uint64_t(0) - static_cast<std::uint64_t>(delta);
    n = span / step + (span % step != 0);
  }
  if (n > static_cast<std::uint64_t>(max_tensor_elements)) too_long(std::to_string(n));
  OnnxTensor o = make(s.dtype, {static_cast<std::int64_t>(n)}, true);
  // Every element lies between start and limit, so stepping from one to the next cannot overflow.
  std::int64_t v = start;
  for (std::uint64_t k = 0; k < n; ++k) {
    o.i[k] = v;
    if (k + 1 < n && !add_ok(v, delta, &v)) overflow(c, "Range element " + std::to_string(v) + " + " + std::to_string(delta), s.dtype);
  }
  return {o};
}

std::vector<OnnxTensor> dropout(const Call& c) {
  const OnnxTensor& x = c.input(0);
  if (const OnnxTensor* tm = c.opt(2)) {
    if (!tm->has_data) c.fail("training_mode depends on the image");
    if (tm->numel() != 1 || tm->as_double(0) != 0.0) c.unsupported("Dropout in training mode is not supported");
  }
  if (c.ec.opset < 7 && c.n.attr_int("is_test", 0) == 0) c.unsupported("Dropout in training mode (is_test=0) is not supported");
  std::vector<OnnxTensor> outs{x};
  if (c.n.outputs.size() > 1) {
    OnnxTensor m = make(DType::boolean, x.shape, true);
    std::fill(m.i.begin(), m.i.end(), 1);
    outs.push_back(m);
  }
  return outs;
}

}  // namespace

// -----------------------------------------------------------------------------------------------------------
std::int64_t max_tensor_elements = std::int64_t(1) << 28;

// The product of the non-zero dimensions is bounded, not only the element count: an empty tensor of
// [0, 2^62, 2^62] would otherwise pass, and every product of some of its dimensions that an op
// computes (outer and inner sizes, strides, a flattened axis) could overflow.
std::int64_t shape_numel(const std::vector<std::int64_t>& s) {
  for (std::int64_t d : s)
    if (d < 0) throw ShapeError("shape " + shape_str(s) + " has a negative dimension");
  const bool empty = std::find(s.begin(), s.end(), 0) != s.end();
  std::int64_t n = 1;  // the product of the non-zero dimensions
  for (std::int64_t d : s) {
    if (d == 0) continue;
    if (n > max_tensor_elements / d)
      throw ShapeError("shape " + shape_str(s) + (empty ? " is empty, but its other dimensions multiply to more than "
                                                        : " has more than ") +
                       std::to_string(max_tensor_elements) + (empty ? "" : " elements") + " (the limit for one tensor)");
    n *= d;
  }
  return empty ? 0 : n;
}

std::vector<std::int64_t> broadcast_shapes(const std::vector<std::int64_t>& a, const std::vector<std::int64_t>& b) {
  const std::size_t r = std::max(a.size(), b.size());
  std::vector<std::int64_t> out(r);
  for (std::size_t k = 0; k < r; ++k) {
    const std::int64_t da = k < r - a.size() ? 1 : a[k - (r - a.size())];
    const std::int64_t db = k < r - b.size() ? 1 : b[k - (r - b.size())];
    if (da == db || db == 1) out[k] = da;
    else if (da == 1) out[k] = db;
    else throw std::invalid_argument("shapes do not broadcast");
  }
  return out;
}

bool op_supported(const std::string& op) {
  return std::find(kSupported.begin(), kSupported.end(), op) != kSupported.end();
}

const std::vector<std::string>& supported_op_list() { return kSupported; }

namespace {
std::vector<OnnxTensor> eval_op_unchecked(const OnnxNode& n, const std::vector<const OnnxTensor*>& inputs,
                                          const EvalContext& ctx) {
  const Call c{n, inputs, ctx};
  const std::string& op = n.op_type;
  std::vector<OnnxTensor> out;
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div" || op == "Pow" || op == "Equal") out = binary(c);
  else if (op == "Sqrt" || op == "Erf" || op == "Relu" || op == "Tanh" || op == "Sigmoid" || op == "Neg" ||
           op == "Exp" || op == "Reciprocal") out = unary(c);
  else if (op == "Where") out = where(c);
  else if (op == "MatMul") out = matmul(c);
  else if (op == "Gemm") out = gemm(c);
  else if (op == "Conv") out = conv(c);
  else if (op == "BatchNormalization") out = batch_norm(c);
  else if (op == "GlobalAveragePool") out = global_avg_pool(c);
  else if (op == "Pad") out = pad(c);
  else if (op == "Softmax") out = softmax(c);
  else if (op == "ReduceMean") out = reduce_mean(c);
  else if (op == "LayerNormalization") out = layer_norm(c);
  else if (op == "Reshape") out = reshape(c);
  else if (op == "Flatten") out = flatten(c);
  else if (op == "Squeeze") out = squeeze(c);
  else if (op == "Unsqueeze") out = unsqueeze(c);
  else if (op == "Transpose") out = transpose(c);
  else if (op == "Gather") out = gather(c);
  else if (op == "Slice") out = slice(c);
  else if (op == "Split") out = split(c);
  else if (op == "Concat") out = concat(c);
  else if (op == "Expand") out = expand(c);
  else if (op == "Shape") out = shape_op(c);
  else if (op == "Cast") out = cast(c);
  else if (op == "Constant") out = constant(c);
  else if (op == "ConstantOfShape") out = constant_of_shape(c);
  else if (op == "Range") out = range(c);
  else if (op == "Identity") out = {c.input(0)};
  else if (op == "Dropout") out = dropout(c);
  else throw PackError(ctx.file, "", "unsupported op '" + op + "' at node '" + (n.name.empty() ? (n.outputs.empty() ? std::string() : n.outputs[0]) : n.name) + "'", unsupported_code);
  if (out.size() < n.outputs.size()) {
    if (op == "LayerNormalization" || op == "Dropout") out.resize(n.outputs.size());
    else c.fail("has " + std::to_string(n.outputs.size()) + " outputs, expected " + std::to_string(out.size()));
  }
  if (out.size() > n.outputs.size()) out.resize(n.outputs.size());
  return out;
}
}  // namespace

// Every tensor an op creates, with or without data, has a size shape_numel accepts: sizes computed
// from shapes never overflow, and a graph cannot ask for more memory than one tensor may hold.
std::vector<OnnxTensor> eval_op(const OnnxNode& n, const std::vector<const OnnxTensor*>& inputs,
                                const EvalContext& ctx) {
  try {
    std::vector<OnnxTensor> out = eval_op_unchecked(n, inputs, ctx);
    for (const OnnxTensor& t : out) shape_numel(t.shape);
    return out;
  } catch (const ShapeError& e) {
    throw PackError(ctx.file, n.label(), e.what());
  } catch (const ValueError& e) {
    throw PackError(ctx.file, n.label(), e.what());
  }
}

}  // namespace vitcc::pack::detail
