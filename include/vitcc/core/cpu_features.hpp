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

// One bit per instruction-set extension a compiler may emit for computation. Not tracked: system
// instructions only intrinsics reach (RDRAND, XSAVE*, CLWB, ...) and extensions of CPUs vitcc does not
// target (FMA4/XOP). x86 in bits 0-39, 64-bit Arm in 40-63.
enum feature : std::uint64_t {
  sse3 = 1ull << 0,
  ssse3 = 1ull << 1,
  sse4_1 = 1ull << 2,
  sse4_2 = 1ull << 3,
  popcnt = 1ull << 4,
  avx = 1ull << 5,
  avx2 = 1ull << 6,
  fma = 1ull << 7,
  f16c = 1ull << 8,
  bmi = 1ull << 9,
  bmi2 = 1ull << 10,
  lzcnt = 1ull << 11,
  movbe = 1ull << 12,
  aes = 1ull << 13,
  pclmul = 1ull << 14,
  sha = 1ull << 15,
  adx = 1ull << 16,
  sse4a = 1ull << 17,
  gfni = 1ull << 18,
  vaes = 1ull << 19,
  vpclmulqdq = 1ull << 20,
  avx512f = 1ull << 21,
  avx512cd = 1ull << 22,
  avx512bw = 1ull << 23,
  avx512dq = 1ull << 24,
  avx512vl = 1ull << 25,
  avx512ifma = 1ull << 26,
  avx512vbmi = 1ull << 27,
  avx512vbmi2 = 1ull << 28,
  avx512vnni = 1ull << 29,
  avx512bitalg = 1ull << 30,
  avx512vpopcntdq = 1ull << 31,
  avx512bf16 = 1ull << 32,
  avx512fp16 = 1ull << 33,
  avx512vp2intersect = 1ull << 34,
  avxvnni = 1ull << 35,
  amx_tile = 1ull << 36,
  amx_int8 = 1ull << 37,
  amx_bf16 = 1ull << 38,
  neon = 1ull << 40,
  dotprod = 1ull << 41,
  i8mm = 1ull << 42,
  bf16 = 1ull << 43,
  fp16 = 1ull << 44,
  fp16fml = 1ull << 45,
  rdm = 1ull << 46,
  lse = 1ull << 47,
  crc = 1ull << 48,
  arm_aes = 1ull << 49,
  sha2 = 1ull << 50,
  jscvt = 1ull << 51,
  fcma = 1ull << 52,
  sve = 1ull << 53,
  sve2 = 1ull << 54,
  sve_i8mm = 1ull << 55,
  rng = 1ull << 56,
};

// The name of one feature bit, as GCC's -m options spell it ("" for a bit that is not a feature).
constexpr const char* feature_name(std::uint64_t bit) noexcept {
  switch (bit) {
    case sse3: return "sse3";
    case ssse3: return "ssse3";
    case sse4_1: return "sse4.1";
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
    case aes: return "aes";
    case pclmul: return "pclmul";
    case sha: return "sha";
    case adx: return "adx";
    case sse4a: return "sse4a";
    case gfni: return "gfni";
    case vaes: return "vaes";
    case vpclmulqdq: return "vpclmulqdq";
    case avx512f: return "avx512f";
    case avx512cd: return "avx512cd";
    case avx512bw: return "avx512bw";
    case avx512dq: return "avx512dq";
    case avx512vl: return "avx512vl";
    case avx512ifma: return "avx512ifma";
    case avx512vbmi: return "avx512vbmi";
    case avx512vbmi2: return "avx512vbmi2";
    case avx512vnni: return "avx512vnni";
    case avx512bitalg: return "avx512bitalg";
    case avx512vpopcntdq: return "avx512vpopcntdq";
    case avx512bf16: return "avx512bf16";
    case avx512fp16: return "avx512fp16";
    case avx512vp2intersect: return "avx512vp2intersect";
    case avxvnni: return "avxvnni";
    case amx_tile: return "amx-tile";
    case amx_int8: return "amx-int8";
    case amx_bf16: return "amx-bf16";
    case neon: return "neon";
    case dotprod: return "dotprod";
    case i8mm: return "i8mm";
    case bf16: return "bf16";
    case fp16: return "fp16";
    case fp16fml: return "fp16fml";
    case rdm: return "rdm";
    case lse: return "lse";
    case crc: return "crc";
    case arm_aes: return "aes+pmull";
    case sha2: return "sha2";
    case jscvt: return "jscvt";
    case fcma: return "fcma";
    case sve: return "sve";
    case sve2: return "sve2";
    case sve_i8mm: return "sve-i8mm";
    case rng: return "rng";
    default: return "";
  }
}

