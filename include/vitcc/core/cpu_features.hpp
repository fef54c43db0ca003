// Which instruction-set extensions code was compiled to use, and which this CPU runs.
//
//   compiled_features(): the extensions the compiler was allowed to use in the translation unit that
//     includes this header, read from its predefined macros (-march=x86-64-v4 defines __AVX512F__,
//     ...). A constant: it can sit in data (a fat library's variant table) and needs no code.
//   runtime_features(): what this CPU and its OS run. x86: CPUID and XGETBV (the OS must save the
//     AVX / AVX-512 / AMX registers); Linux on 64-bit Arm: the auxiliary vector (AT_HWCAP, AT_HWCAP2).
//     Elsewhere (Cortex-M firmware, other OSes) nothing is detectable and it returns 0.
//   missing(compiled_features()): the extensions a program needs that this CPU lacks (0: it runs).
//
// Code built for a CPU that lacks one of them dies of SIGILL at the first such instruction; a C library
// made by vitcc-compile checks this in NAME_bind() (a translation unit compiled for the plain target)
// and refuses with Errc::unsupported_cpu instead. A C++ program compiled with -march=... can call
// check_cpu() first thing in main(); that call is compiled with the same flags, so it is a best effort
// (the compiler may already use the extensions before it), and the C library's check is the reliable one.
#pragma once
#include <cstddef>
#include <cstdint>

#include "vitcc/core/error.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace vitcc::cpu {

enum feature : std::uint64_t {
  // x86 (the extensions x86-64-v2 .. v4 and vitcc's kernels use)
  sse4_2 = 1ull << 0,
  popcnt = 1ull << 1,
  avx = 1ull << 2,
  avx2 = 1ull << 3,
  fma = 1ull << 4,
  f16c = 1ull << 5,
  bmi = 1ull << 6,
  bmi2 = 1ull << 7,
  lzcnt = 1ull << 8,
  movbe = 1ull << 9,
  avx512f = 1ull << 10,
  avx512cd = 1ull << 11,
  avx512bw = 1ull << 12,
  avx512dq = 1ull << 13,
  avx512vl = 1ull << 14,
  avx512vnni = 1ull << 15,
  avx512bf16 = 1ull << 16,
  avx512fp16 = 1ull << 17,
  avxvnni = 1ull << 18,
  amx_tile = 1ull << 19,
  amx_int8 = 1ull << 20,
  amx_bf16 = 1ull << 21,
  // 64-bit Arm
  neon = 1ull << 32,
  dotprod = 1ull << 33,
  i8mm = 1ull << 34,
  bf16 = 1ull << 35,
  fp16 = 1ull << 36,
};

// The name of one feature bit, as GCC's -m options spell it ("" for a bit that is not a feature).
constexpr const char* feature_name(std::uint64_t bit) noexcept {
  switch (bit) {
    case sse4_2: return "sse4.2";
    case popcnt: return "popcnt";
    case avx: return "avx";
    case avx2: return "avx2";
    case fma: return "fma";
    case f16c: return "f16c";
    case bmi: return "bmi";
    case bmi2: return "bmi2";
    case lzcnt: return "lzcnt";
    case movbe: return "movbe";
    case avx512f: return "avx512f";
    case avx512cd: return "avx512cd";
    case avx512bw: return "avx512bw";
    case avx512dq: return "avx512dq";
    case avx512vl: return "avx512vl";
    case avx512vnni: return "avx512vnni";
    case avx512bf16: return "avx512bf16";
    case avx512fp16: return "avx512fp16";
    case avxvnni: return "avxvnni";
    case amx_tile: return "amx-tile";
    case amx_int8: return "amx-int8";
    case amx_bf16: return "amx-bf16";
    case neon: return "neon";
    case dotprod: return "dotprod";
    case i8mm: return "i8mm";
    case bf16: return "bf16";
    case fp16: return "fp16";
    default: return "";
  }
}

constexpr std::uint64_t compiled_features() noexcept {
  std::uint64_t f = 0;
#ifdef __SSE4_2__
  f |= sse4_2;
#endif
#ifdef __POPCNT__
  f |= popcnt;
#endif
#ifdef __AVX__
  f |= avx;
#endif
#ifdef __AVX2__
  f |= avx2;
#endif
#ifdef __FMA__
  f |= fma;
#endif
#ifdef __F16C__
  f |= f16c;
#endif
#ifdef __BMI__
  f |= bmi;
#endif
#ifdef __BMI2__
  f |= bmi2;
#endif
#ifdef __LZCNT__
  f |= lzcnt;
#endif
#ifdef __MOVBE__
  f |= movbe;
#endif
#ifdef __AVX512F__
  f |= avx512f;
#endif
#ifdef __AVX512CD__
  f |= avx512cd;
#endif
#ifdef __AVX512BW__
  f |= avx512bw;
#endif
#ifdef __AVX512DQ__
  f |= avx512dq;
#endif
#ifdef __AVX512VL__
  f |= avx512vl;
#endif
#ifdef __AVX512VNNI__
  f |= avx512vnni;
#endif
#ifdef __AVX512BF16__
  f |= avx512bf16;
#endif
#ifdef __AVX512FP16__
  f |= avx512fp16;
#endif
#ifdef __AVXVNNI__
  f |= avxvnni;
#endif
#ifdef __AMX_TILE__
  f |= amx_tile;
#endif
#ifdef __AMX_INT8__
  f |= amx_int8;
#endif
#ifdef __AMX_BF16__
  f |= amx_bf16;
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
  f |= neon;
#endif
#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
  f |= dotprod;
#endif
#if defined(__aarch64__) && defined(__ARM_FEATURE_MATMUL_INT8)
  f |= i8mm;
#endif
#if defined(__aarch64__) && defined(__ARM_FEATURE_BF16_VECTOR_ARITHMETIC)
  f |= bf16;
#endif
#if defined(__aarch64__) && defined(__ARM_FEATURE_FP16_VECTOR_ARITHMETIC)
  f |= fp16;
#endif
  return f;
}

