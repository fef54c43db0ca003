// One spelling for what simplifiers and optimisers rewrite (issue 17).
//
// onnxsim, onnxoptimizer and ONNX Runtime's saved optimised graphs keep the computation and change how it
// is written. The recognisers read one spelling, the one torch.onnx.export writes; this file turns the
// others into it, once, ahead of every family's recogniser:
//  - ONNX Runtime's contrib ops (com.microsoft: FusedMatMul, Gelu, BiasGelu, SkipLayerNormalization,
//    FusedConv) become the default-domain nodes they stand for, while the loader folds and shape-propagates
//    (expand_contrib); the others are refused by name (contrib_op_refusal);
//  - a Linear written as Gemm (transB 0 or 1, alpha, beta) becomes MatMul + Add with the weight laid out as
//    [in, out] and alpha and beta folded in;
//  - a Reshape that flattens the tokens to rows ([1, T, D] -> [T, D]) ahead of Linears, with a Reshape that
//    restores them after, is lifted: the Linears and the row-wise ops between them run on the unflattened
//    value, as in the export, and the restoring Reshape becomes an identity;
//  - layout ops that are identities (same shape, same element order) and pairs of them that cancel out
//    (Transpose pairs, Unsqueeze + Squeeze, Reshape + Reshape back) are removed.
// Every rewrite keeps the computation; all but one keep the values bit for bit. The exception: a Gemm's
// alpha is folded into its weight (sum a*(alpha*b) instead of alpha*sum a*b), which differs in the last
// bit unless alpha is a power of two. The evaluator (run()) reads the rewritten graph and the packer's
// self-check compares the packed model with it, so the end-to-end tests hold the rewrites to PyTorch.
#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <set>

#include "onnx_graph.hpp"
#include "onnx_ops.hpp"

