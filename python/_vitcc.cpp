// vitcc._vitcc: the native half of the Python binding (python/vitcc/__init__.py is the other).
//
// A packed model's code is specialised for its configuration at compile time, so there is no one
// extension that runs every model. Instead `vitcc.load()` has vitcc-compile build the model's C API
// as a shared library (vitcc-compile --shared, cached), and this module loads that library with
// dlopen, binds the weight blob (mapped read-only, never copied) into a context in memory it owns,
// and runs batches through NAME_context_forward with a vitcc::ThreadPool as the executor, the GIL
// released. Everything model-specific is behind the C API the library exports; this module includes
// only the library's architecture-independent headers (the thread pool, the CPU feature check). The
// config is read by the tools' one checked reader (tools/common/model_config.cpp, compiled in).
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "model_config.hpp"

#include "vitcc/core/cpu_features.hpp"
#include "vitcc/core/error.hpp"
#include "vitcc/core/thread_pool.hpp"
#include "vitcc/version.hpp"

namespace py = pybind11;

namespace {

// The C API's executor struct (NAME_executor in the generated C header): vitcc::Executor's layout.
struct CExecutor {
  void (*parallel_for)(void* self, std::size_t tasks, void (*task)(void*, std::size_t, std::size_t), void* arg);
  void* self;
  std::size_t workers;
};

struct Api {
  int (*context_init)(void*, std::size_t, const void*, std::size_t, void**);
  const char* (*context_error)(const void*);
  int (*context_forward)(const void*, const float*, std::size_t, float*, void*, std::size_t, const CExecutor*);
  std::size_t (*workspace_bytes_for)(std::size_t);
  std::size_t (*input_floats)();
  std::size_t (*output_floats)();
  std::size_t (*context_bytes)();
  const char* (*target)();
  const char* (*isa)();
  const char* (*version)();
  std::size_t (*preprocess_scratch_bytes)(int, int);
  int (*preprocess)(const unsigned char*, int, int, std::size_t, int, float*, void*, std::size_t);
};

struct FreeDeleter {
  void operator()(void* p) const noexcept { std::free(p); }
};
using AlignedBytes = std::unique_ptr<unsigned char, FreeDeleter>;

// A file mapped read-only, unmapped when this goes (also when a constructor throws after mapping).
struct Mapping {
  const void* data = nullptr;
  std::size_t bytes = 0;
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (data) ::munmap(const_cast<void*>(data), bytes);
  }
};

AlignedBytes aligned_bytes(std::size_t bytes) {
  const std::size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded == 0 ? 64 : rounded);
  return AlignedBytes(static_cast<unsigned char*>(p));
}

// The vitcc::Errc codes the C API returns, in words.
std::string errc_text(int rc) {
  switch (rc) {
    case static_cast<int>(vitcc::Errc::not_bound):
      return "the model is not bound";
    case static_cast<int>(vitcc::Errc::workspace_too_small):
      return "the workspace or scratch is too small";
    case static_cast<int>(vitcc::Errc::misaligned):
      return "a misaligned buffer";
    case static_cast<int>(vitcc::Errc::null_pointer):
      return "a null pointer";
    case static_cast<int>(vitcc::Errc::shape_mismatch):
      return "the frame's size, channels or row stride (or a model that does not take RGB)";
    case static_cast<int>(vitcc::Errc::invalid_argument):
      return "the model's preprocessing constants";
    case static_cast<int>(vitcc::Errc::unsupported_cpu):
      return "this CPU runs none of the library's targets";
    default:
      return "error code " + std::to_string(rc);
  }
}

std::string module_version() {
  return std::to_string(VITCC_VERSION_MAJOR) + "." + std::to_string(VITCC_VERSION_MINOR) + "." +
         std::to_string(VITCC_VERSION_PATCH);
}

