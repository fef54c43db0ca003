#include <vitcc/kernels/patch_embed.hpp>

#include <cmath>
#include <vector>

#include "kernel_test_support.hpp"

using namespace vitcc::kernels;
using vitcc::test::Buffer;
using vitcc::test::Rng;

namespace {

// Conv2d(c, d, kernel=stride=p) written from the unpacked [d, c, p, p] weight, plus the add.
// mag receives sum |terms| per output, the scale of a float summation's rounding error.
std::vector<double> naive_conv(const float* img, std::size_t c, std::size_t h, std::size_t w, std::size_t p,
                               const std::vector<float>& weight, std::size_t d, const float* add, std::size_t ld_add,
                               std::vector<double>& mag) {
  const std::size_t gh = h / p, gw = w / p;
  std::vector<double> out(gh * gw * d);
  mag.assign(gh * gw * d, 0.0);
  for (std::size_t gy = 0; gy < gh; ++gy)
    for (std::size_t gx = 0; gx < gw; ++gx)
      for (std::size_t o = 0; o < d; ++o) {
        double s = 0, sa = 0;
        for (std::size_t ch = 0; ch < c; ++ch)
          for (std::size_t ky = 0; ky < p; ++ky)
            for (std::size_t kx = 0; kx < p; ++kx) {
              const double term =
                  double(img[(ch * h + gy * p + ky) * w + gx * p + kx]) * weight[((o * c + ch) * p + ky) * p + kx];
              s += term;
              sa += std::fabs(term);
            }
        const std::size_t r = gy * gw + gx;
        mag[r * d + o] = sa;
        out[r * d + o] = s + add[r * ld_add + o];
      }
  return out;
}

template <class Arch>
void run_case(std::size_t c, std::size_t h, std::size_t w, std::size_t p, std::size_t d, std::size_t pad,
              std::uint64_t seed) {
  INFO("c=" << c << " h=" << h << " w=" << w << " p=" << p << " d=" << d << " pad=" << pad);
  Rng rng(seed);
  const std::size_t k = c * p * p, patches = (h / p) * (w / p);
  std::vector<float> img(c * h * w), weight(d * k);
  rng.fill(img.data(), img.size());
  rng.fill(weight.data(), weight.size());
  Buffer packed(packed_b_floats(k, d));
  pack_b_from_linear(weight.data(), k, d, packed.data());
  const std::size_t ld_add = d + pad, ld_out = d + 2 * pad;
  std::vector<float> add(patches * ld_add);
  rng.fill(add.data(), add.size());
  std::vector<double> mag;
  const auto want = naive_conv(img.data(), c, h, w, p, weight, d, add.data(), ld_add, mag);
  Buffer out(patches * ld_out, 444.0f), scratch(patch_embed_scratch_floats(c, p));
  patch_embed<Arch>(img.data(), c, h, w, p, PackedB{packed.data()}, d, add.data(), ld_add, out.data(), ld_out, scratch.data());
  VITCC_CHECK_CLOSE(
      vitcc::test::compare(out.data(), ld_out, want.data(), d, patches, d, 1e-5, mag.data(), vitcc::test::sum_mag_rel));
  bool padding_intact = true;
  for (std::size_t r = 0; r < patches; ++r)
    for (std::size_t j = d; j < ld_out; ++j) padding_intact = padding_intact && out[r * ld_out + j] == 444.0f;
  CHECK(padding_intact);
  CHECK(out.guard_intact());
  CHECK(scratch.guard_intact());
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("patch_embed: grids, remainders, channels and widths", Arch, pe_shapes) {
  std::uint64_t seed = 1;
  // (c, h, w, p): 1x1 patches, images that are not multiples of p (remainder ignored), a grid with
  // more patches than one gather block (48), non-square images.
  const std::size_t shapes[][4] = {{1, 1, 1, 1}, {3, 5, 7, 1}, {3, 9, 10, 2}, {1, 17, 13, 4},
                                   {3, 30, 45, 4}, {2, 33, 20, 3}, {3, 64, 64, 16}};
  for (const auto& s : shapes)
    for (std::size_t d : {1, 16, 17, 40, 96})
      run_case<Arch>(s[0], s[1], s[2], s[3], d, d % 3, seed++);
}
TEST_CASE_TEMPLATE_APPLY(pe_shapes, vitcc::test::kernel_archs);

TEST_CASE_TEMPLATE_DEFINE("patch_embed: ViT-S/16 at 224 and ViT-S/14", Arch, pe_vit) {
  run_case<Arch>(3, 224, 224, 16, 384, 0, 21);
  run_case<Arch>(3, 226, 230, 14, 384, 0, 22);
}
TEST_CASE_TEMPLATE_APPLY(pe_vit, vitcc::test::kernel_archs);