inline std::uint64_t runtime_features() noexcept {
  std::uint64_t f = 0;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return 0;
  const unsigned max_leaf = a;
  unsigned c1 = 0, d1 = 0, b7 = 0, c7 = 0, d7 = 0, a71 = 0;
  __get_cpuid(1, &a, &b, &c1, &d1);
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b7, c7, d7);
    if (a >= 1) {  // leaf 7's last sub-leaf
      unsigned b71 = 0, c71 = 0, d71 = 0;
      __cpuid_count(7, 1, a71, b71, c71, d71);
    }
  }
  unsigned ext = 0, ext_c = 0;
  if (__get_cpuid(0x80000000u, &ext, &b, &c, &d) && ext >= 0x80000001u) __get_cpuid(0x80000001u, &a, &b, &ext_c, &d);
  // The OS saves the vector registers (XCR0): SSE+AVX state, then opmask+ZMM, then the AMX tiles.
  std::uint64_t xcr0 = 0;
  if (c1 & (1u << 27)) {  // OSXSAVE
    unsigned lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (std::uint64_t(hi) << 32) | lo;
  }
  const bool os_avx = (xcr0 & 0x6) == 0x6;
  const bool os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;
  auto bit = [](unsigned reg, int n) { return (reg >> n) & 1u; };
  if (bit(c1, 20)) f |= sse4_2;
  if (bit(c1, 23)) f |= popcnt;
  if (bit(c1, 22)) f |= movbe;
  if (bit(b7, 3)) f |= bmi;
  if (bit(b7, 8)) f |= bmi2;
  if (bit(ext_c, 5)) f |= lzcnt;
  if (os_avx) {
    if (bit(c1, 28)) f |= avx;
    if (bit(c1, 12)) f |= fma;
    if (bit(c1, 29)) f |= f16c;
    if (bit(b7, 5)) f |= avx2;
    if (bit(a71, 4)) f |= avxvnni;
  }
  if (os_avx512) {
    if (bit(b7, 16)) f |= avx512f;
    if (bit(b7, 17)) f |= avx512dq;
    if (bit(b7, 28)) f |= avx512cd;
    if (bit(b7, 30)) f |= avx512bw;
    if (bit(b7, 31)) f |= avx512vl;
    if (bit(c7, 11)) f |= avx512vnni;
    if (bit(a71, 5)) f |= avx512bf16;
    if (bit(d7, 23)) f |= avx512fp16;
  }
  if (os_amx) {  // Linux also wants arch_prctl(ARCH_REQ_XCOMP_PERM) before the first tile instruction
    if (bit(d7, 24)) f |= amx_tile;
    if (bit(d7, 25)) f |= amx_int8;
    if (bit(d7, 22)) f |= amx_bf16;
  }
#elif defined(__aarch64__) && defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
  if (hw & (1ul << 1)) f |= neon;      // HWCAP_ASIMD
  if (hw & (1ul << 20)) f |= dotprod;  // HWCAP_ASIMDDP
  if (hw & (1ul << 10)) f |= fp16;     // HWCAP_ASIMDHP
  if (hw2 & (1ul << 13)) f |= i8mm;    // HWCAP2_I8MM
  if (hw2 & (1ul << 14)) f |= bf16;    // HWCAP2_BF16
#endif
  return f;
}

// The features in `needed` that this CPU lacks; 0 when it runs them all. On a target where nothing is
// detectable (runtime_features() == 0 and no feature is known), nothing is reported missing.
inline std::uint64_t missing(std::uint64_t needed) noexcept {
#if defined(__x86_64__) || defined(__i386__) || (defined(__aarch64__) && defined(__linux__))
  return needed & ~runtime_features();
#else
  (void)needed;
  return 0;
#endif
}

// Writes the names of the features in `set`, separated by spaces, into out[0..capacity) (always
// terminated); returns out.
inline char* feature_names(std::uint64_t set, char* out, std::size_t capacity) noexcept {
  if (capacity == 0) return out;
  std::size_t n = 0;
  out[0] = '\0';
  for (int i = 0; i < 64; ++i) {
    const std::uint64_t b = std::uint64_t(1) << i;
    if (!(set & b)) continue;
    for (const char* p = n ? " " : ""; *p && n + 1 < capacity; ++p) out[n++] = *p;
    for (const char* p = feature_name(b); *p && n + 1 < capacity; ++p) out[n++] = *p;
  }
  out[n] = '\0';
  return out;
}

// Errc::unsupported_cpu naming what this CPU lacks of `needed` (by default: what the calling translation
// unit was compiled to use), or ok.
inline Status check_cpu(std::uint64_t needed = compiled_features()) noexcept {
  const std::uint64_t lacking = missing(needed);
  if (!lacking) return Status{};
  char names[160];
  return Status::error(Errc::unsupported_cpu, "this CPU lacks %s, which the code was compiled to use",
                       feature_names(lacking, names, sizeof names));
}

}  // namespace vitcc::cpu
