#include "vit_recognizer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <queue>
#include <set>
#include <sstream>
#include <unordered_map>

namespace vitcc::pack {
namespace {

using Shape = std::vector<std::int64_t>;

std::int64_t numel(const Shape& s) {
  std::int64_t n = 1;
  for (std::int64_t d : s) n *= d;
  return n;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

bool close(double a, double b, double rtol) { return std::fabs(a - b) <= rtol * std::max(std::fabs(a), std::fabs(b)); }

bool is_movement(const std::string& op) {
  return op == "Reshape" || op == "Transpose" || op == "Flatten" || op == "Squeeze" || op == "Unsqueeze" ||
         op == "Gather" || op == "Split" || op == "Slice";
}

// ---------------------------------------------------------------------------------------------------------
// Macro nodes: one ONNX node, or a recognised idiom covering several.
enum class MKind { raw, layernorm, gelu, linear };

struct MNode {
  MKind kind = MKind::raw;
  int first = -1;  // ONNX node (index into g.nodes()) named in messages
  int last = -1;   // topological position: the ONNX node producing the output
  std::vector<int> covered;
  std::vector<std::string> inputs;   // raw: the ONNX inputs; macros: the data input
  std::vector<std::string> outputs;  // raw: the ONNX outputs; macros: the output
  // layernorm
  std::vector<float> gamma, beta;
  bool has_gamma = false, has_beta = false;
  float eps = 0.0f;
  std::string gamma_src, beta_src;
  // linear: PyTorch layout, weight [out, in]
  std::int64_t in_f = 0, out_f = 0;
  std::vector<float> weight, bias;
  bool has_bias = false;
  std::string weight_src, bias_src;
};

// Traced value: the element indices (into a canonical tensor of `space`) an intermediate holds.
enum class Space { tokens, ln1, qkv, scores, probs, ctx, proj, ls };

struct TV {
  Space space = Space::tokens;
  OnnxTensor map;  // int64, shape = the value's shape (empty data for scores/probs)
  double scale = 1.0;
};

std::string space_name(Space s) {
  switch (s) {
    case Space::tokens: return "the tokens";
    case Space::ln1: return "the normalised tokens";
    case Space::qkv: return "the qkv projection";
    case Space::scores: return "the attention scores q.k^T";
    case Space::probs: return "the attention probabilities";
    case Space::ctx: return "the attention context attn.v";
    case Space::proj: return "the output projection";
    case Space::ls: return "the LayerScale output";
  }
  return "?";
}

OnnxTensor iota(const Shape& shape) {
  OnnxTensor t;
  t.dtype = DType::i64;
  t.shape = shape;
  t.i.resize(static_cast<std::size_t>(numel(shape)));
  std::iota(t.i.begin(), t.i.end(), std::int64_t{0});
  return t;
}

bool is_iota(const OnnxTensor& t) {
  for (std::size_t k = 0; k < t.i.size(); ++k)
    if (t.i[k] != static_cast<std::int64_t>(k)) return false;
  return true;
}

struct BlockParts {
  const MNode* ln1 = nullptr;
  const MNode* qkv = nullptr;       // the (first) projection reading the normalised tokens
  std::int64_t qkv_rows = 0;        // outputs covered so far: 3D fused, or D per separate q/k/v Linear
  std::vector<float> qkv_w, qkv_b;  // [3D, D] / [3D] in the order the projections were found, then canonical
  bool qkv_bias = false;
  std::string qkv_w_src, qkv_b_src;
  const MNode* proj = nullptr;
  std::vector<float> proj_w;  // canonical column order
  std::vector<float> ls1, ls2;
  std::string ls1_src, ls2_src;
  const MNode* ln2 = nullptr;
  const MNode* fc1 = nullptr;
  const MNode* fc2 = nullptr;
  std::int64_t heads = 0;
  double scale = 0.0;
  bool seq_first = false;
};

class Recognizer {
 public:
  explicit Recognizer(const OnnxGraph& g) : g_(g) {}
  VitSpec run();

 private:
  const OnnxGraph& g_;
  std::vector<MNode> m_;
  std::vector<int> owner_;  // ONNX node -> macro index (or -1 while building)
  std::unordered_map<std::string, int> mprod_;
  std::unordered_map<std::string, std::vector<int>> mcons_;
  std::vector<bool> visited_;
  std::int64_t T_ = 0, D_ = 0;

  // ---- messages
  [[noreturn]] void fail(const std::string& where, const std::string& what) const { throw PackError(g_.path(), where, what); }
  const OnnxNode& node(int i) const { return g_.nodes()[static_cast<std::size_t>(i)]; }
  std::string label(int mi) const {
    const MNode& m = m_[static_cast<std::size_t>(mi)];
    const std::string l = node(m.first).label();
    switch (m.kind) {
      case MKind::raw: return l;
      case MKind::layernorm: return "LayerNorm at " + l;
      case MKind::gelu: return "GELU at " + l;
      case MKind::linear: return "Linear at " + l;
    }
    return l;
  }
  std::string value_label(const std::string& v) const { return "value '" + v + "'"; }
  std::string describe_consumers(const std::string& v) const {
    std::string s;
    for (int c : mcons(v)) s += (s.empty() ? "" : ", ") + label(c);
    if (g_.is_graph_output(v)) s += (s.empty() ? "" : ", ") + std::string("the graph output");
    return s.empty() ? "nothing" : s;
  }

  // ---- ONNX-level helpers used while building macros
  int single_onnx_consumer(const std::string& v) const {
    const auto& c = g_.consumers(v);
    if (c.size() != 1 || g_.is_graph_output(v)) return -1;
    return c[0];
  }
  bool scalar_const(const std::string& v, double* value) const {
    const OnnxTensor* t = g_.constant(v);
    if (!t || t->numel() != 1) return false;
    *value = t->as_double(0);
    return true;
  }
  bool scalar_near(const std::string& v, double want, double rtol) const {
    double x;
    return scalar_const(v, &x) && close(x, want, rtol);
  }
  // A constant that only varies along the last axis, as a vector of n values (broadcast if it has one).
  bool row_vector(const std::string& v, std::int64_t n, std::vector<float>* out) const {
    const OnnxTensor* t = g_.constant(v);
    if (!t || t->dtype != DType::f32) return false;
    for (std::size_t d = 0; d + 1 < t->shape.size(); ++d)
      if (t->shape[d] != 1) return false;
    const std::int64_t last = t->shape.empty() ? 1 : t->shape.back();
    if (last != n && last != 1) return false;
    out->assign(static_cast<std::size_t>(n), 0.0f);
    for (std::int64_t k = 0; k < n; ++k) (*out)[k] = t->f[last == 1 ? 0 : k];
    return true;
  }
  std::vector<std::int64_t> reduce_axes(const OnnxNode& n, std::int64_t rank, bool* ok) const {
    std::vector<std::int64_t> axes;
    *ok = true;
    if (g_.opset() >= 18) {
      if (n.inputs.size() > 1 && !n.inputs[1].empty()) {
        const OnnxTensor* t = g_.constant(n.inputs[1]);
        if (!t) { *ok = false; return axes; }
        for (std::int64_t k = 0; k < t->numel(); ++k) axes.push_back(t->as_int(k));
      }
    } else if (const auto* a = n.attr_ints("axes")) {
      axes = *a;
    }
    for (auto& a : axes) a = a < 0 ? a + rank : a;
    if (axes.empty())
      for (std::int64_t d = 0; d < rank; ++d) axes.push_back(d);
    std::sort(axes.begin(), axes.end());
    return axes;
  }
  bool other_input(const OnnxNode& n, const std::string& v, std::string* other) const {
    if (n.inputs.size() != 2) return false;
    if (n.inputs[0] == v) *other = n.inputs[1];
    else if (n.inputs[1] == v) *other = n.inputs[0];
    else return false;
    return true;
  }

  void build_macros();
  bool try_layernorm_decomposed(int i);
  void layernorm_fused(int i);
  void gelu(int i);
  bool try_linear(int i);
  void add_macro(MNode m);

  // ---- macro-level helpers used by the walk
  std::vector<int> mcons(const std::string& v) const {
    auto it = mcons_.find(v);
    return it == mcons_.end() ? std::vector<int>{} : it->second;
  }
  int mproducer(const std::string& v) const {
    auto it = mprod_.find(v);
    return it == mprod_.end() ? -1 : it->second;
  }
  const MNode& M(int mi) const { return m_[static_cast<std::size_t>(mi)]; }
  const OnnxNode& raw(int mi) const { return node(M(mi).first); }
  bool is_raw(int mi, const char* op) const { return M(mi).kind == MKind::raw && raw(mi).op_type == op; }
  std::vector<OnnxTensor> eval_movement(int mi, const OnnxTensor& map, const std::string& traced_input);
  std::pair<std::string, OnnxTensor> follow_movement(std::string v, OnnxTensor map);

  // ---- stages
  struct Embed {
    std::string x;
    Tensor patch_w, patch_b, prefix, pos;
    std::int64_t patch = 0, prefix_inputs = 0, first_prefix_rows = 0;
    std::vector<std::string> prefix_sources;  // per non-empty Concat input
    bool has_pos = false, pos_covers_prefix = false;
  };
  Embed embed();
  std::string attention(int b, const std::string& x, int ln_mi, BlockParts& parts);
  std::string mlp(int b, const std::string& x, BlockParts& parts);
  void expect_block_start(int b, const std::string& x, int* ln, int* add) const;
};

// ---------------------------------------------------------------------------------------------------------
// Macro building
void Recognizer::add_macro(MNode m) {
  std::sort(m.covered.begin(), m.covered.end());
  m.first = m.covered.front();
  m.last = m.covered.back();
  const int idx = static_cast<int>(m_.size());
  for (int c : m.covered) {
    if (owner_[c] >= 0) fail(node(c).label(), "internal: node claimed by two idioms");
    owner_[c] = idx;
  }
  m_.push_back(std::move(m));
}

bool Recognizer::try_layernorm_decomposed(int i) {
  const OnnxNode& r1 = node(i);
  const std::string& x = r1.inputs[0];
  const std::int64_t rank = static_cast<std::int64_t>(g_.shape(x).size());
  const int si = single_onnx_consumer(r1.outputs[0]);
  if (si < 0 || node(si).op_type != "Sub" || node(si).inputs.size() != 2 || node(si).inputs[0] != x ||
      node(si).inputs[1] != r1.outputs[0])
    return false;  // not a LayerNorm (e.g. average pooling)
  const std::string expect =
      "expected a LayerNorm over the last axis: ReduceMean, Sub, Pow(2), ReduceMean, Add(eps), Sqrt, Div, "
      "[Mul(weight)], [Add(bias)]";
  bool ok = true;
  const std::int64_t D = g_.shape(x).empty() ? 0 : g_.shape(x).back();
  if (reduce_axes(r1, rank, &ok) != std::vector<std::int64_t>{rank - 1} || !ok || r1.attr_int("keepdims", 1) != 1)
    fail(r1.label(), expect + "; this ReduceMean does not reduce only the last axis with keepdims=1");
  const OnnxNode& sub = node(si);
  const std::string& d = sub.outputs[0];
  const auto& dc = g_.consumers(d);
  if (dc.size() != 2 || g_.is_graph_output(d))
    fail(sub.label(), expect + "; the centred value feeds " + std::to_string(dc.size()) + " nodes, expected Pow and Div");
  int pi = -1, di = -1;
  for (int c : dc) {
    const OnnxNode& n = node(c);
    if (n.op_type == "Pow" && n.inputs[0] == d && scalar_near(n.inputs[1], 2.0, 0.0)) pi = c;
    else if (n.op_type == "Mul" && n.inputs.size() == 2 && n.inputs[0] == d && n.inputs[1] == d) pi = c;
    else if (n.op_type == "Div" && n.inputs[0] == d) di = c;
  }
  if (pi < 0 || di < 0) fail(sub.label(), expect + "; its output feeds " + node(dc[0]).label() + " and " + node(dc[1]).label());
  const int r2i = single_onnx_consumer(node(pi).outputs[0]);
  if (r2i < 0 || node(r2i).op_type != "ReduceMean" || reduce_axes(node(r2i), rank, &ok) != std::vector<std::int64_t>{rank - 1} ||
      node(r2i).attr_int("keepdims", 1) != 1)
    fail(node(pi).label(), expect + "; the square is not followed by a single ReduceMean over the last axis");
  const int ai = single_onnx_consumer(node(r2i).outputs[0]);
  std::string eps_v;
  double eps = 0.0;
  if (ai < 0 || node(ai).op_type != "Add" || !other_input(node(ai), node(r2i).outputs[0], &eps_v) || !scalar_const(eps_v, &eps))
    fail(node(r2i).label(), expect + "; the variance is not followed by Add of a constant epsilon");
  const int qi = single_onnx_consumer(node(ai).outputs[0]);
  if (qi < 0 || node(qi).op_type != "Sqrt") fail(node(ai).label(), expect + "; expected Sqrt after the epsilon Add");
  if (single_onnx_consumer(node(qi).outputs[0]) != di || node(di).inputs[1] != node(qi).outputs[0])
    fail(node(qi).label(), expect + "; the standard deviation does not feed the Div of the centred value");
  MNode m;
  m.kind = MKind::layernorm;
  m.covered = {i, si, pi, r2i, ai, qi, di};
  m.eps = static_cast<float>(eps);
  std::string y = node(di).outputs[0];
  int mi = single_onnx_consumer(y);
  std::string other;
  if (mi >= 0 && node(mi).op_type == "Mul" && other_input(node(mi), y, &other) && row_vector(other, D, &m.gamma)) {
    m.has_gamma = true;
    m.gamma_src = g_.constant_source(other);
    m.covered.push_back(mi);
    y = node(mi).outputs[0];
  }
  int bi = single_onnx_consumer(y);
  if (bi >= 0 && node(bi).op_type == "Add" && other_input(node(bi), y, &other) && row_vector(other, D, &m.beta)) {
    m.has_beta = true;
    m.beta_src = g_.constant_source(other);
    m.covered.push_back(bi);
    y = node(bi).outputs[0];
  }
  m.inputs = {x};
  m.outputs = {y};
  add_macro(std::move(m));
  return true;
}

void Recognizer::layernorm_fused(int i) {
  const OnnxNode& n = node(i);
  const std::string& x = n.inputs[0];
  const std::int64_t rank = static_cast<std::int64_t>(g_.shape(x).size());
  std::int64_t axis = n.attr_int("axis", -1);
  if (axis < 0) axis += rank;
  if (axis != rank - 1) fail(n.label(), "expected a LayerNorm over the last axis, found axis " + std::to_string(n.attr_int("axis", -1)) + " of a rank-" + std::to_string(rank) + " input");
  const std::int64_t D = g_.shape(x).back();
  MNode m;
  m.kind = MKind::layernorm;
  m.covered = {i};
  m.eps = n.attr_float("epsilon", 1e-5f);
  if (n.inputs.size() < 2 || !row_vector(n.inputs[1], D, &m.gamma)) fail(n.label(), "expected a constant Scale of " + std::to_string(D) + " values");
  m.has_gamma = true;
  m.gamma_src = g_.constant_source(n.inputs[1]);
  if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
    if (!row_vector(n.inputs[2], D, &m.beta)) fail(n.label(), "expected a constant B of " + std::to_string(D) + " values");
    m.has_beta = true;
    m.beta_src = g_.constant_source(n.inputs[2]);
  }
  for (std::size_t k = 1; k < n.outputs.size(); ++k)
    if (!n.outputs[k].empty() && (!g_.consumers(n.outputs[k]).empty() || g_.is_graph_output(n.outputs[k])))
      fail(n.label(), "its Mean/InvStdDev output '" + n.outputs[k] + "' is used; only the normalised output may be");
  m.inputs = {x};
  m.outputs = {n.outputs[0]};
  add_macro(std::move(m));
}

void Recognizer::gelu(int i) {
  const OnnxNode& e = node(i);
  const std::string expect =
      "expected the exact GELU x * 0.5 * (1 + erf(x / sqrt(2))) (Div by sqrt(2) or Mul by 1/sqrt(2), Erf, Add 1, "
      "Mul x, Mul 0.5)";
  const std::string& a = e.inputs[0];
  const int pa = g_.producer_node(a);
  if (pa < 0) fail(e.label(), expect + "; the Erf input is not computed by a node");
  const OnnxNode& pn = node(pa);
  std::string x, c;
  if (pn.op_type == "Div" && scalar_near(pn.inputs[1], std::sqrt(2.0), 1e-6)) x = pn.inputs[0];
  else if (pn.op_type == "Mul" && pn.inputs.size() == 2 && scalar_near(pn.inputs[1], std::sqrt(0.5), 1e-6)) x = pn.inputs[0];
  else if (pn.op_type == "Mul" && pn.inputs.size() == 2 && scalar_near(pn.inputs[0], std::sqrt(0.5), 1e-6)) x = pn.inputs[1];
  else fail(pn.label(), expect + "; the Erf input is not x / sqrt(2)");
  if (single_onnx_consumer(a) != i) fail(pn.label(), expect + "; x / sqrt(2) has other uses: " + std::to_string(g_.consumers(a).size()) + " consumers");
  const int bi = single_onnx_consumer(e.outputs[0]);
  std::string one;
  if (bi < 0 || node(bi).op_type != "Add" || !other_input(node(bi), e.outputs[0], &one) || !scalar_near(one, 1.0, 1e-6))
    fail(e.label(), expect + "; Erf is not followed by a single Add of 1");
  const std::string& b = node(bi).outputs[0];
  const int m1 = single_onnx_consumer(b);
  if (m1 < 0 || node(m1).op_type != "Mul") fail(node(bi).label(), expect + "; 1 + erf(...) is not followed by a single Mul");
  std::string other;
  other_input(node(m1), b, &other);
  MNode m;
  m.kind = MKind::gelu;
  m.covered = {pa, i, bi, m1};
  std::string out;
  auto half = [&](const OnnxNode& n, const std::string& v) {
    std::string o;
    return n.op_type == "Mul" && other_input(n, v, &o) && scalar_near(o, 0.5, 1e-6);
  };
  if (other == x) {  // (x * (1 + erf)) * 0.5
    const int t = single_onnx_consumer(node(m1).outputs[0]);
    if (t < 0 || !half(node(t), node(m1).outputs[0])) fail(node(m1).label(), expect + "; x * (1 + erf(...)) is not followed by Mul 0.5");
    m.covered.push_back(t);
    out = node(t).outputs[0];
  } else if (scalar_near(other, 0.5, 1e-6)) {  // x * ((1 + erf) * 0.5)
    const int t = single_onnx_consumer(node(m1).outputs[0]);
    std::string o2;
    if (t < 0 || node(t).op_type != "Mul" || !other_input(node(t), node(m1).outputs[0], &o2) || o2 != x)
      fail(node(m1).label(), expect + "; 0.5 * (1 + erf(...)) is not multiplied by x");
    m.covered.push_back(t);
    out = node(t).outputs[0];
  } else {  // (x * 0.5) * (1 + erf)
    const int h = g_.producer_node(other);
    if (h < 0 || !half(node(h), x) || single_onnx_consumer(other) != m1)
      fail(node(m1).label(), expect + "; (1 + erf(...)) is multiplied by '" + other + "', which is not x or x * 0.5");
    m.covered.push_back(h);
    out = node(m1).outputs[0];
  }
  m.inputs = {x};
  m.outputs = {out};
  add_macro(std::move(m));
}

bool Recognizer::try_linear(int i) {
  const OnnxNode& n = node(i);
  MNode m;
  m.kind = MKind::linear;
  m.covered = {i};
  std::string x, y = n.outputs[0];
  // A Gemm is a MatMul + Add here: the normalisation step (normalize.cpp) rewrote every one with a constant
  // weight and bias vector; one it left is not a Linear.
  const OnnxTensor* w = g_.constant(n.inputs[1]);
  if (!w || g_.is_constant(n.inputs[0]) || w->shape.size() != 2 || w->dtype != DType::f32) return false;
  x = n.inputs[0];
  m.in_f = w->shape[0];
  m.out_f = w->shape[1];
  m.weight.resize(w->f.size());
  for (std::int64_t a = 0; a < m.in_f; ++a)
    for (std::int64_t o = 0; o < m.out_f; ++o) m.weight[o * m.in_f + a] = w->f[a * m.out_f + o];
  m.weight_src = g_.constant_source(n.inputs[1]);
  const int a = single_onnx_consumer(y);
  std::string other;
  std::vector<float> b;
  if (a >= 0 && owner_[a] < 0 && node(a).op_type == "Add" && other_input(node(a), y, &other) && row_vector(other, m.out_f, &b)) {
    m.bias = std::move(b);
    m.has_bias = true;
    m.bias_src = g_.constant_source(other);
    m.covered.push_back(a);
    y = node(a).outputs[0];
  }
  m.inputs = {x};
  m.outputs = {y};
  add_macro(std::move(m));
  return true;
}

void Recognizer::build_macros() {
  const int n = static_cast<int>(g_.nodes().size());
  owner_.assign(static_cast<std::size_t>(n), -1);
  for (int i = 0; i < n; ++i) {
    if (owner_[i] >= 0) continue;
    const std::string& op = node(i).op_type;
    if (op == "LayerNormalization") layernorm_fused(i);
    else if (op == "ReduceMean") try_layernorm_decomposed(i);
  }
  for (int i = 0; i < n; ++i)
    if (owner_[i] < 0 && node(i).op_type == "Erf") gelu(i);
  for (int i = 0; i < n; ++i)
    if (owner_[i] < 0 && node(i).op_type == "MatMul" && node(i).inputs.size() == 2) try_linear(i);
  for (int i = 0; i < n; ++i) {
    if (owner_[i] >= 0) continue;
    MNode m;
    m.covered = {i};
    m.inputs = node(i).inputs;
    m.outputs = node(i).outputs;
    add_macro(std::move(m));
  }
  // Topological order of macros = order of the node producing their output.
  std::vector<int> order(m_.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return m_[a].last < m_[b].last; });
  std::vector<MNode> sorted;
  for (int k : order) sorted.push_back(std::move(m_[k]));
  m_ = std::move(sorted);
  for (std::size_t k = 0; k < m_.size(); ++k) {
    for (int c : m_[k].covered) owner_[c] = static_cast<int>(k);
    for (const std::string& o : m_[k].outputs)
      if (!o.empty()) mprod_[o] = static_cast<int>(k);
    for (const std::string& v : m_[k].inputs) {
      if (v.empty() || g_.is_constant(v)) continue;
      auto& c = mcons_[v];
      if (std::find(c.begin(), c.end(), static_cast<int>(k)) == c.end()) c.push_back(static_cast<int>(k));
    }
  }
  // A macro's internal values must not be used outside it.
  for (std::size_t k = 0; k < m_.size(); ++k) {
    if (m_[k].kind == MKind::raw) continue;
    for (int c : m_[k].covered)
      for (const std::string& o : node(c).outputs) {
        if (o.empty() || o == m_[k].outputs[0]) continue;
        for (int u : g_.consumers(o))
          if (owner_[u] != static_cast<int>(k))
            fail(node(u).label(), "uses '" + o + "', an intermediate value of the " + label(static_cast<int>(k)) + "; refusing an unexpected branch");
        if (g_.is_graph_output(o)) fail(node(c).label(), "an intermediate value of the " + label(static_cast<int>(k)) + " is the graph output");
      }
  }
  visited_.assign(m_.size(), false);
}

// ---------------------------------------------------------------------------------------------------------
// Index tracing through layout ops
std::vector<OnnxTensor> Recognizer::eval_movement(int mi, const OnnxTensor& map, const std::string& traced_input) {
  const OnnxNode& n = raw(mi);
  if (n.inputs.empty() || n.inputs[0] != traced_input)
    fail(n.label(), "expected '" + traced_input + "' as its data input");
  std::vector<const OnnxTensor*> ptrs(n.inputs.size(), nullptr);
  ptrs[0] = &map;
  for (std::size_t k = 1; k < n.inputs.size(); ++k) {
    if (n.inputs[k].empty()) continue;
    ptrs[k] = g_.constant(n.inputs[k]);
    if (!ptrs[k]) fail(n.label(), "its parameter input '" + n.inputs[k] + "' is not a constant");
  }
  return g_.eval_node(n, ptrs);
}

std::pair<std::string, OnnxTensor> Recognizer::follow_movement(std::string v, OnnxTensor map) {
  for (;;) {
    if (g_.is_graph_output(v)) break;
    const std::vector<int> c = mcons(v);
    if (c.size() != 1 || M(c[0]).kind != MKind::raw) break;
    const OnnxNode& n = raw(c[0]);
    if (!is_movement(n.op_type) || n.op_type == "Split" || n.inputs[0] != v) break;
    bool params_const = true;
    for (std::size_t k = 1; k < n.inputs.size(); ++k) params_const = params_const && (n.inputs[k].empty() || g_.is_constant(n.inputs[k]));
    if (!params_const) break;
    std::vector<OnnxTensor> out = eval_movement(c[0], map, v);
    visited_[c[0]] = true;
    map = std::move(out[0]);
    v = n.outputs[0];
  }
  return {v, std::move(map)};
}

// ---------------------------------------------------------------------------------------------------------
// Stages
Recognizer::Embed Recognizer::embed() {
  Embed e;
  const std::string& in = g_.input_name();
  const Shape& is = g_.input_shape();
  const std::vector<int> c = mcons(in);
  if (c.size() != 1 || !is_raw(c[0], "Conv"))
    fail("graph input '" + in + "'", "expected to feed exactly one Conv (the patch embedding), feeds " + describe_consumers(in));
  const int ci = c[0];
  visited_[ci] = true;
  const OnnxNode& conv = raw(ci);
  const OnnxTensor* w = g_.constant(conv.inputs[1]);
  if (!w || w->shape.size() != 4) fail(conv.label(), "expected the patch embedding with a constant weight [D, C, P, P]");
  const std::int64_t D = w->shape[0], C = w->shape[1], P = w->shape[2];
  if (C != is[1] || w->shape[3] != P)
    fail(conv.label(), "expected the patch embedding weight [D, " + std::to_string(is[1]) + ", P, P], found " + shape_str(w->shape));
  const auto* st = conv.attr_ints("strides");
  const auto* pads = conv.attr_ints("pads");
  const auto* dil = conv.attr_ints("dilations");
  const std::string ap = conv.attr_string("auto_pad", "NOTSET");
  const bool ok_stride = st ? (st->size() == 2 && (*st)[0] == P && (*st)[1] == P) : P == 1;
  const bool ok_pad = (!pads || std::all_of(pads->begin(), pads->end(), [](std::int64_t p) { return p == 0; })) && (ap == "NOTSET" || ap == "VALID");
  const bool ok_dil = !dil || std::all_of(dil->begin(), dil->end(), [](std::int64_t d) { return d == 1; });
  if (!ok_stride || !ok_pad || !ok_dil || conv.attr_int("group", 1) != 1)
    fail(conv.label(), "expected the patch embedding: kernel == stride == " + std::to_string(P) + ", no padding, no dilation, group 1; found strides " +
                           (st ? shape_str(*st) : "[1, 1]") + ", pads " + (pads ? shape_str(*pads) : "[0, 0, 0, 0]") + ", auto_pad " + ap);
  if (is[2] % P != 0 || is[3] % P != 0)
    fail(conv.label(), "the image " + std::to_string(is[2]) + "x" + std::to_string(is[3]) + " is not a multiple of the patch size " + std::to_string(P));
  e.patch = P;
  e.patch_w = {w->shape, w->f, g_.constant_source(conv.inputs[1])};
  if (conv.inputs.size() > 2 && !conv.inputs[2].empty()) {
    const OnnxTensor* b = g_.constant(conv.inputs[2]);
    if (!b || b->numel() != D) fail(conv.label(), "expected a constant bias of " + std::to_string(D) + " values");
    e.patch_b = {{D}, b->f, g_.constant_source(conv.inputs[2])};
  } else {
    e.patch_b = {{D}, std::vector<float>(static_cast<std::size_t>(D), 0.0f), conv.label() + " (no bias)"};
  }
  const std::int64_t gh = is[2] / P, gw = is[3] / P, N = gh * gw;
  // conv output [1, D, gh, gw] -> tokens [1, N, D]
  auto [tok, map] = follow_movement(conv.outputs[0], iota(g_.shape(conv.outputs[0])));
  bool ok = map.shape == Shape{1, N, D};
  for (std::int64_t n = 0; ok && n < N; ++n)
    for (std::int64_t d = 0; ok && d < D; ++d) ok = map.i[n * D + d] == d * N + n;
  if (!ok) {
    const std::vector<int> tc = mcons(tok);
    fail(tc.size() == 1 ? label(tc[0]) : value_label(tok),
         "expected the patch grid flattened to tokens [1, " + std::to_string(N) + ", " + std::to_string(D) +
             "] in row-major grid order (flatten(2).transpose(1, 2)) after " + conv.label() + "; the layout ops end at '" + tok + "' " +
             shape_str(map.shape) + " which is not that");
  }
  std::string v = tok;
  bool seen_concat = false, seen_pos = false;
  for (;;) {
    const std::vector<int> cs = mcons(v);
    if (cs.size() != 1 || g_.is_graph_output(v) || M(cs[0]).kind != MKind::raw) break;
    const OnnxNode& n = raw(cs[0]);
    if (n.op_type == "Concat" && !seen_concat) {
      const Shape& vs = g_.shape(v);
      std::int64_t ax = n.attr_int("axis", 0);
      if (ax < 0) ax += 3;
      if (ax != 1) fail(n.label(), "expected the class/register tokens concatenated along the token axis 1, found axis " + std::to_string(n.attr_int("axis", 0)));
      if (n.inputs.back() != v || std::count(n.inputs.begin(), n.inputs.end(), v) != 1)
        fail(n.label(), "expected the patch tokens as the last Concat input, after the class/register tokens");
      std::vector<float> pre;
      std::int64_t rows = 0;
      for (std::size_t k = 0; k + 1 < n.inputs.size(); ++k) {
        const OnnxTensor* t = g_.constant(n.inputs[k]);
        if (!t || t->dtype != DType::f32 || t->shape.size() != 3 || t->shape[0] != 1 || t->shape[2] != vs[2])
          fail(n.label(), "expected constant class/register tokens [1, k, " + std::to_string(vs[2]) + "] before the patch tokens, found '" +
                              n.inputs[k] + "'" + (t ? " " + shape_str(t->shape) : " computed from the image"));
        if (t->shape[1] == 0) continue;
        pre.insert(pre.end(), t->f.begin(), t->f.end());
        e.prefix_sources.push_back(g_.constant_source(n.inputs[k]) + " via " + n.label());
        if (e.prefix_inputs == 0) e.first_prefix_rows = t->shape[1];
        ++e.prefix_inputs;
        rows += t->shape[1];
      }
      e.prefix = {{rows, vs[2]}, pre, n.label()};
      seen_concat = true;
      visited_[cs[0]] = true;
      v = n.outputs[0];
    } else if (n.op_type == "Add" && !seen_pos) {
      std::string other;
      if (!other_input(n, v, &other) || !g_.is_constant(other)) break;
      const OnnxTensor* p = g_.constant(other);
      const Shape& vs = g_.shape(v);
      if (g_.shape(n.outputs[0]) != vs || p->dtype != DType::f32)
        fail(n.label(), "expected the position embedding added to the tokens " + shape_str(vs) + ", found a constant " + shape_str(p->shape));
      // broadcast the constant to [rows, D]
      const std::int64_t rows = vs[1], dd = vs[2];
      std::vector<float> pos(static_cast<std::size_t>(rows * dd));
      const std::size_t r = p->shape.size();
      for (std::int64_t t = 0; t < rows; ++t)
        for (std::int64_t d = 0; d < dd; ++d) {
          const std::int64_t coord[3] = {0, t, d};
          std::int64_t idx = 0, stride = 1;
          for (std::size_t k = r; k-- > 0;) {
            const std::size_t od = 3 - r + k;
            const std::int64_t dim = p->shape[k];
            if (dim != 1) idx += coord[od] * stride;
            stride *= dim;
          }
          pos[t * dd + d] = p->f[idx];
        }
      e.pos = {{rows, dd}, pos, g_.constant_source(other)};
      e.has_pos = true;
      e.pos_covers_prefix = seen_concat;
      seen_pos = true;
      visited_[cs[0]] = true;
      v = n.outputs[0];
    } else {
      break;
    }
  }
  e.x = v;
  return e;
}

void Recognizer::expect_block_start(int b, const std::string& x, int* ln, int* add) const {
  const std::vector<int> c = mcons(x);
  *ln = *add = -1;
  for (int k : c) {
    if (M(k).kind == MKind::layernorm && *ln < 0) *ln = k;
    else if (is_raw(k, "Add") && *add < 0) *add = k;
  }
  if (b == 0 && c.size() == 1 && *ln >= 0)
    fail(label(*ln), "expected the first transformer block after the embedding; a LayerNorm applied to the embedded tokens before the "
                     "blocks (timm norm_pre / pre_norm, as in CLIP) is not supported");
  if (c.size() != 2 || *ln < 0 || *add < 0 || g_.is_graph_output(x))
    fail(value_label(x), "block " + std::to_string(b) + ": expected the residual stream to feed a LayerNorm and the residual Add, it feeds " +
                             describe_consumers(x));
}

std::string Recognizer::attention(int b, const std::string& x, int ln_mi, BlockParts& P) {
  const std::string blk = "block " + std::to_string(b) + " attention: ";
  const std::int64_t T = T_, D = D_;
  std::unordered_map<std::string, TV> tv;
  std::priority_queue<int, std::vector<int>, std::greater<int>> todo;
  std::set<int> queued;
  auto push_consumers = [&](const std::string& v) {
    if (g_.is_graph_output(v)) fail(value_label(v), blk + "an intermediate of the attention is the graph output");
    for (int c : mcons(v))
      if (queued.insert(c).second) todo.push(c);
  };
  const std::string ln_out = M(ln_mi).outputs[0];
  tv[ln_out] = {Space::ln1, iota({1, T, D}), 1.0};
  push_consumers(ln_out);

  std::int64_t H = 0, hd = 0;
  std::vector<std::int64_t> colq, colk, colv;
  std::string result;
  bool have_scores = false, have_probs = false, have_ctx = false;
  Shape batch_shape;  // head batch dims of q/k/v/scores

  // rows of a traced [.., C] tensor: each must be token r's full feature vector (features may be permuted)
  auto rows_intact = [&](const TV& t, std::int64_t C, std::vector<std::int64_t>* fperm, const std::string& where) {
    const Shape& s = t.map.shape;
    if (s.empty() || s.back() != C || numel(s) != T * C)
      fail(where, blk + "expected the Linear input to hold " + std::to_string(T) + " token rows of " + std::to_string(C) + " features, found " + shape_str(s));
    fperm->assign(static_cast<std::size_t>(C), -1);
    for (std::int64_t r = 0; r < T; ++r)
      for (std::int64_t c = 0; c < C; ++c) {
        const std::int64_t idx = t.map.i[r * C + c];
        if (idx / C != r) fail(where, blk + "the Linear input rows are not the tokens in order (row " + std::to_string(r) + " holds token " + std::to_string(idx / C) + ")");
        if (r == 0) (*fperm)[c] = idx % C;
        else if ((*fperm)[c] != idx % C) fail(where, blk + "the Linear input mixes features differently per token");
      }
    std::vector<bool> seen(static_cast<std::size_t>(C), false);
    for (std::int64_t f : *fperm) {
      if (seen[f]) fail(where, blk + "the Linear input repeats feature " + std::to_string(f) + " of a token");
      seen[f] = true;
    }
  };
  // q/k/v operand: element (h, t, j) (or (h, j, t) when transposed) must be column col[h*hd+j] of token t in qkv
  auto head_operand = [&](const TV& t, bool transposed, std::vector<std::int64_t>* col, const std::string& what, const std::string& where) {
    const Shape& s = t.map.shape;
    if (s.size() < 2) fail(where, blk + what + " has rank " + std::to_string(s.size()) + ", expected [heads.., tokens, head_dim]");
    const std::int64_t rows = s[s.size() - 2], cols = s.back();
    const std::int64_t tt = transposed ? cols : rows, dd = transposed ? rows : cols;
    const Shape bs(s.begin(), s.end() - 2);
    if (tt != T) fail(where, blk + what + " " + shape_str(s) + " does not have the " + std::to_string(T) + " tokens on the expected axis");
    if (H == 0) {
      H = numel(bs);
      hd = dd;
      batch_shape = bs;
      if (H * hd != D) fail(where, blk + what + " " + shape_str(s) + ": heads x head_dim = " + std::to_string(H) + " x " + std::to_string(hd) + " != dim " + std::to_string(D));
    } else if (numel(bs) != H || dd != hd || bs != batch_shape) {
      fail(where, blk + what + " " + shape_str(s) + " does not match the head layout of q " + shape_str(batch_shape) + " x [" + std::to_string(T) + ", " + std::to_string(hd) + "]");
    }
    col->assign(static_cast<std::size_t>(D), -1);
    for (std::int64_t h = 0; h < H; ++h)
      for (std::int64_t a = 0; a < T; ++a)
        for (std::int64_t j = 0; j < hd; ++j) {
          const std::int64_t off = transposed ? (h * hd + j) * T + a : (h * T + a) * hd + j;
          const std::int64_t idx = t.map.i[off];
          if (idx / (3 * D) != a)
            fail(where, blk + what + " does not hold the tokens in order: head " + std::to_string(h) + " position " + std::to_string(a) + " holds token " + std::to_string(idx / (3 * D)));
          auto& cc = (*col)[h * hd + j];
          if (a == 0) cc = idx % (3 * D);
          else if (cc != idx % (3 * D)) fail(where, blk + what + " picks different qkv features for different tokens");
        }
  };

  while (!todo.empty()) {
    const int mi = todo.top();
    todo.pop();
    const MNode& mn = M(mi);
    const std::string where = label(mi);
    visited_[mi] = true;
    std::vector<std::string> traced, others;
    for (const std::string& v : mn.inputs) {
      if (v.empty() || g_.is_constant(v)) continue;
      (tv.count(v) ? traced : others).push_back(v);
    }
    if (mn.kind == MKind::linear) {
      const TV& in = tv.at(mn.inputs[0]);
      if (in.scale != 1.0) fail(where, blk + "a constant factor is applied before this Linear");
      std::vector<std::int64_t> fperm;
      if (in.space == Space::ln1 && P.qkv_rows < 3 * D) {
        // one fused qkv projection [D -> 3D], or separate q, k, v projections [D -> D] each
        const bool fused = mn.out_f == 3 * D && P.qkv_rows == 0;
        if (mn.in_f != D || !(fused || mn.out_f == D))
          fail(where, blk + "expected the qkv projection with weight [" + std::to_string(D) + ", " + std::to_string(3 * D) +
                          "] (in, out) or separate q/k/v projections [" + std::to_string(D) + ", " + std::to_string(D) + "], found [" +
                          std::to_string(mn.in_f) + ", " + std::to_string(mn.out_f) + "]");
        rows_intact(in, D, &fperm, where);
        const std::int64_t off = P.qkv_rows;
        if (!P.qkv) {
          P.qkv = &mn;
          P.seq_first = in.map.shape != Shape{1, T, D};
          P.qkv_w.assign(static_cast<std::size_t>(3 * D * D), 0.0f);
          P.qkv_b.assign(static_cast<std::size_t>(3 * D), 0.0f);
          P.qkv_w_src = mn.weight_src;
        } else {
          P.qkv_w_src += ", " + mn.weight_src;
        }
        // rows off.. of the combined projection; input columns permuted back to feature order
        for (std::int64_t o = 0; o < mn.out_f; ++o) {
          for (std::int64_t c = 0; c < D; ++c) P.qkv_w[(off + o) * D + fperm[c]] = mn.weight[o * D + c];
          if (mn.has_bias) P.qkv_b[off + o] = mn.bias[o];
        }
        if (mn.has_bias) {
          P.qkv_bias = true;
          P.qkv_b_src += (P.qkv_b_src.empty() ? "" : ", ") + mn.bias_src;
        }
        P.qkv_rows += mn.out_f;
        TV t{Space::qkv, iota(g_.shape(mn.outputs[0])), 1.0};
        for (std::int64_t& v : t.map.i) v = (v / mn.out_f) * 3 * D + off + v % mn.out_f;
        tv[mn.outputs[0]] = std::move(t);
      } else if (in.space == Space::ctx && !P.proj) {
        if (mn.in_f != D || mn.out_f != D)
          fail(where, blk + "expected the output projection with weight [" + std::to_string(D) + ", " + std::to_string(D) + "] (in, out), found [" +
                          std::to_string(mn.in_f) + ", " + std::to_string(mn.out_f) + "]");
        rows_intact(in, D, &fperm, where);
        P.proj = &mn;
        P.proj_w.assign(mn.weight.size(), 0.0f);
        for (std::int64_t o = 0; o < D; ++o)
          for (std::int64_t c = 0; c < D; ++c) P.proj_w[o * D + fperm[c]] = mn.weight[o * D + c];
        tv[mn.outputs[0]] = {Space::proj, iota(g_.shape(mn.outputs[0])), 1.0};
      } else {
        fail(where, blk + (in.space == Space::ln1 ? "more Linears read the normalised tokens than one qkv projection (or q, k and v)"
                                                  : "unexpected Linear at this point of the attention"));
      }
      push_consumers(mn.outputs[0]);
      continue;
    }
    if (mn.kind != MKind::raw) fail(where, blk + "unexpected " + label(mi) + " inside the attention");
    const OnnxNode& n = raw(mi);
    const std::string& op = n.op_type;
    if (is_movement(op) && traced.size() == 1 && others.empty() && n.inputs[0] == traced[0]) {
      const TV& in = tv.at(traced[0]);
      if (in.space == Space::scores || in.space == Space::probs)
        fail(where, blk + "layout ops on the attention matrix are not supported");
      std::vector<OnnxTensor> outs = eval_movement(mi, in.map, traced[0]);
      for (std::size_t k = 0; k < n.outputs.size(); ++k) {
        if (n.outputs[k].empty()) continue;
        tv[n.outputs[k]] = {in.space, std::move(outs[k]), in.scale};
        push_consumers(n.outputs[k]);
      }
      continue;
    }
    double c = 0.0;
    if ((op == "Mul" || op == "Div") && traced.size() == 1 && others.empty() && n.inputs.size() == 2) {
      std::string other;
      other_input(n, traced[0], &other);
      if (scalar_const(other, &c) && (op == "Mul" || n.inputs[0] == traced[0])) {
        TV t = tv.at(traced[0]);
        if (t.space == Space::probs) fail(where, blk + "a constant factor after the Softmax is not supported");
        t.scale = op == "Mul" ? t.scale * c : t.scale / c;
        t.map.shape = g_.shape(n.outputs[0]);
        if (t.map.shape != tv.at(traced[0]).map.shape) fail(where, blk + "the scaling changes the shape");
        tv[n.outputs[0]] = std::move(t);
        push_consumers(n.outputs[0]);
        continue;
      }
    }
    if (op == "MatMul" && traced.size() == 2 && n.inputs[0] != n.inputs[1]) {
      const TV& a = tv.at(n.inputs[0]);
      const TV& bb = tv.at(n.inputs[1]);
      if (a.space == Space::qkv && bb.space == Space::qkv && !have_scores) {
        head_operand(a, false, &colq, "q (first operand of q.k^T)", where);
        head_operand(bb, true, &colk, "k^T (second operand of q.k^T)", where);
        TV s;
        s.space = Space::scores;
        s.map.shape = g_.shape(n.outputs[0]);
        s.scale = a.scale * bb.scale;
        have_scores = true;
        tv[n.outputs[0]] = std::move(s);
        push_consumers(n.outputs[0]);
        continue;
      }
      if (a.space == Space::probs && bb.space == Space::qkv && !have_ctx) {
        if (a.scale != 1.0) fail(where, blk + "a constant factor is applied to the attention probabilities");
        if (bb.scale != 1.0) fail(where, blk + "a constant factor is applied to v");
        head_operand(bb, false, &colv, "v (second operand of attn.v)", where);
        if (Shape(a.map.shape.begin(), a.map.shape.end() - 2) != batch_shape)
          fail(where, blk + "the attention matrix " + shape_str(a.map.shape) + " and v do not share the head layout");
        TV t;
        t.space = Space::ctx;
        t.map = iota(g_.shape(n.outputs[0]));
        for (std::int64_t h = 0; h < H; ++h)
          for (std::int64_t a2 = 0; a2 < T; ++a2)
            for (std::int64_t j = 0; j < hd; ++j) t.map.i[(h * T + a2) * hd + j] = a2 * D + h * hd + j;
        have_ctx = true;
        tv[n.outputs[0]] = std::move(t);
        push_consumers(n.outputs[0]);
        continue;
      }
      fail(where, blk + "unexpected MatMul: expected q.k^T on the qkv projection, then attn.v");
    }
    if (op == "Softmax" && traced.size() == 1 && others.empty()) {
      const TV& s = tv.at(traced[0]);
      if (s.space != Space::scores || have_probs) fail(where, blk + "unexpected Softmax");
      const std::int64_t rank = static_cast<std::int64_t>(s.map.shape.size());
      std::int64_t ax = n.attr_int("axis", g_.opset() < 13 ? 1 : -1);
      if (ax < 0) ax += rank;
      if (ax != rank - 1) fail(where, blk + "expected the Softmax over the last axis (keys), found axis " + std::to_string(n.attr_int("axis", g_.opset() < 13 ? 1 : -1)) + " of " + shape_str(s.map.shape));
      P.scale = s.scale;
      TV p;
      p.space = Space::probs;
      p.map.shape = s.map.shape;
      have_probs = true;
      tv[n.outputs[0]] = std::move(p);
      push_consumers(n.outputs[0]);
      continue;
    }
    auto canonical_tokens = [&](const TV& t) { return t.map.shape == Shape{1, T, D} && is_iota(t.map); };
    if (op == "Mul" && traced.size() == 1 && others.empty() && P.ls1.empty()) {
      const TV& t = tv.at(traced[0]);
      std::string other;
      other_input(n, traced[0], &other);
      std::vector<float> gamma;
      if (t.space == Space::proj && t.scale == 1.0 && canonical_tokens(t) && row_vector(other, D, &gamma)) {
        P.ls1 = std::move(gamma);
        P.ls1_src = g_.constant_source(other);
        TV o = t;
        o.space = Space::ls;
        tv[n.outputs[0]] = std::move(o);
        push_consumers(n.outputs[0]);
        continue;
      }
    }
    if (op == "Add" && traced.size() == 1 && others.size() == 1 && others[0] == x) {
      const TV& t = tv.at(traced[0]);
      if ((t.space == Space::proj || t.space == Space::ls) && canonical_tokens(t)) {
        if (t.scale != 1.0) {  // a scalar factor after the projection is a LayerScale with equal gammas
          if (P.ls1.empty()) {
            P.ls1.assign(static_cast<std::size_t>(D), 1.0f);
            P.ls1_src = "scalar factor on the output projection";
          }
          for (float& gval : P.ls1) gval = static_cast<float>(gval * t.scale);
        }
        result = n.outputs[0];
        continue;  // the residual stream goes on outside the attention
      }
      fail(where, blk + "the residual Add receives " + (t.space == Space::proj || t.space == Space::ls ? "the projection output in a different token layout " + shape_str(t.map.shape) : std::string("a value that is not the attention output")));
    }
    std::string ins;
    for (const std::string& v : n.inputs) {
      ins += (ins.empty() ? "'" : ", '") + v + "'";
      if (g_.is_constant(v)) ins += " (constant " + shape_str(g_.constant(v)->shape) + ")";
      else if (tv.count(v)) ins += " (" + space_name(tv.at(v).space) + ")";
      else if (v == x) ins += " (the residual stream)";
      else ins += " (a value from outside the attention)";
    }
    fail(where, blk + "unexpected " + op + "; expected only layout ops, q.k^T scaled by a constant, Softmax, attn.v, the projections, an optional "
                      "LayerScale Mul and the residual Add; its inputs are " + ins);
  }
  if (P.qkv_rows != 3 * D)
    fail(label(ln_mi), blk + "no qkv projection (Linear " + std::to_string(D) + " -> " + std::to_string(3 * D) + ", or three " +
                           std::to_string(D) + " -> " + std::to_string(D) + ") reads the normalised tokens");
  if (!have_scores || !have_probs || !have_ctx) fail(label(ln_mi), blk + "the attention products q.k^T -> Softmax -> attn.v were not all found");
  if (!P.proj) fail(label(ln_mi), blk + "no output projection follows attn.v");
  if (result.empty()) fail(label(ln_mi), blk + "the attention output never reaches the residual Add with '" + x + "'");
  // canonical qkv rows: q of every head, then k, then v
  std::vector<std::int64_t> perm;
  perm.insert(perm.end(), colq.begin(), colq.end());
  perm.insert(perm.end(), colk.begin(), colk.end());
  perm.insert(perm.end(), colv.begin(), colv.end());
  std::vector<bool> seen(static_cast<std::size_t>(3 * D), false);
  for (std::int64_t r : perm) {
    if (r < 0 || r >= 3 * D || seen[r]) fail(label(ln_mi), blk + "q, k and v do not partition the qkv projection's outputs");
    seen[r] = true;
  }
  std::vector<float> w(P.qkv_w.size()), bias;
  for (std::int64_t r = 0; r < 3 * D; ++r) std::copy_n(P.qkv_w.begin() + perm[r] * D, D, w.begin() + r * D);
  P.qkv_w = std::move(w);
  if (P.qkv_bias) {
    for (std::int64_t r = 0; r < 3 * D; ++r) bias.push_back(P.qkv_b[perm[r]]);
    P.qkv_b = std::move(bias);
  }
  P.heads = H;
  return result;
}

std::string Recognizer::mlp(int b, const std::string& x, BlockParts& P) {
  const std::string blk = "block " + std::to_string(b) + " MLP: ";
  int ln = -1, add = -1;
  expect_block_start(b, x, &ln, &add);
  visited_[ln] = true;
  P.ln2 = &M(ln);
  const std::string& h = M(ln).outputs[0];
  std::vector<int> c = mcons(h);
  if (c.size() != 1 || M(c[0]).kind != MKind::linear || g_.is_graph_output(h))
    fail(label(ln), blk + "expected the normalised tokens to feed only fc1 (a Linear), they feed " + describe_consumers(h));
  const MNode& fc1 = M(c[0]);
  visited_[c[0]] = true;
  if (fc1.in_f != D_) fail(label(c[0]), blk + "expected fc1 with " + std::to_string(D_) + " inputs, found " + std::to_string(fc1.in_f));
  P.fc1 = &fc1;
  const std::string& a = fc1.outputs[0];
  c = mcons(a);
  if (c.size() != 1 || M(c[0]).kind != MKind::gelu || g_.is_graph_output(a)) {
    std::string hint;
    for (const OnnxNode& n : g_.nodes())
      if (n.op_type == "Tanh") {
        hint = " (the graph has " + n.label() + ": a tanh-approximated GELU is not supported, only the exact erf form)";
        break;
      }
    fail(label(mproducer(a)), blk + "expected fc1 to feed only an exact erf-GELU, it feeds " + describe_consumers(a) + hint);
  }
  visited_[c[0]] = true;
  const std::string& gv = M(c[0]).outputs[0];
  c = mcons(gv);
  if (c.size() != 1 || M(c[0]).kind != MKind::linear || g_.is_graph_output(gv))
    fail(label(mproducer(gv)), blk + "expected the GELU to feed only fc2 (a Linear), it feeds " + describe_consumers(gv));
  const MNode& fc2 = M(c[0]);
  visited_[c[0]] = true;
  if (fc2.in_f != fc1.out_f || fc2.out_f != D_)
    fail(label(c[0]), blk + "expected fc2 with weight [" + std::to_string(fc1.out_f) + ", " + std::to_string(D_) + "] (in, out), found [" +
                          std::to_string(fc2.in_f) + ", " + std::to_string(fc2.out_f) + "]");
  P.fc2 = &fc2;
  std::string y = fc2.outputs[0];
  c = mcons(y);
  if (c.size() == 1 && is_raw(c[0], "Mul") && !g_.is_graph_output(y)) {
    std::string other;
    std::vector<float> gamma;
    if (other_input(raw(c[0]), y, &other) && row_vector(other, D_, &gamma)) {
      P.ls2 = std::move(gamma);
      P.ls2_src = g_.constant_source(other);
      visited_[c[0]] = true;
      y = raw(c[0]).outputs[0];
      c = mcons(y);
    }
  }
  std::string other;
  if (c.size() != 1 || c[0] != add || g_.is_graph_output(y) || !other_input(raw(add), y, &other) || other != x)
    fail(label(mproducer(y)), blk + "expected the MLP output (after an optional LayerScale Mul) to feed only the residual Add with '" + x + "', it feeds " + describe_consumers(y));
  visited_[add] = true;
  return raw(add).outputs[0];
}

VitSpec Recognizer::run() {
  build_macros();
  VitSpec s;
  const Shape& is = g_.input_shape();
  s.in_chans = is[1];
  s.img_h = is[2];
  s.img_w = is[3];

  Embed e = embed();
  s.patch = e.patch;
  const Shape& xs = g_.shape(e.x);
  if (xs.size() != 3 || xs[0] != 1) fail(value_label(e.x), "expected the token sequence [1, T, D] after the embedding, found " + shape_str(xs));
  T_ = xs[1];
  D_ = xs[2];
  s.dim = D_;
  const std::int64_t N = (s.img_h / s.patch) * (s.img_w / s.patch);
  const std::int64_t K = T_ - N;  // prefix tokens
  if (K != (e.prefix.shape.empty() ? 0 : e.prefix.shape[0])) fail(value_label(e.x), "internal: token count mismatch");
  s.tensors["patch_embed.weight"] = e.patch_w;
  s.tensors["patch_embed.bias"] = e.patch_b;
  s.has_pos_embed = e.has_pos;
  // Without class/register tokens both conventions are the same; report timm's default.
  s.pos_embed_covers_prefix = (e.has_pos && K > 0) ? e.pos_covers_prefix : true;
  if (e.has_pos) s.tensors["pos_embed"] = e.pos;

  // ---- blocks
  std::string x = e.x;
  std::vector<BlockParts> blocks;
  std::vector<float> eps_all;
  std::vector<std::string> eps_where;
  for (int b = 0;; ++b) {
    const std::vector<int> c = mcons(x);
    if (c.size() < 2 && !(b == 0 && c.size() == 1 && M(c[0]).kind == MKind::layernorm)) break;
    int ln = -1, add = -1;
    expect_block_start(b, x, &ln, &add);
    visited_[ln] = true;
    BlockParts P;
    P.ln1 = &M(ln);
    const std::string mid = attention(b, x, ln, P);
    if (mid != raw(add).outputs[0]) fail(label(add), "block " + std::to_string(b) + ": the residual Add with '" + x + "' is not the one the attention output reaches");
    x = mlp(b, mid, P);
    blocks.push_back(std::move(P));
  }
  if (blocks.empty()) fail(value_label(x), "expected the first transformer block (LayerNorm + residual Add) after the embedding, the tokens feed " + describe_consumers(x));
  s.depth = static_cast<std::int64_t>(blocks.size());
  s.heads = blocks[0].heads;
  s.mlp_hidden = blocks[0].fc1->out_f;
  s.qkv_bias = blocks[0].qkv_bias;
  s.attn_scale = static_cast<float>(blocks[0].scale);
  s.source_layout = blocks[0].seq_first ? "torchvision" : "timm";
  auto add_ln = [&](const std::string& name, const MNode& m, const std::string& where) {
    s.tensors[name + ".weight"] = {{D_}, m.has_gamma ? m.gamma : std::vector<float>(static_cast<std::size_t>(D_), 1.0f), m.has_gamma ? m.gamma_src : where + " (no weight)"};
    s.tensors[name + ".bias"] = {{D_}, m.has_beta ? m.beta : std::vector<float>(static_cast<std::size_t>(D_), 0.0f), m.has_beta ? m.beta_src : where + " (no bias)"};
    eps_all.push_back(m.eps);
    eps_where.push_back(where);
  };
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    const BlockParts& P = blocks[b];
    const std::string p = "blocks." + std::to_string(b) + ".";
    const std::string where0 = label(owner_[P.qkv->first]);
    if (P.heads != s.heads) fail(where0, "block " + std::to_string(b) + " has " + std::to_string(P.heads) + " heads, block 0 has " + std::to_string(s.heads));
    if (P.fc1->out_f != s.mlp_hidden) fail(label(owner_[P.fc1->first]), "block " + std::to_string(b) + " has MLP width " + std::to_string(P.fc1->out_f) + ", block 0 has " + std::to_string(s.mlp_hidden));
    if (P.qkv_bias != s.qkv_bias) fail(where0, "block " + std::to_string(b) + (s.qkv_bias ? " has no qkv bias but block 0 has one" : " has a qkv bias but block 0 has none"));
    if (!close(P.scale, s.attn_scale, 1e-5)) fail(where0, "block " + std::to_string(b) + " scales q.k^T by " + num(P.scale) + ", block 0 by " + num(s.attn_scale));
    if (P.seq_first != blocks[0].seq_first) fail(where0, "blocks mix token layouts");
    add_ln(p + "norm1", *P.ln1, label(owner_[P.ln1->first]));
    s.tensors[p + "attn.qkv.weight"] = {{3 * D_, D_}, P.qkv_w, P.qkv_w_src};
    if (P.qkv_bias) s.tensors[p + "attn.qkv.bias"] = {{3 * D_}, P.qkv_b, P.qkv_b_src};
    s.tensors[p + "attn.proj.weight"] = {{D_, D_}, P.proj_w, P.proj->weight_src};
    s.tensors[p + "attn.proj.bias"] = {{D_}, P.proj->has_bias ? P.proj->bias : std::vector<float>(static_cast<std::size_t>(D_), 0.0f), P.proj->has_bias ? P.proj->bias_src : P.proj->weight_src + " (no bias)"};
    if (!P.ls1.empty()) s.tensors[p + "ls1.gamma"] = {{D_}, P.ls1, P.ls1_src};
    add_ln(p + "norm2", *P.ln2, label(owner_[P.ln2->first]));
    const std::int64_t Hh = s.mlp_hidden;
    s.tensors[p + "mlp.fc1.weight"] = {{Hh, D_}, P.fc1->weight, P.fc1->weight_src};
    s.tensors[p + "mlp.fc1.bias"] = {{Hh}, P.fc1->has_bias ? P.fc1->bias : std::vector<float>(static_cast<std::size_t>(Hh), 0.0f), P.fc1->has_bias ? P.fc1->bias_src : P.fc1->weight_src + " (no bias)"};
    s.tensors[p + "mlp.fc2.weight"] = {{D_, Hh}, P.fc2->weight, P.fc2->weight_src};
    s.tensors[p + "mlp.fc2.bias"] = {{D_}, P.fc2->has_bias ? P.fc2->bias : std::vector<float>(static_cast<std::size_t>(D_), 0.0f), P.fc2->has_bias ? P.fc2->bias_src : P.fc2->weight_src + " (no bias)"};
    if (!P.ls2.empty()) s.tensors[p + "ls2.gamma"] = {{D_}, P.ls2, P.ls2_src};
  }

