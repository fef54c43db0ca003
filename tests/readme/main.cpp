// Runs the C++ snippet of README.md (extracted at configure time into readme_example.cpp) on the
// demo model, standing in as "vit_small", and checks its logits against PyTorch's.
// Usage: test_readme_example MODEL_DIR INPUT.bin REFERENCE.bin; the blob is the file in MODEL_DIR
// that the generated header names, as the README tells users to load it.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "vit_small.hpp"  // the demo model standing in (see tests/CMakeLists.txt)

int classify(const void* blob, std::size_t blob_size, const float* image_chw, float* logits);

static std::vector<unsigned char> slurp(const char* path) {
  std::vector<unsigned char> v;
  if (std::FILE* f = std::fopen(path, "rb")) {
    unsigned char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) v.insert(v.end(), buf, buf + n);
    std::fclose(f);
  }
  return v;
}

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  const std::string blob_path = std::string(argv[1]) + "/" + vitcc_models::vit_small::blob_file;
  const std::vector<unsigned char> blob = slurp(blob_path.c_str()), in = slurp(argv[2]), ref = slurp(argv[3]);
  if (blob.empty() || in.empty() || ref.empty()) return 2;
  void* aligned = std::aligned_alloc(64, (blob.size() + 63) / 64 * 64);
  std::copy(blob.begin(), blob.end(), static_cast<unsigned char*>(aligned));
  std::vector<float> image(in.size() / 4), expected(ref.size() / 4), logits(ref.size() / 4);
  std::copy(in.begin(), in.end(), reinterpret_cast<unsigned char*>(image.data()));
  std::copy(ref.begin(), ref.end(), reinterpret_cast<unsigned char*>(expected.data()));
  if (classify(aligned, blob.size(), image.data(), logits.data()) != 0) return 1;
  double err = 0;
  for (std::size_t i = 0; i < logits.size(); ++i) err = std::fmax(err, std::fabs(double(logits[i]) - expected[i]));
  std::printf("README example (%s): max abs error %.3g against PyTorch\n", blob_path.c_str(), err);
  std::free(aligned);
  return err <= 1e-4 ? 0 : 1;
}
