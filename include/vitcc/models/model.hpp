// What every model class template shares (Vit, EfficientVitM): binding a blob, and the two ways to
// run the forward pass.
//
//   Status bind(blob)                                 checks the blob's checksum against the config,
//                                                     then every tensor; the model is usable only if ok
//   Status forward(image, output, ws, ws_bytes, ex)   the checked call: refuses an unbound model, null
//                                                     pointers, a workspace that is not 64-byte aligned
//                                                     or smaller than workspace_bytes_for(workers of ex),
//                                                     before touching anything. For code that cannot
//                                                     prove those (a C API, a plugin, a new integration).
//   void forward(image, output, ws, ex = nullptr)     the unchecked call: the caller guarantees all of
//                                                     the above (typically a static workspace of
//                                                     Model::workspace_bytes_for(N) and a bind checked
//                                                     once at start-up). Debug builds (no NDEBUG)
//                                                     assert it; release builds trust it.
// Neither allocates, throws or needs RTTI; both give the same bits.
//
// A model class derives from ModelBase<itself, Cfg> and provides
//   static constexpr std::size_t workspace_bytes_for(std::size_t workers);
//   Status bind_weights(const BlobView&) noexcept;                  (the checksum is already checked)
//   void run(const float* image, float* output, float* ws, const Executor*) const noexcept;
#pragma once
#include <cstddef>
#include <cstdint>

#include "vitcc/core/aligned.hpp"
#include "vitcc/core/config.hpp"
#include "vitcc/core/error.hpp"
#include "vitcc/core/executor.hpp"
#include "vitcc/io/bind.hpp"
#include "vitcc/io/blob_reader.hpp"

namespace vitcc {

template <class Derived, class Cfg>
class ModelBase {
 public:
  // Binds the weights of `blob` (already opened), refusing a blob whose checksum is not
  // `expected_checksum` (by default the one recorded in the generated config).
  Status bind(const BlobView& blob, std::uint64_t expected_checksum = Cfg::blob_checksum) noexcept {
    bound_ = false;
    Status s = check_blob_checksum(blob, expected_checksum);
    if (s.ok()) s = self().bind_weights(blob);
    bound_ = s.ok();
    return s;
  }

  bool bound() const noexcept { return bound_; }

  // The unchecked forward pass (see the top of this file). workspace: 64-byte aligned,
  // workspace_bytes_for(worker_count(executor)) bytes; executor null: this thread does everything.
  // With an executor every kernel spreads a fixed list of tasks over its workers: the output is the
  // same bit for bit at any number of workers.
  void forward(const float* image, float* output, void* workspace, const Executor* executor = nullptr) const noexcept {
    VITCC_ASSERT(bound_ && image && output && workspace && is_aligned(workspace));
    self().run(image, output, static_cast<float*>(workspace), executor);
  }

  // The checked forward pass: `workspace_bytes` is the size of the caller's workspace. Returns an
  // error, having written nothing, if the call cannot be made safely.
  Status forward(const float* image, float* output, void* workspace, std::size_t workspace_bytes,
                 const Executor* executor) const noexcept {
    if (!bound_) return Status::error(Errc::not_bound, "forward: the model is not bound (bind() a blob, and check its Status)");
    if (!image || !output || !workspace)
      return Status::error(Errc::null_pointer, "forward: the %s pointer is null",
                           !image ? "image" : !output ? "output" : "workspace");
    if (!is_aligned(workspace))
      return Status::error(Errc::misaligned, "forward: the workspace at %p is not %zu-byte aligned", workspace,
                           alignment);
    const std::size_t workers = worker_count(executor);
    const std::size_t need = Derived::workspace_bytes_for(workers);
    if (workspace_bytes < need)
      return Status::error(Errc::workspace_too_small, "forward: the workspace has %zu bytes, %zu needed for %zu worker(s)",
                           workspace_bytes, need, workers);
    self().run(image, output, static_cast<float*>(workspace), executor);
    return Status{};
  }

 private:
  const Derived& self() const noexcept { return static_cast<const Derived&>(*this); }
  Derived& self() noexcept { return static_cast<Derived&>(*this); }

  bool bound_ = false;
};

}  // namespace vitcc
