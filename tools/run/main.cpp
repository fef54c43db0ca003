// vitcc-run OUT_DIR/NAME.json --input IN --output OUT [--threads N] [--repeat N]
// vitcc-run OUT_DIR/NAME.json --check
// vitcc-run OUT_DIR/NAME.json --info
// vitcc-run --cache-info | --clear-cache | --version
//
// Runs a packed model natively. The model's generated header is compiled, once per configuration,
// into a small runner executable (see runner_main.hpp) that is cached under the user's cache folder
// by a key made of the config hash, the library's headers, the runner's sources, the compiler and its
// flags; later runs of any model with the same configuration reuse it. The runner is always compiled
// with -fno-exceptions -fno-rtti and counts the heap allocations of every forward() call, so each run
// also checks the library's promise (forward() allocates nothing, throws nothing, needs no RTTI).
// This tool does the file handling around it: reading .bin/.npy/image inputs (images preprocessed as
// the JSON says), writing .bin/.npy outputs, printing top-5, latency and the allocation count.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sched.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../common/exit_codes.hpp"
#include "../common/names.hpp"
#include "../common/process.hpp"
#include "../common/isa_targets.hpp"
#include "../common/self_check.hpp"
#include "../common/model_config.hpp"
#include "image_preprocess.hpp"
#include "tensor_io.hpp"
#include "vitcc/core/cpu_features.hpp"
#include "vitcc/version.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using vitcc::tools::run_process;

namespace {

const char* usage =
    "usage: vitcc-run NAME.json --input IN [--input IN2 ...] --output OUT [--threads N] [--repeat N]\n"
    "                [--reference REF.bin] [--labels LABELS.txt] [--target T]\n"
    "       vitcc-run NAME.json --check [--target T]\n"
    "       vitcc-run NAME.json --info\n"
    "       vitcc-run --cache-info | --clear-cache | --version\n"
    "IN: .bin (raw float32 NCHW, N images), .npy, or an image (.png .jpg .ppm). Several --input: one\n"
    "batch, in the order given, written to the one OUT.\n"
    "OUT: .bin (raw float32) or .npy. REF: raw float32 expected output (e.g. PyTorch's), compared with\n"
    "the project's parity bound (max abs error <= 1e-4 x max(1, max|ref|), cosine >= 0.99999; exit 4 if not).\n"
    "--check: run the seeded input recorded by vitcc-pack and compare with the ONNX graph's output.\n"
    "--info: check the config and its files, and print what it says as one JSON object (for scripts:\n"
    "the absolute paths of the blob and header, name, architecture, hashes, shapes, stats).\n"
    "--labels: one class name per line (as many lines as the model has classes); prints the top-5 of\n"
    "every image with its softmax probability and name (without it: the top-5 logits of image inputs).\n"
    "--target: the instruction set the runner is compiled for, by name (vitcc-compile --list-targets;\n"
    "default native): one this machine runs, e.g. x86-64-v3 or scalar to try what another CPU would run.\n"
    "--cache-info: the runner cache's folder, runners and bytes. --clear-cache: removes its runners\n"
    "(each is compiled again when next needed). The Python binding's compiled models count as runners.\n"
    "Environment: VITCC_CACHE_DIR (compiled runners; default ~/.cache/vitcc), CXX (compiler),\n"
    "VITCC_RUN_FLAGS (replaces the runner's compiler flags; -fno-exceptions -fno-rtti are always added),\n"
    "VITCC_RUN_LAUNCHER (e.g. an emulator).\n"
    "Exit codes: 0 done, 1 another failure (a compiler, the runner, an internal error), 2 usage, 3 an\n"
    "input file is unreadable or invalid, 4 outputs outside their bound, 5 a model vitcc does not pack or a --target this CPU does not run,\n"
    "6 an output cannot be written.\n";

// code: the exit code (tools/common/exit_codes.hpp); 0: the step that failed decides (main's `step`).
struct Failure : std::runtime_error {
  explicit Failure(const std::string& message, int exit_code = 0) : std::runtime_error(message), code(exit_code) {}
  int code;
};
namespace exit_code = vitcc::tools::exit_code;

struct Options {
  std::string config, output, reference, labels;
  std::vector<std::string> inputs;
  std::size_t threads = 1, repeat = 1;
  std::string target;  // --target (empty: native, or VITCC_RUN_FLAGS)
  bool check = false, verbose = false, info = false, cache_info = false, clear_cache = false;
};

// The compiler and flags runners are compiled with: $CXX and $VITCC_RUN_FLAGS (which replaces the
// built-in flags, e.g. with a cross compiler's or a scalar-only build's), else vitcc's own.
std::string runner_cxx() {
  const char* env = std::getenv("CXX");
  return env && *env ? env : VITCC_RUN_CXX;
}
// With --target NAME (tools/common/isa_targets.hpp, docs/TARGETS.md): that target's flags, plus this
// build's extra runner flags (a sanitizer build's). Only targets this machine runs natively: a runner
// is executed here.
std::string runner_flag_text(const std::string& target = "") {
  const char* env = std::getenv("VITCC_RUN_FLAGS");
  if (target.empty() || target == "native") return env ? env : VITCC_RUN_FLAGS;
  const vitcc::tools::IsaTarget* t = vitcc::tools::find_isa_target(target);
  if (!t)
    throw Failure("--target: unknown target '" + target + "' (one of: " + vitcc::tools::isa_target_names() + ")",
                  exit_code::usage);
  if (env)
    throw Failure("--target " + target + ": VITCC_RUN_FLAGS is set, and it replaces every runner flag; unset it",
                  exit_code::usage);
  const std::string family = t->family;
  if (family != "any" && family != vitcc::tools::host_family())
    throw Failure("--target " + target + " is for " + family + ", and vitcc-run runs the model on this " +
                      vitcc::tools::host_family() + " machine: build for that device with vitcc-compile --target " + target,
                  exit_code::usage);
  std::string f = std::string("-O2 -DNDEBUG ") + t->isa_flags;
  if (*t->abi_flags) f += std::string(" ") + t->abi_flags;
  if (*VITCC_RUN_EXTRA_FLAGS) f += std::string(" ") + VITCC_RUN_EXTRA_FLAGS;
  return f;
}

std::size_t parse_count(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || n == 0 || n > 100000) throw Failure(flag + ": '" + v + "' is not a count from 1 to 100000");
  return std::size_t(n);
}

