#include "efficientvit_recognizer.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <unordered_map>
#include <vector>

#include "../common/self_check.hpp"
#include "error.hpp"
#include "vitcc/models/efficientvit.hpp"

namespace vitcc::pack {
namespace {

using Shape = std::vector<std::int64_t>;

struct Conv {
  Tensor weight, bias;  // BN folded; bias always present
  std::int64_t cout = 0, cin = 0, k = 0, stride = 1, pad = 0, group = 1;
  std::string out;      // value after the (folded) BatchNormalization
  int node = -1;
};

// One recognised unit of the residual stream.
struct Unit {
  enum Kind { dw, ffn, mixer, merge } kind;
  int node = -1;                   // first node, for messages
  std::vector<Conv> convs;         // dw: [dw]; ffn: [pw1, pw2]; merge: [conv1, conv2, fc1, fc2, conv3];
                                   // mixer: [qkv0, dw0, qkv1, dw1, ..., proj]
  Tensor bias;                     // mixer: [heads, N, N]
  float scale = 0;
  std::int64_t heads = 0, kd = 0, vd = 0, win = 0, res = 0;
};

class Recognizer {
 public:
  explicit Recognizer(const OnnxGraph& g) : g_(g), used_(g.nodes().size(), false) {}

  EvitSpec run();

 private:
  const OnnxGraph& g_;
  std::vector<bool> used_;
  bool saw_bn_ = false;
  // Values of the graph on an image-like input (the self-check image), kept for every non-constant input
  // of an Add (so every residual stream value): what check_mixer feeds an attention branch. Computed on
  // first use, by one run of the graph.
  mutable std::unordered_map<std::string, OnnxTensor> probe_;
  mutable bool probed_ = false;
  const OnnxTensor& probe_value(const std::string& v, int from) const;

  const OnnxNode& node(int i) const { return g_.nodes()[std::size_t(i)]; }
  [[noreturn]] void fail(int i, const std::string& what) const {
    if (i < 0) throw PackError(g_.path(), "", what);
    throw PackError(g_.path(), node(i).label(), what);
  }
  void use(int i) {
    if (used_[std::size_t(i)]) fail(i, "node reached twice while walking the EfficientViT structure");
    used_[std::size_t(i)] = true;
  }
  // The one node consuming v (refuses fan-out).
  int sole_consumer(const std::string& v, int from) const {
    const auto& c = g_.consumers(v);
    if (c.size() != 1)
      fail(from, "expected its output '" + v + "' to feed exactly one node, found " + std::to_string(c.size()));
    return c[0];
  }
  const OnnxTensor& constant(int i, std::size_t input, const char* what) const {
    const OnnxNode& n = node(i);
    if (input >= n.inputs.size() || !g_.is_constant(n.inputs[input]))
      fail(i, std::string("expected a constant ") + what + " as input #" + std::to_string(input));
    return *g_.constant(n.inputs[input]);
  }
  std::string expect_op(int i, const char* op, const std::string& what) const {
    if (node(i).op_type != op) fail(i, "expected " + what + " (" + op + ")");
    return node(i).outputs.at(0);
  }
  // x -> Relu; returns the Relu output. Another activation usually shows as x read by several nodes
  // (GELU: Div and Mul; SiLU: Sigmoid and Mul), so that case lists what reads x instead of reporting a
  // bare fan-out.
  std::string take_relu(const std::string& x, int from) {
    const auto& c = g_.consumers(x);
    if (c.size() != 1) {
      std::string ops;
      for (int k : c) ops += (ops.empty() ? "" : ", ") + node(k).op_type;
      fail(from, "expected its output '" + x + "' to feed a ReLU, found " + std::to_string(c.size()) + " nodes reading it" +
                     (c.empty() ? std::string() : " (" + ops + "): another activation than EfficientViT's ReLU?"));
    }
    expect_op(c[0], "Relu", "a ReLU");
    use(c[0]);
    return node(c[0]).outputs[0];
  }

