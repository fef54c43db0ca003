// vitcc-compile OUT_DIR/NAME.json -o DIR [--target T[,T...]] [--cxx CXX] [--flags "FLAGS"] [--ar AR]
//               [--objcopy OBJCOPY]
//
// Ahead-of-time compilation of a packed model for C programs: writes DIR/NAME.h, a plain C header,
// and DIR/libNAME.a, a static library holding the model's forward pass compiled for its fixed
// configuration (the config header NAME.json names) behind these C functions (the header documents
// each):
//
//   NAME_bind, NAME_forward, NAME_last_error        one default instance: the blob checked, one image
//   NAME_context_init/_error/_forward               instances in the caller's memory, batches, executor
//   NAME_workspace_bytes, NAME_workspace_bytes_for, NAME_input_floats, NAME_output_floats
//   NAME_preprocess, NAME_preprocess_scratch_bytes  camera frame -> input (vitcc::preprocess)
//   NAME_target, NAME_isa, NAME_version             what was compiled, what runs on this CPU
//   NAME_context_bytes                              NAME_CONTEXT_BYTES, for code that uses dlopen
//
// --shared also links the same objects into DIR/libNAME.so, which exports the C API and nothing else.
//
// Instruction sets (docs/TARGETS.md): the forward pass is compiled once per --target (default:
// native), each copy in its own object whose symbols but its entry points are made local (objcopy),
// so that no inline function compiled for one target can stand in for another's. NAME_bind() lives
// in a separate object compiled for the plain target of the family (it runs on any such CPU): it
// reads the CPU's features (core/cpu_features.hpp), picks the most capable copy the CPU runs, and
// refuses with NAME_ERR_UNSUPPORTED_CPU, naming the missing extensions, when none does. So a library
// built for x86-64-v4 fails cleanly on an AVX2 machine instead of dying of SIGILL, and one built with
// --target x86-64-v2,x86-64-v3,x86-64-v4 runs everywhere at each CPU's best.
//
// The library is compiled without exceptions or RTTI and needs only the C library and libm, so a
// C program links it with `cc main.c -LDIR -lNAME -lm`. The weights stay wherever the caller keeps
// them (a mapped file, an --emit-object blob, flash); nothing is allocated. NAME_BLOB_FILE in the
// C header names the blob file the library was compiled for.
//
// The config is read by tools/common/model_config (checked names, hashes, file names and numbers:
// everything written into DIR's file names and generated sources), and nothing is written outside
// DIR.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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

#include "../common/exit_codes.hpp"
#include "../common/isa_targets.hpp"
#include "../common/model_config.hpp"
#include "../common/names.hpp"
#include "../common/process.hpp"
#include "vitcc/core/error.hpp"
#include "vitcc/version.hpp"

namespace fs = std::filesystem;

namespace {

const char* usage =
    "usage: vitcc-compile OUT_DIR/NAME.json -o DIR [--target T[,T...]] [--cxx CXX] [--flags \"FLAGS\"]\n"
    "                     [--ar AR] [--objcopy OBJCOPY] [--shared]\n"
    "       vitcc-compile --list-targets | --target-flags T | --include-dir | --version\n"
    "Writes DIR/NAME.h (C header) and DIR/libNAME.a (the model's forward pass for C programs).\n"
    "--shared: also DIR/libNAME.so, the same code as a shared library exporting only the C API (for\n"
    "dlopen, e.g. the Python binding); needs position-independent code (not the Cortex-M targets, nor\n"
    "--flags without --target unless they hold -fPIC).\n"
    "--target: the instruction sets to compile for, by name (--list-targets; default native). Several\n"
    "of one family make a fat library: NAME_bind() picks the best this CPU runs, and refuses (never\n"
    "SIGILL) when it runs none. A cross target's compiler and binutils default to its triplet's.\n"
    "--flags: with --target, added to each target's flags; without, they replace the native flags.\n"
    "--target-flags T: print T's instruction-set flags (for a build system compiling the model itself).\n"
    "--include-dir: print the folder of the vitcc headers it compiles (VITCC_INCLUDE_DIR overrides it).\n"
    "Defaults: the compiler and flags vitcc was built with; environment CXX, VITCC_COMPILE_FLAGS, AR and\n"
    "OBJCOPY override them, and the options override the environment.\n"
    "Exit codes: 0 done, 1 another failure (a compiler, the runner, an internal error), 2 usage, 3 an\n"
    "input file is unreadable or invalid, 4 outputs outside their bound, 5 a model vitcc does not pack,\n"
    "6 an output cannot be written.\n";

namespace exit_code = vitcc::tools::exit_code;
// code: the exit code (tools/common/exit_codes.hpp); 0: the step that failed decides (main's `step`).
struct Failure : std::runtime_error {
  explicit Failure(const std::string& message, int exit_code = 0) : std::runtime_error(message), code(exit_code) {}
  int code;
};

std::string from_env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

void write_text(const fs::path& p, const std::string& text) {
  const fs::path tmp = p.string() + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary);
    f << text;
    if (!f) throw Failure(tmp.string() + ": cannot write", exit_code::io);
  }
  std::error_code ec;
  fs::rename(tmp, p, ec);
  if (ec) throw Failure(p.string() + ": cannot move into place: " + ec.message(), exit_code::io);
}

