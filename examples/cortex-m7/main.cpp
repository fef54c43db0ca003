// A firmware-style program for a Cortex-M7 without an operating system or a file system: a tiny
// ViT whose weights are compiled in (vitcc-pack --emit-c-array, in flash as .rodata) and whose
// workspace is a static array sized by the model's constexpr. It classifies one image (linked in
// by input.s) and prints, through semihosting, the logits as exact float bit patterns, the stack
// the forward pass used, and the memory it needed.
//
// Built by the Makefile next to it; run under `qemu-system-arm -M mps2-an500 -semihosting`.
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "tiny_vit.hpp"          // generated: the constexpr config, vitcc::Vit<...>
#include "tiny_vit_weights.h"    // generated: tiny_vit_blob[], 64-byte aligned, const (flash)
#include "vitcc/core/memory.hpp"

using Model = vitcc_models::tiny_vit_model;

// What the firmware can give the model: fails to compile, not to run, if the model outgrows it.
constexpr std::size_t workspace_budget = 128 * 1024;
static_assert(vitcc::workspace_fits<Model, workspace_budget>, "workspace over budget");

alignas(vitcc::alignment) static unsigned char workspace[Model::workspace_bytes];
static Model model;  // the weight views: a few hundred bytes, bound once
static float logits[Model::output_floats];

extern "C" const float vitcc_example_input[Model::input_floats];  // input.s

namespace {

// The stack below the caller is painted before forward() and inspected after it: the lowest word
// that changed is the deepest the call reached.
constexpr std::uint32_t paint = 0xC0FFEE11u;
constexpr std::size_t probe_words = 16 * 1024;  // 64 KiB below the current frame

__attribute__((noinline)) void paint_stack() {
  volatile std::uint32_t* sp = static_cast<volatile std::uint32_t*>(__builtin_frame_address(0));
  for (std::size_t i = 64; i < probe_words; ++i) sp[-std::ptrdiff_t(i)] = paint;
}

__attribute__((noinline)) std::size_t stack_used(const void* top) {
  const volatile std::uint32_t* sp = static_cast<const volatile std::uint32_t*>(top);
  std::size_t deepest = 0;
  for (std::size_t i = 64; i < probe_words; ++i)
    if (sp[-std::ptrdiff_t(i)] != paint) deepest = i;
  return deepest * sizeof(std::uint32_t);
}

__attribute__((noinline)) void run_forward() { model.forward(vitcc_example_input, logits, workspace); }

}  // namespace

int main() {
  vitcc::BlobView blob;
  vitcc::Status s = blob.open(tiny_vit_blob, TINY_VIT_BLOB_BYTES);  // checks it all, checksum included
  if (s.ok()) s = model.bind(blob);                                  // views into flash, no copy
  if (!s.ok()) {
    std::printf("error: %s\n", s.message());
    return 1;
  }
  // Zero-copy: the first bound weight lies inside the blob in flash.
  vitcc::TensorView t;
  const bool in_place = blob.find("patch_embed.weight", t) &&
                        static_cast<const unsigned char*>(t.data) >= tiny_vit_blob &&
                        static_cast<const unsigned char*>(t.data) < tiny_vit_blob + TINY_VIT_BLOB_BYTES;

  paint_stack();
  run_forward();
  const std::size_t stack_bytes = stack_used(__builtin_frame_address(0));

  std::printf("model tiny_vit: %u weight bytes (in place: %s), %u workspace bytes, forward stack %u bytes\n",
              unsigned(TINY_VIT_BLOB_BYTES), in_place ? "yes" : "no", unsigned(Model::workspace_bytes),
              unsigned(stack_bytes));
  for (std::size_t i = 0; i < Model::output_floats; ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, &logits[i], sizeof bits);
    std::printf("logit %u %08lx\n", unsigned(i), static_cast<unsigned long>(bits));
  }
  std::printf("done\n");
  return in_place ? 0 : 1;
}