Options parse(int argc, char** argv) {
  Options o;
  std::vector<std::string> a(argv + 1, argv + argc);
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto value = [&]() -> std::string {
      if (i + 1 >= a.size()) throw Failure(a[i] + " needs a value (see vitcc-run --help)");
      return a[++i];
    };
    if (a[i] == "--input" || a[i] == "-i") o.inputs.push_back(value());
    else if (a[i] == "--output" || a[i] == "-o") {
      const std::string before = o.output;
      o.output = value();
      if (!before.empty())
        throw Failure("--output given twice ('" + before + "', then '" + o.output + "'): one OUT holds the whole batch");
    }
    else if (a[i] == "--threads") o.threads = parse_count("--threads", value());
    else if (a[i] == "--target") {
      o.target = value();
      runner_flag_text(o.target);  // an unknown or foreign target is a usage error, found now
    }
    else if (a[i] == "--repeat") o.repeat = parse_count("--repeat", value());
    else if (a[i] == "--reference") o.reference = value();
    else if (a[i] == "--labels") o.labels = value();
    else if (a[i] == "--cache-info") o.cache_info = true;
    else if (a[i] == "--clear-cache") o.clear_cache = true;
    else if (a[i] == "--version") {
      std::printf("vitcc-run %d.%d.%d (runners compiled with %s %s)\n", VITCC_VERSION_MAJOR, VITCC_VERSION_MINOR,
                  VITCC_VERSION_PATCH, runner_cxx().c_str(), runner_flag_text().c_str());
      std::exit(0);
    }
    else if (a[i] == "--check") o.check = true;
    else if (a[i] == "--info") o.info = true;
    else if (a[i] == "--verbose" || a[i] == "-v") o.verbose = true;
    else if (a[i] == "-h" || a[i] == "--help") { std::cout << usage; std::exit(0); }
    else if (!a[i].empty() && a[i][0] == '-') throw Failure("unknown option '" + a[i] + "' (see vitcc-run --help)");
    else if (o.config.empty()) o.config = a[i];
    else throw Failure("unexpected argument '" + a[i] + "' (see vitcc-run --help)");
  }
  if (o.cache_info || o.clear_cache) {
    if (!o.config.empty() || !o.inputs.empty() || !o.output.empty() || o.check || o.info)
      throw Failure("--cache-info and --clear-cache take no model (see vitcc-run --help)");
    return o;
  }
  if (o.config.empty()) throw Failure("missing NAME.json (see vitcc-run --help)");
  if (o.check || o.info) {
    if (!o.inputs.empty() || !o.output.empty() || !o.labels.empty() || !o.reference.empty())
      throw Failure(std::string(o.check ? "--check" : "--info") +
                    " runs no --input, --output, --labels or --reference (see vitcc-run --help)");
    return o;
  }
  if (o.inputs.empty() || o.output.empty())
    throw Failure("need --input and --output, or --check (see vitcc-run --help)");
  vitcc::run::check_output_path(o.output);  // refused before the model runs (a usage error), not after
  return o;
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw Failure(p.string() + ": cannot read");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