class Library {
 public:
  Library(const std::string& so_path, const std::string& id, const std::string& blob_path, std::size_t threads)
      : so_path_(so_path), blob_path_(blob_path) {
    handle_ = ::dlopen(so_path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle_) throw std::runtime_error(so_path + ": cannot load: " + ::dlerror());
    sym(api_.context_init, id + "_context_init");
    sym(api_.context_error, id + "_context_error");
    sym(api_.context_forward, id + "_context_forward");
    sym(api_.workspace_bytes_for, id + "_workspace_bytes_for");
    sym(api_.input_floats, id + "_input_floats");
    sym(api_.output_floats, id + "_output_floats");
    sym(api_.context_bytes, id + "_context_bytes");
    sym(api_.target, id + "_target");
    sym(api_.isa, id + "_isa");
    sym(api_.version, id + "_version");
    sym(api_.preprocess_scratch_bytes, id + "_preprocess_scratch_bytes");
    sym(api_.preprocess, id + "_preprocess");
    // The prototypes above are this release's C API: a library another release wrote may differ.
    if (std::string(api_.version()) != "vitcc " + module_version())
      throw std::runtime_error(so_path + ": written by " + api_.version() + ", but this module is vitcc " +
                               module_version() + " (use the vitcc-compile of this release)");
    map_blob();
    context_memory_ = aligned_bytes(api_.context_bytes());
    void* ctx = nullptr;
    const int rc = api_.context_init(context_memory_.get(), (api_.context_bytes() + 63) / 64 * 64, blob_.data, blob_.bytes, &ctx);
    if (rc != 0) {
      const std::string why = ctx ? api_.context_error(ctx) : "error code " + std::to_string(rc);
      throw std::runtime_error(blob_path + ": " + why);
    }
    context_ = ctx;
    if (threads > 1) pool_ = std::make_unique<vitcc::ThreadPool>(threads);
    workers_ = pool_ ? pool_->workers() : 1;
    workspace_bytes_ = api_.workspace_bytes_for(workers_);
    workspace_ = aligned_bytes(workspace_bytes_);
  }
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;
  ~Library() {
    // Members go in reverse order: the pool, the workspace, the context, then the blob's mapping.
    // The library stays loaded: dlclose of code that another Library may still run is not worth the
    // few hundred kilobytes (dlopen of the same file again returns the same handle).
  }

  std::size_t input_floats() const { return api_.input_floats(); }
  std::size_t output_floats() const { return api_.output_floats(); }
  std::size_t workers() const { return workers_; }
  std::string target() const { return api_.target(); }
  std::string isa() const { return api_.isa(); }
  std::string version() const { return api_.version(); }
  std::string path() const { return so_path_; }

  // images: count * input_floats() floats, C-contiguous. Returns count * output_floats() floats.
  py::array_t<float> forward(py::array_t<float, py::array::c_style> images, std::size_t count) {
    if (static_cast<std::size_t>(images.size()) != count * input_floats())
      throw std::invalid_argument("forward: " + std::to_string(images.size()) + " floats for " + std::to_string(count) +
                                  " images of " + std::to_string(input_floats()));
    py::array_t<float> out(static_cast<py::ssize_t>(count * output_floats()));
    const float* in = images.data();
    float* o = out.mutable_data();
    int rc = 0;
    {
      py::gil_scoped_release unlocked;
      // One forward at a time per model: the pool serves one parallel region at a time, and the
      // workspace is the model's.
      std::lock_guard<std::mutex> lock(mutex_);
      CExecutor ex{};
      const CExecutor* exp = nullptr;
      if (pool_) {
        const vitcc::Executor e = pool_->executor();
        ex.parallel_for = e.parallel_for;
        ex.self = e.self;
        ex.workers = e.workers;
        exp = &ex;
      }
      rc = api_.context_forward(context_, in, count, o, workspace_.get(), workspace_bytes_, exp);
    }
    if (rc != 0) throw std::runtime_error(blob_path_ + ": forward failed: " + errc_text(rc));
    return out;
  }

  // frame: height x width x channels uint8 (3: RGB, 4: RGBA), C-contiguous. Returns input_floats() floats.
  py::array_t<float> preprocess(py::array_t<std::uint8_t, py::array::c_style> frame) {
    if (frame.ndim() != 3) throw std::invalid_argument("preprocess: expected a (height, width, 3 or 4) uint8 array");
    const auto h = frame.shape(0), w = frame.shape(1), c = frame.shape(2);
    if (h > INT32_MAX || w > INT32_MAX) throw std::invalid_argument("preprocess: the frame is too large");
    const std::size_t scratch_bytes = api_.preprocess_scratch_bytes(static_cast<int>(w), static_cast<int>(h));
    if (scratch_bytes == 0)
      throw std::invalid_argument("preprocess: a " + std::to_string(w) + "x" + std::to_string(h) +
                                  " frame is not one it can resize (empty or too large)");
    AlignedBytes scratch = aligned_bytes(scratch_bytes);
    py::array_t<float> out(static_cast<py::ssize_t>(input_floats()));
    const std::uint8_t* px = frame.data();
    float* o = out.mutable_data();
    int rc = 0;
    {
      py::gil_scoped_release unlocked;
      rc = api_.preprocess(px, static_cast<int>(w), static_cast<int>(h), static_cast<std::size_t>(w * c),
                           static_cast<int>(c), o, scratch.get(), scratch_bytes);
    }
    if (rc != 0) throw std::invalid_argument("preprocess: refused: " + errc_text(rc));
    return out;
  }

