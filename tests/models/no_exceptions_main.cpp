// Compiled with -fno-exceptions -fno-rtti: the model, its binding and its forward pass need
// neither. It also runs the model and checks it against PyTorch, so it is not only a compile test.
// Built once per bundled model: VITCC_TEST_MODEL_HEADER names the header vitcc-pack generated,
// VITCC_TEST_MODEL the model type in it.
// Usage: test_{vit,evit}_no_exceptions MODEL_DIR INPUT.bin REFERENCE.bin (the blob: the file in
// MODEL_DIR that the generated header names, Model::config::blob_file)
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include VITCC_TEST_MODEL_HEADER

static long read_file(const char* path, void* dst, long cap) {
  std::FILE* f = std::fopen(path, "rb");
  if (!f) return -1;
  const long n = long(std::fread(dst, 1, std::size_t(cap), f));
  std::fclose(f);
  return n;
}

using Model = VITCC_TEST_MODEL;
alignas(64) static unsigned char blob[4 << 20];
alignas(64) static unsigned char workspace[Model::workspace_bytes];
static float input[Model::input_floats], output[Model::output_floats], reference[Model::output_floats];
static Model model;

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  char blob_path[4096];
  std::snprintf(blob_path, sizeof blob_path, "%s/%s", argv[1], Model::config::blob_file);
  const long n = read_file(blob_path, blob, sizeof blob);
  if (n <= 0 || n == long(sizeof blob)) return 2;
  if (read_file(argv[2], input, sizeof input) != long(sizeof input)) return 2;
  if (read_file(argv[3], reference, sizeof reference) != long(sizeof reference)) return 2;
  vitcc::BlobView view;
  vitcc::Status s = view.open(blob, std::size_t(n));
  if (s.ok()) s = model.bind(view);
  if (!s.ok()) {
    std::printf("bind failed: %s\n", s.message());
    return 1;
  }
  model.forward(input, output, workspace);
  double err = 0, amax = 0;
  for (std::size_t i = 0; i < Model::output_floats; ++i) {
    err = std::fmax(err, std::fabs(double(output[i]) - reference[i]));
    amax = std::fmax(amax, std::fabs(double(reference[i])));
  }
  std::printf("no-exceptions build: max abs error %.3g (max |ref| %.3g)\n", err, amax);
  return err <= 1e-4 * std::fmax(1.0, amax) ? 0 : 1;
}
