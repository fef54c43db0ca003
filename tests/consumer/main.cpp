// Usage: consumer MODEL_DIR INPUT.bin REFERENCE.bin -- runs the demo model through the installed
// headers, on the blob in MODEL_DIR that its generated header names.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "demo.hpp"
#include <vitcc/vitcc.hpp>

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  using Model = vitcc_models::demo_model;
  auto slurp = [](const char* path, std::size_t& n) -> unsigned char* {
    std::FILE* f = std::fopen(path, "rb");
    if (!f) return nullptr;
    std::fseek(f, 0, SEEK_END);
    n = std::size_t(std::ftell(f));
    std::fseek(f, 0, SEEK_SET);
    auto* p = static_cast<unsigned char*>(std::aligned_alloc(64, (n + 63) / 64 * 64));
    n = std::fread(p, 1, n, f);
    std::fclose(f);
    return p;
  };
  std::size_t nb = 0, ni = 0, nr = 0;
  const std::string blob_path = std::string(argv[1]) + "/" + vitcc_models::demo::blob_file;
  unsigned char* blob = slurp(blob_path.c_str(), nb);
  auto* in = reinterpret_cast<float*>(slurp(argv[2], ni));
  auto* ref = reinterpret_cast<float*>(slurp(argv[3], nr));
  if (!blob || !in || !ref || ni != Model::input_floats * 4 || nr != Model::output_floats * 4) return 2;
  vitcc::BlobView view;
  static Model model;
  vitcc::Status s = view.open(blob, nb);
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
  std::printf("consumer of the installed vitcc: max abs error %.3g\n", err);
  return err <= 1e-4 ? 0 : 1;
}