std::string upper(std::string s) {
  for (char& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// One compiled copy of the forward pass: a target of the table (or the custom flags) and its flags.
struct Variant {
  std::string target;  // a name of tools::isa_targets(), or "custom"
  std::string flags;   // the whole flag list for the variant's translation unit
};

// The bytes of a context (the dispatcher's Context): a pointer and the error text in its first 64-byte
// aligned block(s), then the model.
std::size_t context_bytes(std::size_t model_bytes) {
  const std::size_t head = (sizeof(void*) + vitcc::Status::message_capacity + 63) / 64 * 64;
  return head + (model_bytes + 63) / 64 * 64;
}

// The C header. Sizes are macros too, so that C code can size static buffers with them. Every
// string written into it was checked by load_model_config (name, architecture, hashes, file name);
// the target names come from the table and the flags from the command line (written in a comment only
// after the characters that could end it are replaced).
std::string c_header(const vitcc::tools::ModelConfig& cfg, const std::vector<Variant>& variants, std::size_t ctx_bytes) {
  const std::string& id = cfg.id;
  const std::string up = upper(id);
  std::string targets, flag_lines;
  for (const Variant& v : variants) {
    targets += (targets.empty() ? "" : ",") + v.target;
    std::string f = v.flags;
    for (const char* bad : {"*/", "/*"})
      for (std::size_t i = 0; (i = f.find(bad, i)) != std::string::npos;) f.replace(i, 2, std::string(1, bad[0]) + " " + bad[1]);
    flag_lines += "     " + v.target + ": " + f + "\n";
  }
  std::ostringstream h;
  h << "/* Generated by vitcc-compile from " << cfg.name << ".json (" << cfg.architecture << ", config "
    << cfg.config_hash << "). Do not edit.\n"
    << "   Link with -l" << cfg.name << " -lm (or load lib" << cfg.name << ".so, vitcc-compile --shared). NAME_bind()/NAME_forward() use the library's one default\n"
    << "   instance; NAME_context_*() make as many as you like. NAME_bind() must not run concurrently with\n"
    << "   anything else; the forward calls may run on several threads at once, each with its own workspace.\n"
    << "   Instruction sets: the forward pass is compiled for " << targets << " (weakest first):\n"
    << flag_lines
    << "   " << id << "_bind() picks the last of them this CPU runs, or refuses with " << up << "_ERR_UNSUPPORTED_CPU. */\n"
    << "#ifndef VITCC_C_" << up << "_H\n#define VITCC_C_" << up << "_H\n\n"
    << "#include <stddef.h>\n\n"
    << "#define " << up << "_INPUT_FLOATS " << cfg.input_per_image << "u   /* one CHW float image */\n"
    << "#define " << up << "_OUTPUT_FLOATS " << cfg.output_per_image << "u\n"
    << "#define " << up << "_WORKSPACE_BYTES " << cfg.stats.workspace_bytes << "u\n"
    << "#define " << up << "_WORKSPACE_ALIGNMENT 64u\n"
    << "/* The weights this library binds: the blob file next to the config it was compiled from. */\n"
    << "#define " << up << "_BLOB_FILE \"" << cfg.blob_file << "\"\n"
    << "#define " << up << "_BLOB_BYTES " << cfg.blob_bytes << "u\n"
    << "#define " << up << "_BLOB_CHECKSUM " << cfg.blob_checksum << "ull\n"
    << "/* The instruction-set targets compiled in (vitcc-compile --list-targets), weakest first. */\n"
    << "#define " << up << "_TARGETS \"" << targets << "\"\n"
    << "/* The vitcc release that wrote this library (" << id << "_version() says the same at run time). */\n"
    << "#define " << up << "_VITCC_VERSION \"" << VITCC_VERSION_MAJOR << "." << VITCC_VERSION_MINOR << "."
    << VITCC_VERSION_PATCH << "\"\n"
    << "/* The memory of one context (" << id << "_context_init), 64-byte aligned. */\n"
    << "#define " << up << "_CONTEXT_BYTES " << ctx_bytes << "u\n"
    << "#define " << up << "_CONTEXT_ALIGNMENT 64u\n\n"
    << "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
    << "/* Runs task(arg, t, worker) for every t in [0, tasks), spread over `workers` threads (worker in\n"
    << "   [0, workers)), and returns when all are done: the shape of vitcc::Executor (core/executor.hpp).\n"
    << "   The outputs are the same bits whatever the number of workers. */\n"
    << "typedef struct " << id << "_executor {\n"
    << "  void (*parallel_for)(void* self, size_t tasks, void (*task)(void* arg, size_t task, size_t worker), void* arg);\n"
    << "  void* self;\n"
    << "  size_t workers;\n"
    << "} " << id << "_executor;\n\n"
    << "/* One model instance: its own bound weights (several contexts, several blobs of the same model, one\n"
    << "   program). Opaque; its memory is the caller's. */\n"
    << "typedef struct " << id << "_context " << id << "_context;\n\n"
    << "/* Checks that this CPU runs one of " << up << "_TARGETS (else " << up << "_ERR_UNSUPPORTED_CPU), then binds\n"
    << "   the weight blob at `blob` (`bytes` long, 64-byte aligned; it stays in place and unchanged\n"
    << "   while the model is used: weights are read from it, never copied). Checks its structure, every\n"
    << "   tensor, and its checksum against " << up << "_BLOB_CHECKSUM. Returns 0, or a nonzero\n"
    << "   vitcc::Errc code with a message in " << id << "_last_error(). */\n"
    << "int " << id << "_bind(const void* blob, size_t bytes);\n\n"
    << "/* The bytes of workspace " << id << "_forward() needs (" << up << "_WORKSPACE_BYTES). */\n"
    << "size_t " << id << "_workspace_bytes(void);\n"
    << "size_t " << id << "_input_floats(void);\n"
    << "size_t " << id << "_output_floats(void);\n\n"
    << "/* The target of " << up << "_TARGETS that runs on this CPU (the bound one after a successful\n"
    << "   bind), and its instruction set as vitcc names it (avx512bw, fma3+avx2, sse4.2, arm64+neon,\n"
    << "   scalar, ...); \"\" for both when this CPU runs none of them. */\n"
    << "const char* " << id << "_target(void);\n"
    << "const char* " << id << "_isa(void);\n\n"
    << "/* What " << id << "_bind() and " << id << "_forward() return when they refuse a call (vitcc::Errc codes). */\n"
    << "#define " << up << "_ERR_NULL_POINTER " << int(vitcc::Errc::null_pointer) << "\n"
    << "#define " << up << "_ERR_MISALIGNED " << int(vitcc::Errc::misaligned) << "\n"
    << "#define " << up << "_ERR_NOT_BOUND " << int(vitcc::Errc::not_bound) << "\n"
    << "#define " << up << "_ERR_WORKSPACE_TOO_SMALL " << int(vitcc::Errc::workspace_too_small) << "\n"
    << "#define " << up << "_ERR_UNSUPPORTED_CPU " << int(vitcc::Errc::unsupported_cpu) << "\n"
    << "#define " << up << "_ERR_SHAPE " << int(vitcc::Errc::shape_mismatch) << "\n"
    << "#define " << up << "_ERR_INVALID_ARGUMENT " << int(vitcc::Errc::invalid_argument) << "\n\n"
    << "/* Runs the model on one image: `image` " << up << "_INPUT_FLOATS floats (CHW, normalised as\n"
    << "   the model expects), `output` " << up << "_OUTPUT_FLOATS floats, `workspace` at least "
    << up << "_WORKSPACE_BYTES bytes,\n"
    << "   64-byte aligned, owned by the caller; `workspace_bytes` its size. Allocates nothing. Returns 0,\n"
    << "   or, having written nothing, " << up << "_ERR_NOT_BOUND (no blob bound), " << up << "_ERR_NULL_POINTER,\n"
    << "   " << up << "_ERR_MISALIGNED (workspace) or " << up << "_ERR_WORKSPACE_TOO_SMALL. */\n"
    << "int " << id << "_forward(const float* image, float* output, void* workspace, size_t workspace_bytes);\n\n"
    << "/* The last error's message (\"\" after a success). */\n"
    << "const char* " << id << "_last_error(void);\n\n"
    << "/* Camera frame -> model input (vitcc::preprocess, the model's own resize, centre crop and\n"
    << "   normalisation, as timm evaluates; constants in the config header's `preprocessing`).\n"
    << "   `pixels`: `height` rows of `width` 8-bit pixels, `channels` 3 (RGB) or 4 (RGBA, alpha ignored),\n"
    << "   row r at pixels + r * row_stride. Writes " << up << "_INPUT_FLOATS floats to `image`. `scratch`:\n"
    << "   8-byte aligned, at least " << id << "_preprocess_scratch_bytes(width, height) bytes (0: a frame\n"
    << "   size it cannot serve). Allocates nothing; may run on several threads at once, each with its own\n"
    << "   scratch. Returns 0, or " << up << "_ERR_NULL_POINTER, _ERR_MISALIGNED, _ERR_WORKSPACE_TOO_SMALL\n"
    << "   (scratch), _ERR_SHAPE (frame size, channels or stride; or a model that does not take RGB),\n"
    << "   _ERR_INVALID_ARGUMENT (the model's preprocessing constants), _ERR_UNSUPPORTED_CPU. */\n"
    << "size_t " << id << "_preprocess_scratch_bytes(int width, int height);\n"
    << "int " << id << "_preprocess(const unsigned char* pixels, int width, int height, size_t row_stride, int channels,\n"
    << "    float* image, void* scratch, size_t scratch_bytes);\n\n"
    << "/* A context in `memory` (" << up << "_CONTEXT_BYTES, 64-byte aligned, the caller's), bound to\n"
    << "   `blob` as " << id << "_bind() binds (CPU, structure, checksum). Returns 0, or an error: with\n"
    << "   " << up << "_ERR_NULL_POINTER, _ERR_MISALIGNED or _ERR_WORKSPACE_TOO_SMALL (memory) *context is\n"
    << "   untouched; otherwise *context is set and " << id << "_context_error() says what failed (its forward\n"
    << "   then returns " << up << "_ERR_NOT_BOUND, or _ERR_UNSUPPORTED_CPU). Nothing to free: the memory is\n"
    << "   the context. */\n"
    << "int " << id << "_context_init(void* memory, size_t memory_bytes, const void* blob, size_t blob_bytes,\n"
    << "    " << id << "_context** context);\n"
    << "const char* " << id << "_context_error(const " << id << "_context* context);\n\n"
    << "/* `count` images (" << up << "_INPUT_FLOATS floats each, one after another) to `count` outputs,\n"
    << "   one image after another. `executor`: NULL (this thread), or a thread pool; the workspace must\n"
    << "   then hold " << id << "_workspace_bytes_for(executor->workers) bytes. Allocates nothing; may run\n"
    << "   on several threads at once on one context, each with its own workspace. Returns 0 or the first\n"
    << "   error (the outputs before it are written). */\n"
    << "int " << id << "_context_forward(const " << id << "_context* context, const float* images, size_t count,\n"
    << "    float* outputs, void* workspace, size_t workspace_bytes, const " << id << "_executor* executor);\n"
    << "size_t " << id << "_workspace_bytes_for(size_t workers);\n\n"
    << "/* " << up << "_CONTEXT_BYTES at run time (for code that loads the library with dlopen). */\n"
    << "size_t " << id << "_context_bytes(void);\n\n"
    << "/* \"vitcc X.Y.Z\": the release that wrote this library. */\n"
    << "const char* " << id << "_version(void);\n\n"
    << "#ifdef __cplusplus\n}\n#endif\n\n#endif\n";
  return h.str();
}

// The symbols variant k's object keeps global; objcopy makes every other one local.
std::vector<std::string> variant_symbols(const std::string& id, std::size_t k) {
  const std::string p = "vitcc_" + id + "_v" + std::to_string(k) + "_";
  return {p + "needs", p + "isa", p + "workspace_bytes", p + "input_floats", p + "output_floats", p + "bind", p + "forward",
          p + "preprocess_scratch_bytes", p + "preprocess", p + "workspace_bytes_for", p + "context_init",
          p + "context_forward"};
}

// Variant k: the forward pass compiled for one target. Its model is constructed at its first bind,
// after the dispatcher's CPU check (a namespace-scope object could run code of this target at
// program start). `include`: the #include of the model's config header (tools::include_directive).
std::string variant_source(const std::string& include, const std::string& id, std::size_t k, const Variant& v) {
  const std::string p = "vitcc_" + id + "_v" + std::to_string(k) + "_";
  std::ostringstream s;
  s << "// Generated by vitcc-compile: " << id << "'s forward pass for target " << v.target << ".\n"
    << "#include <cstddef>\n#include <cstdint>\n#include <cstring>\n#include <new>\n\n"
    << "#include \"vitcc/core/cpu_features.hpp\"\n"
    << "#include \"vitcc/preprocess.hpp\"\n"
    << include << "\n"
    << "namespace {\n"
    << "using Model = vitcc_models::" << id << "_model;\n"
    << "Model& model() {\n  static Model m;\n  return m;\n}\n"
    << "// The C header's executor, field for field vitcc::Executor.\n"
    << "struct CExecutor {\n"
    << "  void (*parallel_for)(void* self, std::size_t tasks, void (*task)(void*, std::size_t, std::size_t), void* arg);\n"
    << "  void* self;\n  std::size_t workers;\n};\n"
    << "static_assert(alignof(Model) <= 64, \"a context holds the model 64-byte aligned\");\n"
    << "// Binds `m` to the blob (checked: structure, every tensor, checksum), or leaves it unbound; the\n"
    << "// message (\"\" on success) goes to error[0..capacity).\n"
    << "int bind_model(Model& m, const void* blob, std::size_t bytes, char* error, std::size_t capacity) {\n"
    << "  vitcc::BlobView view;\n"
    << "  vitcc::Status s = view.open(blob, bytes);\n"
    << "  if (s.ok()) s = m.bind(view);\n"
    << "  if (!s.ok()) m = Model{};\n"
    << "  std::strncpy(error, s.ok() ? \"\" : s.message(), capacity - 1);\n"
    << "  error[capacity - 1] = '\\0';\n"
    << "  return s.ok() ? 0 : static_cast<int>(s.code());\n"
    << "}\n"
    << "}  // namespace\n\n"

    << "extern \"C\" {\n"
    << "// Data, not code: the dispatcher reads them before it runs anything compiled here.\n"
    << "extern const std::uint64_t " << p << "needs = vitcc::cpu::compiled_features();\n"
    << "extern const char* const " << p << "isa = vitcc::default_arch::name();\n"
    << "extern const std::size_t " << p << "workspace_bytes = Model::workspace_bytes;\n"
    << "extern const std::size_t " << p << "input_floats = Model::input_floats;\n"
    << "extern const std::size_t " << p << "output_floats = Model::output_floats;\n"
    << "int " << p << "bind(const void* blob, std::size_t bytes, char* error, std::size_t capacity) {\n"
    << "  return bind_model(model(), blob, bytes, error, capacity);\n"
    << "}\n"
    << "int " << p << "forward(const float* image, float* output, void* workspace, std::size_t workspace_bytes) {\n"
    << "  // The checked call: it refuses what it cannot run safely, before touching anything.\n"
    << "  return static_cast<int>(model().forward(image, output, workspace, workspace_bytes, nullptr).code());\n"
    << "}\n"
    << "// vitcc::preprocess writes 3 planes (RGB): a model of another channel count takes its input as is.\n"
    << "constexpr bool rgb_model = vitcc_models::" << id << "::in_chans == 3;\n"
    << "std::size_t " << p << "preprocess_scratch_bytes(int width, int height) {\n"
    << "  if (!rgb_model) return 0;\n"
    << "  return vitcc::preprocess_scratch_bytes(width, height, vitcc_models::" << id << "::preprocessing);\n"
    << "}\n"
    << "int " << p << "preprocess(const unsigned char* pixels, int width, int height, std::size_t row_stride, int channels,\n"
    << "    float* image, void* scratch, std::size_t scratch_bytes) {\n"
    << "  if (!rgb_model) return static_cast<int>(vitcc::Errc::shape_mismatch);\n"
    << "  return static_cast<int>(vitcc::preprocess(pixels, width, height, row_stride, channels,\n"
    << "      vitcc_models::" << id << "::preprocessing, image, scratch, scratch_bytes).code());\n"
    << "}\n"
    << "std::size_t " << p << "workspace_bytes_for(std::size_t workers) { return Model::workspace_bytes_for(workers); }\n"
    << "// A model of its own in `memory` (the context's, 64-byte aligned, sizeof(Model) bytes), bound to `blob`.\n"
    << "int " << p << "context_init(void* memory, const void* blob, std::size_t bytes, char* error, std::size_t capacity) {\n"
    << "  return bind_model(*new (memory) Model{}, blob, bytes, error, capacity);\n"
    << "}\n"
    << "// `count` images one after another, each with the executor (or on this thread).\n"
    << "int " << p << "context_forward(const void* memory, const float* images, std::size_t count, float* outputs,\n"
    << "    void* workspace, std::size_t workspace_bytes, const void* executor) {\n"
    << "  const Model* m = static_cast<const Model*>(memory);\n"
    << "  vitcc::Executor ex;\n"
    << "  const vitcc::Executor* use = nullptr;\n"
    << "  if (executor) {\n"
    << "    const CExecutor* c = static_cast<const CExecutor*>(executor);\n"
    << "    ex.parallel_for = c->parallel_for;\n    ex.self = c->self;\n    ex.workers = c->workers;\n"
    << "    use = &ex;\n"
    << "  }\n"
    << "  if (count > 0 && (!images || !outputs)) return static_cast<int>(vitcc::Errc::null_pointer);\n"
    << "  for (std::size_t i = 0; i < count; ++i) {\n"
    << "    const vitcc::Status s = m->forward(images + i * Model::input_floats, outputs + i * Model::output_floats,\n"
    << "                                       workspace, workspace_bytes, use);\n"
    << "    if (!s.ok()) return static_cast<int>(s.code());\n"
    << "  }\n"
    << "  return 0;\n"
    << "}\n"
    << "}  // extern \"C\"\n";
  return s.str();
}

// The public entry points, compiled for the plain target of the family: the CPU check and the
// choice of a variant run here, before any code of a variant does.
std::string dispatch_source(const std::string& id, const std::vector<Variant>& variants, std::size_t model_bytes) {
  std::ostringstream s;
  s << "// Generated by vitcc-compile: " << id << "'s C entry points and its choice of instruction set.\n"
    << "#include <cstdint>\n#include <cstdio>\n#include <cstring>\n#include <new>\n\n"
    << "#include \"vitcc/core/cpu_features.hpp\"\n"
    << "#include \"vitcc/version.hpp\"\n\n"
    << "extern \"C\" {\n";
  for (std::size_t k = 0; k < variants.size(); ++k) {
    const std::string p = "vitcc_" + id + "_v" + std::to_string(k) + "_";
    s << "extern const std::uint64_t " << p << "needs;\n"
      << "extern const char* const " << p << "isa;\n"
      << "extern const std::size_t " << p << "workspace_bytes, " << p << "input_floats, " << p << "output_floats;\n"
      << "int " << p << "bind(const void*, std::size_t, char*, std::size_t);\n"
      << "int " << p << "forward(const float*, float*, void*, std::size_t);\n"
      << "std::size_t " << p << "preprocess_scratch_bytes(int, int);\n"
      << "int " << p << "preprocess(const unsigned char*, int, int, std::size_t, int, float*, void*, std::size_t);\n"
      << "std::size_t " << p << "workspace_bytes_for(std::size_t);\n"
      << "int " << p << "context_init(void*, const void*, std::size_t, char*, std::size_t);\n"
      << "int " << p << "context_forward(const void*, const float*, std::size_t, float*, void*, std::size_t, const void*);\n";
  }
  s << "}\n\n"
    << "#define VITCC_C_STR2(x) #x\n#define VITCC_C_STR(x) VITCC_C_STR2(x)\n\n"
    << "namespace {\n"
    << "struct Variant {\n"
    << "  const char* target;\n  const std::uint64_t* needs;\n  const char* const* isa;\n"
    << "  int (*bind)(const void*, std::size_t, char*, std::size_t);\n"
    << "  int (*forward)(const float*, float*, void*, std::size_t);\n"
    << "  std::size_t (*preprocess_scratch_bytes)(int, int);\n"
    << "  int (*preprocess)(const unsigned char*, int, int, std::size_t, int, float*, void*, std::size_t);\n"
    << "  std::size_t (*workspace_bytes_for)(std::size_t);\n"
    << "  int (*context_init)(void*, const void*, std::size_t, char*, std::size_t);\n"
    << "  int (*context_forward)(const void*, const float*, std::size_t, float*, void*, std::size_t, const void*);\n"
    << "};\n"
    << "const Variant variants[] = {  // weakest first\n";
  for (std::size_t k = 0; k < variants.size(); ++k) {
    const std::string p = "vitcc_" + id + "_v" + std::to_string(k) + "_";
    s << "    {\"" << variants[k].target << "\", &" << p << "needs, &" << p << "isa, " << p << "bind, " << p << "forward, "
      << p << "preprocess_scratch_bytes, " << p << "preprocess, " << p << "workspace_bytes_for, " << p << "context_init, "
      << p << "context_forward},\n";
  }
  s << "};\n"
    << "constexpr std::size_t variant_count = sizeof variants / sizeof variants[0];\n"
    << "const Variant* bound = nullptr;\n"
    << "// A context: the variant this CPU runs, its last error, and a model of its own (the largest\n"
    << "// variant's sizeof(Model), " << model_bytes << " bytes).\n"
    << "struct alignas(64) Context {\n"
    << "  const Variant* variant;\n"
    << "  char error[vitcc::Status::message_capacity];\n"
    << "  alignas(64) unsigned char model[" << (model_bytes + 63) / 64 * 64 << "];\n"
    << "};\n"
    << "static_assert(sizeof(Context) == " << context_bytes(model_bytes) << ", \"the header's CONTEXT_BYTES\");\n"
    << "char last_error[vitcc::Status::message_capacity] = \"no blob bound yet\";\n\n"
    << "// The most capable variant this CPU runs, or null. Where the CPU cannot be read (bare metal,\n"
    << "// non-Linux Arm), the weakest: the one the library's builder vouches for.\n"
    << "const Variant* pick() {\n"
    << "  if (!vitcc::cpu::detectable) return &variants[0];\n"
    << "  for (std::size_t i = variant_count; i-- > 0;)\n"
    << "    if (!vitcc::cpu::missing(*variants[i].needs)) return &variants[i];\n"
    << "  return nullptr;\n"
    << "}\n"
    << "// When this CPU runs no copy: vitcc::cpu's refusal for the weakest one, into error[0..capacity).\n"
    << "int refuse_cpu(const char* call, char* error, std::size_t capacity) {\n"
    << "  std::snprintf(error, capacity, \"%s: %s (the library's weakest target is %s; rebuild with vitcc-compile \"\n"
    << "                \"--target for this CPU)\", call, vitcc::cpu::check_cpu(*variants[0].needs).message(), variants[0].target);\n"
    << "  return static_cast<int>(vitcc::Errc::unsupported_cpu);\n"
    << "}\n"
    << "}  // namespace\n\n"
    << "extern \"C\" {\n"
    << "int " << id << "_bind(const void* blob, std::size_t bytes) {\n"
    << "  bound = nullptr;\n"
    << "  const Variant* v = pick();\n"
    << "  if (!v) return refuse_cpu(\"" << id << "_bind\", last_error, sizeof last_error);\n"
    << "  const int rc = v->bind(blob, bytes, last_error, sizeof last_error);\n"
    << "  if (rc == 0) bound = v;\n"
    << "  return rc;\n"
    << "}\n"
    << "std::size_t " << id << "_workspace_bytes(void) { return vitcc_" << id << "_v0_workspace_bytes; }\n"
    << "std::size_t " << id << "_input_floats(void) { return vitcc_" << id << "_v0_input_floats; }\n"
    << "std::size_t " << id << "_output_floats(void) { return vitcc_" << id << "_v0_output_floats; }\n"
    << "const char* " << id << "_target(void) {\n"
    << "  const Variant* v = bound ? bound : pick();\n  return v ? v->target : \"\";\n}\n"
    << "const char* " << id << "_isa(void) {\n"
    << "  const Variant* v = bound ? bound : pick();\n  return v ? *v->isa : \"\";\n}\n"
    << "int " << id << "_forward(const float* image, float* output, void* workspace, std::size_t workspace_bytes) {\n"
    << "  const Variant* v = bound;\n"
    << "  if (!v) return static_cast<int>(vitcc::Errc::not_bound);\n"
    << "  return v->forward(image, output, workspace, workspace_bytes);\n"
    << "}\n"
    << "const char* " << id << "_last_error(void) { return last_error; }\n"
    << "std::size_t " << id << "_preprocess_scratch_bytes(int width, int height) {\n"
    << "  const Variant* v = bound ? bound : pick();\n  return v ? v->preprocess_scratch_bytes(width, height) : 0;\n}\n"
    << "int " << id << "_preprocess(const unsigned char* pixels, int width, int height, std::size_t row_stride, int channels,\n"
    << "    float* image, void* scratch, std::size_t scratch_bytes) {\n"
    << "  const Variant* v = bound ? bound : pick();\n"
    << "  if (!v) return static_cast<int>(vitcc::Errc::unsupported_cpu);\n"
    << "  return v->preprocess(pixels, width, height, row_stride, channels, image, scratch, scratch_bytes);\n"
    << "}\n"
    << "std::size_t " << id << "_workspace_bytes_for(std::size_t workers) {\n"
    << "  const Variant* v = bound ? bound : pick();\n  return v ? v->workspace_bytes_for(workers) : 0;\n}\n"
    << "std::size_t " << id << "_context_bytes(void) { return " << context_bytes(model_bytes) << "u; }\n"
    << "const char* " << id << "_version(void) {\n"
    << "  return \"vitcc \" VITCC_C_STR(VITCC_VERSION_MAJOR) \".\" VITCC_C_STR(VITCC_VERSION_MINOR) \".\" VITCC_C_STR(VITCC_VERSION_PATCH);\n"
    << "}\n"
    << "struct " << id << "_context;\n"
    << "int " << id << "_context_init(void* memory, std::size_t memory_bytes, const void* blob, std::size_t blob_bytes,\n"
    << "    " << id << "_context** context) {\n"
    << "  if (!memory || !context) return static_cast<int>(vitcc::Errc::null_pointer);\n"
    << "  if (reinterpret_cast<std::uintptr_t>(memory) % 64 != 0) return static_cast<int>(vitcc::Errc::misaligned);\n"
    << "  if (memory_bytes < sizeof(Context)) return static_cast<int>(vitcc::Errc::workspace_too_small);\n"
    << "  Context* c = new (memory) Context;\n"
    << "  *context = reinterpret_cast<" << id << "_context*>(c);\n"
    << "  c->variant = pick();\n"
    << "  if (!c->variant) return refuse_cpu(\"" << id << "_context_init\", c->error, sizeof c->error);\n"
    << "  return c->variant->context_init(c->model, blob, blob_bytes, c->error, sizeof c->error);\n"
    << "}\n"
    << "const char* " << id << "_context_error(const " << id << "_context* context) {\n"
    << "  return context ? reinterpret_cast<const Context*>(context)->error : \"no context\";\n"
    << "}\n"
    << "int " << id << "_context_forward(const " << id << "_context* context, const float* images, std::size_t count,\n"
    << "    float* outputs, void* workspace, std::size_t workspace_bytes, const void* executor) {\n"
    << "  if (!context) return static_cast<int>(vitcc::Errc::null_pointer);\n"
    << "  const Context* c = reinterpret_cast<const Context*>(context);\n"
    << "  if (!c->variant) return static_cast<int>(vitcc::Errc::unsupported_cpu);\n"
    << "  return c->variant->context_forward(c->model, images, count, outputs, workspace, workspace_bytes, executor);\n"
    << "}\n"
    << "}  // extern \"C\"\n";
  return s.str();
}

// Where the library's headers are: $VITCC_INCLUDE_DIR, an installed tree next to this executable,
// or the source tree it was built from.
fs::path include_dir() {
  if (const char* env = std::getenv("VITCC_INCLUDE_DIR"); env && *env) return env;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && fs::exists(self.parent_path() / "../include/vitcc/vitcc.hpp"))
    return fs::canonical(self.parent_path() / "../include");
  return VITCC_SOURCE_INCLUDE_DIR;
}

// "a,b,c" -> {"a", "b", "c"}
std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
  return out;
}