  // ---- final norm, pooling, fc_norm, head
  std::string y = x;
  {
    const std::vector<int> c = mcons(y);
    if (c.size() == 1 && M(c[0]).kind == MKind::layernorm && !g_.is_graph_output(y)) {
      visited_[c[0]] = true;
      s.final_norm = true;
      add_ln("norm", M(c[0]), label(c[0]));
      y = M(c[0]).outputs[0];
    } else {
      s.final_norm = false;
    }
  }
  s.pool = VitPool::none;
  if (g_.is_graph_output(y)) {
    if (!mcons(y).empty()) fail(value_label(y), "the token output also feeds " + describe_consumers(y));
    s.output = VitOutput::tokens;
  } else {
    auto [pv, map] = follow_movement(y, iota({1, T_, D_}));
    bool token0 = map.numel() == D_;
    for (std::int64_t j = 0; token0 && j < D_; ++j) token0 = map.i[j] == j;
    std::string pooled;
    if (token0) {
      s.pool = VitPool::token;
      pooled = pv;
    } else {
      // avg: tokens K..T-1 in order, then ReduceMean over the token axis
      const Shape& ms = map.shape;
      const std::int64_t rows = map.numel() / D_;
      bool tail = !ms.empty() && ms.back() == D_ && rows >= 1 && rows <= T_;
      const std::int64_t k0 = T_ - rows;
      for (std::int64_t r = 0; tail && r < rows; ++r)
        for (std::int64_t j = 0; tail && j < D_; ++j) tail = map.i[r * D_ + j] == (k0 + r) * D_ + j;
      const std::vector<int> c = mcons(pv);
      if (ms == Shape{1, T_, D_} && is_iota(map) && c.size() == 1 && M(c[0]).kind == MKind::linear)
        fail(label(c[0]), "a classifier head applied to every token (timm global_pool='') is not supported: VitSpec has no per-token "
                          "logits output (pool the tokens, or export forward_features)");
      if (!tail || c.size() != 1 || !is_raw(c[0], "ReduceMean") || g_.is_graph_output(pv))
        fail(c.size() == 1 ? label(c[0]) : value_label(pv),
             "expected pooling after the " + std::string(s.final_norm ? "final norm" : "last block") +
                 ": the class token (x[:, 0]) or the mean over the patch tokens (x[:, prefix:].mean(1)); found " + describe_consumers(pv) +
                 " on '" + pv + "' " + shape_str(ms));
      const OnnxNode& rm = raw(c[0]);
      bool ok = true;
      const std::int64_t rank = static_cast<std::int64_t>(ms.size());
      std::int64_t tok_axis = -1;
      for (std::int64_t d = 0; d < rank; ++d)
        if (ms[d] == rows && d != rank - 1) tok_axis = d;
      if (tok_axis < 0 || reduce_axes(rm, rank, &ok) != std::vector<std::int64_t>{tok_axis} || !ok)
        fail(rm.label(), "expected the mean over the token axis of " + shape_str(ms));
      for (std::int64_t d = 0; d < rank; ++d)
        if (d != tok_axis && d != rank - 1 && ms[d] != 1) fail(rm.label(), "expected tokens [1, N, D], found " + shape_str(ms));
      if (k0 != K)
        fail(rm.label(), "the average pooling skips " + std::to_string(k0) + " leading tokens, the model has " + std::to_string(K) +
                             " class/register tokens (timm averages x[:, num_prefix_tokens:])");
      visited_[c[0]] = true;
      s.pool = VitPool::avg;
      auto [pv2, map2] = follow_movement(rm.outputs[0], iota(g_.shape(rm.outputs[0])));
      if (map2.numel() != D_ || !is_iota(map2)) fail(value_label(pv2), "expected the pooled features (" + std::to_string(D_) + " values)");
      pooled = pv2;
    }
    std::string v = pooled;
    std::vector<int> c = mcons(v);
    if (c.size() == 1 && M(c[0]).kind == MKind::layernorm && !g_.is_graph_output(v)) {
      visited_[c[0]] = true;
      s.fc_norm = true;
      add_ln("fc_norm", M(c[0]), label(c[0]));
      v = M(c[0]).outputs[0];
      c = mcons(v);
    }
    if (g_.is_graph_output(v) && c.empty()) {
      s.output = VitOutput::pooled;
    } else if (c.size() == 1 && M(c[0]).kind == MKind::linear && !g_.is_graph_output(v)) {
      const MNode& hd = M(c[0]);
      visited_[c[0]] = true;
      if (hd.in_f != D_) fail(label(c[0]), "expected the head with " + std::to_string(D_) + " inputs, found " + std::to_string(hd.in_f));
      auto [ov, omap] = follow_movement(hd.outputs[0], iota(g_.shape(hd.outputs[0])));
      if (!g_.is_graph_output(ov) || !mcons(ov).empty() || omap.numel() != hd.out_f || !is_iota(omap))
        fail(label(c[0]), "expected the head's output (" + std::to_string(hd.out_f) + " logits) to be the graph output; it feeds " + describe_consumers(ov));
      s.output = VitOutput::logits;
      s.num_classes = hd.out_f;
      s.tensors["head.weight"] = {{hd.out_f, D_}, hd.weight, hd.weight_src};
      s.tensors["head.bias"] = {{hd.out_f}, hd.has_bias ? hd.bias : std::vector<float>(static_cast<std::size_t>(hd.out_f), 0.0f), hd.has_bias ? hd.bias_src : hd.weight_src + " (no bias)"};
    } else {
      fail(value_label(v), "expected the pooled features to be the graph output or to feed only the classifier head (a Linear), they feed " + describe_consumers(v));
    }
  }
  if (s.pool == VitPool::none && s.output != VitOutput::tokens) fail(value_label(y), "internal: no pooling but not a token output");

