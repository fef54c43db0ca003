// The bundled EfficientViT demo (demo/evit_demo.onnx: a tiny EfficientViT-M in timm's layout, with
// windowed and whole-map attention, window padding and patch merging), compiled in through the header
// vitcc-pack generated for it at build time -- what test_vit_model and test_vit_threads check for the
// ViT: parity with PyTorch on every instruction-set path, no heap allocation in forward() with and
// without an executor, the same bits at any number of workers, and binding refusals.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "../../tools/common/self_check.hpp"
#include "../model_test_archs.hpp"
#include "evit_demo.hpp"
#include "malloc_counter.hpp"
#include "model_test_support.hpp"
#include "vitcc/core/thread_pool.hpp"

using namespace vitcc;
using vitcc::test::Aligned;
using vitcc::test::AlignedFile;
using vitcc::test::read_floats;
using vitcc::test::run_forward;
using vitcc::test::same_bits;
using Cfg = vitcc_models::evit_demo;

namespace {

const std::string blob_path = std::string(VITCC_DEMO_MODEL_DIR "/") + Cfg::blob_file;  // the blob its header names
const std::string input_path = VITCC_DEMO_DIR "/input.bin";
const std::string reference_path = VITCC_DEMO_DIR "/evit_reference.bin";

// A config that differs from the blob's in one width.
struct Wider : Cfg {
  static constexpr int embed_dim[3] = {Cfg::embed_dim[0], Cfg::embed_dim[1] + 8, Cfg::embed_dim[2]};
};

}  // namespace

static_assert(EfficientVitM<Cfg>::workspace_bytes > 0, "workspace is a constexpr");
static_assert(EfficientVitM<Cfg>::workspace_bytes_for(1) == EfficientVitM<Cfg>::workspace_bytes, "one worker: serial");
static_assert(EfficientVitM<Cfg>::workspace_bytes_for(3) > EfficientVitM<Cfg>::workspace_bytes_for(2), "a slice per worker");

TEST_CASE_TEMPLATE("EfficientViT demo matches PyTorch on this instruction set path", Arch, VITCC_MODEL_TEST_ARCHS) {
  using Model = EfficientVitM<Cfg, Arch>;
  AlignedFile blob(blob_path);
  BlobView view;
  REQUIRE(view.open(blob.data(), blob.size).ok());
  static Model model;
  const Status s = model.bind(view);
  REQUIRE_MESSAGE(s.ok(), s.message());
  const std::vector<float> in = read_floats(input_path), ref = read_floats(reference_path);
  REQUIRE(in.size() == Model::input_floats);
  REQUIRE(ref.size() == Model::output_floats);
  const std::vector<float> out = run_forward(model, in, nullptr);
  const tools::Agreement a = tools::compare(out.data(), ref.data(), ref.size());
  INFO("arch ", Arch::name(), ": max abs error ", a.max_abs_err, " (max |ref| ", a.max_abs_ref, "), cosine ", a.cosine);
  CHECK(a.within());
}

TEST_CASE_TEMPLATE("EfficientViT demo: the same bits with 1, 2 and 3 workers", Arch, VITCC_MODEL_TEST_ARCHS) {
  using Model = EfficientVitM<Cfg, Arch>;
  AlignedFile blob(blob_path);
  BlobView view;
  REQUIRE(view.open(blob.data(), blob.size).ok());
  static Model model;
  REQUIRE(model.bind(view).ok());
  const std::vector<float> in = read_floats(input_path);
  const std::vector<float> serial = run_forward(model, in, nullptr);
  for (std::size_t workers : {1u, 2u, 3u}) {
    ThreadPool pool(workers);
    const Executor ex = pool.executor();
    for (int rep = 0; rep < 3; ++rep) {
      INFO("arch ", Arch::name(), ", ThreadPool(", workers, "), run ", rep);
      CHECK(same_bits(run_forward(model, in, &ex), serial));
    }
    vitcc::test::Backwards user{workers};
    const Executor uex = user.executor();
    INFO("arch ", Arch::name(), ", backwards executor with ", workers, " workers");
    CHECK(same_bits(run_forward(model, in, &uex), serial));
  }
}