fs::path self_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path(".") : exe.parent_path();
}

// Where the library's headers and the runner's sources are (runner_main.hpp, and the allocation
// counter it includes, malloc_counter.hpp): $VITCC_INCLUDE_DIR for all three, an installed tree next
// to this executable (../include, both files in ../share/vitcc/runner), or the source tree it was
// built from (tools/run, tools/common).
struct RunnerSources {
  fs::path include_dir, runner_dir, counter_dir;
};

RunnerSources find_sources() {
  RunnerSources s;
  if (const char* env = std::getenv("VITCC_INCLUDE_DIR")) {
    s.include_dir = s.runner_dir = s.counter_dir = env;
  } else if (fs::exists(self_dir() / "../include/vitcc/models/vit.hpp") &&
             fs::exists(self_dir() / "../share/vitcc/runner/runner_main.hpp")) {
    s.include_dir = fs::canonical(self_dir() / "../include");
    s.runner_dir = s.counter_dir = fs::canonical(self_dir() / "../share/vitcc/runner");
  } else {
    s.include_dir = VITCC_SOURCE_INCLUDE_DIR;
    s.runner_dir = VITCC_SOURCE_RUNNER_DIR;
    s.counter_dir = VITCC_SOURCE_COMMON_DIR;
  }
  if (!fs::exists(s.include_dir / "vitcc/models/vit.hpp"))
    throw Failure("cannot find the vitcc headers (looked in " + s.include_dir.string() + "); set VITCC_INCLUDE_DIR");
  if (!fs::exists(s.runner_dir / "runner_main.hpp"))
    throw Failure("cannot find runner_main.hpp (looked in " + s.runner_dir.string() + ")");
  if (!fs::exists(s.counter_dir / "malloc_counter.hpp"))
    throw Failure("cannot find malloc_counter.hpp (looked in " + s.counter_dir.string() + ")");
  return s;
}

fs::path cache_root() {
  if (const char* d = std::getenv("VITCC_CACHE_DIR"); d && *d) return d;
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return fs::path(d) / "vitcc";
  if (const char* d = std::getenv("HOME"); d && *d) return fs::path(d) / ".cache/vitcc";
  return fs::temp_directory_path() / "vitcc-cache";
}

// $VITCC_RUN_LAUNCHER (e.g. "qemu-aarch64 -L /usr/aarch64-linux-gnu") runs the compiled runner
// through an emulator, for runners cross-compiled with $CXX and $VITCC_RUN_FLAGS.
std::vector<std::string> with_launcher(std::vector<std::string> args) {
  const char* launcher = std::getenv("VITCC_RUN_LAUNCHER");
  if (!launcher || !*launcher) return args;
  std::vector<std::string> cmd = vitcc::tools::words(launcher);
  cmd.insert(cmd.end(), args.begin(), args.end());
  return cmd;
}

// A runner that exited 7 (runner_main's CPU check) or died of SIGILL (an instruction before it): this
// CPU does not run its target. Exit code 5, whether at the first start or at a run.
void throw_if_cpu_refused(int rc, const std::string& said, const std::string& target) {
  if (rc != 7 && rc != 128 + SIGILL) return;
  throw Failure("the runner compiled for target " + (target.empty() ? std::string("native") : target) +
                    " cannot run on this CPU (" + (rc == 7 ? said : "SIGILL: an illegal instruction, a missing extension or a trap") +
                    "): choose a target this CPU runs (vitcc-compile --list-targets, docs/TARGETS.md)",
                exit_code::unsupported);
}