  // ---- class / register tokens
  if (K > 0) {
    std::int64_t cls = 0;
    if (s.pool == VitPool::token) cls = 1;
    else if (e.prefix_inputs >= 2) cls = e.first_prefix_rows == 1 ? 1 : 0;
    else cls = K == 1 ? 1 : 0;
    if (e.prefix_inputs >= 2 && e.first_prefix_rows != 1 && s.pool == VitPool::token)
      fail(e.prefix.source, "token pooling reads token 0, but the first prefix input holds " + std::to_string(e.first_prefix_rows) + " tokens");
    s.has_cls_token = cls == 1;
    s.num_reg_tokens = K - cls;
    const auto& pf = e.prefix.data;
    const std::string& src0 = e.prefix_sources.front();
    const std::string& src1 = e.prefix_sources.size() > 1 ? e.prefix_sources[1] : src0;
    if (cls) s.tensors["cls_token"] = {{1, D_}, std::vector<float>(pf.begin(), pf.begin() + D_), src0};
    if (K - cls > 0) s.tensors["reg_token"] = {{K - cls, D_}, std::vector<float>(pf.begin() + cls * D_, pf.end()), cls ? src1 : src0};
  } else {
    s.has_cls_token = false;
    s.num_reg_tokens = 0;
    if (s.pool == VitPool::token) fail(value_label(y), "token pooling without a class token");
  }
  if (e.has_pos && s.tensors["pos_embed"].shape[0] != (s.pos_embed_covers_prefix ? T_ : N)) fail(e.pos.source, "internal: pos_embed rows");