// A compiler option that chooses the instruction set or the ABI (what --target does): -march, -mcpu,
// -mfpu, -mfloat-abi, -mthumb/-marm, and x86's -m[no-]<extension>. Others (-mtune, -mlong-calls,
// -mcmodel, -mprefer-vector-width, ...) may go with --target.
bool chooses_isa_or_abi(const std::string& w) {
  for (const char* p : {"-march=", "-mcpu=", "-mfpu=", "-mfloat-abi=", "-mabi="})
    if (w.rfind(p, 0) == 0) return true;
  if (w == "-mthumb" || w == "-marm" || w == "-m32" || w == "-m64") return true;
  std::string ext = w.rfind("-mno-", 0) == 0 ? w.substr(5) : w.rfind("-m", 0) == 0 ? w.substr(2) : "";
  for (const char* p : {"sse", "avx", "fma", "f16c", "bmi", "lzcnt", "popcnt", "movbe", "aes", "pclmul", "sha", "adx",
                        "gfni", "vaes", "vpclmul", "amx", "xop", "fma4", "3dnow", "mmx"})
    if (ext.rfind(p, 0) == 0) return true;
  return false;
}

// The triplet prefix of a compiler command ("aarch64-linux-gnu-g++" -> "aarch64-linux-gnu-"), or "".
std::string tool_prefix(const std::string& cxx) {
  const std::vector<std::string> w = vitcc::tools::words(cxx);
  if (w.empty()) return "";
  const std::string base = fs::path(w.back()).filename().string();
  for (const char* tail : {"g++", "c++", "clang++"}) {
    const std::size_t at = base.rfind(std::string("-") + tail);
    if (at != std::string::npos && at + 1 + std::strlen(tail) == base.size()) return base.substr(0, at + 1);
  }
  return "";
}

