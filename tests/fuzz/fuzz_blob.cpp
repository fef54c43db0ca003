// libFuzzer target: BlobView::open (the device-side reader of the weight blob) and the Binder, on
// arbitrary bytes. open() must never read outside the buffer; when it accepts, every tensor it
// reports must lie inside the buffer (all of it is read here, so ASan sees any lie), and binding
// the demo model's fixed configuration must either succeed or fail with a Status, never crash.
// The checksum gate is opened both ways: with verification (as devices do) and without it, so
// that mutations reach the table checks instead of all dying at the hash.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include <stdlib.h>

#include "demo.hpp"
#include "vitcc/io/blob_reader.hpp"

namespace {

void exercise(const unsigned char* p, std::size_t size, bool verify) {
  vitcc::BlobView view;
  const vitcc::Status s = view.open(p, size, verify);
  if (!s.ok()) {
    if (s.message()[0] == '\0') std::abort();  // every error says what was wrong
    return;
  }
  volatile float sink = 0;
  for (std::uint32_t i = 0; i < view.tensor_count(); ++i) {
    const vitcc::TensorView t = view.tensor(i);
    const auto* begin = static_cast<const unsigned char*>(t.data);
    if (begin < p || t.bytes > size || begin + t.bytes > p + size) std::abort();
    for (std::uint64_t k = 0; k + 4 <= t.bytes; k += 4) {
      float f;
      std::memcpy(&f, begin + k, 4);
      sink = sink + f;
    }
    vitcc::TensorView again;
    if (!view.find(t.name, again)) std::abort();
  }
  static vitcc_models::demo_model model;
  const vitcc::Status b = model.bind(view, view.checksum());
  if (b.ok() != model.bound()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The reader requires a 64-byte aligned buffer; exactly `size` bytes so ASan catches overreads.
  void* mem = nullptr;
  if (posix_memalign(&mem, 64, size == 0 ? 1 : size) != 0) std::abort();
  auto* p = static_cast<unsigned char*>(mem);
  if (size) std::memcpy(p, data, size);
  exercise(p, size, false);
  exercise(p, size, true);
  std::free(p);
  return 0;
}