// Returns the cached runner for this configuration, compiling it first if needed.
fs::path ensure_runner(const vitcc::tools::ModelConfig& cfg, bool verbose, const std::string& target) {
  const RunnerSources src = find_sources();
  const std::string cxx = runner_cxx();
  const std::string flag_text = runner_flag_text(target);
  std::vector<std::string> flags = vitcc::tools::words(flag_text);
  // Whatever the flags, the runner proves that forward() and bind() need neither exceptions nor RTTI
  // (last, so that they win over a -fexceptions in the flags).
  const std::vector<std::string> promise_flags{"-fno-exceptions", "-fno-rtti"};
  flags.insert(flags.end(), promise_flags.begin(), promise_flags.end());

  // The key covers everything the binary depends on except the weights.
  std::uint64_t key = vitcc::tools::fnv1a(cfg.config_hash);
  std::string command_text = cxx;
  for (const auto& f : flags) command_text += " " + f;
  // -march=native means this CPU: a cache shared between machines must not hand one's runner to another.
  if (command_text.find("native") != std::string::npos)
    command_text += " cpu=" + std::to_string(vitcc::cpu::runtime_features());
  key = vitcc::tools::fnv1a(command_text, key);
  std::vector<fs::path> sources;
  for (const auto& e : fs::recursive_directory_iterator(src.include_dir / "vitcc"))
    if (e.is_regular_file()) sources.push_back(e.path());
  std::sort(sources.begin(), sources.end());
  sources.push_back(src.runner_dir / "runner_main.hpp");
  sources.push_back(src.counter_dir / "malloc_counter.hpp");
  for (const auto& p : sources) key = vitcc::tools::fnv1a(p.filename().string() + read_text(p), key);

  const fs::path dir = cache_root();
  char name[64];
  std::snprintf(name, sizeof name, "runner-%016llx", static_cast<unsigned long long>(key));
  const fs::path runner = dir / name;
  if (fs::exists(runner)) return runner;

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Failure(dir.string() + ": cannot create the runner cache: " + ec.message(), exit_code::io);
  // Everything written into the translation unit was checked by load_model_config (name, hash) or
  // is refused here (a folder path that cannot be written in an #include).
  const std::string include = vitcc::tools::include_directive(cfg.header_path);
  if (include.empty())
    throw Failure(cfg.path + ": header: the path " + cfg.header_path + " holds a quote, a backslash or a control "
                  "character, which cannot be written in an #include", exit_code::input);
  const std::string tag = std::string(name) + "." + std::to_string(::getpid());
  const fs::path tu = dir / (tag + ".cpp");
  {
    std::ofstream f(tu);
    f << "// Generated by vitcc-run for " << cfg.name << " (config " << cfg.config_hash << ")\n"
      << include << "#include \"runner_main.hpp\"\n"
      << "VITCC_RUNNER_MAIN(vitcc_models::" << cfg.id << "_model)\n";
    if (!f) throw Failure(tu.string() + ": cannot write", exit_code::io);
  }
  // Said on every first compile (it takes seconds to minutes), at a terminal or in a log alike; a
  // note, on stderr, never an error (errors are the one line "vitcc-run: error: ...").
  std::fprintf(stderr, "vitcc-run: note: compiling %s for this machine (once per configuration; cache %s)\n",
               cfg.name.c_str(), dir.string().c_str());
  const fs::path tmp_bin = dir / (tag + ".bin");
  std::vector<std::string> cmd{cxx, "-std=c++17"};
  cmd.insert(cmd.end(), flags.begin(), flags.end());
  cmd.insert(cmd.end(), {"-I" + src.include_dir.string(), "-I" + src.runner_dir.string(), "-I" + src.counter_dir.string(),
                         tu.string(), "-o", tmp_bin.string(), "-pthread"});
  if (verbose) {
    for (const auto& c : cmd) std::fprintf(stderr, "%s ", c.c_str());
    std::fprintf(stderr, "\n");
  }
  std::string log;
  const int rc = run_process(cmd, log, true);
  fs::remove(tu, ec);
  if (rc != 0) {
    fs::remove(tmp_bin, ec);
    throw Failure("compiling the runner for " + cfg.header_path + " failed (" + cxx + " exit " + std::to_string(rc) + "):\n" + log);
  }
  // The cache is keyed by the config's hash, but the code comes from the header: a header compiled
  // for another configuration must not be cached under this key, where every later run of this
  // configuration would find it.
  std::string said;
  const int hash_rc = run_process(with_launcher({tmp_bin.string(), "--config-hash"}), said, true);
  said = vitcc::tools::one_line(said.c_str());
  std::string want = cfg.config_hash;
  for (char& ch : want) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  if (hash_rc != 0 || said != want) {
    fs::remove(tmp_bin, ec);
    throw_if_cpu_refused(hash_rc, said, target);
    if (hash_rc != 0)
      throw Failure("the runner compiled for " + cfg.header_path + " does not start (exit " + std::to_string(hash_rc) +
                    "): " + said);
    throw Failure(cfg.path + ": config_hash is " + cfg.config_hash + ", but its header " + cfg.header_path +
                  " was generated for config " + said + " (files from two different packs?)", exit_code::input);
  }
  fs::rename(tmp_bin, runner, ec);  // atomic: a concurrent compile of the same key is harmless
  if (ec) throw Failure(runner.string() + ": cannot move the compiled runner into place: " + ec.message(), exit_code::io);
  return runner;
}

