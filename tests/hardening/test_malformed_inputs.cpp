// The malformed-input catalogue (docs/SECURITY.md has it as a table): every reader of vitcc, given
// a damaged or hostile input, refuses it with the exact error (the Errc or exception, and the
// words of the message). Each case starts from a real, valid input (the demo model's blob and
// config, the demo picture, a small valid ONNX graph) and changes one thing, so that a reader that
// stopped checking that one thing would accept the input and fail the case.
#include <doctest/doctest.h>

#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "artifacts.hpp"
#include "demo.hpp"
#include "error.hpp"
#include "image_preprocess.hpp"
#include "model_config.hpp"
#include "onnx_graph.hpp"
#include "tensor_io.hpp"
#include "vitcc/io/blob_reader.hpp"

namespace fs = std::filesystem;
using namespace vitcc;
using Cfg = vitcc_models::demo;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE_MESSAGE(f.good(), "cannot read ", path);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  REQUIRE(f.good());
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string demo_json() { return slurp(VITCC_DEMO_MODEL_DIR "/demo.json"); }

// The demo model's config, as the tools read it: the blob and header files it names.
const tools::ModelConfig& demo_config() {
  static const tools::ModelConfig c = tools::parse_model_config(demo_json(), "demo.json");
  return c;
}

// A scratch folder per test process.
const fs::path& scratch() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("vitcc-malformed-" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

// ---------------------------------------------------------------------------------------- blob

// The demo model's blob in a 64-byte aligned buffer of exactly `size` bytes, with helpers to edit
// its header and tensor table and to re-seal it (recompute the checksum) so that the one edited
// field, not the hash, is what the reader must catch.
struct Blob {
  std::vector<unsigned char> bytes;
  unsigned char* mem = nullptr;
  std::size_t size = 0;

  Blob() {
    const std::string b = slurp(VITCC_DEMO_MODEL_DIR "/" + demo_config().blob_file);
    bytes.assign(b.begin(), b.end());
  }
  ~Blob() { std::free(mem); }

  static void put_u32(unsigned char* p, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
  }
  static void put_u64(unsigned char* p, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
  }
  unsigned char* entry(const char* name) {
    const std::uint32_t count = blob::read_u32(bytes.data() + 20);
    for (std::uint32_t i = 0; i < count; ++i) {
      unsigned char* e = bytes.data() + 64 + 128 * std::size_t(i);
      if (std::strcmp(reinterpret_cast<const char*>(e), name) == 0) return e;
    }
    FAIL("no tensor ", name, " in the demo blob");
    return nullptr;
  }
  void seal() { put_u64(bytes.data() + 32, blob::checksum(bytes.data(), bytes.size())); }

  Status open(std::size_t offset = 0) {
    std::free(mem);
    size = bytes.size();
    void* m = nullptr;
    REQUIRE(posix_memalign(&m, 64, size + offset + 1) == 0);
    mem = static_cast<unsigned char*>(m);
    std::memcpy(mem + offset, bytes.data(), size);
    BlobView view;
    return view.open(mem + offset, size);
  }
};

void expect(const Status& s, Errc code, const std::string& words) {
  INFO("message: ", s.message());
  CHECK(s.code() == code);
  CHECK(contains(s.message(), words));
}

// Demo configs that differ from the blob's in one field ("a compiled header that does not match").
struct Deeper : Cfg {
  static constexpr int depth = Cfg::depth + 1;
};
struct Shallower : Cfg {
  static constexpr int depth = Cfg::depth - 1;
};
struct Wider : Cfg {
  static constexpr int mlp_hidden = Cfg::mlp_hidden + 16;
};

// ---------------------------------------------------------------------------------------- ONNX

// A small valid ONNX model, y = Relu(x + b), that cases break one piece at a time.
struct Onnx {
  onnx::ModelProto m;
  explicit Onnx(int opset = 13, std::vector<std::int64_t> in_shape = {1, 3, 8, 8}) {
    m.set_ir_version(8);
    m.set_producer_name("vitcc-test");
    auto* op = m.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    auto* g = m.mutable_graph();
    g->set_name("g");
    auto* in = g->add_input();
    in->set_name("x");
    auto* tt = in->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    for (std::int64_t d : in_shape) tt->mutable_shape()->add_dim()->set_dim_value(d);
    auto* out = g->add_output();
    out->set_name("y");
    out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    for (int d = 0; d < 4; ++d) out->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_param("d");
    init("b", {1}, {0.5f});
    node("Add", {"x", "b"}, {"s"}, "add");
    node("Relu", {"s"}, {"y"}, "relu");
  }
  onnx::NodeProto* node(const std::string& op, std::vector<std::string> ins, std::vector<std::string> outs,
                        const std::string& name) {
    auto* n = m.mutable_graph()->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (auto& i : ins) n->add_input(i);
    for (auto& o : outs) n->add_output(o);
    return n;
  }
  onnx::TensorProto* init(const std::string& name, std::vector<std::int64_t> dims, std::vector<float> values) {
    auto* t = m.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : dims) t->add_dims(d);
    for (float v : values) t->add_float_data(v);
    return t;
  }
  // An integer initializer (int64, or int32 with type INT32); dims {} is a scalar.
  onnx::TensorProto* ints(const std::string& name, std::vector<std::int64_t> dims, std::vector<std::int64_t> values,
                          int type = onnx::TensorProto::INT64) {
    auto* t = m.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(type);
    for (auto d : dims) t->add_dims(d);
    for (auto v : values) {
      if (type == onnx::TensorProto::INT64) t->add_int64_data(v);
      else t->add_int32_data(static_cast<std::int32_t>(v));
    }
    return t;
  }
  onnx::TensorProto* floats(const std::string& name, std::vector<std::int64_t> dims, float value) {
    std::int64_t n = 1;
    for (auto d : dims) n *= d;
    return init(name, dims, std::vector<float>(static_cast<std::size_t>(n), value));
  }
  onnx::TensorProto* find_init(const std::string& name) {
    for (auto& t : *m.mutable_graph()->mutable_initializer())
      if (t.name() == name) return &t;
    FAIL("no initializer ", name);
    return nullptr;
  }
  // The bias as external data in `file` (relative to the model's folder).
  void external_bias(const std::string& location, std::int64_t offset = 0) {
    auto* t = find_init("b");
    t->clear_float_data();
    t->set_data_location(onnx::TensorProto::EXTERNAL);
    auto* e = t->add_external_data();
    e->set_key("location");
    e->set_value(location);
    if (offset) {
      e = t->add_external_data();
      e->set_key("offset");
      e->set_value(std::to_string(offset));
    }
  }
  std::string save(const std::string& case_name) {
    const fs::path dir = scratch() / case_name;
    fs::create_directories(dir);
    const std::string path = (dir / "model.onnx").string();
    std::string bytes;
    REQUIRE(m.SerializeToString(&bytes));
    spit(path, bytes);
    return path;
  }
};

