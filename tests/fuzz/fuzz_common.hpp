// Shared by the libFuzzer targets: a private scratch folder (in /dev/shm when there is one) for the
// readers that take a path, and a way to stop on exceptions that are not the reader's own errors.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <typeinfo>

namespace vitcc::fuzz {

// A folder of this process's own, created once.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    std::string d = (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp") + std::string("/vitcc-fuzz-") +
                    std::to_string(::getpid());
    std::string cmd = "mkdir -p '" + d + "'";
    if (std::system(cmd.c_str()) != 0) std::abort();
    return d;
  }();
  return dir;
}

// Writes the input to scratch_dir()/name and returns the path.
inline std::string write_input(const std::string& name, const std::uint8_t* data, std::size_t size) {
  const std::string path = scratch_dir() + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

// An exception a reader should never let out: a finding, reported like a crash.
[[noreturn]] inline void unexpected(const char* where, const std::exception& e) {
  std::fprintf(stderr, "%s: unexpected exception (%s): %s\n", where, typeid(e).name(), e.what());
  std::abort();
}

}  // namespace vitcc::fuzz