// The runner cache: its compiled runners (runner-<16 hex digits>), the Python binding's model
// libraries (pylib-<16 hex digits>.so, python/vitcc), and the leftovers of compiles that were killed
// (runner-<key>.<pid>.cpp / .bin, and the binding's .pylib-build-* folders); nothing else in the
// folder is vitcc's.
bool is_cache_file(const std::string& name, bool& runner) {
  if (name.size() == 6 + 16 + 3 && name.compare(0, 6, "pylib-") == 0 && name.compare(22, 3, ".so") == 0) {
    runner = std::all_of(name.begin() + 6, name.begin() + 22, [](char c) {
      return std::isxdigit(static_cast<unsigned char>(c)) && !std::isupper(static_cast<unsigned char>(c));
    });
    return runner;
  }
  const std::size_t key_end = 7 + 16;
  if (name.size() < key_end || name.compare(0, 7, "runner-") != 0) return false;
  for (std::size_t i = 7; i < key_end; ++i)
    if (!std::isxdigit(static_cast<unsigned char>(name[i])) || std::isupper(static_cast<unsigned char>(name[i]))) return false;
  runner = name.size() == key_end;
  if (runner) return true;
  const std::string rest = name.substr(key_end);  // ".<pid>.cpp" or ".<pid>.bin"
  if (rest.size() < 6 || rest[0] != '.') return false;
  const std::string tail = rest.substr(rest.size() - 4);
  if (tail != ".cpp" && tail != ".bin") return false;
  const std::string pid = rest.substr(1, rest.size() - 5);
  return !pid.empty() && std::all_of(pid.begin(), pid.end(), [](char c) { return c >= '0' && c <= '9'; });
}
struct CacheEntry {
  fs::path path;
  std::uintmax_t bytes;
  bool runner;
  bool folder = false;  // the work folder of a Python binding's compile that was killed (.pylib-build-*)
};
std::vector<CacheEntry> cache_entries(const fs::path& dir) {
  std::vector<CacheEntry> out;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return out;  // no cache yet: empty
  fs::directory_iterator it(dir, ec);
  if (ec) throw Failure(dir.string() + ": cannot read the runner cache: " + ec.message(), exit_code::io);
  for (const auto& e : it) {
    bool runner = false;
    const std::string name = e.path().filename().string();
    if (name.rfind(".pylib-build-", 0) == 0 && e.is_directory(ec) && !e.is_symlink(ec)) {
      out.push_back({e.path(), 0, false, true});
      continue;
    }
    if (!is_cache_file(name, runner) || !e.is_regular_file(ec)) continue;
    out.push_back({e.path(), e.file_size(ec), runner});
  }
  std::sort(out.begin(), out.end(), [](const CacheEntry& a, const CacheEntry& b) { return a.path < b.path; });
  return out;
}

int cache_command(bool clear) {
  const fs::path dir = cache_root();
  const std::vector<CacheEntry> entries = cache_entries(dir);
  std::size_t runners = 0;
  std::uintmax_t bytes = 0;
  for (const auto& e : entries) {
    runners += e.runner ? 1 : 0;
    bytes += e.bytes;
  }
  if (!clear) {
    std::printf("cache   %s\nrunners %zu (%.1f MB), other files %zu\n", dir.string().c_str(), runners, bytes / 1e6,
                entries.size() - runners);
    return 0;
  }
  std::size_t removed = 0;
  for (const auto& e : entries) {
    std::error_code ec;
    if (e.folder ? fs::remove_all(e.path, ec) > 0 : fs::remove(e.path, ec)) ++removed;
    else if (ec) throw Failure(e.path.string() + ": cannot remove: " + ec.message(), exit_code::io);
  }
  std::printf("cache   %s: removed %zu file(s), %.1f MB\n", dir.string().c_str(), removed, bytes / 1e6);
  return 0;
}