// OnnxGraph::load's refusal, or "" when it accepts.
std::string load_error(const std::string& path) {
  try {
    pack::OnnxGraph::load(path);
  } catch (const pack::PackError& e) {
    return e.what();
  }
  return "";
}

void expect_refusal(const std::string& path, const std::vector<std::string>& words) {
  const std::string msg = load_error(path);
  INFO("message: ", msg);
  REQUIRE(!msg.empty());
  CHECK(msg.rfind(path + ": ", 0) == 0);  // names the file first
  for (const auto& w : words) CHECK(contains(msg, w));
}

// ---------------------------------------------------------------------------------------- config

std::string config_error(const std::string& text) {
  try {
    tools::parse_model_config(text, "m.json");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

// A copy of the demo model's folder (config, blob, config header) in the scratch folder, with
// `text` as its config: load_model_config's refusal, or "" when it accepts. `prepare` may change
// the folder's files first.
template <class Prepare>
std::string folder_error(const std::string& case_name, const std::string& text, Prepare prepare) {
  const fs::path dir = scratch() / ("config-" + case_name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const std::string& f : {demo_config().blob_file, demo_config().header_file})
    fs::copy_file(fs::path(VITCC_DEMO_MODEL_DIR) / f, dir / f);
  spit((dir / "m.json").string(), text);
  prepare(dir);
  const std::string path = (dir / "m.json").string();
  try {
    tools::load_model_config(path);
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    CHECK(msg.rfind(path + ": ", 0) == 0);  // names the file first
    CHECK(msg.find('\n') == std::string::npos);
    return msg;
  }
  return "";
}
std::string folder_error(const std::string& case_name, const std::string& text) {
  return folder_error(case_name, text, [](const fs::path&) {});
}

void expect_folder_refusal(const std::string& msg, const std::string& words) {
  INFO("message: ", msg);
  REQUIRE(!msg.empty());
  CHECK(contains(msg, words));
}

// demo.json with one field replaced (a JSON pointer and the new value as JSON text).
std::string edited(const std::string& pointer, const std::string& value) {
  nlohmann::json j = nlohmann::json::parse(demo_json());
  j[nlohmann::json::json_pointer(pointer)] = nlohmann::json::parse(value);
  return j.dump();
}

void expect_config_refusal(const std::string& text, const std::string& words) {
  const std::string msg = config_error(text);
  INFO("message: ", msg);
  REQUIRE(!msg.empty());
  CHECK(msg.rfind("m.json: ", 0) == 0);
  CHECK(msg.find('\n') == std::string::npos);  // one line, even when the field held a newline
  CHECK(contains(msg, words));
}

// ---------------------------------------------------------------------------------------- inputs

std::string input_error(const std::string& name, const std::string& bytes, std::int64_t c = 3, std::int64_t h = 96,
                        std::int64_t w = 96) {
  const std::string path = (scratch() / name).string();
  spit(path, bytes);
  run::Preprocess pp;
  pp.input_h = h;
  pp.input_w = w;
  try {
    run::read_input(path, c, h, w, pp);
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    CHECK(msg.rfind(path + ": ", 0) == 0);
    return msg;
  }
  return "";
}

std::string npy(const std::string& dict, const std::string& data) {
  std::string header = dict;
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += char(header.size() & 0xff);
  out += char(header.size() >> 8);
  return out + header + data;
}

// A PNG signature and IHDR chunk claiming w x h RGB pixels, and nothing after it.
std::string png_header(std::uint32_t w, std::uint32_t h) {
  std::string s("\x89PNG\r\n\x1a\n", 8);
  auto be32 = [](std::uint32_t v) {
    return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  };
  const std::string ihdr = "IHDR" + be32(w) + be32(h) + std::string("\x08\x02\x00\x00\x00", 5);
  return s + be32(13) + ihdr + be32(0);  // stb does not check the CRC of the header
}

}  // namespace

// =============================================================================================
TEST_CASE("blob: the demo blob itself is accepted (the baseline every case changes)") {
  Blob b;
  CHECK(b.open().ok());
  static Vit<Cfg> model;
  BlobView view;
  REQUIRE(view.open(b.mem, b.size).ok());
  CHECK(model.bind(view).ok());
  CHECK(check_finite(view).ok());
}

TEST_CASE("blob: truncated, oversized, overlapping, out of bounds") {
  SUBCASE("B1 shorter than the fixed header") {
    Blob b;
    b.bytes.resize(40);
    expect(b.open(), Errc::truncated, "shorter than the 64-byte header");
  }
  SUBCASE("B2 cut short by 64 bytes") {
    Blob b;
    b.bytes.resize(b.bytes.size() - 64);
    expect(b.open(), Errc::truncated, "header records");
  }
  SUBCASE("B3 oversized: 64 bytes appended") {
    Blob b;
    b.bytes.resize(b.bytes.size() + 64, 0);
    expect(b.open(), Errc::truncated, "are present");
  }
  SUBCASE("B4 a tensor recording more bytes than its shape") {
    Blob b;
    unsigned char* e = b.entry("norm.weight");
    Blob::put_u64(e + 120, blob::read_u64(e + 120) + 64);
    b.seal();
    expect(b.open(), Errc::bad_tensor_entry, "tensor 'norm.weight' records 448 bytes, its shape needs 384");
  }
  SUBCASE("B5 the last tensor extends past the end") {
    Blob b;
    const std::uint32_t count = blob::read_u32(b.bytes.data() + 20);
    unsigned char* e = b.bytes.data() + 64 + 128 * std::size_t(count - 1);
    Blob::put_u64(e + 112, b.bytes.size() - 64 * ((blob::read_u64(e + 120) + 63) / 64) + 64);
    b.seal();
    expect(b.open(), Errc::out_of_bounds, "extends past the");
  }
  SUBCASE("B6 two tensors overlapping") {
    Blob b;
    unsigned char* first = b.entry("prefix_tokens");
    unsigned char* second = b.entry("patch_embed.weight");
    Blob::put_u64(second + 112, blob::read_u64(first + 112));
    b.seal();
    expect(b.open(), Errc::overlapping, "tensor 'patch_embed.weight' at offset");
  }
  SUBCASE("B7 a tensor overlapping the table") {
    Blob b;
    Blob::put_u64(b.entry("prefix_tokens") + 112, 64);
    b.seal();
    expect(b.open(), Errc::overlapping, "overlaps the table");
  }
  SUBCASE("B8 a tensor offset that is not 64-aligned") {
    Blob b;
    unsigned char* e = b.entry("norm.bias");
    Blob::put_u64(e + 112, blob::read_u64(e + 112) + 4);
    b.seal();
    expect(b.open(), Errc::misaligned, "tensor 'norm.bias' at offset");
  }
  SUBCASE("B9 the buffer itself not 64-byte aligned") {
    Blob b;
    expect(b.open(16), Errc::misaligned, "must be 64-byte aligned");
  }
}

TEST_CASE("blob: wrong magic, version, endianness, header, checksum") {
  SUBCASE("B10 wrong magic") {
    Blob b;
    std::memcpy(b.bytes.data(), "GGUF\0\0\0\0", 8);
    expect(b.open(), Errc::bad_magic, "bad magic");
  }
  SUBCASE("B11 format version 3") {
    Blob b;
    Blob::put_u32(b.bytes.data() + 8, 3);
    expect(b.open(), Errc::bad_version, "format version 3, this reader supports 1 to 2");
  }
  SUBCASE("B12 written big endian") {
    Blob b;
    std::swap(b.bytes[12], b.bytes[15]);
    std::swap(b.bytes[13], b.bytes[14]);
    expect(b.open(), Errc::bad_endianness, "endianness tag 0x04030201");
  }
  SUBCASE("B13 header bytes that disagree with the tensor count") {
    Blob b;
    Blob::put_u32(b.bytes.data() + 20, blob::read_u32(b.bytes.data() + 20) + 1);
    expect(b.open(), Errc::bad_header, "do not match");
  }
  SUBCASE("B14 a data offset inside the table") {
    Blob b;
    Blob::put_u64(b.bytes.data() + 40, 64);
    expect(b.open(), Errc::bad_header, "data offset 64");
  }
  SUBCASE("B15 one flipped bit in the weights") {
    Blob b;
    b.bytes[b.bytes.size() - 200] ^= 0x10;
    expect(b.open(), Errc::checksum_mismatch, "does not match the recorded");
  }
  SUBCASE("B16 a tensor name without its terminating NUL") {
    Blob b;
    std::memset(b.entry("norm.bias"), 'n', 64);
    b.seal();
    expect(b.open(), Errc::bad_tensor_entry, "no NUL-terminated name");
  }
}

TEST_CASE("blob: wrong dtype or rank, and dimensions that overflow size arithmetic") {
  SUBCASE("B17 dtype float16 (reserved, not readable in v1)") {
    Blob b;
    Blob::put_u32(b.entry("norm.weight") + 64, 2);
    b.seal();
    expect(b.open(), Errc::bad_tensor_entry, "tensor 'norm.weight' has unknown dtype 2");
  }
  SUBCASE("B18 rank 5") {
    Blob b;
    Blob::put_u32(b.entry("norm.weight") + 72, 5);
    b.seal();
    expect(b.open(), Errc::bad_tensor_entry, "has rank 5 (expected 1..4)");
  }
  SUBCASE("B19 plain dims 2^31 x 2^31 whose byte count wraps to 0") {
    // 2^62 elements x 4 bytes = 2^64 = 0 (mod 2^64): a reader multiplying without a bound would
    // take this 0-byte entry for a 2^62-element tensor.
    Blob b;
    unsigned char* e = b.entry("norm.weight");
    Blob::put_u32(e + 72, 2);
    Blob::put_u64(e + 80, std::uint64_t(1) << 31);
    Blob::put_u64(e + 88, std::uint64_t(1) << 31);
    Blob::put_u64(e + 120, 0);
    b.seal();
    expect(b.open(), Errc::bad_tensor_entry, "tensor 'norm.weight' records 0 bytes, its shape needs 0");
  }
  SUBCASE("B20 packed dims 2^31 x 2^31 whose byte count wraps to 0") {
    Blob b;
    unsigned char* e = b.entry("head.weight");
    Blob::put_u64(e + 80, std::uint64_t(1) << 31);
    Blob::put_u64(e + 88, std::uint64_t(1) << 31);
    Blob::put_u64(e + 120, 0);
    b.seal();
    expect(b.open(), Errc::bad_tensor_entry, "tensor 'head.weight' records 0 bytes");
  }
  SUBCASE("B21 a dimension of 2^63") {
    Blob b;
    unsigned char* e = b.entry("norm.weight");
    Blob::put_u64(e + 80, std::uint64_t(1) << 63);
    b.seal();
    expect(b.open(), Errc::bad_tensor_entry, "tensor 'norm.weight' records 384 bytes");
  }
  SUBCASE("B22 a bfloat16 tensor in a version-1 blob (the dtype came with version 2)") {
    Blob b;
    Blob::put_u32(b.bytes.data() + 8, 1);
    unsigned char* e = b.entry("norm.weight");
    Blob::put_u32(e + 64, 3);
    Blob::put_u64(e + 120, 192);  // the bytes a bfloat16 [96] needs
    b.seal();
    expect(b.open(), Errc::bad_tensor_entry, "tensor 'norm.weight' has unknown dtype 3 (format version 1)");
  }
  SUBCASE("B23 an int8 tensor in the float32 packed layout") {
    Blob b;
    unsigned char* e = b.entry("head.weight");
    Blob::put_u32(e + 64, 4);
    b.seal();
    expect(b.open(), Errc::bad_tensor_entry, "tensor 'head.weight' has layout 1, unknown or not for dtype 4");
  }
  SUBCASE("B24 an int8 packed tensor whose bytes are those of float32") {
    Blob b;
    unsigned char* e = b.entry("head.weight");
    Blob::put_u32(e + 64, 4);  // int8
    Blob::put_u32(e + 68, 3);  // gemm_b16_k4
    b.seal();
    expect(b.open(), Errc::bad_tensor_entry, "tensor 'head.weight' records");
  }
}

TEST_CASE("blob + config: a config or compiled header that does not match the blob") {
  Blob b;
  REQUIRE(b.open().ok());
  BlobView view;
  REQUIRE(view.open(b.mem, b.size).ok());
  SUBCASE("C1 the config names another blob's checksum") {
    static Vit<Cfg> model;
    expect(model.bind(view, Cfg::blob_checksum ^ 0x100), Errc::wrong_blob, "this model expects");
    CHECK_FALSE(model.bound());
  }
  SUBCASE("C2 a header compiled for one more block") {
    static Vit<Deeper> model;
    expect(model.bind(view), Errc::missing_tensor, "missing tensor 'blocks.5.norm1.weight'");
  }
  SUBCASE("C3 a header compiled for one block fewer (the blob has tensors the model never uses)") {
    static Vit<Shallower> model;
    expect(model.bind(view), Errc::shape_mismatch, "tensors but the model uses");
  }
  SUBCASE("C4 a header compiled for a wider MLP (wrong shape)") {
    static Vit<Wider> model;
    expect(model.bind(view), Errc::shape_mismatch, "tensor 'blocks.0.mlp.fc1.weight' has shape [96, 384], expected [96, 400]");
  }
}

TEST_CASE("blob: a tensor stored in the wrong layout") {
  // patch_embed.pos_bias [144, 96] is plain; as gemm_b16 it still has a valid size (96 = 6 x 16),
  // so only the binder's layout check can refuse it.
  Blob b;
  Blob::put_u32(b.entry("patch_embed.pos_bias") + 68, 1);
  b.seal();
  REQUIRE(b.open().ok());
  BlobView view;
  REQUIRE(view.open(b.mem, b.size).ok());
  static Vit<Cfg> model;
  // C5
  expect(model.bind(view, view.checksum()), Errc::layout_mismatch, "tensor 'patch_embed.pos_bias' has layout 1, expected 0");
}

TEST_CASE("NaN and Inf weights: refused at pack time, and by the opt-in check at load") {
  SUBCASE("N1 vitcc-pack refuses NaN, naming the tensor and the element") {
    std::vector<pack::BlobTensor> t(2);
    t[0] = {"norm.weight", blob::Layout::plain, {4}, {1, 2, 3, 4}};
    t[1] = {"norm.bias", blob::Layout::plain, {4}, {0, 0, std::nanf(""), 0}};
    try {
      pack::check_finite(t, "m.onnx");
      FAIL("NaN accepted");
    } catch (const pack::PackError& e) {
      CHECK(std::string(e.what()) == "m.onnx: tensor 'norm.bias' holds NaN at element 2 of 4: refusing to pack non-finite weights");
    }
  }
  SUBCASE("N2 vitcc-pack refuses Inf") {
    std::vector<pack::BlobTensor> t(1);
    t[0] = {"head.bias", blob::Layout::plain, {2}, {-std::numeric_limits<float>::infinity(), 0}};
    CHECK_THROWS_WITH(pack::check_finite(t, "m.onnx"),
                      "m.onnx: tensor 'head.bias' holds Inf at element 0 of 2: refusing to pack non-finite weights");
  }
  SUBCASE("N3 check_finite at load finds a NaN in an otherwise valid (re-sealed) blob") {
    Blob b;
    unsigned char* e = b.entry("blocks.2.norm2.bias");
    const std::uint64_t at = blob::read_u64(e + 112) + 4 * 7;
    const std::uint32_t qnan = 0x7fc00000u;
    std::memcpy(b.bytes.data() + at, &qnan, 4);
    b.seal();
    REQUIRE(b.open().ok());  // the format allows any float bits; only the opt-in check looks
    BlobView view;
    REQUIRE(view.open(b.mem, b.size).ok());
    expect(check_finite(view), Errc::non_finite, "tensor 'blocks.2.norm2.bias' holds NaN at element 7");
  }
}

// =============================================================================================
TEST_CASE("ONNX: the base model loads (the baseline every case changes)") {
  Onnx o;
  CHECK(load_error(o.save("base")) == "");
}

TEST_CASE("ONNX: structure") {
  SUBCASE("O1 an unsupported op, named with its node") {
    Onnx o;
    o.m.mutable_graph()->mutable_node(1)->set_op_type("Celu");
    expect_refusal(o.save("unsupported"), {"unsupported op 'Celu' at node 'relu'"});
  }
  SUBCASE("O2 a cyclic graph") {
    Onnx o;
    o.m.mutable_graph()->mutable_node(0)->set_input(1, "y");  // s = x + y, y = relu(s)
    expect_refusal(o.save("cyclic"), {"is part of a cycle in the graph"});
  }
  SUBCASE("O3 a missing initializer") {
    Onnx o;
    o.m.mutable_graph()->mutable_initializer()->Clear();
    expect_refusal(o.save("missing_init"), {"node 'add' (Add)", "input 'b' is not produced by any node, initializer or graph input"});
  }
  SUBCASE("O4 bytes that are not an ONNX protobuf") {
    const fs::path dir = scratch() / "garbage";
    fs::create_directories(dir);
    spit((dir / "model.onnx").string(), std::string("\x0a\xff\xff\xff\xff\x0f garbage", 14));
    expect_refusal((dir / "model.onnx").string(), {"protobuf parsing failed"});
  }
  SUBCASE("O5 an empty file") {
    const fs::path dir = scratch() / "empty";
    fs::create_directories(dir);
    spit((dir / "model.onnx").string(), "");
    expect_refusal((dir / "model.onnx").string(), {"file is empty"});
  }
}

TEST_CASE("ONNX: external data") {
  SUBCASE("O6 the external data file is missing") {
    Onnx o;
    o.external_bias("weights.bin");
    expect_refusal(o.save("ext_missing"), {"initializer 'b'", "external data file 'weights.bin' is missing"});
  }
  SUBCASE("O7 the external data file is too short") {
    Onnx o;
    o.external_bias("weights.bin");
    const std::string path = o.save("ext_short");
    spit((fs::path(path).parent_path() / "weights.bin").string(), "ab");
    expect_refusal(path, {"initializer 'b'", "is too short: 2 bytes, the tensor needs 4 bytes at offset 0"});
  }
  SUBCASE("O8 an offset near 2^63 (overflow when added to the size)") {
    Onnx o;
    o.external_bias("weights.bin", std::numeric_limits<std::int64_t>::max() - 1);
    const std::string path = o.save("ext_offset");
    spit((fs::path(path).parent_path() / "weights.bin").string(), "abcdefgh");
    expect_refusal(path, {"initializer 'b'", "is too short"});
  }
  SUBCASE("O9 a path escaping the model's folder") {
    Onnx o;
    o.external_bias("../ext_escape_secret.bin");
    spit((scratch() / "ext_escape_secret.bin").string(), "abcd");
    expect_refusal(o.save("ext_escape"), {"external data location '../ext_escape_secret.bin' escapes the model's folder"});
  }
  SUBCASE("O10 an absolute path") {
    Onnx o;
    o.external_bias("/etc/passwd");
    expect_refusal(o.save("ext_absolute"), {"external data location '/etc/passwd' is absolute"});
  }
}

TEST_CASE("ONNX: sizes that overflow or exhaust memory") {
  // Opset 18 is newer than the installed ONNX checker knows, so vitcc's own loader checks are the
  // only line of defence for these (the checker is skipped, as for real opset-18 exports).
  SUBCASE("O11 an initializer of 2^32 x 2^32 elements") {
    Onnx o(18);
    auto* t = o.find_init("b");
    t->clear_dims();
    t->add_dims(std::int64_t(1) << 32);
    t->add_dims(std::int64_t(1) << 32);
    expect_refusal(o.save("init_overflow"), {"initializer 'b'", "has more than 268435456 elements"});
  }
  SUBCASE("O12 an initializer claiming 10^8 values without holding them (no allocation first)") {
    Onnx o(18);
    auto* t = o.find_init("b");
    t->clear_dims();
    t->add_dims(100000000);
    expect_refusal(o.save("init_claims"), {"initializer 'b'", "holds 1 values, shape [100000000] needs 100000000"});
  }
  SUBCASE("O13 raw data shorter than the shape") {
    Onnx o;
    auto* t = o.find_init("b");
    t->clear_float_data();
    t->set_raw_data(std::string(3, '\0'));
    expect_refusal(o.save("raw_short"), {"initializer 'b'", "raw data holds 3 bytes, shape [1] needs 4"});
  }
  SUBCASE("O14 a negative dimension") {
    Onnx o(18);
    o.find_init("b")->set_dims(0, -4);
    expect_refusal(o.save("negative_dim"), {"initializer 'b'", "negative dimension in [-4]"});
  }
  SUBCASE("O15 an image input of 3 x 2^31 x 2^31") {
    Onnx o(13, {1, 3, std::int64_t(1) << 31, std::int64_t(1) << 31});
    expect_refusal(o.save("input_overflow"), {"graph input 'x'", "has more than 268435456 elements"});
  }
  SUBCASE("O16 a ConstantOfShape asking for 2^40 elements") {
    Onnx o;
    auto* shape = o.m.mutable_graph()->add_initializer();
    shape->set_name("big_shape");
    shape->set_data_type(onnx::TensorProto::INT64);
    shape->add_dims(2);
    shape->add_int64_data(std::int64_t(1) << 20);
    shape->add_int64_data(std::int64_t(1) << 20);
    o.node("ConstantOfShape", {"big_shape"}, {"zeros"}, "huge");
    o.m.mutable_graph()->mutable_node(0)->set_input(1, "zeros");  // add: s = x + zeros
    o.m.mutable_graph()->mutable_node()->SwapElements(1, 2);      // topological order: huge, add, relu
    o.m.mutable_graph()->mutable_node()->SwapElements(0, 1);
    expect_refusal(o.save("constant_of_shape"), {"node 'huge' (ConstantOfShape)", "has more than 268435456 elements"});
  }
  SUBCASE("O17 a Reshape target whose element count overflows 64 bits (found by fuzz_onnx)") {
    Onnx o;
    auto* shape = o.m.mutable_graph()->add_initializer();
    shape->set_name("target");
    shape->set_data_type(onnx::TensorProto::INT64);
    shape->add_dims(2);
    shape->add_int64_data(std::int64_t(1) << 62);
    shape->add_int64_data(8);
    o.node("Reshape", {"s", "target"}, {"t"}, "reshape");
    expect_refusal(o.save("reshape_overflow"), {"node 'reshape' (Reshape)", "shape [4611686018427387904, 8] has too many elements"});
  }
}

namespace {
constexpr std::int64_t kMin64 = std::numeric_limits<std::int64_t>::min(), kMax64 = std::numeric_limits<std::int64_t>::max();

// The base model plus a subgraph on constants whose output nothing reads: the folder evaluates it
// anyway (constants are folded before dead nodes are dropped), so whatever a file holds is computed.
struct DeadSubgraph : Onnx {
  explicit DeadSubgraph(int opset = 13) : Onnx(opset) {}
  void op(const std::string& type, std::vector<std::string> ins, const std::string& name) { node(type, ins, {name + "_out"}, name); }
};
}  // namespace

TEST_CASE("ONNX: integer arithmetic the folder and the interpreter compute on file data") {
  // Each of these was undefined behaviour (signed overflow, a float converted out of range) or a
  // SIGFPE before the checks; the first is the 3-node file of the security review.
  SUBCASE("O18 INT64_MIN / -1 (was SIGFPE, exit 136)") {
    DeadSubgraph o;
    o.ints("ka", {1}, {kMin64});
    o.ints("kb", {1}, {-1});
    o.op("Div", {"ka", "kb"}, "div");
    expect_refusal(o.save("div_min"), {"node 'div' (Div)", "-9223372036854775808 / -1 overflows int64"});
  }
  SUBCASE("O19 int64 Add, Sub, Mul and Neg that overflow") {
    DeadSubgraph o;
    o.ints("max", {1}, {kMax64});
    o.ints("min", {}, {kMin64});
    o.ints("one", {}, {1});
    o.ints("big", {2}, {std::int64_t(1) << 32, 3});
    o.op("Add", {"max", "one"}, "add1");
    expect_refusal(o.save("add_overflow"), {"node 'add1' (Add)", "9223372036854775807 + 1 overflows int64"});
    o.m.mutable_graph()->mutable_node(2)->set_op_type("Sub");
    o.m.mutable_graph()->mutable_node(2)->set_input(0, "min");
    expect_refusal(o.save("sub_overflow"), {"node 'add1' (Sub)", "-9223372036854775808 - 1 overflows int64"});
    o.m.mutable_graph()->mutable_node(2)->set_op_type("Mul");
    o.m.mutable_graph()->mutable_node(2)->set_input(0, "big");
    o.m.mutable_graph()->mutable_node(2)->set_input(1, "big");
    expect_refusal(o.save("mul_overflow"), {"node 'add1' (Mul)", "4294967296 * 4294967296 overflows int64"});
    o.m.mutable_graph()->mutable_node(2)->set_op_type("Neg");
    o.m.mutable_graph()->mutable_node(2)->mutable_input()->RemoveLast();
    o.m.mutable_graph()->mutable_node(2)->set_input(0, "min");
    expect_refusal(o.save("neg_overflow"), {"node 'add1' (Neg)", "-(-9223372036854775808) overflows int64"});
  }
  SUBCASE("O20 int32 results are checked against the int32 range") {
    DeadSubgraph o;
    o.ints("ka", {1}, {std::numeric_limits<std::int32_t>::min()}, onnx::TensorProto::INT32);
    o.ints("kb", {1}, {-1}, onnx::TensorProto::INT32);
    o.op("Div", {"ka", "kb"}, "div32");
    expect_refusal(o.save("div32"), {"node 'div32' (Div)", "-2147483648 / -1 overflows int32"});
  }
  SUBCASE("O21 Range whose limit - start overflows, and a float Range to NaN") {
    DeadSubgraph o;
    o.ints("rs", {}, {kMin64});
    o.ints("rl", {}, {kMax64});
    o.ints("rd", {}, {1});
    o.op("Range", {"rs", "rl", "rd"}, "range");
    expect_refusal(o.save("range_span"), {"node 'range' (Range)", "would have 18446744073709551615 elements"});
    DeadSubgraph f;
    f.floats("rs", {}, 0.0f);
    f.floats("rl", {}, std::numeric_limits<float>::quiet_NaN());
    f.floats("rd", {}, 1.0f);
    f.op("Range", {"rs", "rl", "rd"}, "frange");
    expect_refusal(f.save("range_nan"), {"node 'frange' (Range)", "Range bounds are not finite"});
  }
  SUBCASE("O22 Slice steps of INT64_MIN and 2^62 (valid: one element each)") {
    DeadSubgraph o;
    o.ints("data", {4, 5}, std::vector<std::int64_t>(20, 7));
    o.ints("st", {1}, {-1});
    o.ints("en", {1}, {kMin64});
    o.ints("ax", {1}, {0});
    o.ints("step", {1}, {kMin64});
    o.ints("big", {1}, {std::int64_t(1) << 62});
    o.ints("zero", {1}, {0});
    o.op("Slice", {"data", "st", "en", "ax", "step"}, "slice_min");
    o.op("Slice", {"data", "zero", "big", "ax", "big"}, "slice_big");
    CHECK(load_error(o.save("slice_steps")) == "");
  }
  SUBCASE("O23 Split with no outputs (was SIGFPE) and split sizes whose sum overflows") {
    DeadSubgraph o(18);  // the ONNX checker would refuse a Split without outputs at opsets it knows
    o.ints("data", {4}, {1, 2, 3, 4});
    o.node("Split", {"data"}, {}, "split0");
    expect_refusal(o.save("split_none"), {"node 'split0' (Split)", "Split without outputs"});
    DeadSubgraph s;
    s.ints("data", {4}, {1, 2, 3, 4});
    s.ints("sizes", {3}, {kMax64, kMax64, 6});
    s.node("Split", {"data", "sizes"}, {"p", "q", "r"}, "split3");
    expect_refusal(s.save("split_sum"), {"node 'split3' (Split)", "do not add up to 4"});
  }
  SUBCASE("O24 an empty tensor whose other dimensions are huge (Concat of two overflowed)") {
    DeadSubgraph o;
    o.ints("e", {0, std::int64_t(1) << 62}, {});
    o.node("Concat", {"e", "e"}, {"cat"}, "concat");
    o.m.mutable_graph()->mutable_node(2)->add_attribute()->set_name("axis");
    o.m.mutable_graph()->mutable_node(2)->mutable_attribute(0)->set_type(onnx::AttributeProto::INT);
    o.m.mutable_graph()->mutable_node(2)->mutable_attribute(0)->set_i(1);
    expect_refusal(o.save("empty_huge"), {"initializer 'e'", "is empty, but its other dimensions multiply to more than 268435456"});
  }
  SUBCASE("O25 Pad and Conv sizes that overflow (Pad: found by fuzz_onnx_graph)") {
    DeadSubgraph o;
    o.ints("data", {2, 2}, {1, 2, 3, 4});
    o.ints("pads", {4}, {kMax64, 0, 1, 0});
    o.op("Pad", {"data", "pads"}, "pad");
    expect_refusal(o.save("pad_overflow"), {"node 'pad' (Pad)", "a padded dimension overflows int64"});
    DeadSubgraph c;
    c.floats("img", {1, 1, 4, 4}, 1.0f);
    c.floats("w", {1, 1, 2, 2}, 1.0f);
    auto* n = c.node("Conv", {"img", "w"}, {"conv_out"}, "conv");
    auto* a = n->add_attribute();
    a->set_name("dilations");
    a->set_type(onnx::AttributeProto::INTS);
    a->add_ints(kMax64);
    a->add_ints(1);
    expect_refusal(c.save("conv_overflow"), {"node 'conv' (Conv)", "an output size overflows int64"});
  }
  SUBCASE("O26 Cast of a float beyond the int64 range") {
    DeadSubgraph o;
    o.floats("f", {1}, 1e30f);
    auto* n = o.node("Cast", {"f"}, {"i"}, "cast");
    auto* a = n->add_attribute();
    a->set_name("to");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(onnx::TensorProto::INT64);
    expect_refusal(o.save("cast_range"), {"node 'cast' (Cast)", "is out of the range of int64"});
  }
  SUBCASE("O27 BatchNormalization with no channels (was SIGFPE; valid: an empty output)") {
    DeadSubgraph o;
    o.floats("x0", {2, 0, 3}, 0.0f);
    for (const char* p : {"sc", "bi", "me", "va"}) o.floats(p, {0}, 0.0f);
    o.op("BatchNormalization", {"x0", "sc", "bi", "me", "va"}, "bn");
    CHECK(load_error(o.save("bn_empty")) == "");
  }
  SUBCASE("O28 a NaN where an integer attribute belongs") {
    DeadSubgraph o(18);  // the checker would refuse the attribute type at opsets it knows
    o.ints("data", {3}, {1, 2, 3});
    o.ints("idx", {1}, {0});
    auto* n = o.node("Gather", {"data", "idx"}, {"g"}, "gather");
    auto* a = n->add_attribute();
    a->set_name("axis");
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(std::numeric_limits<float>::quiet_NaN());
    expect_refusal(o.save("attr_nan"), {"node 'gather' (Gather)", "attribute 'axis' is the float nan, expected an integer"});
  }
  SUBCASE("O29 an opset version beyond 32 bits (was read as opset 13)") {
    Onnx o;
    o.m.mutable_opset_import(0)->set_version((std::int64_t(1) << 32) + 13);
    expect_refusal(o.save("opset_wide"), {"opset version 4294967309 of domain '' is out of range"});
  }
}

// =============================================================================================
TEST_CASE("JSON config (every tool: tools/common/model_config)") {
  CHECK(config_error(demo_json()) == "");  // the baseline
  SUBCASE("J1 not JSON") { expect_config_refusal("{\"format\": ", "not a valid JSON config"); }
  SUBCASE("J2 another format version") { expect_config_refusal(edited("/format_version", "2"), "not a vitcc config of format version 1"); }
  SUBCASE("J3 a header outside the config's folder") {
    expect_config_refusal(edited("/header", "\"../../evil.hpp\""), "header: \"../../evil.hpp\" is not a plain file name");
  }
  SUBCASE("J4 an absolute blob path") {
    expect_config_refusal(edited("/blob/file", "\"/etc/passwd\""), "blob.file: \"/etc/passwd\" is not a plain file name");
  }
  SUBCASE("J5 a name that would inject code into the runner's translation unit") {
    expect_config_refusal(edited("/name", "\"demo\\n#include </etc/shadow>\""),
                          "name: \"demo\\n#include </etc/shadow>\" is not a model name: expected 1 to 64 letters");
  }
  SUBCASE("J6 a malformed config hash") {
    expect_config_refusal(edited("/config_hash", "\"0x12\\nint x;\""), "config_hash: expected \"0x\" followed by 16 hex digits");
  }
  SUBCASE("J7 input dimensions that overflow") {
    expect_config_refusal(edited("/input/shape", "[1, 3, 1099511627776, 1099511627776]"), "input.shape: dimension 2 is 1099511627776");
  }
  SUBCASE("J8 a negative output dimension") {
    expect_config_refusal(edited("/output/shape", "[1, -5]"), "output.shape: dimension 1 is -5");
  }
  SUBCASE("J9 a self-check record longer than the output (read past the output)") {
    expect_config_refusal(edited("/self_check/output_first", "[1,2,3,4,5,6,7,8,9,10,11]"), "self_check.output_first");
  }
  SUBCASE("J10 crop_pct of 0") { expect_config_refusal(edited("/preprocessing/crop_pct", "0"), "preprocessing.crop_pct: expected a number in (0, 1]"); }
  SUBCASE("J11 a standard deviation of 0") {
    expect_config_refusal(edited("/preprocessing/std", "[0.2, 0, 0.2]"), "preprocessing.std: a standard deviation of 0");
  }
  SUBCASE("J12 a mean beyond float32") {
    expect_config_refusal(edited("/preprocessing/mean", "[1e300, 0, 0]"), "preprocessing.mean: expected a number within the float32 range");
  }
  SUBCASE("J13 a missing field") {
    nlohmann::json j = nlohmann::json::parse(demo_json());
    j.erase("blob");
    expect_config_refusal(j.dump(), "blob: missing");
  }
  // vitcc-compile names its outputs DIR/NAME.h, DIR/libNAME.a, DIR/NAME_capi.cpp: a name is a file stem.
  SUBCASE("J14 a name climbing out of vitcc-compile's output folder") {
    expect_config_refusal(edited("/name", "\"../../x\""), "name: \"../../x\" is not a model name: expected 1 to 64 letters");
  }
  SUBCASE("J15 a name with a slash") {
    expect_config_refusal(edited("/name", "\"models/x\""), "name: \"models/x\" is not a model name");
  }
  SUBCASE("J16 a name of dots (a hidden file, the parent folder)") {
    expect_config_refusal(edited("/name", "\"..\""), "name: \"..\" is not a model name: expected 1 to 64 letters, digits, '_', '-' or '.', not starting with '.'");
  }
  SUBCASE("J17 a name ending like a tagged file (NAME.<16 hex>)") {
    expect_config_refusal(edited("/name", "\"demo.0123456789abcdef\""), "a name may not end in '.' and 16 hex digits");
  }
  SUBCASE("J18 a header with a quote and a newline (an #include that ends early)") {
    expect_config_refusal(edited("/header", "\"demo.hpp\\\"\\n#include \\\"/etc/passwd.hpp\""),
                          "header: \"demo.hpp\\\"\\n#include \\\"/etc/passwd.hpp\" is not a plain file name");
  }
  SUBCASE("J19 a header that is not a .hpp file") {
    expect_config_refusal(edited("/header", "\"demo.json\""), "header: \"demo.json\" is not a plain file name in the config's folder (1 to 255 letters, digits, '_', '-' or '.', not starting with '.', ending in .hpp)");
  }
  SUBCASE("J20 a blob path escaping the folder") {
    expect_config_refusal(edited("/blob/file", "\"../other/demo.vitcc\""), "blob.file: \"../other/demo.vitcc\" is not a plain file name");
  }
  SUBCASE("J21 a blob file name with a quote (written into .incbin and C string literals)") {
    expect_config_refusal(edited("/blob/file", "\"a\\\"b.vitcc\""), "blob.file: \"a\\\"b.vitcc\" is not a plain file name");
  }
  SUBCASE("J22 an architecture that would end the C header's comment") {
    expect_config_refusal(edited("/architecture", "\"vit */ int x; /*\""), "architecture: \"vit */ int x; /*\" is not an architecture");
  }
  SUBCASE("J23 a workspace size that is not an unsigned integer (a #define of the C header)") {
    expect_config_refusal(edited("/stats/workspace_bytes", "\"1u; int x\""), "stats.workspace_bytes: expected an unsigned integer");
  }
  SUBCASE("J24 blob bytes as a float") {
    expect_config_refusal(edited("/blob/bytes", "1e30"), "blob.bytes: expected an unsigned integer");
  }
  SUBCASE("J25 a malformed header checksum") {
    expect_config_refusal(edited("/header_checksum", "\"0xabc\""), "header_checksum: expected \"0x\" followed by 16 hex digits");
  }
  SUBCASE("J32 a precision vitcc does not have") {
    expect_config_refusal(edited("/precision", "\"fp16\""), "precision: \"fp16\" is not fp32, bf16 or int8");
  }
  SUBCASE("J33 a precision that is not a string") {
    expect_config_refusal(edited("/precision", "8"), "precision: ");
  }
}

TEST_CASE("JSON config: the files it names (load_model_config)") {
  const std::string& blob = demo_config().blob_file;
  const std::string& header = demo_config().header_file;
  CHECK(folder_error("ok", demo_json()) == "");  // the baseline: a copy of the demo folder
  SUBCASE("J26 a blob that is a symbolic link out of the folder") {
    const std::string msg = folder_error("blob-link", demo_json(), [&](const fs::path& d) {
      fs::remove(d / blob);
      fs::create_symlink(fs::path(VITCC_DEMO_MODEL_DIR) / blob, d / blob);
    });
    expect_folder_refusal(msg, "blob.file: '" + blob + "' leads outside the config's folder");
  }
  SUBCASE("J27 a header that is a symbolic link out of the folder") {
    const std::string msg = folder_error("header-link", demo_json(), [&](const fs::path& d) {
      fs::remove(d / header);
      fs::create_symlink(fs::path(VITCC_DEMO_MODEL_DIR) / header, d / header);
    });
    expect_folder_refusal(msg, "header: '" + header + "' leads outside the config's folder");
  }
  SUBCASE("J28 a missing blob") {
    const std::string msg = folder_error("no-blob", demo_json(), [&](const fs::path& d) { fs::remove(d / blob); });
    expect_folder_refusal(msg, "blob.file: its weight blob");
    expect_folder_refusal(msg, "is missing");
  }
  SUBCASE("J29 a blob that is a folder") {
    const std::string msg = folder_error("blob-dir", demo_json(), [&](const fs::path& d) {
      fs::remove(d / blob);
      fs::create_directory(d / blob);
    });
    expect_folder_refusal(msg, "is not a regular file");
  }
  SUBCASE("J30 a blob of another size than the config records (a blob from another pack)") {
    const std::string msg = folder_error("blob-size", demo_json(), [&](const fs::path& d) {
      std::ofstream(d / blob, std::ios::binary | std::ios::app) << std::string(64, '\0');
    });
    expect_folder_refusal(msg, "blob.bytes: the config records");
  }
  SUBCASE("J31 a header that is not the one the config records (a header from another pack)") {
    const std::string msg = folder_error("header-other", demo_json(), [&](const fs::path& d) {
      std::ofstream(d / header, std::ios::app) << "// edited\n";
    });
    expect_folder_refusal(msg, "header_checksum: ");
    expect_folder_refusal(msg, "(a header from another pack?)");
  }
}

// =============================================================================================
TEST_CASE("inputs: .npy and .bin") {
  const std::string one_image(3 * 96 * 96 * 4, '\0');
  CHECK(input_error("ok.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 96, 96), }", one_image)) == "");
  SUBCASE("I1 wrong shape") {
    CHECK(contains(input_error("shape.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 96, 95), }", one_image)),
                   ".npy shape [1, 3, 96, 95] does not match the expected"));
  }
  SUBCASE("I2 wrong dtype (int32)") {
    CHECK(contains(input_error("dtype.npy", npy("{'descr': '<i4', 'fortran_order': False, 'shape': (1, 3, 96, 96), }", one_image)),
                   "unsupported .npy dtype '<i4'"));
  }
  SUBCASE("I3 big-endian float32") {
    CHECK(contains(input_error("be.npy", npy("{'descr': '>f4', 'fortran_order': False, 'shape': (1, 3, 96, 96), }", one_image)),
                   "unsupported .npy dtype '>f4'"));
  }
  SUBCASE("I4 data cut short") {
    CHECK(contains(input_error("short.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 96, 96), }", one_image)),
                   ".npy data is truncated"));
  }
  SUBCASE("I5 a batch of 2^62 images (size arithmetic overflow)") {
    CHECK(contains(input_error("huge.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 3, 96, 96), }", one_image)),
                   ".npy data is truncated"));
  }
  SUBCASE("I6 a .bin that is not a whole number of images") {
    CHECK(contains(input_error("part.bin", one_image.substr(0, 1000)), "is not a whole, non-zero number of 3x96x96 float32 images"));
  }
}