// The flags a target's translation unit is compiled with (before any --flags). A portable target
// ("any": scalar) takes the ABI flags of the family it shares a library with (`family_abi`), and no
// -fPIC on Cortex-M.
std::string target_flags(const vitcc::tools::IsaTarget& t, const std::string& family = "",
                         const std::string& family_abi = "") {
  if (std::string(t.name) == "native") return VITCC_COMPILE_FLAGS;
  const bool any = std::string(t.family) == "any";
  const std::string fam = any && !family.empty() ? family : t.family;
  std::string f = "-O2 -DNDEBUG";
  if (fam != "armv7e-m") f += " -fPIC";
  f += std::string(" ") + t.isa_flags;
  const std::string abi = any ? family_abi : t.abi_flags;
  if (!abi.empty()) f += " " + abi;
  return f;
}

void print_targets() {
  std::printf("%-24s %-9s %s\n", "target", "family", "flags; what it runs on");
  for (const vitcc::tools::IsaTarget& t : vitcc::tools::isa_targets())
    std::printf("%-24s %-9s %s\n%-24s %-9s   %s\n", t.name, t.family, target_flags(t).c_str(), "", "", t.about);
}

}  // namespace

int main(int argc, char** argv) {
  int step = exit_code::usage;  // the exit code of a failure in this step, unless it names its own
  try {
    std::string config, out_dir, target_list, cxx_opt, ar_opt, objcopy_opt, flags_opt;
    bool flags_given = false, shared = false;
    std::vector<std::string> a(argv + 1, argv + argc);
    for (std::size_t i = 0; i < a.size(); ++i) {
      auto value = [&]() -> std::string {
        if (i + 1 >= a.size()) throw Failure(a[i] + " needs a value (see vitcc-compile --help)");
        return a[++i];
      };
      if (a[i] == "-o") out_dir = value();
      else if (a[i] == "--target") target_list = value();
      else if (a[i] == "--cxx") cxx_opt = value();
      else if (a[i] == "--flags") { flags_opt = value(); flags_given = true; }
      else if (a[i] == "--ar") ar_opt = value();
      else if (a[i] == "--objcopy") objcopy_opt = value();
      else if (a[i] == "--shared") shared = true;
      else if (a[i] == "--include-dir") { std::printf("%s\n", include_dir().string().c_str()); return 0; }
      else if (a[i] == "-h" || a[i] == "--help") { std::cout << usage; return 0; }
      else if (a[i] == "--list-targets") { print_targets(); return 0; }
      else if (a[i] == "--target-flags") {  // for build systems (vitcc_add_model): the ISA flags alone
        const std::string name = value();
        const vitcc::tools::IsaTarget* t = vitcc::tools::find_isa_target(name);
        if (!t) throw Failure("--target-flags: unknown target '" + name + "' (one of: " + vitcc::tools::isa_target_names() + ")");
        std::string f = name == "native" ? std::string("-march=native") : std::string(t->isa_flags);
        if (*t->abi_flags) f += std::string(" ") + t->abi_flags;
        std::printf("%s\n", f.c_str());
        return 0;
      }
      else if (a[i] == "--version") {
        std::printf("vitcc-compile %d.%d.%d (native target: %s %s)\n", VITCC_VERSION_MAJOR, VITCC_VERSION_MINOR,
                    VITCC_VERSION_PATCH, from_env("CXX", VITCC_COMPILE_CXX).c_str(),
                    from_env("VITCC_COMPILE_FLAGS", VITCC_COMPILE_FLAGS).c_str());
        return 0;
      }
      else if (!a[i].empty() && a[i][0] == '-') throw Failure("unknown option '" + a[i] + "' (see vitcc-compile --help)");
      else if (config.empty()) config = a[i];
      else throw Failure("unexpected argument '" + a[i] + "' (see vitcc-compile --help)");
    }
    if (config.empty() || out_dir.empty()) throw Failure("missing NAME.json or -o DIR (see vitcc-compile --help)");
    if (!flags_given && std::getenv("VITCC_COMPILE_FLAGS") && *std::getenv("VITCC_COMPILE_FLAGS")) {
      flags_opt = std::getenv("VITCC_COMPILE_FLAGS");
      flags_given = true;
    }

    // The variants, weakest first, and the family they share.
    std::vector<Variant> variants;
    std::string family, abi_flags, cross;
    if (target_list.empty() && flags_given) {
      variants.push_back({"custom", flags_opt});  // the flags as given; the CPU check is compiled with them too
      family = "custom";
    } else {
      std::vector<std::pair<std::size_t, const vitcc::tools::IsaTarget*>> chosen;
      for (const std::string& name : split_commas(target_list.empty() ? "native" : target_list)) {
        const vitcc::tools::IsaTarget* t = vitcc::tools::find_isa_target(name);
        if (!t)
          throw Failure("--target: unknown target '" + name + "' (one of: " + vitcc::tools::isa_target_names() +
                        "; see vitcc-compile --list-targets)");
        for (const auto& c : chosen)
          if (c.second == t) throw Failure("--target: '" + name + "' is listed twice");
        std::string f = t->family;
        if (f == "host") f = vitcc::tools::host_family();
        if (f != "any") {
          if (!family.empty() && family != f)
            throw Failure("--target: " + name + " (" + f + ") and the other targets (" + family +
                          ") cannot share one library: one instruction-set family per library");
          if (!family.empty() && abi_flags != t->abi_flags)
            throw Failure("--target: " + name + " (" + t->abi_flags + ") and the other targets (" + abi_flags +
                          ") have different ABI or FPU flags: one set per library (Cortex-M CPUs cannot be told apart at run time)");
          family = f;
          abi_flags = t->abi_flags;
          if (f != vitcc::tools::host_family()) cross = t->cross;
        }
        // native is this CPU's best: after every named target of its family
        const std::size_t rank = std::string(t->name) == "native" ? vitcc::tools::isa_targets().size()
                                                                  : std::size_t(t - vitcc::tools::isa_targets().data());
        chosen.push_back({rank, t});
      }
      std::stable_sort(chosen.begin(), chosen.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
      // --flags with --target add to the targets' flags; they may not choose the instruction set or the
      // ABI (-march, -mcpu, -mavx2, -mfloat-abi, ...): that is what the targets are for.
      if (flags_given)
        for (const std::string& w : vitcc::tools::words(flags_opt))
          if (chooses_isa_or_abi(w))
            throw Failure("--flags (or VITCC_COMPILE_FLAGS) '" + w + "' with --target: the targets choose the "
                          "instruction set and ABI; drop it, or give --flags without --target");
      if (family.empty()) family = vitcc::tools::host_family();  // only portable targets
      for (const auto& c : chosen) {
        const vitcc::tools::IsaTarget& t = *c.second;
        std::string f = target_flags(t, family, abi_flags);
        if (flags_given) f += " " + flags_opt;
        variants.push_back({t.name, f});
      }
    }
    // The CPU check and the entry points: the family's plain target, so that they run on any CPU of it
    // (a later -march wins over one in CXX or the compiler's default).
    std::string dispatch_flags = family == "custom" ? flags_opt : "-O2 -DNDEBUG";
    if (family == "x86-64") dispatch_flags += " -march=x86-64 -mtune=generic";
    if (family == "aarch64") dispatch_flags += " -march=armv8-a";
    if (family != "custom" && family != "armv7e-m") dispatch_flags += " -fPIC";
    if (shared) {
      bool pic = family != "custom" && family != "armv7e-m";
      if (family == "custom")
        for (const std::string& w : vitcc::tools::words(flags_opt)) pic = pic || w == "-fPIC" || w == "-fpic";
      if (!pic)
        throw Failure("--shared: a shared library needs position-independent code; " +
                      std::string(family == "custom" ? "add -fPIC to --flags (or VITCC_COMPILE_FLAGS), or give --target"
                                                     : "the " + family + " targets have none (bare metal: link libNAME.a)"));
    }
    if (family != "custom" && !abi_flags.empty()) dispatch_flags += " " + abi_flags;

    // A cross target's compiler: --cxx, else $CXX when it is that triplet's, else the triplet's g++.
    std::string cxx = cxx_opt;
    if (cxx.empty()) {
      const std::string env_cxx = from_env("CXX", "");
      if (cross.empty()) cxx = env_cxx.empty() ? VITCC_COMPILE_CXX : env_cxx;
      else cxx = !env_cxx.empty() && tool_prefix(env_cxx) == cross ? env_cxx : cross + "g++";
    }
    const std::string prefix = cross.empty() ? tool_prefix(cxx) : cross;
    std::string ar = !ar_opt.empty() ? ar_opt : from_env("AR", prefix + "ar");
    std::string objcopy = !objcopy_opt.empty() ? objcopy_opt : from_env("OBJCOPY", prefix + "objcopy");
    step = exit_code::input;

    const vitcc::tools::ModelConfig cfg = vitcc::tools::load_model_config(config);
    const std::string include = vitcc::tools::include_directive(cfg.header_path);
    if (include.empty())
      throw Failure(config + ": header: the path " + cfg.header_path + " holds a quote, a backslash or a control "
                    "character, which cannot be written in an #include");

    std::error_code ec;
    fs::create_directories(out_dir, ec);
    if (ec) throw Failure(out_dir + ": cannot create the output folder: " + ec.message(), exit_code::io);
    fs::path dir = fs::absolute(out_dir).lexically_normal();
    if (dir.filename().empty()) dir = dir.parent_path();  // "out/" -> "out"
    // Every file this tool writes is named after the model name load_model_config checked (a file
    // stem, no folders), in DIR and nowhere else; this re-check keeps it so whatever the name rule.
    auto in_dir = [&](const std::string& file) {
      const fs::path p = (dir / file).lexically_normal();
      if (p.parent_path() != dir || p.filename() != file)
        throw Failure(config + ": name: '" + cfg.name + "' would put " + file + " outside " + dir.string());
      return p;
    };
    const std::string& name = cfg.name;
    const std::string& id = cfg.id;
    const std::size_t ws_bytes = cfg.stats.workspace_bytes;
    const std::string tag = ".tmp." + std::to_string(::getpid());
    const fs::path lib = in_dir("lib" + name + ".a"), tmp_lib = in_dir("lib" + name + ".a" + tag);
    const fs::path c_header_path = in_dir(name + ".h");
    const fs::path so = in_dir("lib" + name + ".so"), tmp_so = in_dir("lib" + name + ".so" + tag);

    const std::string nm = !prefix.empty() ? from_env("NM", prefix + "nm") : from_env("NM", "nm");
    // A private folder for the objects (fixed member names, so the archive is the same every run);
    // it and the archive's temporary are removed however this ends.
    const fs::path work = in_dir("." + name + ".vitcc-compile" + tag);
    fs::create_directories(work, ec);
    if (ec) throw Failure(work.string() + ": cannot create: " + ec.message(), exit_code::io);
    std::vector<fs::path> objects;
    struct Cleanup {
      fs::path work, tmp_lib, tmp_so;
      ~Cleanup() {
        std::error_code ignored;
        fs::remove_all(work, ignored);
        fs::remove(tmp_lib, ignored);
        fs::remove(tmp_so, ignored);
      }
    } cleanup{work, tmp_lib, tmp_so};
    // GCC makes some template statics STB_GNU_UNIQUE, which objcopy cannot make local: ask for weak ones.
    bool gcc = false;
    {
      std::vector<std::string> probe = vitcc::tools::words(cxx);
      if (probe.empty()) throw Failure("empty compiler command");
      probe.insert(probe.end(), {"-dM", "-E", "-x", "c++", "/dev/null"});
      std::string defines;
      step = exit_code::failure;
      if (vitcc::tools::run_process(probe, defines, false) != 0) throw Failure("cannot run the compiler " + cxx);
      gcc = defines.find("#define __GNUC__ ") != std::string::npos && defines.find("#define __clang__ ") == std::string::npos;
    }
    auto compile = [&](const fs::path& src, const fs::path& obj, const std::string& unit_flags) {
      std::vector<std::string> cmd = vitcc::tools::words(cxx);
      if (cmd.empty()) throw Failure("empty compiler command");
      cmd.push_back("-std=c++17");
      for (const auto& f : vitcc::tools::words(unit_flags)) cmd.push_back(f);
      cmd.insert(cmd.end(), {"-fno-exceptions", "-fno-rtti", "-fno-threadsafe-statics", "-I" + include_dir().string(),
                             "-c", src.string(), "-o", obj.string()});
      if (gcc) cmd.push_back("-fno-gnu-unique");
      std::string log;
      if (vitcc::tools::run_process(cmd, log) != 0)
        throw Failure("compiling " + src.string() + " with " + cxx + " " + unit_flags + " failed:\n" + log);
    };
    // One translation unit: compile it, then keep only `keep` global (objcopy), so that its inline
    // functions and template instances stay its own.
    auto build = [&](const fs::path& src, const std::string& text, const std::string& unit_flags,
                     const std::vector<std::string>& keep) {
      step = exit_code::io;
      write_text(src, text);
      step = exit_code::failure;  // the compiler and binutils
      const fs::path obj = work / src.filename().replace_extension(".o");
      objects.push_back(obj);
      compile(src, obj, unit_flags);
      std::vector<std::string> oc = vitcc::tools::words(objcopy);
      if (oc.empty()) throw Failure("empty objcopy command");
      oc.push_back("--remove-section=.group");  // no COMDAT folding with another unit's copies
      for (const std::string& k : keep) oc.push_back("--keep-global-symbol=" + k);
      oc.push_back(obj.string());
      std::string log;
      if (vitcc::tools::run_process(oc, log) != 0)
        throw Failure("making " + obj.string() + "'s symbols local with " + objcopy + " failed:\n" + log);
    };
    // sizeof(Model) as a target's compiler lays it out: the size of an array symbol in a probe object
    // (nm -S), compiled without debug info or LTO so that the symbol table says it plainly.
    auto model_size = [&](std::size_t k) {
      const fs::path src = work / ("size_v" + std::to_string(k) + ".cpp"), obj = work / ("size_v" + std::to_string(k) + ".o");
      step = exit_code::io;
      write_text(src, include + "\nextern \"C\" const char vitcc_model_size[sizeof(vitcc_models::" + id + "_model)] = {};\n");
      step = exit_code::failure;
      compile(src, obj, variants[k].flags + " -O0 -g0 -fno-lto");
      std::vector<std::string> nm_cmd = vitcc::tools::words(nm);
      if (nm_cmd.empty()) throw Failure("empty nm command");
      nm_cmd.insert(nm_cmd.end(), {"-S", "--defined-only", obj.string()});
      std::string listing;
      if (vitcc::tools::run_process(nm_cmd, listing, false) != 0) throw Failure("listing " + obj.string() + " with " + nm + " failed");
      std::istringstream lines(listing);
      std::size_t size = 0;
      for (std::string line; std::getline(lines, line);) {
        std::istringstream w(line);
        std::string addr, sz, type, sym;
        if (w >> addr >> sz >> type >> sym && sym == "vitcc_model_size") size = std::stoull(sz, nullptr, 16);
      }
      if (size == 0) throw Failure(obj.string() + ": " + nm + " gives no size for the model");
      return size;
    };
    std::size_t model_bytes = 0;  // the largest copy's sizeof(Model): a context holds any
    for (std::size_t k = 0; k < variants.size(); ++k) {
      build(in_dir(name + "_capi_v" + std::to_string(k) + ".cpp"), variant_source(include, id, k, variants[k]),
            variants[k].flags, variant_symbols(id, k));
      model_bytes = std::max(model_bytes, model_size(k));
    }
    const std::vector<std::string> c_api{id + "_bind", id + "_workspace_bytes", id + "_input_floats", id + "_output_floats", id + "_target",
           id + "_isa", id + "_forward", id + "_last_error", id + "_preprocess_scratch_bytes", id + "_preprocess",
           id + "_workspace_bytes_for", id + "_version", id + "_context_init", id + "_context_error",
           id + "_context_forward", id + "_context_bytes"};
    build(in_dir(name + "_capi.cpp"), dispatch_source(id, variants, model_bytes), dispatch_flags, c_api);

    fs::remove(tmp_lib, ec);
    std::vector<std::string> ar_cmd = vitcc::tools::words(ar);
    if (ar_cmd.empty()) throw Failure("empty archiver command");
    ar_cmd.insert(ar_cmd.end(), {"rcs", tmp_lib.string()});
    for (const fs::path& o : objects) ar_cmd.push_back(o.string());
    std::string log;
    if (vitcc::tools::run_process(ar_cmd, log) != 0) throw Failure("archiving with " + ar + " failed:\n" + log);
    if (shared) {
      // The same objects; a version script exports the C API and nothing else (not the copies' entry
      // points, which the archive needs global).
      const fs::path map = work / "exports.map";
      std::string text = "{\n  global:\n";
      for (const std::string& sym : c_api) text += "    " + sym + ";\n";
      step = exit_code::io;
      write_text(map, text + "  local: *;\n};\n");
      // Linked with the units' own flags (a -m32, --target= or -fsanitize= the linker must see too),
      // and --as-needed: the code needs the C library and libm, and the C++ driver would otherwise
      // record libstdc++ and libgcc_s too (clang++ does).
      std::vector<std::string> link = vitcc::tools::words(cxx);
      for (const std::string& w : vitcc::tools::words(dispatch_flags)) link.push_back(w);
      link.insert(link.end(), {"-shared", "-Wl,--as-needed", "-Wl,-soname,lib" + name + ".so",
                               "-Wl,--version-script=" + map.string(), "-o", tmp_so.string()});
      for (const fs::path& o : objects) link.push_back(o.string());
      link.push_back("-lm");
      step = exit_code::failure;
      if (vitcc::tools::run_process(link, log) != 0) throw Failure("linking " + so.string() + " with " + cxx + " failed:\n" + log);
      fs::rename(tmp_so, so, ec);
      if (ec) throw Failure(so.string() + ": cannot move into place: " + ec.message(), exit_code::io);
    }
    fs::rename(tmp_lib, lib, ec);
    if (ec) throw Failure(lib.string() + ": cannot move into place: " + ec.message(), exit_code::io);
    // The header last: a header never names a library that is not in place.
    write_text(c_header_path, c_header(cfg, variants, context_bytes(model_bytes)));
    std::printf("wrote %s and %s%s%s (%s, %zu workspace bytes)\n", c_header_path.string().c_str(), lib.string().c_str(),
                shared ? " and " : "", shared ? so.string().c_str() : "", cfg.architecture.c_str(), ws_bytes);
    for (const Variant& v : variants) std::printf("  target %s: %s %s\n", v.target.c_str(), cxx.c_str(), v.flags.c_str());
    return 0;
  } catch (const Failure& e) {
    std::fprintf(stderr, "vitcc-compile: error: %s\n", vitcc::tools::one_line(e.what()).c_str());
    return e.code ? e.code : step;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vitcc-compile: error: %s\n", vitcc::tools::one_line(e.what()).c_str());
    return step;
  }
}