// Class names, one per line (trailing spaces and a final newline ignored), exactly `classes` of them.
std::vector<std::string> read_labels(const std::string& path, std::size_t classes) {
  std::ifstream f(path);
  if (!f) throw Failure(path + ": --labels: cannot read");
  std::vector<std::string> names;
  std::string line;
  while (std::getline(f, line)) {
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    names.push_back(line);
  }
  while (!names.empty() && names.back().empty()) names.pop_back();
  if (names.size() != classes)
    throw Failure(path + ": --labels: " + std::to_string(names.size()) + " lines, expected one per class: " +
                  std::to_string(classes));
  return names;
}

// The cores this process may run on (its affinity mask, as a container or taskset limits it).
std::size_t usable_cores() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return std::size_t(CPU_COUNT(&set));
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? std::size_t(n) : 1;
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "vitcc-run.XXXXXX").string();
    if (!::mkdtemp(t.data())) throw Failure(std::string("mkdtemp: ") + std::strerror(errno), exit_code::io);
    path = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write_raw(const fs::path& p, const std::vector<float>& v) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(float)));
  if (!f) throw Failure(p.string() + ": cannot write");
}

std::vector<float> read_raw(const fs::path& p, std::size_t n) {
  std::vector<float> v(n);
  std::ifstream f(p, std::ios::binary);
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(n * sizeof(float)));
  if (!f) throw Failure(p.string() + ": runner output is short");
  return v;
}

// A number on the runner's summary line ("KEY=VALUE"); false when the runner did not print it.
bool runner_field(const std::string& said, const std::string& key, double& value) {
  const auto p = said.find(" " + key + "=");
  if (p == std::string::npos) return false;
  const char* start = said.c_str() + p + key.size() + 2;
  char* end = nullptr;
  value = std::strtod(start, &end);
  return end != start;
}

// The runner's instruction set (its summary's isa=) and the target it was compiled for.
void print_isa(const std::string& runner_said, const std::string& target) {
  const auto isa = runner_said.find(" isa=");
  if (isa == std::string::npos) return;
  std::printf("isa     %s (target %s)\n",
              runner_said.substr(isa + 5, runner_said.find_first_of(" \n", isa + 5) - isa - 5).c_str(),
              target.empty() ? "native" : target.c_str());
}