// What the compiler was allowed to use in the including translation unit (its predefined macros).
constexpr std::uint64_t compiled_features() noexcept {
  std::uint64_t f = 0;
#if defined(__SSE3__)
  f |= sse3;
#endif
#if defined(__SSSE3__)
  f |= ssse3;
#endif
#if defined(__SSE4_1__)
  f |= sse4_1;
#endif
#if defined(__SSE4_2__)
  f |= sse4_2;
#endif
#if defined(__POPCNT__)
  f |= popcnt;
#endif
#if defined(__AVX__)
  f |= avx;
#endif
#if defined(__AVX2__)
  f |= avx2;
#endif
#if defined(__FMA__)
  f |= fma;
#endif
#if defined(__F16C__)
  f |= f16c;
#endif
#if defined(__BMI__)
  f |= bmi;
#endif
#if defined(__BMI2__)
  f |= bmi2;
#endif
#if defined(__LZCNT__)
  f |= lzcnt;
#endif
#if defined(__MOVBE__)
  f |= movbe;
#endif
#if defined(__AES__)
  f |= aes;
#endif
#if defined(__PCLMUL__)
  f |= pclmul;
#endif
#if defined(__SHA__)
  f |= sha;
#endif
#if defined(__ADX__)
  f |= adx;
#endif
#if defined(__SSE4A__)
  f |= sse4a;
#endif
#if defined(__GFNI__)
  f |= gfni;
#endif
#if defined(__VAES__)
  f |= vaes;
#endif
#if defined(__VPCLMULQDQ__)
  f |= vpclmulqdq;
#endif
#if defined(__AVX512F__)
  f |= avx512f;
#endif
#if defined(__AVX512CD__)
  f |= avx512cd;
#endif
#if defined(__AVX512BW__)
  f |= avx512bw;
#endif
#if defined(__AVX512DQ__)
  f |= avx512dq;
#endif
#if defined(__AVX512VL__)
  f |= avx512vl;
#endif
#if defined(__AVX512IFMA__)
  f |= avx512ifma;
#endif
#if defined(__AVX512VBMI__)
  f |= avx512vbmi;
#endif
#if defined(__AVX512VBMI2__)
  f |= avx512vbmi2;
#endif
#if defined(__AVX512VNNI__)
  f |= avx512vnni;
#endif
#if defined(__AVX512BITALG__)
  f |= avx512bitalg;
#endif
#if defined(__AVX512VPOPCNTDQ__)
  f |= avx512vpopcntdq;
#endif
#if defined(__AVX512BF16__)
  f |= avx512bf16;
#endif
#if defined(__AVX512FP16__)
  f |= avx512fp16;
#endif
#if defined(__AVX512VP2INTERSECT__)
  f |= avx512vp2intersect;
#endif
#if defined(__AVXVNNI__)
  f |= avxvnni;
#endif
#if defined(__AMX_TILE__)
  f |= amx_tile;
#endif
#if defined(__AMX_INT8__)
  f |= amx_int8;
#endif
#if defined(__AMX_BF16__)
  f |= amx_bf16;
#endif
#if defined(__aarch64__) && (defined(__ARM_NEON))
  f |= neon;
#endif
#if defined(__aarch64__) && (defined(__ARM_FEATURE_DOTPROD))
  f |= dotprod;
#endif
#if defined(__aarch64__) && (defined(__ARM_FEATURE_MATMUL_INT8))
  f |= i8mm;
#endif
#if defined(__aarch64__) && (defined(__ARM_FEATURE_BF16_VECTOR_ARITHMETIC) || defined(__ARM_FEATURE_BF16_SCALAR_ARITHMETIC))
  f |= bf16;
#endif
#if defined(__aarch64__) && (defined(__ARM_FEATURE_FP16_VECTOR_ARITHMETIC) || defined(__ARM_FEATURE_FP16_SCALAR_ARITHMETIC))
  f |= fp16;
#endif
#if defined(__aarch64__) && (defined(__ARM_FEATURE_FP16_FML))
  f |= fp16fml;
#endif
#if defined(__aarch64__) && (defined(__ARM_FEATURE_QRDMX))
  f |= rdm;
#endif
#if defined(__aarch64__) && (defined(__ARM_FEATURE_ATOMICS))
  f |= lse;
#endif
#if defined(__aarch64__) && (defined(__ARM_FEATURE_CRC32))
  f |= crc;
#endif
#if defined(__aarch64__) && (defined(__ARM_FEATURE_AES))
  f |= arm_aes;
#endif
#if defined(__aarch64__) && (defined(__ARM_FEATURE_SHA2))
  f |= sha2;
#endif
#if defined(__aarch64__) && (defined(__ARM_FEATURE_JCVT))
  f |= jscvt;
#endif
#if defined(__aarch64__) && (defined(__ARM_FEATURE_COMPLEX))
  f |= fcma;
#endif
#if defined(__aarch64__) && (defined(__ARM_FEATURE_SVE))
  f |= sve;
#endif
#if defined(__aarch64__) && (defined(__ARM_FEATURE_SVE2))
  f |= sve2;
#endif
#if defined(__aarch64__) && (defined(__ARM_FEATURE_SVE_MATMUL_INT8))
  f |= sve_i8mm;
#endif
#if defined(__aarch64__) && (defined(__ARM_FEATURE_RNG))
  f |= rng;
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
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;  // Linux also wants arch_prctl(ARCH_REQ_XCOMP_PERM)
  auto bit = [](unsigned reg, int n) { return ((reg >> n) & 1u) != 0; };
  // leaf 1: c1; leaf 7 sub-leaf 0: b7, c7, d7; sub-leaf 1: a71; leaf 0x80000001: ext_c
  if (bit(c1, 0)) f |= sse3;
  if (bit(c1, 9)) f |= ssse3;
  if (bit(c1, 19)) f |= sse4_1;
  if (bit(c1, 20)) f |= sse4_2;
  if (bit(c1, 23)) f |= popcnt;
  if (os_avx && bit(c1, 28)) f |= avx;
  if (os_avx && bit(b7, 5)) f |= avx2;
  if (os_avx && bit(c1, 12)) f |= fma;
  if (os_avx && bit(c1, 29)) f |= f16c;
  if (bit(b7, 3)) f |= bmi;
  if (bit(b7, 8)) f |= bmi2;
  if (bit(ext_c, 5)) f |= lzcnt;
  if (bit(c1, 22)) f |= movbe;
  if (bit(c1, 25)) f |= aes;
  if (bit(c1, 1)) f |= pclmul;
  if (bit(b7, 29)) f |= sha;
  if (bit(b7, 19)) f |= adx;
  if (bit(ext_c, 6)) f |= sse4a;
  if (bit(c7, 8)) f |= gfni;
  if (os_avx && bit(c7, 9)) f |= vaes;
  if (os_avx && bit(c7, 10)) f |= vpclmulqdq;
  if (os_avx512 && bit(b7, 16)) f |= avx512f;
  if (os_avx512 && bit(b7, 28)) f |= avx512cd;
  if (os_avx512 && bit(b7, 30)) f |= avx512bw;
  if (os_avx512 && bit(b7, 17)) f |= avx512dq;
  if (os_avx512 && bit(b7, 31)) f |= avx512vl;
  if (os_avx512 && bit(b7, 21)) f |= avx512ifma;
  if (os_avx512 && bit(c7, 1)) f |= avx512vbmi;
  if (os_avx512 && bit(c7, 6)) f |= avx512vbmi2;
  if (os_avx512 && bit(c7, 11)) f |= avx512vnni;
  if (os_avx512 && bit(c7, 12)) f |= avx512bitalg;
  if (os_avx512 && bit(c7, 14)) f |= avx512vpopcntdq;
  if (os_avx512 && bit(a71, 5)) f |= avx512bf16;
  if (os_avx512 && bit(d7, 23)) f |= avx512fp16;
  if (os_avx512 && bit(d7, 8)) f |= avx512vp2intersect;
  if (os_avx && bit(a71, 4)) f |= avxvnni;
  if (os_amx && bit(d7, 24)) f |= amx_tile;
  if (os_amx && bit(d7, 25)) f |= amx_int8;
  if (os_amx && bit(d7, 22)) f |= amx_bf16;
  (void)d1;
#elif defined(__aarch64__) && defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
  if (hw & (1ul << 1)) f |= neon;  // HWCAP_ASIMD
  if (hw & (1ul << 20)) f |= dotprod;  // HWCAP_ASIMDDP
  if (hw2 & (1ul << 13)) f |= i8mm;  // HWCAP2_I8MM
  if (hw2 & (1ul << 14)) f |= bf16;  // HWCAP2_BF16
  if ((hw & (1ul << 9)) && (hw & (1ul << 10))) f |= fp16;  // HWCAP_FPHP, HWCAP_ASIMDHP
  if (hw & (1ul << 23)) f |= fp16fml;  // HWCAP_ASIMDFHM
  if (hw & (1ul << 12)) f |= rdm;  // HWCAP_ASIMDRDM
  if (hw & (1ul << 8)) f |= lse;  // HWCAP_ATOMICS
  if (hw & (1ul << 7)) f |= crc;  // HWCAP_CRC32
  if ((hw & (1ul << 3)) && (hw & (1ul << 4))) f |= arm_aes;  // HWCAP_AES, HWCAP_PMULL
  if (hw & (1ul << 6)) f |= sha2;  // HWCAP_SHA2
  if (hw & (1ul << 13)) f |= jscvt;  // HWCAP_JSCVT
  if (hw & (1ul << 14)) f |= fcma;  // HWCAP_FCMA
  if (hw & (1ul << 22)) f |= sve;  // HWCAP_SVE
  if (hw2 & (1ul << 1)) f |= sve2;  // HWCAP2_SVE2
  if (hw2 & (1ul << 9)) f |= sve_i8mm;  // HWCAP2_SVEI8MM
  if (hw2 & (1ul << 16)) f |= rng;  // HWCAP2_RNG
#endif
  return f;
}

// The features in `needed` that this CPU lacks; 0 when it runs them all. On a target where nothing is
// detectable (runtime_features() == 0 and no feature is known), nothing is reported missing.
// Whether this build can read the CPU's features at all (x86; Linux on 64-bit Arm).
#if defined(__x86_64__) || defined(__i386__) || (defined(__aarch64__) && defined(__linux__))
inline constexpr bool detectable = true;
#else
inline constexpr bool detectable = false;
#endif

inline std::uint64_t missing(std::uint64_t needed) noexcept {
  if constexpr (detectable) {
    return needed & ~runtime_features();
  } else {
    (void)needed;
    return 0;
  }
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
