// A firmware-style program for a Cortex-M7 (or M4F) without an operating system or a file system: a
// ViT whose weights are compiled in (vitcc-pack --emit-c-array, in flash as .rodata; fp32, bf16 or
// int8, whatever the pack chose) and whose workspace is a static array sized by the model's constexpr. It classifies one image (linked in
// by input.s) and prints, through semihosting, the logits as exact float bit patterns, the stack
// the forward pass used, the memory it needed, and the instructions one forward pass executed.
//
// Built by the Makefile next to it; run under `qemu-system-arm -M mps2-an500 -semihosting -icount
// shift=0` (or -M mps2-an386 for the M4F build).
#include <cstdint>
#include <cstdio>
#include <cstring>

// The generated names, for the NAME the Makefile was given (for tiny_vit: tiny_vit.hpp,
// tiny_vit_weights.h, the config vitcc_models::tiny_vit, the model vitcc_models::tiny_vit_model, the
// array tiny_vit_blob and its size TINY_VIT_BLOB_BYTES).
#include EXAMPLE_HEADER   // generated: the constexpr config, vitcc::Vit<...>
#include EXAMPLE_WEIGHTS  // generated: NAME_blob[], 64-byte aligned, const (flash)
#include "vitcc/core/memory.hpp"
#include "vitcc/core/precision.hpp"

using Config = EXAMPLE_CONFIG;
using Model = EXAMPLE_MODEL;

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

// Instructions executed, counted with SysTick. Under QEMU's -icount the virtual clock advances a
// fixed time per instruction, and SysTick counts that clock (at the board's CPU clock), so ticks are
// proportional to instructions. The ratio is measured on a loop of known length (two instructions an
// iteration), so the count does not depend on the board's clock or the -icount shift. On real
// hardware the same code counts cycles instead (then a ratio of 1 is the honest one).
extern "C" volatile std::uint32_t systick_wraps;  // startup.c
volatile std::uint32_t* const syst_csr = reinterpret_cast<volatile std::uint32_t*>(0xE000E010u);
volatile std::uint32_t* const syst_rvr = reinterpret_cast<volatile std::uint32_t*>(0xE000E014u);
volatile std::uint32_t* const syst_cvr = reinterpret_cast<volatile std::uint32_t*>(0xE000E018u);

void ticks_start() {
  *syst_csr = 0;
  systick_wraps = 0;
  *syst_rvr = 0x00FFFFFFu;
  *syst_cvr = 0;
  *syst_csr = 7;  // processor clock, interrupt on wrap, enabled
}
std::uint64_t ticks_stop() {
  std::uint32_t wraps, value;
  do {  // a wrap between the two reads would pair an old count with a new value
    wraps = systick_wraps;
    value = *syst_cvr;
  } while (wraps != systick_wraps);
  *syst_csr = 0;
  return std::uint64_t(wraps) * 0x01000000u + (0x00FFFFFFu - value);
}

__attribute__((noinline)) void known_loop(std::uint32_t n) {
  __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
}

}  // namespace

int main() {
  vitcc::BlobView blob;
  vitcc::Status s = blob.open(EXAMPLE_BLOB, EXAMPLE_BLOB_BYTES);  // checks it all, checksum included
  if (s.ok()) s = model.bind(blob);                                  // views into flash, no copy
  if (!s.ok()) {
    std::printf("error: %s\n", s.message());
    return 1;
  }
  // Zero-copy: the first bound weight lies inside the blob in flash.
  vitcc::TensorView t;
  const bool in_place = blob.find("patch_embed.weight", t) &&
                        static_cast<const unsigned char*>(t.data) >= EXAMPLE_BLOB &&
                        static_cast<const unsigned char*>(t.data) < EXAMPLE_BLOB + EXAMPLE_BLOB_BYTES;

  paint_stack();
  run_forward();
  const std::size_t stack_bytes = stack_used(__builtin_frame_address(0));

  constexpr std::uint32_t loop_iterations = 4000000;  // 8 M instructions
  ticks_start();
  known_loop(loop_iterations);
  const std::uint64_t loop_ticks = ticks_stop();
  ticks_start();
  run_forward();
  const std::uint64_t forward_ticks = ticks_stop();
  const std::uint64_t loop_instructions = 2ull * loop_iterations;
  const std::uint64_t instructions = forward_ticks * loop_instructions / (loop_ticks ? loop_ticks : 1);

  std::printf("model %s (%s): %u weight bytes (in place: %s), %u workspace bytes, forward stack %u bytes\n",
              Config::name, vitcc::precision_name(vitcc::precision_of(Config{})), unsigned(EXAMPLE_BLOB_BYTES), in_place ? "yes" : "no", unsigned(Model::workspace_bytes),
              unsigned(stack_bytes));
  for (std::size_t i = 0; i < Model::output_floats; ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, &logits[i], sizeof bits);
    std::printf("logit %u %08lx\n", unsigned(i), static_cast<unsigned long>(bits));
  }
  // (newlib-nano's printf has neither floats nor long long: 32-bit integers only.)
  std::printf("forward instructions %lu (SysTick: %lu ticks; a loop of %lu instructions took %lu ticks)\n",
              static_cast<unsigned long>(instructions), static_cast<unsigned long>(forward_ticks),
              static_cast<unsigned long>(loop_instructions), static_cast<unsigned long>(loop_ticks));
  std::printf("done\n");
  return in_place ? 0 : 1;
}