  Conv take_conv(int i, const std::string& what);
  std::string through_scale(std::string v, double& scale) const;
  Unit take_mixer(const std::string& x, int add, std::int64_t c);
  Unit take_merge(int first, std::int64_t c);
  void check_mixer(const Unit& u, const std::vector<int>& region, const std::string& x, const std::string& y,
                   int add) const;
};

// Conv (+ inference BatchNormalization, folded). Weight/bias must be constants.
Conv Recognizer::take_conv(int i, const std::string& what) {
  const OnnxNode& n = node(i);
  if (n.op_type != "Conv") fail(i, "expected " + what + " (Conv)");
  const OnnxTensor& w = constant(i, 1, "conv weight");
  if (w.shape.size() != 4 || w.shape[2] != w.shape[3]) fail(i, "expected a square 2-D conv weight, found " + shape_str(w.shape));
  Conv c;
  c.node = i;
  c.cout = w.shape[0];
  c.k = w.shape[2];
  c.group = n.attr_int("group", 1);
  c.cin = w.shape[1] * c.group;
  const auto* st = n.attr_ints("strides");
  const auto* pd = n.attr_ints("pads");
  const auto* dl = n.attr_ints("dilations");
  c.stride = st ? (*st)[0] : 1;
  c.pad = pd ? (*pd)[0] : 0;
  if ((st && (*st)[1] != c.stride) || (pd && ((*pd)[1] != c.pad || (*pd)[2] != c.pad || (*pd)[3] != c.pad)) ||
      (dl && ((*dl)[0] != 1 || (*dl)[1] != 1)) || n.attr_string("auto_pad", "NOTSET") != "NOTSET")
    fail(i, "expected symmetric padding, equal strides and no dilation in " + what);
  c.weight.shape = w.shape;
  c.weight.data = w.f;
  c.weight.source = g_.constant_source(n.inputs[1]);
  c.bias.shape = {c.cout};
  c.bias.data.assign(std::size_t(c.cout), 0.0f);
  if (n.inputs.size() > 2 && !n.inputs[2].empty()) c.bias.data = constant(i, 2, "conv bias").f;
  use(i);
  c.out = n.outputs[0];
  const auto& cons = g_.consumers(c.out);
  if (cons.size() == 1 && node(cons[0]).op_type == "BatchNormalization") {
    const int b = cons[0];
    const OnnxNode& bn = node(b);
    if (bn.attr_int("training_mode", 0) != 0) fail(b, "BatchNormalization in training mode");
    const float eps = bn.attr_float("epsilon", 1e-5f);
    const auto& scale = constant(b, 1, "BN scale").f;
    const auto& beta = constant(b, 2, "BN bias").f;
    const auto& mean = constant(b, 3, "BN mean").f;
    const auto& var = constant(b, 4, "BN variance").f;
    if (scale.size() != std::size_t(c.cout)) fail(b, "BN over " + std::to_string(scale.size()) + " channels after a conv with " + std::to_string(c.cout));
    const std::size_t per = c.weight.data.size() / std::size_t(c.cout);
    for (std::size_t o = 0; o < std::size_t(c.cout); ++o) {
      const double s = double(scale[o]) / std::sqrt(double(var[o]) + double(eps));
      for (std::size_t k = 0; k < per; ++k) c.weight.data[o * per + k] = float(c.weight.data[o * per + k] * s);
      c.bias.data[o] = float((double(c.bias.data[o]) - mean[o]) * s + beta[o]);
    }
    use(b);
    saw_bn_ = true;
    c.out = bn.outputs[0];
  }
  return c;
}

// Follows v back through layout ops and Mul/Div by a scalar constant, multiplying `scale` by each
// factor, and returns the first value that is neither (the MatMul's output, a conv's, a Split's, ...).
std::string Recognizer::through_scale(std::string v, double& scale) const {
  static const std::set<std::string> layout = {"Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze"};
  for (;;) {
    const int p = g_.producer_node(v);
    if (p < 0) return v;
    const OnnxNode& n = node(p);
    if (layout.count(n.op_type)) {
      v = n.inputs[0];
      continue;
    }
    if (n.op_type == "Mul" || n.op_type == "Div") {
      const int ci = g_.is_constant(n.inputs[1]) ? 1 : (n.op_type == "Mul" && g_.is_constant(n.inputs[0])) ? 0 : -1;
      if (ci < 0 || g_.constant(n.inputs[std::size_t(ci)])->numel() != 1) return v;
      const double c = g_.constant(n.inputs[std::size_t(ci)])->as_double(0);
      if (n.op_type == "Div" && c == 0.0) fail(p, "divides the attention scores by zero");
      scale = n.op_type == "Mul" ? scale * c : scale / c;
      v = n.inputs[std::size_t(1 - ci)];
      continue;
    }
    return v;
  }
}

// Everything between the stream value x and the residual Add: cascaded group attention in windows.
Unit Recognizer::take_mixer(const std::string& x, int add, std::int64_t c) {
  const OnnxNode& a = node(add);
  const std::string y = a.inputs[0] == x ? a.inputs[1] : a.inputs[0];
  // Collect the region backwards from y down to x.
  std::set<int> region;
  std::vector<std::string> stack{y};
  while (!stack.empty()) {
    const std::string v = stack.back();
    stack.pop_back();
    if (v == x || v.empty() || g_.is_constant(v)) continue;
    const int p = g_.producer_node(v);
    if (p < 0) fail(add, "the attention branch reads '" + v + "', which is neither the block input nor a constant");
    if (region.count(p)) continue;
    if (used_[std::size_t(p)]) fail(p, "belongs to an earlier part of the model but feeds this attention branch");
    region.insert(p);
    for (const std::string& in : node(p).inputs) stack.push_back(in);
  }
  static const std::set<std::string> allowed = {"Conv", "BatchNormalization", "Transpose", "Reshape", "Pad", "Slice",
                                                "Split", "Gather", "Squeeze", "Unsqueeze", "Concat", "MatMul", "Mul",
                                                "Div", "Add", "Softmax", "Relu", "Flatten"};
  for (int p : region) {
    if (!allowed.count(node(p).op_type))
      fail(p, "unexpected op inside the attention branch of the block (an EfficientViT mixer uses only convs, "
              "layout ops, MatMul, Softmax, the bias Add and the scale)");
    for (const std::string& o : node(p).outputs)
      for (int k : g_.consumers(o))
        if (!region.count(k) && k != add) fail(k, "reads a value from inside an attention branch");
  }
  std::vector<int> order(region.begin(), region.end());  // node indices are topological
  Unit u;
  u.kind = Unit::mixer;
  u.node = order.front();
  std::vector<int> convs, softmaxes;
  for (int p : order) {
    if (node(p).op_type == "Conv") convs.push_back(p);
    if (node(p).op_type == "Softmax") softmaxes.push_back(p);
  }
  if (convs.size() < 3 || convs.size() % 2 == 0)
    fail(add, "expected an attention branch with a qkv and a q conv per head plus a projection, found " +
                  std::to_string(convs.size()) + " convs");
  u.heads = std::int64_t(convs.size() - 1) / 2;
  // The library's weights hold evit_max_heads heads per block; more would be written past them.
  if (u.heads > std::int64_t(evit_max_heads))
    fail(convs[2 * evit_max_heads], "expected at most " + std::to_string(evit_max_heads) +
                                        " attention heads per block (vitcc's EfficientViT-M), found " +
                                        std::to_string(u.heads) + " (a qkv and a q conv per head)");
  if (std::int64_t(softmaxes.size()) != u.heads)
    fail(add, "expected one Softmax per head (" + std::to_string(u.heads) + "), found " + std::to_string(softmaxes.size()));
  for (std::size_t i = 0; i + 1 < convs.size(); i += 2) {
    Conv q = take_conv(convs[i], "head " + std::to_string(i / 2) + "'s qkv 1x1 conv");
    Conv d = take_conv(convs[i + 1], "head " + std::to_string(i / 2) + "'s depthwise conv on q");
    if (q.k != 1 || q.group != 1 || q.cin * u.heads != c) fail(q.node, "expected a 1x1 conv over " + std::to_string(c / u.heads) + " channels");
    if (d.group != d.cout || d.cin != d.cout || d.stride != 1 || d.pad != d.k / 2 || d.k % 2 == 0)
      fail(d.node, "expected a depthwise 'same' conv with an odd kernel");
    if (i == 0) {
      u.kd = d.cout;
      u.vd = q.cout - 2 * u.kd;
    }
    if (d.cout != u.kd || q.cout - 2 * u.kd != u.vd || u.vd != c / u.heads)
      fail(q.node, "head sizes differ between heads or the value dim is not channels / heads");
    u.convs.push_back(std::move(q));
    u.convs.push_back(std::move(d));
  }
  Conv proj = take_conv(convs.back(), "the attention projection (1x1 conv)");
  if (proj.k != 1 || proj.group != 1 || proj.cin != u.heads * u.vd || proj.cout != c) fail(proj.node, "unexpected projection shape");
  u.convs.push_back(std::move(proj));
  // Scores per head: Softmax(Add(S, bias)), the bias a constant [N, N] (the bias table gathered by the index
  // table, folded, whether the export gathered it once for all heads or per head), and S the product
  // q^T k times a scalar scale. timm scales q before the product (q = q * scale); older code scales the
  // product; an export may also put it on k, or write it as a Div. So the scale is every scalar Mul or
  // Div met between the bias Add and the product, and on the way back from the product to the q and k
  // convs (check_mixer then verifies the whole branch numerically).
  std::int64_t n = 0;
  for (std::size_t h = 0; h < softmaxes.size(); ++h) {
    const int sm = softmaxes[h];
    const int ad = g_.producer_node(node(sm).inputs[0]);
    if (ad < 0 || node(ad).op_type != "Add") fail(sm, "expected the attention bias Add before the softmax");
    int bi = g_.is_constant(node(ad).inputs[0]) ? 0 : g_.is_constant(node(ad).inputs[1]) ? 1 : -1;
    if (bi < 0) fail(ad, "expected a constant attention bias (the Gather of the bias table by the index table)");
    const OnnxTensor& b = *g_.constant(node(ad).inputs[std::size_t(bi)]);
    if (b.shape.size() < 2 || b.shape.back() != b.shape[b.shape.size() - 2] || b.numel() != b.shape.back() * b.shape.back())
      fail(ad, "expected an [N, N] attention bias, found " + shape_str(b.shape));
    if (h == 0) {
      n = b.shape.back();
      u.bias.shape = {u.heads, n, n};
      u.bias.source = g_.constant_source(node(ad).inputs[std::size_t(bi)]);
    } else if (b.shape.back() != n) {
      fail(ad, "heads use different window sizes");
    }
    u.bias.data.insert(u.bias.data.end(), b.f.begin(), b.f.end());
    double scale = 1.0;
    const std::string prod = through_scale(node(ad).inputs[std::size_t(1 - bi)], scale);
    const int mm = g_.producer_node(prod);
    if (mm < 0 || node(mm).op_type != "MatMul")
      fail(ad, "expected the attention scores (a MatMul of q and k, times a scalar scale) to feed the bias Add");
    through_scale(node(mm).inputs[0], scale);
    through_scale(node(mm).inputs[1], scale);
    if (h == 0) u.scale = float(scale);
    else if (float(scale) != u.scale) fail(mm, "heads use different attention scales");
  }
  u.win = std::int64_t(std::lround(std::sqrt(double(n))));
  if (u.win * u.win != n) fail(add, "the attention bias covers " + std::to_string(n) + " tokens, not a square window");
  const Shape& xs = g_.shape(x);
  u.res = xs.at(2);
  if (xs.at(3) != u.res) fail(add, "EfficientViT feature maps are square; found " + shape_str(xs));
  if (u.win > u.res) fail(add, "window larger than the feature map");
  check_mixer(u, order, x, y, add);
  for (int p : order) used_[std::size_t(p)] = true;
  return u;
}

const OnnxTensor& Recognizer::probe_value(const std::string& v, int from) const {
  if (!probed_) {
    std::set<std::string> keep;
    for (const OnnxNode& n : g_.nodes())
      if (n.op_type == "Add")
        for (const std::string& in : n.inputs)
          if (!in.empty() && !g_.is_constant(in)) keep.insert(in);
    const Shape& is = g_.input_shape();
    g_.run(tools::self_check_image(std::size_t(is[1]), std::size_t(is[2]), std::size_t(is[3]), 0x5eed), keep, probe_);
    probed_ = true;
  }
  const auto it = probe_.find(v);
  if (it == probe_.end()) fail(from, "internal: no probe value for '" + v + "'");
  return it->second;
}

// Runs the region on the value its input takes when the graph sees an image-like input, and compares
// with the recognised computation (plain loops in double, NCHW).
void Recognizer::check_mixer(const Unit& u, const std::vector<int>& region, const std::string& x, const std::string& y,
                             int add) const {
  const Shape xs = g_.shape(x);
  const std::int64_t C = xs[1], R = xs[2], wn = u.win, N = wn * wn, nw = (R + wn - 1) / wn, kd = u.kd, vd = u.vd;
  const std::int64_t ch = C / u.heads;
  const OnnxTensor& in = probe_value(x, add);
  if (in.shape != xs || !in.is_float()) fail(add, "internal: the probe value of the block input has shape " + shape_str(in.shape));
  // The graph's own computation.
  std::unordered_map<std::string, OnnxTensor> vals;
  vals[x] = in;
  for (int p : region) {
    std::vector<const OnnxTensor*> ins;
    for (const std::string& s : node(p).inputs) {
      if (s.empty()) ins.push_back(nullptr);
      else if (g_.is_constant(s)) ins.push_back(g_.constant(s));
      else ins.push_back(&vals.at(s));
    }
    std::vector<OnnxTensor> outs = g_.eval_node(node(p), ins);
    for (std::size_t k = 0; k < outs.size() && k < node(p).outputs.size(); ++k)
      if (!node(p).outputs[k].empty()) vals[node(p).outputs[k]] = std::move(outs[k]);
  }
  const OnnxTensor& got = vals.at(y);
  // The recognised computation.
  std::vector<double> cat(std::size_t(C * R * R), 0.0);
  std::vector<double> win(std::size_t(N * C)), out(std::size_t(N * C)), qkv(std::size_t(N * (2 * kd + vd))), q(std::size_t(N * kd));
  for (std::int64_t wy = 0; wy < nw; ++wy)
    for (std::int64_t wx = 0; wx < nw; ++wx) {
      for (std::int64_t t = 0; t < N; ++t) {
        const std::int64_t yy = wy * wn + t / wn, xx = wx * wn + t % wn;
        for (std::int64_t c = 0; c < C; ++c)
          win[std::size_t(t * C + c)] = (yy < R && xx < R) ? in.f[std::size_t((c * R + yy) * R + xx)] : 0.0;
      }
      for (std::int64_t h = 0; h < u.heads; ++h) {
        const Conv& cq = u.convs[std::size_t(2 * h)];
        const Conv& cd = u.convs[std::size_t(2 * h + 1)];
        const std::int64_t wq = 2 * kd + vd;
        for (std::int64_t t = 0; t < N; ++t)
          for (std::int64_t o = 0; o < wq; ++o) {
            double s = cq.bias.data[std::size_t(o)];
            for (std::int64_t e = 0; e < ch; ++e)
              s += double(cq.weight.data[std::size_t(o * ch + e)]) *
                   (win[std::size_t(t * C + h * ch + e)] + (h > 0 ? out[std::size_t(t * C + (h - 1) * vd + e)] : 0.0));
            qkv[std::size_t(t * wq + o)] = float(s);
          }
        const std::int64_t k = cd.k, pd = k / 2;
        for (std::int64_t t = 0; t < N; ++t)
          for (std::int64_t e = 0; e < kd; ++e) {
            double s = cd.bias.data[std::size_t(e)];
            for (std::int64_t ky = 0; ky < k; ++ky)
              for (std::int64_t kx = 0; kx < k; ++kx) {
                const std::int64_t iy = t / wn + ky - pd, ix = t % wn + kx - pd;
                if (iy < 0 || iy >= wn || ix < 0 || ix >= wn) continue;
                s += cd.weight.data[std::size_t((e * k + ky) * k + kx)] * qkv[std::size_t((iy * wn + ix) * wq + e)];
              }
            q[std::size_t(t * kd + e)] = s;
          }
        std::vector<double> p(static_cast<std::size_t>(N), 0.0);
        for (std::int64_t i = 0; i < N; ++i) {
          double mx = -1e300;
          for (std::int64_t j = 0; j < N; ++j) {
            double s = 0;
            for (std::int64_t e = 0; e < kd; ++e) s += q[std::size_t(i * kd + e)] * qkv[std::size_t(j * wq + kd + e)];
            p[std::size_t(j)] = s * u.scale + u.bias.data[std::size_t((h * N + i) * N + j)];
            mx = std::max(mx, p[std::size_t(j)]);
          }
          double sum = 0;
          for (double& v : p) sum += (v = std::exp(v - mx));
          for (std::int64_t e = 0; e < vd; ++e) {
            double s = 0;
            for (std::int64_t j = 0; j < N; ++j) s += p[std::size_t(j)] * qkv[std::size_t(j * wq + 2 * kd + e)];
            out[std::size_t(i * C + h * vd + e)] = s / sum;
          }
        }
      }
      for (std::int64_t t = 0; t < N; ++t) {
        const std::int64_t yy = wy * wn + t / wn, xx = wx * wn + t % wn;
        if (yy < R && xx < R)
          for (std::int64_t c = 0; c < C; ++c) cat[std::size_t((c * R + yy) * R + xx)] = std::max(0.0, out[std::size_t(t * C + c)]);
      }
    }
  // The bound scales with the magnitude of the branch: the largest sum of absolute terms of an output
  // (|bias| + sum |w * input| of the projection), which bounds the float32 rounding of the graph's own
  // computation whatever the weights' scale. A correct branch stays ~100x inside it; a wrong weight,
  // scale, bias or wiring moves outputs by a fraction of that magnitude.
  const Conv& pj = u.convs.back();
  double max_err = 0, max_mag = 0;
  if (got.numel() != C * R * R) fail(add, "the attention branch produces " + shape_str(got.shape) + ", expected " + shape_str(xs));
  for (std::int64_t o = 0; o < C; ++o)
    for (std::int64_t pix = 0; pix < R * R; ++pix) {
      double s = pj.bias.data[std::size_t(o)], mag = std::fabs(s);
      for (std::int64_t c = 0; c < C; ++c) {
        const double t = double(pj.weight.data[std::size_t(o * C + c)]) * cat[std::size_t(c * R * R + pix)];
        s += t;
        mag += std::fabs(t);
      }
      max_err = std::max(max_err, std::fabs(s - got.f[std::size_t(o * R * R + pix)]));
      max_mag = std::max(max_mag, mag);
    }
  const double bound = 1e-4 * max_mag;
  if (!(max_err <= bound))
    fail(add, "the attention branch feeding this residual Add does not compute windowed cascaded group attention "
              "as recognised (" + std::to_string(u.heads) + " heads, " + std::to_string(wn) + "x" + std::to_string(wn) +
              " windows over a " + std::to_string(R) + "x" + std::to_string(R) + " map, scale " + std::to_string(u.scale) +
              "): max abs difference " + std::to_string(max_err) + " (bound " + std::to_string(bound) +
              ") on an image-like input");
}

Unit Recognizer::take_merge(int first, std::int64_t c) {
  Unit u;
  u.kind = Unit::merge;
  u.node = first;
  Conv c1 = take_conv(first, "patch merging conv1 (1x1)");
  if (c1.k != 1 || c1.group != 1 || c1.cin != c) fail(first, "expected a 1x1 conv from " + std::to_string(c) + " channels");
  const std::string r1 = take_relu(c1.out, c1.node);
  Conv c2 = take_conv(sole_consumer(r1, c1.node), "patch merging conv2 (depthwise 3x3 stride 2)");
  if (c2.group != c2.cout || c2.cin != c1.cout || c2.k != 3 || c2.stride != 2 || c2.pad != 1)
    fail(c2.node, "expected a depthwise 3x3 stride-2 conv");
  const std::string r2 = take_relu(c2.out, c2.node);
  // Squeeze-excite: mean over H, W -> fc1 -> ReLU -> fc2 -> Sigmoid -> Mul with r2.
  const auto& cons = g_.consumers(r2);
  int pool = -1, mul = -1;
  for (int k : cons) {
    if (node(k).op_type == "ReduceMean" || node(k).op_type == "GlobalAveragePool") pool = k;
    else if (node(k).op_type == "Mul") mul = k;
  }
  if (cons.size() != 2 || pool < 0 || mul < 0) fail(c2.node, "expected squeeze-excite (a spatial mean and a Mul) after the stride-2 conv");
  if (node(pool).op_type == "ReduceMean") {
    const auto* ax = node(pool).attr_ints("axes");
    std::vector<std::int64_t> axes = ax ? *ax : std::vector<std::int64_t>{};
    if (!ax && node(pool).inputs.size() > 1 && g_.is_constant(node(pool).inputs[1])) axes = g_.constant(node(pool).inputs[1])->i;
    std::sort(axes.begin(), axes.end());
    if (!(axes == std::vector<std::int64_t>{2, 3} || axes == std::vector<std::int64_t>{-2, -1}) || node(pool).attr_int("keepdims", 1) != 1)
      fail(pool, "expected a mean over H and W with kept dims");
  }
  use(pool);
  Conv f1 = take_conv(sole_consumer(node(pool).outputs[0], pool), "squeeze-excite fc1 (1x1 conv)");
  const std::string rf = take_relu(f1.out, f1.node);
  Conv f2 = take_conv(sole_consumer(rf, f1.node), "squeeze-excite fc2 (1x1 conv)");
  if (f1.k != 1 || f2.k != 1 || f1.cin != c1.cout || f2.cout != c1.cout || f2.cin != f1.cout) fail(f2.node, "unexpected squeeze-excite shapes");
  const int sg = sole_consumer(f2.out, f2.node);
  expect_op(sg, "Sigmoid", "the squeeze-excite gate");
  use(sg);
  if (sole_consumer(node(sg).outputs[0], sg) != mul) fail(sg, "expected the gate to scale the map");
  use(mul);
  Conv c3 = take_conv(sole_consumer(node(mul).outputs[0], mul), "patch merging conv3 (1x1)");
  if (c3.k != 1 || c3.group != 1 || c3.cin != c1.cout) fail(c3.node, "unexpected conv3 shape");
  u.convs = {std::move(c1), std::move(c2), std::move(f1), std::move(f2), std::move(c3)};
  return u;
}

EvitSpec Recognizer::run() {
  EvitSpec s;
  const Shape& in = g_.input_shape();
  if (in.size() != 4 || in[2] != in[3]) throw PackError(g_.path(), "", "EfficientViT expects a square [1, C, H, H] input, found " + shape_str(in));
  s.in_chans = in[1];
  s.img_size = in[2];
  std::string x = g_.input_name();
  int last = -1;
  for (int i = 0; i < 4; ++i) {
    const int k = sole_consumer(x, last);
    Conv c = take_conv(k, "patch embedding conv" + std::to_string(i + 1));
    if (c.k != 3 || c.stride != 2 || c.pad != 1 || c.group != 1)
      fail(k, "expected a dense 3x3 stride-2 conv of the patch embedding");
    x = c.out;
    last = c.node;
    if (i < 3) x = take_relu(x, last);
    s.tensors["patch_embed.conv" + std::to_string(i + 1) + ".weight"] = c.weight;
    s.tensors["patch_embed.conv" + std::to_string(i + 1) + ".bias"] = c.bias;
  }
  std::int64_t C = g_.shape(x).at(1);
  const std::int64_t c0 = C;
  std::vector<Unit> units;
  std::vector<std::int64_t> unit_c;
  int pool = -1;
  for (;;) {
    const auto& cons = g_.consumers(x);
    if (cons.empty()) fail(last, "the stream ends without a pooling head");
    if (cons.size() == 1 && (node(cons[0]).op_type == "GlobalAveragePool" || node(cons[0]).op_type == "ReduceMean")) {
      pool = cons[0];
      break;
    }
    if (cons.size() == 1 && node(cons[0]).op_type == "Conv") {
      Unit u = take_merge(cons[0], C);
      x = u.convs.back().out;
      last = u.convs.back().node;
      C = u.convs.back().cout;
      units.push_back(std::move(u));
      unit_c.push_back(C);
      continue;
    }
    int add = -1;
    std::vector<int> others;
    for (int k : cons) {
      if (node(k).op_type == "Add" && (node(k).inputs[0] == x) != (node(k).inputs[1] == x)) {
        if (add >= 0) fail(k, "two residual Adds read the same stream value");
        add = k;
      } else {
        others.push_back(k);
      }
    }
    if (add < 0) fail(cons[0], "expected a residual unit (an Add of the stream and a branch), a patch merging conv or the pooling head");
    const std::string branch = node(add).inputs[0] == x ? node(add).inputs[1] : node(add).inputs[0];
    Unit u;
    if (others.size() == 1 && node(others[0]).op_type == "Conv" && node(others[0]).attr_int("group", 1) > 1) {
      u.kind = Unit::dw;
      u.node = others[0];
      Conv d = take_conv(others[0], "the residual depthwise conv");
      if (d.group != C || d.cout != C || d.k != 3 || d.stride != 1 || d.pad != 1) fail(d.node, "expected a depthwise 3x3 conv over " + std::to_string(C) + " channels");
      if (d.out != branch) fail(add, "expected the residual Add to take the depthwise conv's output");
      u.convs.push_back(std::move(d));
    } else if (others.size() == 1 && node(others[0]).op_type == "Conv") {
      u.kind = Unit::ffn;
      u.node = others[0];
      Conv p1 = take_conv(others[0], "FFN pw1 (1x1 conv)");
      if (p1.k != 1 || p1.group != 1 || p1.cout != 2 * C) fail(p1.node, "expected a 1x1 conv to " + std::to_string(2 * C) + " channels");
      const std::string r = take_relu(p1.out, p1.node);
      Conv p2 = take_conv(sole_consumer(r, p1.node), "FFN pw2 (1x1 conv)");
      if (p2.k != 1 || p2.group != 1 || p2.cout != C) fail(p2.node, "expected a 1x1 conv back to " + std::to_string(C) + " channels");
      if (p2.out != branch) fail(add, "expected the residual Add to take the FFN's output");
      u.convs.push_back(std::move(p1));
      u.convs.push_back(std::move(p2));
    } else {
      u = take_mixer(x, add, C);
    }
    use(add);
    x = node(add).outputs[0];
    last = add;
    units.push_back(std::move(u));
    unit_c.push_back(C);
  }

  // Group the units: stage 0 = blocks; stages 1, 2 = dw ffn merge dw ffn, then blocks.
  auto put = [&](const std::string& name, const Conv& c) {
    s.tensors[name + ".weight"] = c.weight;
    s.tensors[name + ".bias"] = c.bias;
  };
  std::size_t at = 0;
  auto kind_at = [&](std::size_t i) { return i < units.size() ? int(units[i].kind) : -1; };
  auto is_block = [&](std::size_t i) {
    return kind_at(i) == Unit::dw && kind_at(i + 1) == Unit::ffn && kind_at(i + 2) == Unit::mixer &&
           kind_at(i + 3) == Unit::dw && kind_at(i + 4) == Unit::ffn;
  };
  const int pool_or = pool;
  auto where = [&](std::size_t i) { return i < units.size() ? units[i].node : pool_or; };
  for (int st = 0; st < 3; ++st) {
    const std::string sp = "stages." + std::to_string(st);
    if (st > 0) {
      if (!(kind_at(at) == Unit::dw && kind_at(at + 1) == Unit::ffn && kind_at(at + 2) == Unit::merge &&
            kind_at(at + 3) == Unit::dw && kind_at(at + 4) == Unit::ffn))
        fail(where(at), "expected the downsampling of stage " + std::to_string(st) +
                            " (residual dw conv, FFN, patch merging, residual dw conv, FFN) here");
      put(sp + ".downsample.res1.0.m", units[at].convs[0]);
      put(sp + ".downsample.res1.1.m.pw1", units[at + 1].convs[0]);
      put(sp + ".downsample.res1.1.m.pw2", units[at + 1].convs[1]);
      const Unit& m = units[at + 2];
      put(sp + ".downsample.patchmerge.conv1", m.convs[0]);
      put(sp + ".downsample.patchmerge.conv2", m.convs[1]);
      put(sp + ".downsample.patchmerge.se.fc1", m.convs[2]);
      put(sp + ".downsample.patchmerge.se.fc2", m.convs[3]);
      put(sp + ".downsample.patchmerge.conv3", m.convs[4]);
      put(sp + ".downsample.res2.0.m", units[at + 3].convs[0]);
      put(sp + ".downsample.res2.1.m.pw1", units[at + 4].convs[0]);
      put(sp + ".downsample.res2.1.m.pw2", units[at + 4].convs[1]);
      if (m.convs[2].cout != std::max<std::int64_t>(8, (m.convs[0].cout / 4 + 4) / 8 * 8))
        fail(m.convs[2].node, "squeeze-excite reduction is not timm's make_divisible(channels / 4, 8)");
      at += 5;
    }
    std::int64_t d = 0;
    while (is_block(at)) {
      const std::string bp = sp + ".blocks." + std::to_string(d);
      put(bp + ".dw0.m", units[at].convs[0]);
      put(bp + ".ffn0.m.pw1", units[at + 1].convs[0]);
      put(bp + ".ffn0.m.pw2", units[at + 1].convs[1]);
      const Unit& m = units[at + 2];
      for (std::int64_t h = 0; h < m.heads; ++h) {
        put(bp + ".mixer.m.attn.qkvs." + std::to_string(h), m.convs[std::size_t(2 * h)]);
        put(bp + ".mixer.m.attn.dws." + std::to_string(h), m.convs[std::size_t(2 * h + 1)]);
        const std::int64_t k = m.convs[std::size_t(2 * h + 1)].k;
        if (s.kernels[h] == 0) s.kernels[h] = k;
        else if (s.kernels[h] != k)
          fail(m.convs[std::size_t(2 * h + 1)].node,
               "expected head " + std::to_string(h) + "'s q conv to have the kernel it has in the earlier blocks (" +
                   std::to_string(s.kernels[h]) + "x" + std::to_string(s.kernels[h]) + "), found " + std::to_string(k) + "x" +
                   std::to_string(k) + ": vitcc's EfficientViT-M uses one kernel per head in every stage, as timm does");
      }
      put(bp + ".mixer.m.attn.proj.1", m.convs.back());
      s.tensors[bp + ".mixer.m.attn.attention_bias"] = m.bias;
      if (d == 0) {
        s.embed_dim[st] = unit_c[at];
        s.num_heads[st] = m.heads;
        s.key_dim[st] = m.kd;
        s.window_size[st] = m.win;
        s.attn_scale[st] = m.scale;
        s.windowed[st] = m.res > m.win;
      } else if (m.heads != s.num_heads[st] || m.kd != s.key_dim[st] || m.win != s.window_size[st] || m.scale != s.attn_scale[st]) {
        fail(m.node, "blocks of one stage differ in heads, key dim, window or scale");
      }
      put(bp + ".dw1.m", units[at + 3].convs[0]);
      put(bp + ".ffn1.m.pw1", units[at + 4].convs[0]);
      put(bp + ".ffn1.m.pw2", units[at + 4].convs[1]);
      at += 5;
      ++d;
    }
    if (d == 0) fail(where(at), "expected the blocks of stage " + std::to_string(st) + " (dw conv, FFN, attention, dw conv, FFN) here");
    s.depth[st] = d;
  }
  if (at != units.size()) fail(where(at), "unexpected extra unit after the third stage (EfficientViT-M has three stages)");
  if (s.embed_dim[0] != c0 || c0 % 8 != 0) fail(units.front().node, "unexpected patch embedding width");

  // Head: pool -> (Flatten/Reshape/Squeeze) -> (BatchNormalization) -> MatMul + Add (a Gemm is that after
  // the normalisation step, normalize.cpp).
  use(pool);
  if (node(pool).op_type == "ReduceMean") {
    const auto* ax = node(pool).attr_ints("axes");
    std::vector<std::int64_t> axes = ax ? *ax : std::vector<std::int64_t>{};
    if (!ax && node(pool).inputs.size() > 1 && g_.is_constant(node(pool).inputs[1])) axes = g_.constant(node(pool).inputs[1])->i;
    std::sort(axes.begin(), axes.end());
    if (!(axes == std::vector<std::int64_t>{2, 3} || axes == std::vector<std::int64_t>{-2, -1}))
      fail(pool, "expected global average pooling over H and W");
  }
  std::string v = node(pool).outputs[0];
  const std::int64_t Cf = C;
  std::vector<float> bn_s(std::size_t(Cf), 1.0f), bn_b(std::size_t(Cf), 0.0f);
  while (!g_.is_graph_output(v)) {
    const int k = sole_consumer(v, g_.producer_node(v));
    const OnnxNode& n = node(k);
    if (n.op_type == "Flatten" || n.op_type == "Reshape" || n.op_type == "Squeeze") {
      if (g_.shape(n.outputs[0]) != Shape{1, Cf}) fail(k, "expected the pooled features flattened to [1, " + std::to_string(Cf) + "]");
      use(k);
      v = n.outputs[0];
    } else if (n.op_type == "BatchNormalization" && !s.head_bn) {
      const float eps = n.attr_float("epsilon", 1e-5f);
      const auto& sc = constant(k, 1, "BN scale").f;
      const auto& be = constant(k, 2, "BN bias").f;
      const auto& mu = constant(k, 3, "BN mean").f;
      const auto& va = constant(k, 4, "BN variance").f;
      if (sc.size() != std::size_t(Cf)) fail(k, "BN size mismatch");
      for (std::size_t c = 0; c < sc.size(); ++c) {
        const double q = double(sc[c]) / std::sqrt(double(va[c]) + double(eps));
        bn_s[c] = float(q);
        bn_b[c] = float(double(be[c]) - double(mu[c]) * q);
      }
      s.head_bn = true;
      use(k);
      v = n.outputs[0];
    } else if (n.op_type == "MatMul") {
      const OnnxTensor& w = constant(k, 1, "classifier weight");
      if (w.shape.size() != 2) fail(k, "expected a 2-D classifier weight");
      const std::int64_t out = w.shape[1], inf = w.shape[0];
      if (inf != Cf) fail(k, "classifier over " + std::to_string(inf) + " features, the model has " + std::to_string(Cf));
      Tensor W, Bv;
      W.shape = {out, Cf};
      W.data.resize(std::size_t(out * Cf));
      Bv.shape = {out};
      Bv.data.assign(std::size_t(out), 0.0f);
      for (std::int64_t o = 0; o < out; ++o)
        for (std::int64_t c = 0; c < Cf; ++c) W.data[std::size_t(o * Cf + c)] = w.f[std::size_t(c * out + o)];
      use(k);
      v = n.outputs[0];
      if (!g_.is_graph_output(v)) {
        const int a = sole_consumer(v, k);
        if (node(a).op_type != "Add") fail(a, "expected the classifier bias Add");
        const int bi = g_.is_constant(node(a).inputs[1]) ? 1 : 0;
        const OnnxTensor& b = constant(a, std::size_t(bi), "classifier bias");
        for (std::int64_t o = 0; o < out; ++o) Bv.data[std::size_t(o)] = float(b.as_double(b.numel() == 1 ? 0 : o));
        use(a);
        v = node(a).outputs[0];
      }
      // Fold the BatchNorm1d: W' = W diag(s), b' = b + W t.
      for (std::int64_t o = 0; o < out; ++o) {
        double acc = Bv.data[std::size_t(o)];
        for (std::int64_t c = 0; c < Cf; ++c) {
          acc += double(W.data[std::size_t(o * Cf + c)]) * bn_b[std::size_t(c)];
          W.data[std::size_t(o * Cf + c)] *= bn_s[std::size_t(c)];
        }
        Bv.data[std::size_t(o)] = float(acc);
      }
      s.num_classes = out;
      s.tensors["head.weight"] = std::move(W);
      s.tensors["head.bias"] = std::move(Bv);
      if (!g_.is_graph_output(v))
        fail(sole_consumer(v, k), "expected the classifier to be the graph's output (an EfficientViT head is one Linear "
                                  "after the pooling and its BatchNorm1d)");
    } else {
      fail(k, "expected the head (Flatten, BatchNormalization, then a Linear: MatMul + Add, or Gemm with a constant "
              "weight and bias vector)");
    }
  }
  if (s.num_classes == 0 && s.head_bn) fail(pool, "a BatchNorm1d without a classifier is not an EfficientViT head");
  if (s.num_classes == 0 && g_.shape(v) != Shape{1, Cf}) fail(pool, "expected pooled [1, C] features as the output");

  for (std::size_t i = 0; i < used_.size(); ++i)
    if (!used_[i]) fail(int(i), "not part of the recognised EfficientViT structure");
  s.bn_in_graph = saw_bn_;
  return s;
}

}  // namespace

EvitSpec recognize_efficientvit(const OnnxGraph& g) { return Recognizer(g).run(); }

bool looks_like_efficientvit(const OnnxGraph& g) {
  const auto& first = g.consumers(g.input_name());
  if (first.size() != 1) return false;
  const OnnxNode& c = g.nodes()[std::size_t(first[0])];
  if (c.op_type != "Conv") return false;
  const auto* st = c.attr_ints("strides");
  if (!st || (*st)[0] != 2 || c.inputs.size() < 2 || !g.is_constant(c.inputs[1])) return false;
  const auto& ws = g.constant(c.inputs[1])->shape;
  if (ws.size() != 4 || ws[2] != 3) return false;
  for (const OnnxNode& n : g.nodes())
    if (n.op_type == "Conv" && n.attr_int("group", 1) > 1) return true;
  return false;
}

}  // namespace vitcc::pack
