#include "smooth.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include "error.hpp"
#include "vitcc/kernels/gemm.hpp"

namespace vitcc::pack {
namespace {

BlobTensor& find(std::vector<BlobTensor>& t, const std::string& name) {
  for (BlobTensor& x : t)
    if (x.name == name) return x;
  throw PackError("smoothing: the blob has no tensor '" + name + "'");
}
const BlobTensor& find(const std::vector<BlobTensor>& t, const std::string& name) {
  return find(const_cast<std::vector<BlobTensor>&>(t), name);
}

// Element (k, n) of a gemm_b16 [K, N] tensor (docs/FORMAT.md): panels of 16 columns, K rows each.
std::size_t b16_index(std::size_t K, std::size_t k, std::size_t n) { return (n / 16) * K * 16 + k * 16 + n % 16; }

const BlobTensor& gemm(const std::vector<BlobTensor>& t, const std::string& name, std::size_t K) {
  const BlobTensor& w = find(t, name);
  if (w.layout != blob::Layout::gemm_b16 || w.dims.size() != 2 || w.dims[0] != K || w.dtype != blob::DType::f32 ||
      w.data.size() != kernels::packed_b_floats(w.dims[0], w.dims[1]))
    throw PackError("smoothing: tensor '" + name + "' is not a float32 gemm_b16 matrix with " + std::to_string(K) +
                    " input rows");
  return w;
}

}  // namespace

std::vector<float> smoothing_factors(const std::vector<BlobTensor>& tensors, const SmoothSite& site, double alpha) {
  const std::size_t K = site.act_max.size();
  std::vector<float> wmax(K, 0.0f);
  for (const std::string& g : site.gemms) {
    const BlobTensor& w = gemm(tensors, g, K);
    const std::size_t N = std::size_t(w.dims[1]);
    for (std::size_t k = 0; k < K; ++k)
      for (std::size_t n = 0; n < N; ++n) wmax[k] = std::max(wmax[k], std::fabs(w.data[b16_index(K, k, n)]));
  }
  std::vector<float> s(K, 1.0f);
  for (std::size_t k = 0; k < K; ++k) {
    const double a = site.act_max[k], b = wmax[k];
    if (!(a > 0) || !(b > 0)) continue;  // a dead channel: nothing to balance
    const double f = std::pow(a, alpha) / std::pow(b, 1.0 - alpha);
    if (std::isfinite(f) && f > 0) s[k] = static_cast<float>(std::min(1e6, std::max(1e-6, f)));
  }
  return s;
}

std::vector<BlobTensor> apply_smoothing(const std::vector<BlobTensor>& tensors, const std::vector<SmoothSite>& sites,
                                        double alpha) {
  std::vector<BlobTensor> out = tensors;
  for (const SmoothSite& site : sites) {
    const std::size_t K = site.act_max.size();
    const std::vector<float> s = smoothing_factors(tensors, site, alpha);
    for (const char* part : {".weight", ".bias"}) {
      BlobTensor& v = find(out, site.norm + part);
      if (v.layout != blob::Layout::plain || v.dtype != blob::DType::f32 || v.data.size() != K)
        throw PackError("smoothing: tensor '" + site.norm + part + "' is not a float32 vector of " + std::to_string(K));
      for (std::size_t k = 0; k < K; ++k) v.data[k] /= s[k];
    }
    for (const std::string& g : site.gemms) {
      gemm(tensors, g, K);
      BlobTensor& w = find(out, g);
      const std::size_t N = std::size_t(w.dims[1]);
      for (std::size_t k = 0; k < K; ++k)
        for (std::size_t n = 0; n < N; ++n) w.data[b16_index(K, k, n)] *= s[k];
    }
  }
  return out;
}

}  // namespace vitcc::pack
