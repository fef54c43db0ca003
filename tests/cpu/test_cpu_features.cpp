// vitcc::cpu (include/vitcc/core/cpu_features.hpp): what this translation unit was compiled to use, what
// the CPU runs, and the refusal. On x86 Linux the CPUID reading is held to the kernel's own reading
// (/proc/cpuinfo's flags), an independent source.
#include <doctest/doctest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "vitcc/core/cpu_features.hpp"

namespace cpu = vitcc::cpu;

TEST_CASE("this test runs, so this CPU runs what it was compiled for") {
  char names[256];
  INFO("compiled: ", cpu::feature_names(cpu::compiled_features(), names, sizeof names));
  CHECK(cpu::missing(cpu::compiled_features()) == 0);
  CHECK(cpu::check_cpu().ok());
#if defined(__AVX2__)
  CHECK((cpu::compiled_features() & cpu::avx2) != 0);
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
  CHECK((cpu::compiled_features() & cpu::neon) != 0);
#endif
}

TEST_CASE("a feature this CPU lacks is refused by name") {
  const std::uint64_t all = ~std::uint64_t(0);
  const std::uint64_t lacking = cpu::missing(all);
#if defined(__x86_64__) || (defined(__aarch64__) && defined(__linux__))
  REQUIRE(lacking != 0);  // no CPU has every x86 and every Arm feature
  const vitcc::Status s = cpu::check_cpu(all);
  CHECK(s.code() == vitcc::Errc::unsupported_cpu);
  CHECK(std::string(s.message()).find("this CPU lacks ") == 0);
  // The message names the missing extensions, from the first (it may be cut short at Status's capacity).
  std::uint64_t first = lacking & (~lacking + 1);
  CHECK(std::string(s.message()).find(std::string("this CPU lacks ") + cpu::feature_name(first)) == 0);
#else
  CHECK(lacking == 0);  // nothing is detectable here
#endif
}

TEST_CASE("feature_names: spelled as GCC's -m options, space separated, always terminated") {
  char b[64];
  CHECK(std::string(cpu::feature_names(cpu::avx2 | cpu::avx512f | cpu::dotprod, b, sizeof b)) == "avx2 avx512f dotprod");
  for (int i = 0; i < 64; ++i) {  // every bit of the enum has a name, and no two bits share one
    const std::uint64_t bit = std::uint64_t(1) << i;
    for (int j = 0; j < i && *cpu::feature_name(bit); ++j)
      CHECK(std::string(cpu::feature_name(bit)) != cpu::feature_name(std::uint64_t(1) << j));
  }
  CHECK(std::string(cpu::feature_names(0, b, sizeof b)).empty());
  char tiny[6];
  CHECK(std::string(cpu::feature_names(cpu::avx512bw | cpu::avx512vl, tiny, sizeof tiny)) == "avx51");
}

#if defined(__x86_64__) && defined(__linux__)
TEST_CASE("CPUID and XGETBV agree with the kernel's /proc/cpuinfo") {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  std::set<std::string> flags;
  while (std::getline(f, line))
    if (line.rfind("flags", 0) == 0) {
      std::istringstream words(line.substr(line.find(':') + 1));
      for (std::string w; words >> w;) flags.insert(w);
      break;
    }
  REQUIRE(!flags.empty());
  const std::uint64_t have = cpu::runtime_features();
  // The kernel's names (arch/x86/include/asm/cpufeatures.h), where they differ from GCC's.
  const std::pair<cpu::feature, const char*> table[] = {
      {cpu::sse3, "pni"},
      {cpu::ssse3, "ssse3"},
      {cpu::sse4_1, "sse4_1"},
      {cpu::sse4_2, "sse4_2"},
      {cpu::popcnt, "popcnt"},
      {cpu::avx, "avx"},
      {cpu::avx2, "avx2"},
      {cpu::fma, "fma"},
      {cpu::f16c, "f16c"},
      {cpu::bmi, "bmi1"},
      {cpu::bmi2, "bmi2"},
      {cpu::lzcnt, "abm"},
      {cpu::movbe, "movbe"},
      {cpu::aes, "aes"},
      {cpu::pclmul, "pclmulqdq"},
      {cpu::sha, "sha_ni"},
      {cpu::adx, "adx"},
      {cpu::sse4a, "sse4a"},
      {cpu::gfni, "gfni"},
      {cpu::vaes, "vaes"},
      {cpu::vpclmulqdq, "vpclmulqdq"},
      {cpu::avx512f, "avx512f"},
      {cpu::avx512cd, "avx512cd"},
      {cpu::avx512bw, "avx512bw"},
      {cpu::avx512dq, "avx512dq"},
      {cpu::avx512vl, "avx512vl"},
      {cpu::avx512ifma, "avx512ifma"},
      {cpu::avx512vbmi, "avx512vbmi"},
      {cpu::avx512vbmi2, "avx512_vbmi2"},
      {cpu::avx512vnni, "avx512_vnni"},
      {cpu::avx512bitalg, "avx512_bitalg"},
      {cpu::avx512vpopcntdq, "avx512_vpopcntdq"},
      {cpu::avx512bf16, "avx512_bf16"},
      {cpu::avx512fp16, "avx512_fp16"},
      {cpu::avx512vp2intersect, "avx512_vp2intersect"},
      {cpu::avxvnni, "avx_vnni"},
      {cpu::amx_tile, "amx_tile"},
      {cpu::amx_int8, "amx_int8"},
      {cpu::amx_bf16, "amx_bf16"},
  };
  for (const auto& [bit, name] : table) {
    CAPTURE(name);
    CHECK(((have & bit) != 0) == (flags.count(name) != 0));
  }
}
#endif