 private:
  template <class F>
  void sym(F& f, const std::string& name) {
    void* p = ::dlsym(handle_, name.c_str());
    if (!p) throw std::runtime_error(so_path_ + ": has no " + name + " (not a library vitcc-compile --shared wrote for this model)");
    f = reinterpret_cast<F>(p);
  }

  void map_blob() {
    const int fd = ::open(blob_path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error(blob_path_ + ": cannot open the weight blob: " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_size <= 0) {
      ::close(fd);
      throw std::runtime_error(blob_path_ + ": the weight blob is empty or cannot be read");
    }
    const std::size_t bytes = static_cast<std::size_t>(st.st_size);
    void* p = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);
    if (p == MAP_FAILED) throw std::runtime_error(blob_path_ + ": cannot map the weight blob: " + std::strerror(err));
    blob_.data = p;
    blob_.bytes = bytes;
  }

  std::string so_path_, blob_path_;
  void* handle_ = nullptr;
  Api api_{};
  Mapping blob_;  // before the context that reads it: destroyed after it
  AlignedBytes context_memory_, workspace_;
  const void* context_ = nullptr;
  std::unique_ptr<vitcc::ThreadPool> pool_;
  std::size_t workers_ = 1, workspace_bytes_ = 0;
  std::mutex mutex_;
};

// NAME.json through load_model_config: every field checked, the blob and header resolved in the
// config's folder. Errors ("<path>: <field>: <what was expected>") become ValueError.
py::dict read_config(const std::string& path) {
  vitcc::tools::ModelConfig c;
  try {
    c = vitcc::tools::load_model_config(path);
  } catch (const std::runtime_error& e) {
    throw std::invalid_argument(e.what());
  }
  py::dict d;
  d["name"] = c.name;
  d["symbol_prefix"] = c.id;
  d["architecture"] = c.architecture;
  d["precision"] = std::string(vitcc::precision_name(c.precision));
  d["config_hash"] = c.config_hash;
  d["blob_checksum"] = c.blob_checksum;
  d["header_checksum"] = c.header_checksum;
  d["blob_path"] = c.blob_path;
  d["header_path"] = c.header_path;
  d["path"] = c.path;
  d["output_kind"] = c.output_kind;
  d["input_shape"] = py::tuple(py::cast(std::vector<std::int64_t>(c.input_shape.begin() + 1, c.input_shape.end())));
  d["output_shape"] = py::tuple(py::cast(std::vector<std::int64_t>(c.output_shape.begin() + 1, c.output_shape.end())));
  return d;
}

}  // namespace

PYBIND11_MODULE(_vitcc, m) {
  m.doc() = "vitcc's native half: loads a model library written by vitcc-compile --shared (use vitcc.load).";
  m.attr("version") = module_version();
  m.attr("build_compile_path") = VITCC_PY_BUILD_COMPILE;
  m.def("read_config", &read_config, py::arg("path"),
        "NAME.json through vitcc's checked config reader: a dict of its checked fields.");
  m.def("cpu_features", &vitcc::cpu::runtime_features, "This CPU's instruction-set extensions as vitcc's bit set.");
  py::class_<Library>(m, "Library")
      .def(py::init<const std::string&, const std::string&, const std::string&, std::size_t>(), py::arg("library"),
           py::arg("symbol_prefix"), py::arg("blob"), py::arg("threads"))
      .def("forward", &Library::forward, py::arg("images"), py::arg("count"))
      .def("preprocess", &Library::preprocess, py::arg("frame"))
      .def_property_readonly("input_floats", &Library::input_floats)
      .def_property_readonly("output_floats", &Library::output_floats)
      .def_property_readonly("workers", &Library::workers)
      .def_property_readonly("target", &Library::target)
      .def_property_readonly("isa", &Library::isa)
      .def_property_readonly("version", &Library::version)
      .def_property_readonly("path", &Library::path);
}
