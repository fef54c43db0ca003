// Usage: consumer INPUT.bin REFERENCE.bin -- runs the demo model through the installed headers, on
// the weights vitcc_add_model linked into this program (demo_blob), and compares with PyTorch.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "demo.hpp"       // vitcc_add_model: the generated config
#include "demo_blob.h"    // vitcc_add_model: the weights, linked in
#include <vitcc/vitcc.hpp>

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  using Model = vitcc_models::demo_model;
  auto slurp = [](const char* path, std::size_t& n) -> float* {
    std::FILE* f = std::fopen(path, "rb");
    if (!f) return nullptr;
    std::fseek(f, 0, SEEK_END);
    n = std::size_t(std::ftell(f));
    std::fseek(f, 0, SEEK_SET);
    auto* p = static_cast<float*>(std::aligned_alloc(64, (n + 63) / 64 * 64));
    n = std::fread(p, 1, n, f);
    std::fclose(f);
    return p;
  };
  std::size_t ni = 0, nr = 0;
  float* in = slurp(argv[1], ni);
  float* ref = slurp(argv[2], nr);
  if (!in || !ref || ni != Model::input_floats * 4 || nr != Model::output_floats * 4) return 2;
  static_assert(DEMO_BLOB_BYTES > 0, "the linked-in blob's size");
  vitcc::BlobView view;
  static Model model;
  vitcc::Status s = view.open(demo_blob, DEMO_BLOB_BYTES);
  if (s.ok()) s = model.bind(view);
  if (!s.ok()) {
    std::printf("%s\n", s.message());
    return 1;
  }
  std::vector<float> out(Model::output_floats);
  void* ws = std::aligned_alloc(Model::workspace_alignment, Model::workspace_bytes);
  model.forward(in, out.data(), ws);
  double err = 0;
  for (std::size_t i = 0; i < out.size(); ++i) err = std::fmax(err, std::fabs(double(out[i]) - ref[i]));
  std::printf("consumer of the installed vitcc (%s): max abs error %.3g\n", vitcc::default_arch::name(), err);
  return err <= 1e-4 ? 0 : 1;
}