// --info: the config as load_model_config checked it, for scripts (tools/memory_report.sh,
// tools/bench/compare.py), so that they never parse NAME.json themselves.
void print_info(const vitcc::tools::ModelConfig& cfg) {
  json j;
  j["config"] = fs::absolute(cfg.path).string();
  j["name"] = cfg.name;
  j["id"] = cfg.id;
  j["architecture"] = cfg.architecture;
  j["config_hash"] = cfg.config_hash;
  j["blob"] = {{"file", cfg.blob_file}, {"path", cfg.blob_path}, {"bytes", cfg.blob_bytes}, {"checksum", cfg.blob_checksum}};
  j["header"] = {{"file", cfg.header_file}, {"path", cfg.header_path},
                 {"checksum", cfg.header_checksum.empty() ? json() : json(cfg.header_checksum)}};
  j["input_shape"] = cfg.input_shape;
  j["output_shape"] = cfg.output_shape;
  j["output_kind"] = cfg.output_kind;
  j["precision"] = vitcc::precision_name(cfg.precision);
  j["stats"] = {{"parameters", cfg.stats.parameters}, {"flops", cfg.stats.flops},
                {"weight_bytes", cfg.stats.weight_bytes}, {"workspace_bytes", cfg.stats.workspace_bytes}};
  std::printf("%s\n", j.dump().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  int step = exit_code::usage;  // the exit code of a failure in this step, unless it names its own
  try {
    const Options o = parse(argc, argv);
    step = exit_code::io;
    if (o.cache_info || o.clear_cache) return cache_command(o.clear_cache);
    step = exit_code::input;  // the config and its files, the labels, the inputs
    // The config is read once: the blob, its checksum and the header all come from this one read.
    const vitcc::tools::ModelConfig cfg = vitcc::tools::load_model_config(o.config);
    if (o.info) {
      print_info(cfg);
      return 0;
    }
    {
      if (o.check && !cfg.has_self_check) throw Failure(o.config + ": --check: the config has no self_check record");
      const std::int64_t c = cfg.c, h = cfg.h, w = cfg.w;
      const std::size_t per_out = cfg.output_per_image;

      if (!o.labels.empty() && cfg.output_kind != "logits")
        throw Failure(o.labels + ": --labels: the model's output is " + cfg.output_kind + ", not logits");
      const std::vector<std::string> labels = o.labels.empty() ? std::vector<std::string>{} : read_labels(o.labels, per_out);
      if (const std::size_t cores = usable_cores(); o.threads > cores)
        std::fprintf(stderr, "vitcc-run: warning: --threads %zu is more than the %zu core(s) this process may run on; "
                     "the extra threads wait for a core and make each image slower, not faster\n", o.threads, cores);

      // Every input's images, one batch in the order given; where each input's images start.
      struct Source {
        std::string path;
        std::size_t first, count;
        bool image;
      };
      std::vector<Source> sources;
      vitcc::run::Tensor input;
      input.shape = {0, c, h, w};
      if (o.check) {
        input.shape[0] = 1;
        input.data = vitcc::tools::self_check_image(std::size_t(c), std::size_t(h), std::size_t(w), cfg.self_check_seed);
      } else {
        vitcc::run::Preprocess pp;
        pp.input_h = h;
        pp.input_w = w;
        pp.mean = cfg.preprocessing.mean;
        pp.std = cfg.preprocessing.std;
        pp.interpolation = cfg.preprocessing.interpolation;
        pp.crop_pct = cfg.preprocessing.crop_pct;
        for (const std::string& path : o.inputs) {
          const vitcc::run::Tensor t = vitcc::run::read_input(path, c, h, w, pp);  // [n, c, h, w], checked
          const std::size_t n = std::size_t(t.shape.at(0));
          sources.push_back({path, std::size_t(input.shape[0]), n, vitcc::run::is_image_path(path)});
          input.data.insert(input.data.end(), t.data.begin(), t.data.end());
          input.shape[0] += std::int64_t(n);
        }
      }
      const std::size_t images = std::size_t(input.shape.at(0));

      step = exit_code::failure;  // compiling and running (its own errors name their codes)
      const fs::path runner = ensure_runner(cfg, o.verbose, o.target);
      TempDir tmp;
      write_raw(tmp.path / "in.raw", input.data);
      std::string out_text;
      const int rc = run_process(with_launcher({runner.string(), cfg.blob_path, cfg.blob_checksum,
                                  cfg.config_hash, (tmp.path / "in.raw").string(),
                                  (tmp.path / "out.raw").string(), std::to_string(images), std::to_string(o.repeat),
                                  std::to_string(o.threads)}),
                                 out_text, true);
      if (rc != 0) {  // the runner's own words (stdout and stderr), as part of the one error line
        std::string said;
        for (char ch : out_text)
          if (ch != '\n' || (!said.empty() && said.back() != ' ')) said += ch == '\n' ? ' ' : ch;
        // The runner exits 3 for a blob or input it refuses, 6 when it cannot write its output, 7 when
        // this CPU lacks instructions it was compiled to use (or dies of SIGILL before it can say so).
        throw_if_cpu_refused(rc, said, o.target);
        throw Failure("the compiled model failed (exit " + std::to_string(rc) + "): " + said,
                      rc == 3 ? exit_code::input : rc == 6 ? exit_code::io : exit_code::failure);
      }
      // The runner exits 5 when forward() allocated; a summary without the count would come from a
      // runner that did not check, which must not pass for one that did.
      double allocations = -1;
      if (!runner_field(out_text, "forward_allocations", allocations) || allocations != 0)
        throw Failure("the compiled model did not report forward_allocations=0: " + out_text);
      std::vector<float> result = read_raw(tmp.path / "out.raw", images * per_out);

      if (o.check) {
        const std::string why = vitcc::tools::self_check_verify(cfg.self_check, result);
        if (!why.empty()) throw Failure(o.config + ": self-check FAILED: " + why, exit_code::parity);
        std::printf("%s: self-check passed (%zu outputs agree with the ONNX graph's recorded output; "
                    "forward_allocations=0)\n",
                    o.config.c_str(), result.size());
        print_isa(out_text, o.target);
        return 0;
      }
      vitcc::run::Tensor out;
      out.shape = cfg.output_shape;
      out.shape[0] = std::int64_t(images);
      out.data = std::move(result);
      step = exit_code::io;
      vitcc::run::write_output(o.output, out);
      step = exit_code::input;  // the reference

      std::printf("model   %s (%s, output %s)\n", cfg.name.c_str(), cfg.architecture.c_str(), cfg.output_kind.c_str());
      std::printf("output  %zu image(s) x %zu values -> %s\n", images, per_out, o.output.c_str());
      // Top-5: with --labels, of every image, as softmax probabilities with the class names; without,
      // the logits of the image inputs (a .bin or .npy is a batch a script reads from OUT).
      for (const Source& src : sources) {
        if (cfg.output_kind != "logits" || (labels.empty() && !src.image)) continue;
        for (std::size_t i = 0; i < src.count; ++i) {
          const float* logits = out.data.data() + (src.first + i) * per_out;
          std::string where;
          if (sources.size() > 1 || src.count > 1)
            where = " " + src.path + (src.count > 1 ? "[" + std::to_string(i) + "]" : "") + ":";
          if (labels.empty()) {
            std::printf("top-5  %s", where.c_str());
            for (const auto& [idx, score] : vitcc::run::top_k(logits, per_out, 5)) std::printf(" %d:%.4f", idx, score);
            std::printf("\n");
            continue;
          }
          double mx = -INFINITY, sum = 0;
          for (std::size_t k = 0; k < per_out; ++k) mx = std::max(mx, double(logits[k]));
          for (std::size_t k = 0; k < per_out; ++k) sum += std::exp(double(logits[k]) - mx);
          std::printf("top-5%s\n", where.c_str());
          for (const auto& [idx, score] : vitcc::run::top_k(logits, per_out, 5))
            std::printf("  %6.2f%%  %s (%d)\n", 100.0 * std::exp(double(score) - mx) / sum, labels[std::size_t(idx)].c_str(), idx);
        }
      }
      int status = 0;
      if (!o.reference.empty()) {
        std::ifstream rf(o.reference, std::ios::binary | std::ios::ate);
        if (!rf) throw Failure(o.reference + ": cannot read the reference");
        const std::size_t bytes = std::size_t(rf.tellg());
        if (bytes != out.data.size() * sizeof(float))
          throw Failure(o.reference + ": " + std::to_string(bytes) + " bytes, expected " +
                        std::to_string(out.data.size() * sizeof(float)) + " (raw float32 of the whole output)");
        std::vector<float> ref(out.data.size());
        rf.seekg(0);
        rf.read(reinterpret_cast<char*>(ref.data()), std::streamsize(bytes));
        const vitcc::tools::Agreement a = vitcc::tools::compare(out.data.data(), ref.data(), ref.size());
        // A reduced-precision model is held to its precision's bound (tools::parity_for).
        const vitcc::tools::ParityBound bound = vitcc::tools::parity_for(cfg.precision);
        const bool ok = a.within(bound);
        std::printf("parity  vs %s: max abs error %.3g (max |ref| %.3g), cosine %.9f -> %s (%s bound: %g x max(1, max|ref|), cosine >= %g)\n",
                    o.reference.c_str(), a.max_abs_err, a.max_abs_ref, a.cosine, ok ? "within bound" : "OUT OF BOUND",
                    vitcc::precision_name(cfg.precision), bound.rel, bound.min_cosine);
        if (!ok) status = exit_code::parity;
      }
      double median = 0;
      if (runner_field(out_text, "median_ms", median)) {
        const auto field = [&](const char* key) {
          double v = 0;
          return runner_field(out_text, key, v) ? v : 0.0;
        };
        std::printf("latency %.3f ms median (min %.3f, max %.3f) over %zu forward run(s) per image, %zu intra-op "
                    "thread(s) per image, workspace %.0f bytes\n",
                    median, field("min_ms"), field("max_ms"), o.repeat, o.threads, field("workspace_bytes"));
        const auto runs = out_text.find("times_ms=");
        if (o.repeat > 1 && runs != std::string::npos)
          std::printf("runs_ms %s\n", out_text.substr(runs + 9, out_text.find('\n', runs) - runs - 9).c_str());
      }
      std::printf("heap    forward_allocations=0 (no heap allocation in any forward() call, warm-up included)\n");
      print_isa(out_text, o.target);
      return status;
    }
  } catch (const Failure& e) {
    std::fprintf(stderr, "vitcc-run: error: %s\n", vitcc::tools::one_line(e.what()).c_str());
    return e.code ? e.code : step;
  } catch (const std::exception& e) {
    // One line on stderr, whatever the message holds (compiler logs, the runner's words).
    std::fprintf(stderr, "vitcc-run: error: %s\n", vitcc::tools::one_line(e.what()).c_str());
    return step;
  }
}
