// The checked forward pass (models/model.hpp), on both bundled models: it refuses an unbound model,
// null pointers, a misaligned workspace and one that is too small for the executor's workers, before
// touching the output; when it accepts, it gives the unchecked call's bits.
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "demo.hpp"
#include "evit_demo.hpp"
#include "model_test_support.hpp"
#include "vitcc/core/thread_pool.hpp"

using namespace vitcc;
using vitcc::test::Aligned;
using vitcc::test::AlignedFile;
using vitcc::test::read_floats;
using vitcc::test::same_bits;

TYPE_TO_STRING(vitcc_models::demo_model);
TYPE_TO_STRING(vitcc_models::evit_demo_model);

namespace {
// The blob the model's generated header names.
template <class Model>
std::string blob_path() {
  return std::string(VITCC_DEMO_MODEL_DIR "/") + Model::config::blob_file;
}
}  // namespace

TEST_CASE_TEMPLATE("checked forward: refusals, and the unchecked call's bits when it accepts", Model,
                   vitcc_models::demo_model, vitcc_models::evit_demo_model) {
  static Model model;
  const std::vector<float> in = read_floats(VITCC_DEMO_DIR "/input.bin");
  REQUIRE(in.size() == Model::input_floats);
  std::vector<float> out(Model::output_floats, -1.0f);
  const std::size_t bytes = Model::workspace_bytes;
  Aligned ws(bytes + 64);

  // Not bound yet.
  Status s = model.forward(in.data(), out.data(), ws.p, bytes, nullptr);
  CHECK(s.code() == Errc::not_bound);
  CHECK(std::string(s.message()).find("not bound") != std::string::npos);

  AlignedFile blob(blob_path<Model>());
  BlobView view;
  REQUIRE(view.open(blob.data(), blob.size).ok());
  REQUIRE(model.bind(view).ok());

  CHECK(model.forward(nullptr, out.data(), ws.p, bytes, nullptr).code() == Errc::null_pointer);
  CHECK(model.forward(in.data(), nullptr, ws.p, bytes, nullptr).code() == Errc::null_pointer);
  CHECK(model.forward(in.data(), out.data(), nullptr, bytes, nullptr).code() == Errc::null_pointer);
  s = model.forward(in.data(), out.data(), ws.bytes() + 4, bytes, nullptr);
  CHECK(s.code() == Errc::misaligned);
  CHECK(model.forward(in.data(), out.data(), ws.p, bytes - 4, nullptr).code() == Errc::workspace_too_small);
  // Enough for one worker is not enough for two.
  ThreadPool pool(2);
  const Executor ex = pool.executor();
  s = model.forward(in.data(), out.data(), ws.p, bytes, &ex);
  CHECK(s.code() == Errc::workspace_too_small);
  INFO(s.message());
  CHECK(std::string(s.message()).find("2 worker") != std::string::npos);
  for (float v : out) REQUIRE(v == -1.0f);  // nothing was written by a refused call

  // Accepted: the same bits as the unchecked call, with one worker and with two.
  REQUIRE(model.forward(in.data(), out.data(), ws.p, bytes, nullptr).ok());
  std::vector<float> unchecked(Model::output_floats);
  model.forward(in.data(), unchecked.data(), ws.p);
  CHECK(same_bits(out, unchecked));
  Aligned ws2(Model::workspace_bytes_for(2));
  std::vector<float> threaded(Model::output_floats);
  REQUIRE(model.forward(in.data(), threaded.data(), ws2.p, Model::workspace_bytes_for(2), &ex).ok());
  CHECK(same_bits(threaded, unchecked));

  // A failed bind leaves the model unbound again.
  CHECK_FALSE(model.bind(view, 0x1234).ok());
  CHECK(model.forward(in.data(), out.data(), ws.p, bytes, nullptr).code() == Errc::not_bound);
}