namespace vitcc::pack {

using Shape = std::vector<std::int64_t>;

namespace detail {

std::string contrib_op_refusal(const std::string& domain, const std::string& op, std::int64_t opset) {
  const std::string save_basic =
      "save the optimised model at ONNX Runtime's 'basic' level (graphOptimizationLevel 'basic', "
      "ORT_ENABLE_BASIC), or pack the graph as exported";
  if (domain.empty()) {
    if (op == "LayerNormalization" && opset < 17)
      return "ONNX has LayerNormalization from opset 17 on, and this graph is opset " + std::to_string(opset) +
             ": ONNX Runtime's 'extended' level writes its own into older opsets; " + save_basic;
    if (op == "SimplifiedLayerNormalization")
      return "an op of ONNX Runtime's own (RMS normalisation), written by its 'extended' level; " + save_basic;
    return "";
  }
  if (domain == "com.microsoft") {
    if (op == "FusedMatMul" || op == "Gelu" || op == "BiasGelu" || op == "SkipLayerNormalization" || op == "FusedConv")
      return "";
    std::string what = "an op of ONNX Runtime's own, written by its 'extended' or 'all' optimisation level";
    if (op == "FastGelu" || op == "BiasFastGelu" || op == "QuickGelu")
      what += ": an approximation of GELU, which vitcc computes exactly (erf)";
    else if (op == "Attention" || op == "MultiHeadAttention")
      what += " (fused attention)";
    return what + ". vitcc reads FusedMatMul, Gelu, BiasGelu, SkipLayerNormalization and FusedConv of them; " + save_basic;
  }
  if (domain == "com.microsoft.nchwc")
    return "a blocked-layout op of ONNX Runtime's 'all' level, made for the CPU that wrote the file; " + save_basic;
  return "vitcc reads operators of the default ONNX domain (and some of ONNX Runtime's com.microsoft ones) only";
}

}  // namespace detail

namespace {

OnnxTensor scalar_f32(float v) {
  OnnxTensor t;
  t.dtype = DType::f32;
  t.f = {v};
  return t;
}

OnnxTensor shape_tensor(const Shape& s) {
  OnnxTensor t;
  t.dtype = DType::i64;
  t.shape = {static_cast<std::int64_t>(s.size())};
  t.i = s;
  return t;
}

bool is_layout(const std::string& op) {
  return op == "Reshape" || op == "Transpose" || op == "Squeeze" || op == "Unsqueeze" || op == "Flatten";
}

bool is_unary_rowwise(const std::string& op) {
  return op == "Erf" || op == "Relu" || op == "Sigmoid" || op == "Tanh" || op == "Neg" || op == "Sqrt";
}

}  // namespace

// ---- ONNX Runtime's contrib ops ---------------------------------------------------------------------------

std::vector<OnnxNode> OnnxGraph::expand_contrib(const OnnxNode& n) {
  try {
    return expand_contrib_checked(n);
  } catch (const ValueError& e) {  // an attribute with no integer value (NaN, ...)
    throw PackError(path_, n.label(), e.what());
  } catch (const detail::ShapeError& e) {
    throw PackError(path_, n.label(), e.what());
  }
}

std::vector<OnnxNode> OnnxGraph::expand_contrib_checked(const OnnxNode& n) {
  const std::string op = n.domain + "::" + n.op_type;
  auto fail = [&](const std::string& what) { throw PackError(path_, n.label(), what); };
  // Valid ONNX Runtime graphs that vitcc does not take (vitcc-pack exits 5).
  auto refuse = [&](const std::string& what) { throw PackError(path_, n.label(), what, unsupported_code); };
  if (n.outputs.empty() || n.outputs[0].empty()) fail("expected an output");
  std::vector<OnnxNode> out;
  auto emit = [&](const std::string& type, std::vector<std::string> ins, const std::string& o) {
    OnnxNode e;
    e.name = n.name;
    e.op_type = type;
    e.file_op = op;
    e.inputs = std::move(ins);
    e.outputs = {o};
    out.push_back(std::move(e));
    return &out.back();
  };
  auto temp = [&](const std::string& what) {
    // a fresh value name, also unique among the ones this expansion made so far
    std::string base = (n.outputs.empty() ? n.name : n.outputs[0]) + "::" + what, v = base;
    for (int k = 2; values_.count(v) || constants_.count(v) || reserved_.count(v) ||
                    std::any_of(out.begin(), out.end(), [&](const OnnxNode& e) { return e.outputs[0] == v; });
         ++k)
      v = base + "_" + std::to_string(k);
    return v;
  };
  auto constant_value = [&](const std::string& what, float v) {
    const std::string name = fresh_name((n.outputs.empty() ? n.name : n.outputs[0]) + "::" + what);
    add_constant(name, scalar_f32(v), "a constant of " + n.label() + "'s computation");
    return name;
  };
  auto input = [&](std::size_t k) { return k < n.inputs.size() ? n.inputs[k] : std::string(); };
  auto need_inputs = [&](std::size_t k) {
    for (std::size_t j = 0; j < k; ++j)
      if (input(j).empty()) fail("expected at least " + std::to_string(k) + " inputs");
  };
  auto extra_outputs = [&](std::size_t from) {
    for (std::size_t j = from; j < n.outputs.size(); ++j)
      if (!n.outputs[j].empty())
        refuse("output " + std::to_string(j) + " ('" + n.outputs[j] + "') is used; vitcc reads only the first");
  };
  // x * 0.5 * (1 + erf(x / sqrt(2))), as torch.onnx.export writes nn.GELU()
  auto gelu = [&](const std::string& x, const std::string& y) {
    const std::string d = temp("gelu_div"), e = temp("gelu_erf"), a = temp("gelu_add"), m = temp("gelu_mul");
    emit("Div", {x, constant_value("sqrt2", static_cast<float>(std::sqrt(2.0)))}, d);
    emit("Erf", {d}, e);
    emit("Add", {e, constant_value("one", 1.0f)}, a);
    emit("Mul", {x, a}, m);
    emit("Mul", {m, constant_value("half", 0.5f)}, y);
  };

  if (n.op_type == "Gelu") {
    need_inputs(1);
    extra_outputs(1);
    gelu(n.inputs[0], n.outputs[0]);
  } else if (n.op_type == "BiasGelu") {
    need_inputs(2);
    extra_outputs(1);
    const std::string s = temp("bias");
    emit("Add", {n.inputs[0], n.inputs[1]}, s);
    gelu(s, n.outputs[0]);
  } else if (n.op_type == "FusedMatMul") {
    need_inputs(2);
    extra_outputs(1);
    std::string a = n.inputs[0], b = n.inputs[1];
    const std::size_t rank_a = value_info(a).shape.size(), rank_b = value_info(b).shape.size();
    auto transposed = [&](const std::string& v, const char* what, std::size_t rank) {
      if (rank < 2) fail(std::string(what) + " of rank " + std::to_string(rank) + " cannot be transposed");
      std::vector<std::int64_t> perm(rank);
      std::iota(perm.begin(), perm.end(), std::int64_t{0});
      std::swap(perm[rank - 1], perm[rank - 2]);
      const std::string t = temp(std::string(what) + "_t");
      OnnxNode* tn = emit("Transpose", {v}, t);
      tn->attrs["perm"].kind = OnnxAttribute::Kind::ints;
      tn->attrs["perm"].ints = perm;
      return t;
    };
    // transBatchX: X = [d0, d1, .., dn-2, dn-1] is read as [d1, .., dn-2, d0, dn-1] (d0 moves behind the
    // batch dims), before transX swaps the last two.
    auto batch_moved = [&](const std::string& v, const char* what, std::size_t rank) {
      if (rank < 3) fail(std::string("transBatch") + what + " on a rank-" + std::to_string(rank) + " input (3 or more needed)");
      std::vector<std::int64_t> perm;
      for (std::size_t d = 1; d + 1 < rank; ++d) perm.push_back(static_cast<std::int64_t>(d));
      perm.push_back(0);
      perm.push_back(static_cast<std::int64_t>(rank - 1));
      const std::string t = temp(std::string(what) + "_batch_t");
      OnnxNode* tn = emit("Transpose", {v}, t);
      tn->attrs["perm"].kind = OnnxAttribute::Kind::ints;
      tn->attrs["perm"].ints = perm;
      return t;
    };
    if (n.attr_int("transBatchA", 0) != 0) a = batch_moved(a, "A", rank_a);
    if (n.attr_int("transBatchB", 0) != 0) b = batch_moved(b, "B", rank_b);
    if (n.attr_int("transA", 0) != 0) a = transposed(a, "A", rank_a);
    if (n.attr_int("transB", 0) != 0) b = transposed(b, "B", rank_b);
    const float alpha = n.attr_float("alpha", 1.0f);
    if (alpha == 1.0f) {
      emit("MatMul", {a, b}, n.outputs[0]);
    } else {
      const std::string p = temp("product");
      emit("MatMul", {a, b}, p);
      emit("Mul", {p, constant_value("alpha", alpha)}, n.outputs[0]);
    }
  } else if (n.op_type == "SkipLayerNormalization") {
    need_inputs(3);
    for (std::size_t j = 1; j < 3 && j < n.outputs.size(); ++j)
      if (!n.outputs[j].empty())
        refuse("its mean / inverse standard deviation output is used; vitcc computes neither. Save the optimised model "
             "at ONNX Runtime's 'basic' level");
    // outputs: 0 normalised, 3 the sum input + skip (+ bias)
    const std::string sum = n.outputs.size() > 3 && !n.outputs[3].empty() ? n.outputs[3] : temp("sum");
    const bool bias = !input(4).empty();
    const std::string s1 = bias ? temp("skip_sum") : sum;
    emit("Add", {n.inputs[0], n.inputs[1]}, s1);
    if (bias) emit("Add", {s1, n.inputs[4]}, sum);
    std::vector<std::string> ln_in = {sum, n.inputs[2]};
    if (!input(3).empty()) ln_in.push_back(n.inputs[3]);
    OnnxNode* ln = emit("LayerNormalization", ln_in, n.outputs[0]);
    ln->attrs["axis"].kind = OnnxAttribute::Kind::i;
    ln->attrs["axis"].i = -1;
    ln->attrs["epsilon"].kind = OnnxAttribute::Kind::f;
    ln->attrs["epsilon"].f = n.attr_float("epsilon", 1e-12f);
  } else if (n.op_type == "FusedConv") {
    need_inputs(2);
    extra_outputs(1);
    const std::string act = n.attr_string("activation", "");
    const char* act_op = act == "Relu" ? "Relu" : act == "Sigmoid" ? "Sigmoid" : act == "Tanh" ? "Tanh" : nullptr;
    if (!act.empty() && !act_op)
      refuse("activation '" + act + "' is not supported (Relu, Sigmoid and Tanh are); save the optimised model at "
             "ONNX Runtime's 'basic' level");
    std::vector<std::string> conv_in = {n.inputs[0], n.inputs[1]};
    if (!input(2).empty()) conv_in.push_back(n.inputs[2]);
    const bool z = !input(3).empty();
    const std::string c = (z || act_op) ? temp("conv") : n.outputs[0];
    OnnxNode* conv = emit("Conv", conv_in, c);
    for (const auto& [k, v] : n.attrs)
      if (k != "activation" && k != "activation_params") conv->attrs[k] = v;
    std::string y = c;
    if (z) {
      y = act_op ? temp("sum") : n.outputs[0];
      emit("Add", {c, n.inputs[3]}, y);
    }
    if (act_op) emit(act_op, {y}, n.outputs[0]);
  } else {
    refuse(detail::contrib_op_refusal(n.domain, n.op_type, opset_));
  }
  ++rewrites_[op + " expanded"];
  return out;
}

// ---- the rewrites -------------------------------------------------------------------------------------------

void OnnxGraph::normalize(std::vector<OnnxNode>& nodes) {
  auto consumers_of = [&](const std::string& v) {
    std::vector<std::size_t> c;
    for (std::size_t k = 0; k < nodes.size(); ++k)
      if (std::find(nodes[k].inputs.begin(), nodes[k].inputs.end(), v) != nodes[k].inputs.end()) c.push_back(k);
    return c;
  };
  // every use of `from` reads `to` instead (same shape, same values)
  auto replace_uses = [&](const std::string& from, const std::string& to) {
    for (OnnxNode& n : nodes)
      for (std::string& i : n.inputs)
        if (i == from) i = to;
    if (output_value_ == from) output_value_ = to;
  };
  auto erase = [&](std::set<std::size_t> dead) {
    std::vector<OnnxNode> kept;
    kept.reserve(nodes.size());
    for (std::size_t k = 0; k < nodes.size(); ++k)
      if (!dead.count(k)) kept.push_back(std::move(nodes[k]));
    nodes = std::move(kept);
  };
  auto shape_of = [&](const std::string& v) -> const Shape& { return value_info(v).shape; };
  auto params_constant = [&](const OnnxNode& n) {
    for (std::size_t j = 1; j < n.inputs.size(); ++j)
      if (!n.inputs[j].empty() && !is_constant(n.inputs[j])) return false;
    return true;
  };

  // 1. Gemm with a constant B: MatMul (+ Add), the weight as [in, out] with alpha folded, beta * C as the bias.
  for (std::size_t k = 0; k < nodes.size(); ++k) {
    const OnnxNode n = nodes[k];
    if (n.op_type != "Gemm" || n.inputs.size() < 2 || is_constant(n.inputs[0]) || n.attr_int("transA", 0) != 0) continue;
    const OnnxTensor* b = constant(n.inputs[1]);
    if (!b || b->dtype != DType::f32 || b->shape.size() != 2) continue;
    const bool tb = n.attr_int("transB", 0) != 0;
    const float alpha = n.attr_float("alpha", 1.0f), beta = n.attr_float("beta", 1.0f);
    const std::int64_t K = tb ? b->shape[1] : b->shape[0], N = tb ? b->shape[0] : b->shape[1];
    const bool has_c = n.inputs.size() > 2 && !n.inputs[2].empty() && beta != 0.0f;
    const OnnxTensor* c = has_c ? constant(n.inputs[2]) : nullptr;
    if (has_c && (!c || c->dtype != DType::f32 ||
                  !(c->numel() == 1 || (c->numel() == N && !c->shape.empty() && c->shape.back() == N))))
      continue;  // C computed from the image, or not one value per output: left to the recogniser to refuse
    std::string w = n.inputs[1];
    if (tb || alpha != 1.0f) {
      OnnxTensor t;
      t.shape = {K, N};
      t.f.resize(b->f.size());
      for (std::int64_t a = 0; a < K; ++a)
        for (std::int64_t o = 0; o < N; ++o)
          t.f[static_cast<std::size_t>(a * N + o)] = alpha * (tb ? b->f[static_cast<std::size_t>(o * K + a)] : b->f[static_cast<std::size_t>(a * N + o)]);
      w = fresh_name(n.inputs[1] + "::in_out");
      add_constant(w, std::move(t), constant_source(n.inputs[1]) + (tb ? ", transposed" : "") +
                                        (alpha != 1.0f ? ", times alpha" : "") + " by " + n.label());
    }
    OnnxNode mm;
    mm.name = n.name;
    mm.op_type = "MatMul";
    mm.file_op = "Gemm";
    mm.inputs = {n.inputs[0], w};
    mm.outputs = {n.outputs[0]};
    ++rewrites_["Gemm read as MatMul + Add"];
    if (!has_c) {
      nodes[k] = std::move(mm);
      continue;
    }
    std::string bias = n.inputs[2];
    if (!(beta == 1.0f && c->shape.size() == 1 && c->numel() == N)) {
      OnnxTensor t;
      t.shape = {N};
      t.f.resize(static_cast<std::size_t>(N));
      for (std::int64_t o = 0; o < N; ++o) t.f[static_cast<std::size_t>(o)] = beta * c->f[c->numel() == 1 ? 0 : static_cast<std::size_t>(o)];
      bias = fresh_name(n.inputs[2] + "::bias");
      add_constant(bias, std::move(t), constant_source(n.inputs[2]) + (beta != 1.0f ? ", times beta" : "") + " by " + n.label());
    }
    const std::string product = fresh_name(n.outputs[0] + "::matmul");
    values_[product] = value_info(n.outputs[0]);
    mm.outputs = {product};
    OnnxNode add;
    add.name = n.name;
    add.op_type = "Add";
    add.file_op = "Gemm";
    add.inputs = {product, bias};
    add.outputs = {n.outputs[0]};
    nodes[k] = std::move(mm);
    nodes.insert(nodes.begin() + static_cast<std::ptrdiff_t>(k) + 1, std::move(add));
    ++k;
  }

  // 2. Rows lifted back to tokens: Reshape(x -> [M, K]) feeding Linears and row-wise ops that end in Reshapes.
  auto rowwise_constant = [&](const std::string& v) {
    const OnnxTensor* c = constant(v);
    if (!c || c->dtype != DType::f32) return false;
    if (c->numel() == 1) return true;
    for (std::size_t d = 0; d + 1 < c->shape.size(); ++d)
      if (c->shape[d] != 1) return false;
    return !c->shape.empty();
  };
  auto rowwise = [&](const OnnxNode& n) {
    if (n.outputs.size() != 1) return false;
    if (n.op_type == "MatMul") {
      const OnnxTensor* w = n.inputs.size() == 2 ? constant(n.inputs[1]) : nullptr;
      return w && w->shape.size() == 2 && !is_constant(n.inputs[0]);
    }
    if (n.op_type == "Add" || n.op_type == "Sub" || n.op_type == "Mul" || n.op_type == "Div") {
      for (const std::string& i : n.inputs)
        if (is_constant(i) && !rowwise_constant(i)) return false;
      return n.inputs.size() == 2;
    }
    return is_unary_rowwise(n.op_type) && n.inputs.size() == 1;
  };
  for (bool changed = true; changed;) {
    changed = false;
    for (std::size_t k = 0; k < nodes.size() && !changed; ++k) {
      const OnnxNode& r = nodes[k];
      if (r.op_type != "Reshape" || r.inputs.size() < 2 || is_constant(r.inputs[0]) || !is_constant(r.inputs[1])) continue;
      const std::string x = r.inputs[0], y = r.outputs[0];
      const Shape xs = shape_of(x), ys = shape_of(y);
      if (ys.size() != 2 || xs.size() < 3 || y == output_value_) continue;
      // the longest leading part of x's shape that makes the rows
      std::size_t j = 0;
      for (std::size_t d = 1; d < xs.size(); ++d) {
        std::int64_t lead = 1, rest = 1;
        for (std::size_t e = 0; e < xs.size(); ++e) (e < d ? lead : rest) *= xs[e];
        if (lead == ys[0] && rest == ys[1]) j = d;
      }
      if (j < 2) continue;
      // the region: row-wise nodes reachable from y, left only through Reshapes
      std::vector<std::size_t> region, exits;
      std::set<std::string> rvals = {y};
      std::vector<std::string> todo = {y};
      std::set<std::size_t> seen;
      bool ok = true, linear = false;
      while (ok && !todo.empty()) {
        const std::string v = todo.back();
        todo.pop_back();
        if (v == output_value_) ok = false;
        for (std::size_t c : consumers_of(v)) {
          if (!ok || !seen.insert(c).second) continue;
          const OnnxNode& cn = nodes[c];
          if (cn.op_type == "Reshape" && cn.inputs.size() >= 2 && cn.inputs[0] == v && cn.inputs[1] != v && is_constant(cn.inputs[1])) {
            exits.push_back(c);
          } else if (rowwise(cn)) {
            region.push_back(c);
            linear = linear || cn.op_type == "MatMul";
            rvals.insert(cn.outputs[0]);
            todo.push_back(cn.outputs[0]);
          } else {
            ok = false;
          }
        }
      }
      if (!ok || !linear || exits.empty()) continue;
      for (std::size_t c : region)
        for (const std::string& i : nodes[c].inputs)
          if (!is_constant(i) && !rvals.count(i)) ok = false;  // e.g. a residual from outside: not row-wise alone
      if (!ok) continue;

      std::set<std::size_t> dead;
      std::string entry = x;
      Shape lifted(xs.begin(), xs.begin() + static_cast<std::ptrdiff_t>(j));
      lifted.push_back(ys[1]);
      if (j + 1 != xs.size()) {  // x's last dims merge too ([1, T, H, d] -> [T, H*d]): Reshape to [1, T, H*d]
        OnnxNode& rn = nodes[k];
        const std::string target = fresh_name(y + "::tokens_shape");
        add_constant(target, shape_tensor(lifted), "the token shape of " + rn.label() + "'s rows");
        entry = fresh_name(y + "::tokens");
        rn.inputs[1] = target;
        rn.outputs[0] = entry;
        infer(rn);
      } else {
        dead.insert(k);
      }
      for (std::size_t c : region) {
        for (std::string& i : nodes[c].inputs)
          if (i == y) i = entry;
      }
      std::sort(region.begin(), region.end());
      for (std::size_t c : region) infer(nodes[c]);
      for (std::size_t c : exits) {
        OnnxNode& e = nodes[c];
        if (e.inputs[0] == y) e.inputs[0] = entry;
        const Shape target = shape_of(e.outputs[0]);
        const std::string t = fresh_name(e.outputs[0] + "::shape");
        add_constant(t, shape_tensor(target), "the output shape of " + e.label());
        e.inputs[1] = t;
        infer(e);
        if (shape_of(e.inputs[0]) == target) {
          replace_uses(e.outputs[0], e.inputs[0]);
          dead.insert(c);
        }
      }
      erase(dead);
      ++rewrites_["Reshape of tokens to rows around Linears lifted"];
      changed = true;
    }
  }

  auto layout_node = [&](const OnnxNode& n) {
    return is_layout(n.op_type) && !n.inputs.empty() && !is_constant(n.inputs[0]) && n.outputs.size() == 1 &&
           params_constant(n);
  };
  auto apply_to = [&](const OnnxNode& n, const OnnxTensor& data) {
    std::vector<const OnnxTensor*> ins(n.inputs.size(), nullptr);
    ins[0] = &data;
    for (std::size_t j = 1; j < n.inputs.size(); ++j)
      if (!n.inputs[j].empty()) ins[j] = constant(n.inputs[j]);
    return std::move(eval_node(n, ins).at(0));
  };
  // 3. Transposes moved down through element-wise ops, Concat and ReduceMean (ONNX Runtime's transpose
  // optimiser does this: torchvision's ViT then runs its tokens as [1, D, T]) are moved back up, next to
  // the op that made the layout. First a Transpose that also moves size-1 dims is split into the part that
  // reorders elements (unit dims kept in place) and a Reshape; then that part is hoisted while the value it
  // reads is made by a hoistable op and read only by such Transposes.
  auto canonical_perm = [&](const Shape& in, const std::vector<std::int64_t>& perm) {
    std::vector<std::int64_t> nonunit_in, order, q(in.size());
    std::iota(q.begin(), q.end(), std::int64_t{0});
    for (std::size_t d = 0; d < in.size(); ++d)
      if (in[d] != 1) nonunit_in.push_back(static_cast<std::int64_t>(d));
    for (std::int64_t d : perm)
      if (in[static_cast<std::size_t>(d)] != 1) order.push_back(d);
    for (std::size_t k = 0; k < nonunit_in.size(); ++k) q[static_cast<std::size_t>(nonunit_in[k])] = order[k];
    return q;
  };
  auto perm_of = [&](const OnnxNode& t) {
    std::vector<std::int64_t> perm;
    if (const auto* p = t.attr_ints("perm")) perm = *p;
    else
      for (std::int64_t d = static_cast<std::int64_t>(shape_of(t.inputs[0]).size()) - 1; d >= 0; --d) perm.push_back(d);
    return perm;
  };
  auto is_identity = [](const std::vector<std::int64_t>& p) {
    for (std::size_t d = 0; d < p.size(); ++d)
      if (p[d] != static_cast<std::int64_t>(d)) return false;
    return true;
  };
  auto producer_index = [&](const std::string& v) -> std::ptrdiff_t {
    for (std::size_t k = 0; k < nodes.size(); ++k)
      if (std::find(nodes[k].outputs.begin(), nodes[k].outputs.end(), v) != nodes[k].outputs.end()) return static_cast<std::ptrdiff_t>(k);
    return -1;
  };
  auto hoistable = [&](const OnnxNode& p) {
    if (p.outputs.size() != 1) return false;
    const std::size_t rank = shape_of(p.outputs[0]).size();
    if (is_unary_rowwise(p.op_type)) return p.inputs.size() == 1;
    if (p.op_type == "Add" || p.op_type == "Sub" || p.op_type == "Mul" || p.op_type == "Div" || p.op_type == "Pow") {
      if (p.inputs.size() != 2) return false;
      for (const std::string& i : p.inputs)  // a computed input of lower rank would need its own broadcast
        if (!is_constant(i) && shape_of(i).size() != rank) return false;
      return true;
    }
    if (p.op_type == "ReduceMean") return p.inputs.size() == 1 && p.attr_int("keepdims", 1) == 1 && p.attr_ints("axes");
    if (p.op_type == "Concat") {
      for (const std::string& i : p.inputs)
        if (i.empty()) return false;
      return true;
    }
    return p.op_type == "Transpose" && p.inputs.size() == 1;
  };
  auto make_transpose = [&](const std::string& name, const std::string& in, const std::vector<std::int64_t>& perm,
                            const std::string& out) {
    OnnxNode t;
    t.name = name;
    t.op_type = "Transpose";
    t.inputs = {in};
    t.outputs = {out};
    t.attrs["perm"].kind = OnnxAttribute::Kind::ints;
    t.attrs["perm"].ints = perm;
    return t;
  };
  // a constant as an operand of the op moved below the Transpose: broadcast to rank r, transposed, leading
  // 1s dropped again
  auto transposed_constant = [&](const std::string& c, const std::vector<std::int64_t>& perm, const std::string& why, bool broadcasts) {
    const OnnxTensor* t = constant(c);
    const std::size_t r = perm.size();
    Shape s(r - std::min(r, t->shape.size()), 1);
    s.insert(s.end(), t->shape.begin(), t->shape.end());
    if (s.size() != r) return std::string();
    OnnxTensor u = *t;
    u.shape = s;
    OnnxNode tn = make_transpose("", c, perm, "");
    OnnxTensor v = apply_to(tn, u);
    std::size_t lead = 0;
    while (broadcasts && lead + 1 < v.shape.size() && v.shape[lead] == 1) ++lead;
    v.shape.erase(v.shape.begin(), v.shape.begin() + static_cast<std::ptrdiff_t>(lead));
    const std::string name = fresh_name(c + "::transposed");
    add_constant(name, std::move(v), constant_source(c) + ", transposed as " + why);
    return name;
  };
  // split
  std::map<std::string, OnnxNode> splits;  // the reordering part's output -> the Transpose as the file had it
  for (std::size_t k = 0; k < nodes.size(); ++k) {
    const OnnxNode t = nodes[k];
    if (t.op_type != "Transpose" || t.inputs.size() != 1 || is_constant(t.inputs[0])) continue;
    const std::ptrdiff_t pi = producer_index(t.inputs[0]);
    if (pi < 0 || !hoistable(nodes[static_cast<std::size_t>(pi)]) || nodes[static_cast<std::size_t>(pi)].op_type == "Transpose") continue;
    const std::vector<std::int64_t> perm = perm_of(t), q = canonical_perm(shape_of(t.inputs[0]), perm);
    if (is_identity(q) || q == perm) continue;
    const std::string mid = fresh_name(t.outputs[0] + "::reordered");
    OnnxNode tq = make_transpose(t.name, t.inputs[0], q, mid);
    tq.file_op = t.file_op;
    infer(tq);
    OnnxNode rs;
    rs.name = t.name;
    rs.op_type = "Reshape";
    rs.file_op = "Transpose";
    const std::string target = fresh_name(t.outputs[0] + "::shape");
    add_constant(target, shape_tensor(shape_of(t.outputs[0])), "the output shape of " + t.label());
    rs.inputs = {mid, target};
    rs.outputs = t.outputs;
    splits[mid] = t;
    nodes[k] = std::move(tq);
    nodes.insert(nodes.begin() + static_cast<std::ptrdiff_t>(k) + 1, std::move(rs));
    ++k;
  }
  // hoist
  std::set<std::string> moving;  // outputs of the Transposes made by hoisting: they move on whatever dims they permute
  auto hoist = [&](const std::function<bool(const OnnxNode&, const std::vector<std::int64_t>&)>& gate) {
    for (bool changed = true; changed;) {
      changed = false;
      for (std::size_t k = 0; k < nodes.size() && !changed; ++k) {
        if (nodes[k].op_type != "Transpose" || nodes[k].inputs.size() != 1 || is_constant(nodes[k].inputs[0])) continue;
        const std::string v = nodes[k].inputs[0];
        const std::vector<std::int64_t> perm = perm_of(nodes[k]);
        if (is_identity(perm) || v == output_value_ || !gate(nodes[k], perm)) continue;
        const std::ptrdiff_t pi = producer_index(v);
        if (pi < 0 || !hoistable(nodes[static_cast<std::size_t>(pi)])) continue;
        const std::vector<std::size_t> readers = consumers_of(v);
        bool all = true;
        for (std::size_t c : readers)
          all = all && nodes[c].op_type == "Transpose" && nodes[c].inputs.size() == 1 && perm_of(nodes[c]) == perm;
        if (!all) continue;
        const OnnxNode p = nodes[static_cast<std::size_t>(pi)];
        const std::size_t rank = perm.size();
        const std::string why = "the Transpose after " + p.label() + " moved above it";
        std::vector<OnnxNode> before;
        OnnxNode q = p;
        q.outputs = {fresh_name(v + "::hoisted")};
        if (p.op_type == "Transpose") {
          const std::vector<std::int64_t> r = perm_of(p);
          std::vector<std::int64_t> c(rank);
          for (std::size_t i = 0; i < rank; ++i) c[i] = r[static_cast<std::size_t>(perm[i])];
          q.attrs["perm"].kind = OnnxAttribute::Kind::ints;
          q.attrs["perm"].ints = c;
        } else {
          for (std::string& in : q.inputs) {
            if (is_constant(in)) {
              const std::string c = transposed_constant(in, perm, why, p.op_type != "Concat");
              if (c.empty()) {
                all = false;
                break;
              }
              in = c;
            } else {
              const std::string t = fresh_name(in + "::transposed");
              before.push_back(make_transpose(p.name, in, perm, t));
              infer(before.back());
              moving.insert(t);
              in = t;
            }
          }
          if (!all) continue;
          auto moved_axis = [&](std::int64_t a) {
            if (a < 0) a += static_cast<std::int64_t>(rank);
            for (std::size_t i = 0; i < rank; ++i)
              if (perm[i] == a) return static_cast<std::int64_t>(i);
            return a;
          };
          if (p.op_type == "Concat") q.attrs["axis"].i = moved_axis(p.attr_int("axis", 0)), q.attrs["axis"].kind = OnnxAttribute::Kind::i;
          if (p.op_type == "ReduceMean") {
            std::vector<std::int64_t> axes;
            for (std::int64_t a : *p.attr_ints("axes")) axes.push_back(moved_axis(a));
            std::sort(axes.begin(), axes.end());
            q.attrs["axes"].ints = axes;
          }
        }
        for (OnnxNode& b : before) b.file_op.clear();
        infer(q);
        const std::string hoisted = q.outputs[0];
        std::set<std::size_t> dead(readers.begin(), readers.end());
        for (std::size_t c : readers) replace_uses(nodes[c].outputs[0], hoisted);
        nodes[static_cast<std::size_t>(pi)] = std::move(q);
        nodes.insert(nodes.begin() + pi, before.begin(), before.end());
        std::set<std::size_t> shifted;
        for (std::size_t c : dead) shifted.insert(c + before.size());
        erase(shifted);
        ++rewrites_["Transpose moved back up over an op"];
        changed = true;
      }
    }
  };
  auto merge_reshapes = [&]() {
    for (bool changed = true; changed;) {
      changed = false;
      for (std::size_t k = 0; k < nodes.size() && !changed; ++k) {
        OnnxNode& a = nodes[k];
        if (a.op_type != "Reshape" || !layout_node(a) || a.outputs[0] == output_value_) continue;
        const std::vector<std::size_t> cs = consumers_of(a.outputs[0]);
        if (cs.size() != 1 || nodes[cs[0]].op_type != "Reshape" || !layout_node(nodes[cs[0]]) || nodes[cs[0]].inputs[0] != a.outputs[0]) continue;
        OnnxNode& b = nodes[cs[0]];
        const std::string t = fresh_name(b.outputs[0] + "::shape");
        add_constant(t, shape_tensor(shape_of(b.outputs[0])), "the output shape of " + b.label());
        b.inputs = {a.inputs[0], t};
        infer(b);
        erase({k});
        ++rewrites_["Reshape chain merged"];
        changed = true;
      }
    }
  };
  auto cancel_layout = [&]() {
    for (bool changed = true; changed;) {
      changed = false;
      for (std::size_t k = 0; k < nodes.size() && !changed; ++k) {
        const OnnxNode& p = nodes[k];
        if (!layout_node(p)) continue;
        const std::string in = p.inputs[0], out = p.outputs[0];
        if (shape_of(out) == shape_of(in) && (p.op_type != "Transpose" || is_identity(perm_of(p)))) {
          if (out == output_value_ && in == input_name_) continue;
          ++rewrites_[p.op_type + " that is an identity removed"];
          replace_uses(out, in);
          erase({k});  // p is gone from here on
          changed = true;
          continue;
        }
        const std::vector<std::size_t> cs = consumers_of(out);
        if (cs.size() != 1 || out == output_value_) continue;
        const OnnxNode& q = nodes[cs[0]];
        if (!layout_node(q) || q.inputs[0] != out || shape_of(q.outputs[0]) != shape_of(in)) continue;
        if (q.outputs[0] == output_value_ && in == input_name_) continue;
        if (detail::shape_numel(shape_of(in)) > (std::int64_t{1} << 24)) continue;  // not a model's activation
        OnnxTensor iota;
        iota.dtype = DType::i64;
        iota.shape = shape_of(in);
        iota.i.resize(static_cast<std::size_t>(iota.numel()));
        std::iota(iota.i.begin(), iota.i.end(), std::int64_t{0});
        const OnnxTensor back = apply_to(q, apply_to(p, iota));
        if (back.shape != iota.shape || back.i != iota.i) continue;
        ++rewrites_[p.op_type + " + " + q.op_type + " that cancel removed"];
        replace_uses(q.outputs[0], in);
        erase({k, cs[0]});  // p and q are gone from here on
        changed = true;
      }
    }
  };

  // Transposes that reorder elements are hoisted as far as they go.
  hoist([&](const OnnxNode& t, const std::vector<std::int64_t>& perm) {
    return moving.count(t.outputs[0]) || canonical_perm(shape_of(t.inputs[0]), perm) == perm;
  });
  // A Transpose that moves only size-1 dims ([T, 1, D] -> [1, T, D]) reorders nothing, so it could sit
  // anywhere: it is hoisted only where that lets Transposes cancel out (ONNX Runtime moved one into the
  // middle of a LayerNorm), and left where it is otherwise (torchvision's export puts one after each).
  merge_reshapes();
  cancel_layout();
  std::set<std::string> tried;
  auto transposes = [&]() {
    return std::count_if(nodes.begin(), nodes.end(), [](const OnnxNode& n) { return n.op_type == "Transpose"; });
  };
  for (;;) {
    std::string candidate;
    for (const OnnxNode& t : nodes) {
      if (t.op_type != "Transpose" || t.inputs.size() != 1 || is_constant(t.inputs[0]) || tried.count(t.outputs[0])) continue;
      const std::vector<std::int64_t> perm = perm_of(t);
      if (is_identity(perm) || !is_identity(canonical_perm(shape_of(t.inputs[0]), perm))) continue;
      const std::ptrdiff_t pi = producer_index(t.inputs[0]);
      if (pi < 0 || !hoistable(nodes[static_cast<std::size_t>(pi)])) continue;
      candidate = t.outputs[0];
      break;
    }
    if (candidate.empty()) break;
    tried.insert(candidate);
    const std::vector<OnnxNode> saved = nodes;
    const std::string saved_output = output_value_;
    const std::set<std::string> saved_moving = moving;
    const std::map<std::string, int> saved_rewrites = rewrites_;
    const auto before = transposes();
    moving.insert(candidate);
    hoist([&](const OnnxNode& t, const std::vector<std::int64_t>&) { return moving.count(t.outputs[0]) != 0; });
    merge_reshapes();
    cancel_layout();
    if (transposes() >= before) {
      nodes = saved;
      output_value_ = saved_output;
      moving = saved_moving;
      rewrites_ = saved_rewrites;
    }
  }
  // A split Transpose that did not move is put back as the file had it.
  for (const auto& [mid, t] : splits) {
    std::ptrdiff_t ti = -1, ri = -1;
    for (std::size_t k = 0; k < nodes.size(); ++k) {
      if (nodes[k].op_type == "Transpose" && nodes[k].outputs[0] == mid && nodes[k].inputs[0] == t.inputs[0]) ti = static_cast<std::ptrdiff_t>(k);
      if (nodes[k].op_type == "Reshape" && nodes[k].outputs == t.outputs && nodes[k].inputs[0] == mid) ri = static_cast<std::ptrdiff_t>(k);
    }
    if (ti < 0 || ri < 0 || consumers_of(mid).size() != 1) continue;
    nodes[static_cast<std::size_t>(ti)] = t;
    erase({static_cast<std::size_t>(ri)});
  }
  merge_reshapes();
  cancel_layout();
}

}  // namespace vitcc::pack
