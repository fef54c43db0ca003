// The packer's outputs: turning a recognised VitSpec into blob tensors (folding and packing), and
// writing the blob, the JSON config and the C++ config header, each atomically.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "model_spec.hpp"
#include "vitcc/core/precision.hpp"
#include "vitcc/io/blob_format.hpp"
#include "vitcc/models/vit.hpp"

namespace vitcc::pack {

struct BlobTensor {
  BlobTensor() = default;
  // A float32 tensor (what every model packer writes; convert_precision makes the others).
  BlobTensor(std::string n, blob::Layout l, std::vector<std::uint64_t> d, std::vector<float> values)
      : name(std::move(n)), layout(l), dims(std::move(d)), data(std::move(values)) {}

  std::string name;
  blob::Layout layout = blob::Layout::plain;
  std::vector<std::uint64_t> dims;
  std::vector<float> data;        // float32 tensors
  blob::DType dtype = blob::DType::f32;
  std::vector<unsigned char> raw;  // the bytes of every other dtype (bfloat16, int8, int32)

  // What convert_precision makes of a plain float32 tensor (GEMM matrices, gemm_b16, always follow
  // the precision):
  //   keep         float32 at every precision (norms, biases, positions, tokens)
  //   bf16         bfloat16 at bf16 and int8 (EfficientViT's attention bias tables)
  //   per_channel  bfloat16 at bf16; at int8, int8 with one float32 scale per index of the last dim
  //                (symmetric: scale = max |w| / 127), followed by NAME_scale [last dim] (EfficientViT's
  //                depthwise conv weights, [k*k, c])
  enum class Reduce { keep, bf16, per_channel };
  Reduce reduce = Reduce::keep;
  // At bf16 and int8, the tensor (none, or one) that takes this one's place, itself converted by its
  // own `reduce` (EfficientViT's compact attention-bias table instead of the expanded one).
  std::vector<BlobTensor> reduced_form;
};

// The tensors of a model at precision p: every float32 matrix packed for the GEMM (layout
// gemm_b16) becomes the GEMM weight of that precision (kernels/matmul.hpp): bfloat16 pairs, or int8
// quads followed by NAME_scale and NAME_colsum, in the order Binder::packed(k, n, p, NAME) reads them.
// Plain tensors follow their `reduce`; everything else (norms, biases, positions) stays float32.
std::vector<BlobTensor> convert_precision(const std::vector<BlobTensor>& tensors, Precision p);

// Folds LayerScale into proj/fc2, class/register tokens into prefix_tokens, the patch conv bias
// into the patches' positional rows, and packs every matrix for kernels::gemm. Tensor order is the
// order bind_vit() asks for them.
std::vector<BlobTensor> fold_and_pack_vit(const VitSpec& spec);

VitDynamicConfig dynamic_config(const VitSpec& spec);

// Serialises the tensors as a v1 blob (see blob_format.hpp); returns the bytes, checksum filled in.
std::vector<unsigned char> serialize_blob(const std::vector<BlobTensor>& tensors);

// Writes `bytes` to `path` via a temporary file in the same folder and a rename, so that a reader
// (or a crash) never sees a half-written file. With `verify`, the temporary file is read back once
// it is synced and `verify` runs on the bytes read back (throwing PackError to refuse it) before the
// rename: a file that does not verify is removed and never takes PATH's name. The read comes from
// the page cache, so this catches the serialisation and write path (short writes, a full disk, a
// wrong size), not a disk that corrupts what it later stores.
// Test hook (tests/hardening/pack_verify_written.sh): VITCC_TEST_CORRUPT_WRITTEN=SUFFIX flips one
// byte of every verified file whose path ends in SUFFIX before it is read back.
using WrittenCheck = std::function<void(const unsigned char* bytes, std::size_t size)>;
void write_file_atomically(const std::string& path, const void* bytes, std::size_t size,
                           const WrittenCheck& verify = {});

// The check of a written blob: BlobView::open (every structural check and the checksum) on the
// bytes read back, whose checksum must also be `expected` (the one NAME.json and the header record).
WrittenCheck blob_check(std::uint64_t expected);

// Test hook (tests/hardening/cli_hardening.sh): every moment at which vitcc-pack is about to change
// the output folder, or holds a finished file not yet in place, calls test_step(what) first, and
// steps are numbered from 1 in the order a run reaches them.
//   VITCC_TEST_STEPS=FILE          appends "N what" to FILE at every step (a run's list of steps);
//   VITCC_TEST_PAUSE_AT=N:MARKER   at step N writes "N what" to MARKER and waits to be killed (after
//                                  120 s it exits with status 99 rather than go on writing).
void test_step(const std::string& what);

// Refuses (PackError naming `file`, the tensor and the element) weights that hold NaN or Inf:
// a blob never carries them, so a device never has to check (docs/SECURITY.md).
void check_finite(const std::vector<BlobTensor>& tensors, const std::string& file);

// Hash of every field that shapes the compiled code; equal hashes can share a compiled runner.
std::uint64_t vit_config_hash(const VitSpec& spec);

struct ModelStats {
  std::uint64_t parameters = 0, flops = 0, workspace_bytes = 0;
};
ModelStats vit_stats(const VitSpec& spec);

std::string hex64(std::uint64_t v);

}  // namespace vitcc::pack