TEST_CASE("EfficientViT demo: forward() makes no heap allocation, with or without an executor") {
  using Model = EfficientVitM<Cfg>;
  AlignedFile blob(blob_path);
  BlobView view;
  REQUIRE(view.open(blob.data(), blob.size).ok());
  static Model model;
  REQUIRE(model.bind(view).ok());
  const std::vector<float> in = read_floats(input_path);
  std::vector<float> out(Model::output_floats);

  // The counter itself must see allocations, or a zero below would prove nothing.
  vitcc::tools::malloc_counter_start();
  std::vector<int>* probe = new std::vector<int>(1000);
  delete probe;
  CHECK(vitcc::tools::malloc_counter_stop() >= 1);

  Aligned ws(Model::workspace_bytes);
  vitcc::tools::malloc_counter_start();
  model.forward(in.data(), out.data(), ws.p);
  model.forward(in.data(), out.data(), ws.p);
  CHECK(vitcc::tools::malloc_counter_stop() == 0);

  ThreadPool pool(2);  // allocates here, at construction
  const Executor ex = pool.executor();
  Aligned ws2(Model::workspace_bytes_for(2));
  model.forward(in.data(), out.data(), ws2.p, &ex);
  vitcc::tools::malloc_counter_start();
  model.forward(in.data(), out.data(), ws2.p, &ex);
  model.forward(in.data(), out.data(), ws2.p, &ex);
  CHECK(vitcc::tools::malloc_counter_stop() == 0);
}

TEST_CASE("EfficientViT demo: bind refuses the wrong, a damaged or a foreign blob") {
  AlignedFile blob(blob_path);
  BlobView view;
  REQUIRE(view.open(blob.data(), blob.size).ok());
  static EfficientVitM<Cfg> model;

  SUBCASE("a blob whose checksum is not the one the config names") {
    CHECK(model.bind(view, Cfg::blob_checksum ^ 1).code() == Errc::wrong_blob);
    CHECK_FALSE(model.bound());
  }
  SUBCASE("one flipped bit in the weights") {
    blob.data()[blob.size - 100] ^= 0x04;
    BlobView damaged;
    CHECK(damaged.open(blob.data(), blob.size).code() == Errc::checksum_mismatch);
  }
  SUBCASE("a config with a different shape than the blob") {
    static EfficientVitM<Wider> wider;
    const Status s = wider.bind(view);
    INFO(s.message());
    CHECK(s.code() == Errc::shape_mismatch);
  }
}

namespace {
// A config with just the shape fields EvitDims reads.
struct Shape {
  int in_chans = 3, img_size = 224, num_classes = 1000;
  int embed_dim[3], depth[3] = {1, 2, 3}, num_heads[3], key_dim[3] = {16, 16, 16}, window_size[3] = {7, 7, 7};
  int kernels[4] = {5, 5, 5, 5};
};

bool disjoint(std::size_t a, std::size_t na, std::size_t b, std::size_t nb) { return a + na <= b || b + nb <= a; }
}  // namespace

TEST_CASE("EfficientViT workspace: maps live at the same time never share memory, and it is no larger than both phases") {
  // timm's M0 and M5 at several sizes, and widths for which the stages' maps do not fit below x
  // (the layout's other branch).
  std::vector<Shape> shapes;
  for (int img : {96, 192, 224, 256, 384, 512}) {
    shapes.push_back({3, img, 1000, {64, 128, 192}, {1, 2, 3}, {4, 4, 4}});
    shapes.push_back({3, img, 1000, {192, 288, 384}, {1, 3, 4}, {3, 3, 4}});
    shapes.push_back({3, img, 10, {16, 512, 1024}, {1, 1, 1}, {2, 4, 4}});
  }
  bool saw_after_x = false;
  for (const Shape& sh : shapes) {
    const EvitDims d = EvitDims::of(sh);
    const EvitDims::Layout l = d.layout();
    CAPTURE(sh.img_size);
    CAPTURE(sh.embed_dim[2]);
    const std::size_t act = d.act_floats(), hid = d.hidden_floats(), mer = d.merged_floats();
    // patch embedding: the two ping-pong buffers
    CHECK(disjoint(l.pe_a, d.pe_floats(0), l.pe_b, d.pe_floats(1)));
    // stages: x (which starts on conv 4's output), y, h, h2 pairwise apart
    CHECK(l.x == l.pe_b);
    CHECK(disjoint(l.x, act, l.y, act));
    CHECK(disjoint(l.x, act, l.h, hid));
    CHECK(disjoint(l.x, act, l.h2, mer));
    CHECK(disjoint(l.y, act, l.h, hid));
    CHECK(disjoint(l.y, act, l.h2, mer));
    CHECK(disjoint(l.h, hid, l.h2, mer));
    // everything ends before the worker slices, and no later than the larger phase needs
    for (std::size_t end : {l.pe_b + d.pe_floats(1), l.x + act, l.y + act, l.h + hid, l.h2 + mer}) CHECK(end <= l.scratch);
    const std::size_t pe_phase = align_floats(d.pe_floats(0)) + align_floats(d.pe_floats(1));
    const std::size_t stage_phase = align_floats(act) * 2 + align_floats(hid) + align_floats(mer);
    CHECK(l.scratch <= std::max(pe_phase, l.pe_b + stage_phase));
    saw_after_x = saw_after_x || l.y > l.x;
  }
  CHECK(saw_after_x);  // the second branch was taken at least once
}