  // ---- epsilon
  s.ln_eps = eps_all.front();
  for (std::size_t k = 1; k < eps_all.size(); ++k)
    if (!close(eps_all[k], s.ln_eps, 1e-4))
      fail(eps_where[k], "uses LayerNorm epsilon " + num(eps_all[k]) + ", " + eps_where[0] + " uses " + num(s.ln_eps) + "; every LayerNorm must use the same");

  // ---- everything accounted for
  for (std::size_t k = 0; k < m_.size(); ++k)
    if (!visited_[k]) fail(label(static_cast<int>(k)), "is not part of the recognised ViT structure (an extra branch?); refusing to ignore it");
  return s;
}

const char* pool_str(VitPool p) {
  switch (p) {
    case VitPool::none: return "none";
    case VitPool::token: return "token";
    case VitPool::avg: return "avg";
  }
  return "?";
}

const char* output_str(VitOutput o) {
  switch (o) {
    case VitOutput::tokens: return "tokens";
    case VitOutput::pooled: return "pooled";
    case VitOutput::logits: return "logits";
  }
  return "?";
}

}  // namespace

VitSpec recognize_vit(const OnnxGraph& g) {
  Recognizer r(g);
  return r.run();
}

std::string describe_vit_spec(const VitSpec& s) {
  std::ostringstream o;
  o << "layout " << s.source_layout << "\n"
    << "input [1, " << s.in_chans << ", " << s.img_h << ", " << s.img_w << "], patch " << s.patch << " -> "
    << (s.img_h / std::max<std::int64_t>(1, s.patch)) << "x" << (s.img_w / std::max<std::int64_t>(1, s.patch)) << " grid\n"
    << "dim " << s.dim << ", depth " << s.depth << ", heads " << s.heads << ", mlp_hidden " << s.mlp_hidden << "\n"
    << "cls_token " << (s.has_cls_token ? "yes" : "no") << ", reg_tokens " << s.num_reg_tokens << ", pos_embed "
    << (s.has_pos_embed ? (s.pos_embed_covers_prefix ? "covers prefix" : "patches only (no_embed_class)") : "none") << "\n"
    << "qkv_bias " << (s.qkv_bias ? "yes" : "no") << ", final_norm " << (s.final_norm ? "yes" : "no") << ", fc_norm "
    << (s.fc_norm ? "yes" : "no") << ", pool " << pool_str(s.pool) << ", output " << output_str(s.output);
  if (s.output == VitOutput::logits) o << " (" << s.num_classes << " classes)";
  char buf[96];
  std::snprintf(buf, sizeof buf, "\nln_eps %g, attn_scale %.9g", static_cast<double>(s.ln_eps), static_cast<double>(s.attn_scale));
  o << buf << "\n";
  std::size_t params = 0;
  for (const auto& [name, t] : s.tensors) params += t.data.size();
  o << s.tensors.size() << " tensors, " << params << " parameters\n";
  return o.str();
}

}  // namespace vitcc::pack