TEST_CASE("inputs: images") {
  const std::string png = slurp(VITCC_DEMO_DIR "/input.png");
  CHECK(input_error("ok.png", png) == "");
  SUBCASE("I7 a truncated PNG") {
    CHECK(contains(input_error("cut.png", png.substr(0, png.size() / 2)), "cannot decode image"));
  }
  SUBCASE("I8 a PNG claiming 16384 x 16384 pixels") {
    CHECK(contains(input_error("huge.png", png_header(16384, 16384)), "image is 16384x16384 pixels; at most 67108864 pixels (64 Mpx)"));
  }
  SUBCASE("I9 a PNG claiming 100000 x 10 pixels") {
    CHECK(contains(input_error("wide.png", png_header(100000, 10)), "cannot decode image"));
  }
  SUBCASE("I10 a model that expects 1 channel, given an RGB picture") {
    CHECK(contains(input_error("grey_model.png", png, 1), "image inputs give 3 channels (RGB) but the model expects 1"));
  }
  SUBCASE("I11 a PPM whose pixels are cut short") {
    CHECK(contains(input_error("cut.ppm", "P6\n100 100\n255\n" + std::string(3000, 'x')),
                   "truncated PNM, 100x100 pixels need 30000 bytes of pixel data, found 3000"));
  }
  SUBCASE("I12 an empty file") { CHECK(contains(input_error("empty.jpg", ""), "the file is empty")); }
  SUBCASE("I15 a PGM whose header number overflows stb's int parse (found by fuzz_image)") {
    CHECK(contains(input_error("overflow.pgm", "P5\n40 32222222222222\n255\n"),
                   "a PNM header number is larger than 1073741824"));
  }
  SUBCASE("I14 a PNG whose first IDAT chunk is empty (stb_image 2.27: memcpy to null; found by fuzz_image)") {
    const std::string png_empty_idat = png_header(8, 8) + std::string("\0\0\0\0IDAT\0\0\0\0", 12);
    CHECK(contains(input_error("empty_idat.png", png_empty_idat), "corrupt PNG (an empty first IDAT chunk)"));
  }
  SUBCASE("I13 a JPEG Huffman table with more than 256 codes (stb_image 2.27 writes past its table)") {
    // SOI, then a DHT segment whose 16 code counts add up to 16 x 17 = 272, then its values.
    std::string jpeg("\xff\xd8\xff\xc4", 4);
    const std::size_t len = 2 + 1 + 16 + 272;
    jpeg += char(len >> 8);
    jpeg += char(len & 0xff);
    jpeg += '\x00';
    jpeg += std::string(16, '\x11');
    jpeg += std::string(272, '\x01');
    jpeg += std::string("\xff\xd9", 2);
    CHECK(contains(input_error("dht.jpg", jpeg), "corrupt JPEG (a Huffman table with 272 codes; at most 256 exist)"));
  }
}
