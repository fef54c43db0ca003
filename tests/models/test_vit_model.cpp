// The bundled demo model, compiled in through the header vitcc-pack generated for it at build time:
// parity with PyTorch on every instruction set path, zero heap allocations in forward(), and
// binding refusals for wrong, damaged and foreign blobs.
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "../../tools/common/self_check.hpp"
#include "../model_test_archs.hpp"
#include "demo.hpp"
#include "malloc_counter.hpp"
#include "model_test_support.hpp"

using namespace vitcc;
using Cfg = vitcc_models::demo;
using vitcc::test::AlignedFile;
using vitcc::test::read_floats;

namespace {

// Configs that differ from the blob's in one field.
struct Deeper : Cfg {
  static constexpr int depth = Cfg::depth + 1;
};
struct Wider : Cfg {
  static constexpr int mlp_hidden = Cfg::mlp_hidden + 16;
};

const std::string blob_path = std::string(VITCC_DEMO_MODEL_DIR "/") + Cfg::blob_file;  // the blob its header names
const std::string input_path = VITCC_DEMO_DIR "/input.bin";
const std::string reference_path = VITCC_DEMO_DIR "/reference.bin";

}  // namespace

static_assert(Vit<Cfg>::workspace_bytes > 0 && Vit<Cfg>::workspace_bytes % 4 == 0, "workspace is a constexpr");
static_assert(Vit<Cfg>::input_floats == std::size_t(Cfg::in_chans) * Cfg::img_h * Cfg::img_w, "input size");

TEST_CASE_TEMPLATE("demo model matches PyTorch on this instruction set path", Arch, VITCC_MODEL_TEST_ARCHS) {
  AlignedFile blob(blob_path);
  BlobView view;
  REQUIRE(view.open(blob.data(), blob.size).ok());
  static Vit<Cfg, Arch> model;
  const Status s = model.bind(view);
  REQUIRE_MESSAGE(s.ok(), s.message());

  const std::vector<float> in = read_floats(input_path), ref = read_floats(reference_path);
  REQUIRE(in.size() == Vit<Cfg, Arch>::input_floats);
  REQUIRE(ref.size() == Vit<Cfg, Arch>::output_floats);
  std::vector<float> out(ref.size());
  void* ws = std::aligned_alloc(64, Vit<Cfg, Arch>::workspace_bytes);
  model.forward(in.data(), out.data(), ws);
  std::free(ws);
  const tools::Agreement a = tools::compare(out.data(), ref.data(), ref.size());
  INFO("arch ", Arch::name(), ": max abs error ", a.max_abs_err, " cosine ", a.cosine);
  CHECK(a.within());
}

TEST_CASE("forward() makes no heap allocation") {
  AlignedFile blob(blob_path);
  BlobView view;
  REQUIRE(view.open(blob.data(), blob.size).ok());
  static Vit<Cfg> model;
  REQUIRE(model.bind(view).ok());
  const std::vector<float> in = read_floats(input_path);
  std::vector<float> out(Vit<Cfg>::output_floats);
  void* ws = std::aligned_alloc(64, Vit<Cfg>::workspace_bytes);

  // The counter itself must see allocations, or a zero below would prove nothing.
  vitcc::tools::malloc_counter_start();
  std::vector<int>* probe = new std::vector<int>(1000);
  delete probe;
  CHECK(vitcc::tools::malloc_counter_stop() >= 1);

  vitcc::tools::malloc_counter_start();
  model.forward(in.data(), out.data(), ws);
  model.forward(in.data(), out.data(), ws);
  CHECK(vitcc::tools::malloc_counter_stop() == 0);
  std::free(ws);
}

TEST_CASE("bind refuses the wrong, a damaged or a foreign blob") {
  AlignedFile blob(blob_path);
  BlobView view;
  REQUIRE(view.open(blob.data(), blob.size).ok());
  static Vit<Cfg> model;

  SUBCASE("a blob whose checksum is not the one the config names") {
    const Status s = model.bind(view, Cfg::blob_checksum ^ 1);
    CHECK(s.code() == Errc::wrong_blob);
    CHECK_FALSE(model.bound());
  }
  SUBCASE("one flipped bit in the weights") {
    blob.data()[blob.size - 100] ^= 0x04;
    BlobView damaged;
    CHECK(damaged.open(blob.data(), blob.size).code() == Errc::checksum_mismatch);
  }
  SUBCASE("a config with a different shape than the blob") {
    static Vit<Deeper> deeper;
    const Status s = deeper.bind(view);
    CHECK(s.code() == Errc::missing_tensor);
    CHECK(std::string(s.message()).find("blocks." + std::to_string(Cfg::depth) + ".") != std::string::npos);
    static Vit<Wider> wider;
    CHECK(wider.bind(view).code() == Errc::shape_mismatch);
  }
}
