// The instruction-set targets vitcc-compile and vitcc-run build for, by name (docs/TARGETS.md).
// Each maps to compiler flags (after -O2 -DNDEBUG, and -fPIC but on Cortex-M). `abi_flags` are the part a translation unit must share to link with the
// rest (Cortex-M's float ABI); a library's CPU check is compiled with those alone, so that it runs on
// any CPU of the family. `cross` is the GNU triplet prefix of the default compiler and binutils when
// the target is not the host's family ("" = the host compiler).
#pragma once
#include <cstring>
#include <string>
#include <vector>

namespace vitcc::tools {

struct IsaTarget {
  const char* name;
  const char* family;     // x86-64, aarch64, armv7e-m, any
  const char* isa_flags;  // appended to "-O2 -DNDEBUG"
  const char* abi_flags;
  const char* cross;      // e.g. "aarch64-linux-gnu-"
  const char* about;
};

// Weakest first within a family: a fat library tries them from the last one down.
inline const std::vector<IsaTarget>& isa_targets() {
  static const std::vector<IsaTarget> t = {
      {"native", "host", "", "", "", "this machine's CPU (-march=native and the build's own choices: the default)"},
      {"scalar", "any", "-DVITCC_DISABLE_SIMD=1", "", "", "portable C++, no SIMD: any CPU the compiler targets; isa scalar"},
      {"x86-64-v2", "x86-64", "-march=x86-64-v2 -mtune=generic", "", "", "SSE4.2, POPCNT (2009 on): vitcc isa sse4.2"},
      {"x86-64-v3", "x86-64", "-march=x86-64-v3 -mtune=generic", "", "", "AVX2, FMA, BMI2 (Haswell, Zen 1 and later): isa fma3+avx2"},
      {"x86-64-v4", "x86-64", "-march=x86-64-v4 -mtune=generic", "", "", "AVX-512 F/BW/DQ/VL/CD (Skylake-SP, Zen 4 and later): isa avx512bw"},
      {"x86-64-v4+vnni", "x86-64", "-march=x86-64-v4 -mavx512vnni -mtune=generic", "", "",
       "x86-64-v4 with AVX512-VNNI, which the int8 GEMM uses: Cascade Lake, Ice Lake, Zen 4 and later"},
      {"armv8-a", "aarch64", "-march=armv8-a", "", "aarch64-linux-gnu-", "64-bit Arm with NEON (every Cortex-A of ARMv8): isa arm64+neon"},
      {"armv8.2-a+dotprod", "aarch64", "-march=armv8.2-a+dotprod", "", "aarch64-linux-gnu-",
       "NEON with SDOT/UDOT (int8 dot products): Cortex-A55/A76 and later"},
      {"armv8.2-a+dotprod+i8mm", "aarch64", "-march=armv8.2-a+dotprod+i8mm", "", "aarch64-linux-gnu-",
       "NEON with SDOT and SMMLA (int8 matrix multiply): Cortex-A510/A710, Neoverse V1/N2 and later"},
      {"cortex-m7", "armv7e-m", "-DVITCC_DISABLE_SIMD=1", "-mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu=fpv5-d16",
       "arm-none-eabi-", "Cortex-M7 firmware (bare metal, hard float): scalar kernels"},
      {"cortex-m7-sp", "armv7e-m", "-DVITCC_DISABLE_SIMD=1", "-mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu=fpv5-sp-d16",
       "arm-none-eabi-", "Cortex-M7 with the single-precision FPU (e.g. STM32F74x), hard float: scalar kernels"},
      {"cortex-m4", "armv7e-m", "-DVITCC_DISABLE_SIMD=1", "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16",
       "arm-none-eabi-", "Cortex-M4F firmware (single-precision FPU, hard float): scalar kernels"},
  };
  return t;
}

inline const IsaTarget* find_isa_target(const std::string& name) {
  for (const IsaTarget& t : isa_targets())
    if (name == t.name) return &t;
  return nullptr;
}

inline std::string isa_target_names() {
  std::string s;
  for (const IsaTarget& t : isa_targets()) s += (s.empty() ? "" : ", ") + std::string(t.name);
  return s;
}

// The host's family, as the table names it.
inline const char* host_family() {
#if defined(__x86_64__)
  return "x86-64";
#elif defined(__aarch64__)
  return "aarch64";
#else
  return "other";
#endif
}

}  // namespace vitcc::tools
