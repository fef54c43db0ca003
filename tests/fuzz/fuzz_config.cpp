// libFuzzer target: the JSON config reader every tool uses (tools/common/model_config.cpp).
// Refusals are std::runtime_error; an accepted config must satisfy what the tools rely on
// afterwards: a name and file names that are plain file names with nothing to escape in source,
// sizes that agree with the shapes, and a self-check record that can be verified against an
// output of the declared size without reading past it.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "../../tools/common/self_check.hpp"
#include "../../tools/common/model_config.hpp"
#include "../../tools/common/names.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  vitcc::tools::ModelConfig c;
  try {
    c = vitcc::tools::parse_model_config(text, "fuzz.json");
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).rfind("fuzz.json: ", 0) != 0) std::abort();  // every error names the file
    return 0;
  } catch (const std::exception& e) {
    vitcc::fuzz::unexpected("parse_model_config", e);
  }
  for (const std::string* s : {&c.name, &c.blob_file, &c.header_file}) {
    if (s->empty() || (*s)[0] == '.') std::abort();
    for (char ch : *s)
      if (!vitcc::tools::file_name_char(ch)) std::abort();
  }
  if (c.input_per_image != std::size_t(c.c * c.h * c.w) || c.input_shape.size() != 4) std::abort();
  std::size_t per_out = 1;
  for (std::size_t i = 1; i < c.output_shape.size(); ++i) per_out *= std::size_t(c.output_shape[i]);
  if (per_out != c.output_per_image) std::abort();
  if (c.has_self_check && c.output_per_image <= (std::size_t(1) << 20)) {
    try {
      const std::vector<float> out(c.output_per_image, 0.0f);
      (void)vitcc::tools::self_check_verify(c.self_check, out);
    } catch (const std::exception& e) {
      vitcc::fuzz::unexpected("self_check_verify", e);
    }
  }
  return 0;
}
