// Tests for vitcc-run's input/output files (tools/run/tensor_io.*, image_preprocess.*).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "image_preprocess.hpp"
#include "tensor_io.hpp"

namespace fs = std::filesystem;
using vitcc::run::Preprocess;
using vitcc::run::Tensor;
using vitcc::run::preprocess_image;
using vitcc::run::read_input;
using vitcc::run::top_k;
using vitcc::run::write_output;

namespace {

// A fresh directory per test case, removed afterwards.
struct TempDir {
  fs::path dir;
  TempDir() {
    static int counter = 0;
    dir = fs::temp_directory_path() /
          ("vitcc_test_tensor_io_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string operator/(const std::string& name) const { return (dir / name).string(); }
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(f.good());
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

template <typename T>
std::string raw(const std::vector<T>& v) {  // host order; the tests assume a little-endian host
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// A .npy file with the given header dict (padded to 64 bytes) and data.
std::string npy(const std::string& dict, const std::string& data, int major = 1) {
  const std::size_t prefix = major == 1 ? 10 : 12;
  std::string h = dict;
  while ((prefix + h.size() + 1) % 64 != 0) h += ' ';
  h += '\n';
  std::string out("\x93NUMPY", 6);
  out += static_cast<char>(major);
  out += '\0';
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  for (std::size_t i = 0; i < len_bytes; ++i) out += static_cast<char>((h.size() >> (8 * i)) & 0xff);
  return out + h + data;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no exception)";
}

// Synthetic test image, also used (same formula) to make the PIL reference values below.
unsigned char synth(int x, int y, int c) {
  return static_cast<unsigned char>((x * 37 + y * 59 + c * 101 + ((x * y * 7) % 23) * 5) % 256);
}
std::vector<unsigned char> synth_image(int w, int h) {
  std::vector<unsigned char> px(static_cast<std::size_t>(w * h * 3));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) px[static_cast<std::size_t>((y * w + x) * 3 + c)] = synth(x, y, c);
  return px;
}

std::string ppm(int w, int h, const std::vector<unsigned char>& rgb) {
  return "P6\n# test image\n" + std::to_string(w) + " " + std::to_string(h) + "\n255\n" +
         std::string(rgb.begin(), rgb.end());
}

Preprocess make_pp(std::int64_t h, std::int64_t w, const char* interp, float crop_pct) {
  Preprocess pp;
  pp.input_h = h;
  pp.input_w = w;
  pp.mean = {0.485f, 0.456f, 0.406f};
  pp.std = {0.229f, 0.224f, 0.225f};
  pp.interpolation = interp;
  pp.crop_pct = crop_pct;
  return pp;
}

// Checks t against 8-bit pixels (CHW) normalised exactly as torchvision does in float32.
void check_against_pixels(const Tensor& t, const std::vector<int>& pixels, const Preprocess& pp) {
  REQUIRE(t.shape == std::vector<std::int64_t>{1, 3, pp.input_h, pp.input_w});
  REQUIRE(t.data.size() == pixels.size());
  const std::size_t plane = static_cast<std::size_t>(pp.input_h * pp.input_w);
  float worst = 0;
  for (std::size_t i = 0; i < pixels.size(); ++i) {
    const std::size_t c = i / plane;
    const float want = (static_cast<float>(pixels[i]) / 255.0f - pp.mean[c]) / pp.std[c];
    worst = std::max(worst, std::fabs(t.data[i] - want));
  }
  // The implementation reproduces Pillow's 8-bit resampling, so agreement is exact up to
  // float rounding. (One uint8 level is 1/255/std ~ 0.017 in these units.)
  CHECK(worst <= 1e-5f);
}

// Reference pixels: Pillow 9.4 + torchvision 0.14 on Image.fromarray(synth_image), through
//   Resize(floor(size / crop_pct), interpolation) + CenterCrop(size)          (square sizes)
//   F.resize(img, [round(H / r), round(W / r)], BILINEAR) + CenterCrop(h, w)  (non-square,
//       r = min(H / floor(h / crop_pct), W / floor(w / crop_pct)), timm's ResizeKeepRatio)
// read back as uint8, channel-major.

// 23x17 -> resized 8x6 -> 6x6, bilinear, crop_pct 0.875 (downscale: antialiased)
const std::vector<int> kDown23x17Bilinear = {
    123, 119, 149, 144, 120, 113, 143, 142, 135, 134, 115, 146, 111, 143, 152, 117, 137, 139,
    128, 113, 148, 113, 138, 139, 139, 84,  132, 144, 125, 137, 111, 144, 133, 127, 166, 120,
    139, 138, 130, 130, 109, 156, 111, 109, 111, 117, 113, 136, 112, 88,  113, 138, 104, 140,
    111, 116, 95,  133, 125, 127, 86,  130, 141, 119, 135, 115, 145, 125, 129, 136, 107, 149,
    127, 136, 134, 110, 141, 122, 127, 154, 142, 150, 147, 114, 143, 154, 147, 130, 120, 115,
    145, 145, 138, 112, 112, 112, 150, 138, 129, 142, 106, 105, 150, 112, 140, 136, 136, 139,
};
// 23x17 -> resized 8x6 -> 6x6, bicubic, crop_pct 0.875
const std::vector<int> kDown23x17Bicubic = {
    121, 116, 152, 148, 115, 112, 144, 144, 132, 135, 111, 145, 103, 148, 157, 110, 142, 141,
    131, 110, 154, 108, 141, 139, 144, 71,  134, 149, 119, 140, 105, 150, 133, 122, 174, 115,
    141, 137, 135, 130, 105, 164, 108, 110, 109, 116, 111, 137, 111, 80,  114, 143, 97,  143,
    112, 117, 86,  137, 126, 126, 78,  137, 145, 116, 139, 114, 151, 122, 129, 137, 101, 154,
    125, 139, 134, 103, 147, 118, 126, 157, 143, 153, 151, 110, 145, 156, 146, 130, 119, 116,
    145, 146, 139, 106, 113, 113, 154, 138, 129, 148, 104, 99,  154, 104, 139, 137, 136, 139,
};
// 23x17 -> resized 8x6 -> 6x6, nearest, crop_pct 0.875
const std::vector<int> kDown23x17Nearest = {
    232, 77,  178, 66,  167, 12,  228, 43,  114, 238, 53,  239, 109, 9,   50,  154, 54,  95,
    21,  42,  178, 51,  72,  208, 158, 8,   114, 223, 73,  179, 39,  230, 50,  139, 215, 35,
    77,  178, 23,  167, 12,  113, 73,  144, 215, 83,  154, 84,  210, 110, 151, 255, 155, 196,
    122, 143, 23,  152, 173, 53,  3,   109, 215, 68,  174, 24,  140, 75,  151, 240, 60,  136,
    178, 23,  124, 12,  113, 214, 174, 245, 60,  184, 255, 185, 55,  211, 252, 100, 0,   41,
    223, 244, 124, 253, 18,  154, 104, 210, 60,  169, 19,  125, 241, 176, 252, 85,  161, 237,
};
// 5x4 -> resized 7x6 -> 6x6 (crop left = round(0.5) = 0), bicubic, crop_pct 0.875 (upscale)
const std::vector<int> kUp5x4Bicubic = {
    0,   13,  41,  66,  103, 132, 23,  49,  96,  134, 73,  119, 64,  110, 177, 214, 54,  93,
    102, 173, 237, 224, 97,  56,  153, 147, 147, 151, 110, 93,  189, 107, 48,  82,  109, 136,
    95,  113, 146, 183, 208, 239, 122, 168, 177, 114, 151, 168, 170, 210, 175, 41,  99,  106,
    232, 148, 64,  51,  133, 160, 119, 112, 113, 131, 181, 208, 0,   98,  188, 199, 214, 236,
    213, 250, 194, 12,  28,  67,  103, 140, 141, 80,  128, 150, 0,   40,  105, 160, 200, 189,
    45,  116, 180, 170, 71,  23,  99,  93,  93,  97,  43,  29,  135, 53,  0,   28,  55,  82,
};
// 5x4 -> resized 7x6 -> 6x6, bilinear, crop_pct 0.875 (upscale)
const std::vector<int> kUp5x4Bilinear = {
    0,   21,  48,  74,  100, 127, 30,  61,  100, 139, 86,  119, 69,  113, 164, 205, 79,  102,
    108, 166, 211, 215, 104, 73,  148, 146, 147, 154, 110, 97,  177, 112, 71,  90,  109, 129,
    101, 122, 149, 175, 201, 228, 131, 162, 164, 112, 150, 165, 170, 190, 160, 50,  106, 113,
    209, 145, 87,  60,  131, 155, 121, 119, 120, 127, 174, 198, 22,  103, 172, 191, 210, 230,
    202, 223, 176, 20,  46,  73,  104, 135, 137, 85,  123, 138, 15,  59,  110, 151, 176, 171,
    54,  112, 157, 161, 81,  43,  94,  92,  93,  100, 56,  43,  123, 58,  17,  36,  55,  75,
};
// 23x17 -> 4x6 (h x w), crop_pct 0.875: scale 4x6 differs per side, so timm resizes with
// ResizeKeepRatio to 6x4 (w x h) with bilinear whatever the configured interpolation.
const std::vector<int> kKeepRatio23x17 = {
    122, 130, 139, 137, 116, 140, 129, 128, 147, 122, 139, 144, 134, 115, 135, 129, 132, 136,
    135, 116, 133, 137, 137, 141, 140, 124, 128, 118, 133, 127, 130, 98,  106, 125, 118, 137,
    126, 113, 114, 128, 129, 119, 122, 129, 129, 124, 128, 116, 111, 137, 138, 132, 131, 128,
    135, 154, 144, 133, 124, 108, 138, 145, 136, 119, 112, 128, 130, 138, 129, 137, 125, 138,
};

}  // namespace

// ----------------------------------------------------------------------------------- .bin

TEST_CASE(".bin round trip and batch size inference") {
  TempDir tmp;
  Tensor t;
  t.shape = {2, 3, 2, 2};
  for (int i = 0; i < 24; ++i) t.data.push_back(static_cast<float>(i) * 0.5f - 3.0f);
  t.data[5] = -0.0f;
  t.data[7] = std::numeric_limits<float>::infinity();
  const std::string path = tmp / "x.bin";
  write_output(path, t);
  CHECK(fs::file_size(path) == 24 * 4);

  const Tensor r = read_input(path, 3, 2, 2, Preprocess{});
  CHECK(r.shape == std::vector<std::int64_t>{2, 3, 2, 2});
  REQUIRE(r.data.size() == t.data.size());
  CHECK(std::memcmp(r.data.data(), t.data.data(), t.data.size() * 4) == 0);

  // The same bytes read as 1x2x2 images: N = 6.
  CHECK(read_input(path, 1, 2, 2, Preprocess{}).shape == std::vector<std::int64_t>{6, 1, 2, 2});
  // Upper-case extension is accepted.
  write_bytes(tmp / "Y.BIN", raw(t.data));
  CHECK(read_input(tmp / "Y.BIN", 3, 2, 2, Preprocess{}).shape[0] == 2);
}

TEST_CASE(".bin with a wrong size names the file, its size and the image size") {
  TempDir tmp;
  const std::string empty = tmp / "empty.bin";
  write_bytes(empty, "");
  CHECK(error_of([&] { read_input(empty, 3, 2, 2, Preprocess{}); }) ==
        empty + ": file size 0 bytes is not a whole, non-zero number of 3x2x2 float32 images "
                "(48 bytes each)");

  const std::string partial = tmp / "partial.bin";
  write_bytes(partial, std::string(48 + 20, '\0'));
  CHECK(error_of([&] { read_input(partial, 3, 2, 2, Preprocess{}); }) ==
        partial + ": file size 68 bytes is not a whole, non-zero number of 3x2x2 float32 images "
                  "(48 bytes each)");

  const std::string missing = tmp / "missing.bin";
  CHECK(error_of([&] { read_input(missing, 3, 2, 2, Preprocess{}); }).rfind(missing + ": cannot open", 0) == 0);
  CHECK(error_of([&] { read_input(partial, 0, 2, 2, Preprocess{}); }).find("not a valid positive size") !=
        std::string::npos);
}

TEST_CASE("unknown extensions list the accepted ones") {
  TempDir tmp;
  const std::string in = tmp / "x.txt";
  write_bytes(in, "hello");
  CHECK(error_of([&] { read_input(in, 3, 2, 2, Preprocess{}); }) ==
        in + ": unknown input extension '.txt' (accepted: .bin, .npy, .png, .jpg, .jpeg, .ppm, .pgm)");
  Tensor t{{1}, {1.0f}};
  const std::string out = tmp / "y.csv";
  CHECK(error_of([&] { write_output(out, t); }) ==
        out + ": unknown output extension '.csv' (accepted: .bin, .npy)");
  CHECK(!fs::exists(out));
}

// ----------------------------------------------------------------------------------- .npy

TEST_CASE(".npy round trip, header layout as numpy writes it") {
  TempDir tmp;
  Tensor t;
  t.shape = {2, 3, 2, 2};
  for (int i = 0; i < 24; ++i) t.data.push_back(static_cast<float>(i) / 7.0f - 1.0f);
  const std::string path = tmp / "x.npy";
  write_output(path, t);

  // numpy 1.24: np.save(f, np.zeros((2, 3, 2, 2), np.float32)) writes this 128-byte header.
  std::string want_header = std::string("\x93NUMPY\x01\x00\x76\x00", 10) +
                            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 2, 2), }";
  want_header.append(127 - want_header.size(), ' ');
  want_header += '\n';
  const std::string bytes = read_bytes(path);
  REQUIRE(bytes.size() == 128 + 24 * 4);
  CHECK(bytes.substr(0, 128) == want_header);
  CHECK(bytes.substr(128) == raw(t.data));

  const Tensor r = read_input(path, 3, 2, 2, Preprocess{});
  CHECK(r.shape == t.shape);
  CHECK(r.data == t.data);

  // 1-D and 0-D shapes are written with Python's tuple syntax.
  write_output(tmp / "v.npy", Tensor{{3}, {1, 2, 3}});
  CHECK(read_bytes(tmp / "v.npy").find("'shape': (3,), }") != std::string::npos);
  write_output(tmp / "s.npy", Tensor{{}, {5}});
  CHECK(read_bytes(tmp / "s.npy").find("'shape': (), }") != std::string::npos);
}

TEST_CASE(".npy [C,H,W], '<f8', version 2.0 and 3.0 headers") {
  TempDir tmp;
  const std::vector<float> f = {1.5f, -2.0f, 0.25f, 3.0f};
  const std::string chw = tmp / "chw.npy";
  write_bytes(chw, npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 2), }", raw(f)));
  Tensor r = read_input(chw, 1, 2, 2, Preprocess{});
  CHECK(r.shape == std::vector<std::int64_t>{1, 1, 2, 2});
  CHECK(r.data == f);

  const std::vector<double> d = {0.1, -1e10, 3.0, 1.0 / 3.0, 7, 8, 9, 10};
  const std::string f8 = tmp / "f8.npy";
  write_bytes(f8, npy("{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (2L, 1L, 2L, 2L)}", raw(d)));
  r = read_input(f8, 1, 2, 2, Preprocess{});
  CHECK(r.shape == std::vector<std::int64_t>{2, 1, 2, 2});
  REQUIRE(r.data.size() == d.size());
  for (std::size_t i = 0; i < d.size(); ++i) CHECK(r.data[i] == static_cast<float>(d[i]));

  for (int major : {2, 3}) {
    const std::string v = tmp / ("v" + std::to_string(major) + ".npy");
    write_bytes(v, npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 2, 2), }", raw(f), major));
    CHECK(read_input(v, 1, 2, 2, Preprocess{}).data == f);
  }
}

TEST_CASE(".npy errors: dtype, Fortran order, shape, length, version") {
  TempDir tmp;
  const std::string data(16, '\0');
  auto err = [&](const std::string& name, const std::string& file) {
    const std::string p = tmp / name;
    write_bytes(p, file);
    return std::make_pair(p, error_of([&] { read_input(p, 1, 2, 2, Preprocess{}); }));
  };

  auto [p1, e1] = err("i4.npy", npy("{'descr': '<i4', 'fortran_order': False, 'shape': (1, 1, 2, 2), }", data));
  CHECK(e1 == p1 + ": unsupported .npy dtype '<i4' (expected '<f4' little-endian float32, or '<f8' float64)");
  auto [p2, e2] = err("be.npy", npy("{'descr': '>f4', 'fortran_order': False, 'shape': (1, 1, 2, 2), }", data));
  CHECK(e2.find("unsupported .npy dtype '>f4'") != std::string::npos);
  auto [p3, e3] = err("f.npy", npy("{'descr': '<f4', 'fortran_order': True, 'shape': (1, 1, 2, 2), }", data));
  CHECK(e3.rfind(p3 + ": .npy array is in Fortran order (expected C order", 0) == 0);
  auto [p4, e4] = err("shape.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 2, 1), }", data));
  CHECK(e4 == p4 + ": .npy shape [1, 2, 2, 1] does not match the expected [N, 1, 2, 2] with N >= 1, or [1, 2, 2]");
  auto [p5, e5] = err("n0.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1, 2, 2), }", ""));
  CHECK(e5.find("does not match the expected") != std::string::npos);
  auto [p6, e6] = err("short.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 2, 2), }", data));
  CHECK(e6.find(".npy data is truncated") != std::string::npos);
  auto [p7, e7] = err("long.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 2, 2), }", data + "xx"));
  CHECK(e7 == p7 + ": .npy data has 18 bytes after the header, expected 16 for shape [1, 1, 2, 2]");
  auto [p8, e8] = err("v9.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 2, 2), }", data, 9));
  CHECK(e8.find("unsupported .npy format version 9.0") != std::string::npos);
  auto [p9, e9] = err("magic.npy", "NUMPY not really");
  CHECK(e9.find("not a .npy file") != std::string::npos);
  auto [pa, ea] = err("garbled.npy", npy("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1, 1, 2, 2), }", data));
  CHECK(ea.find("malformed .npy header") != std::string::npos);
  auto [pb, eb] = err("struct.npy", npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1, 1, 2, 2), }", data));
  CHECK(eb.find("structured dtypes are not supported") != std::string::npos);
}

// --------------------------------------------------------------------------------- output

TEST_CASE("atomic write leaves no temporary file and replaces an existing file") {
  TempDir tmp;
  const std::string path = tmp / "out.npy";
  write_bytes(path, "old contents");
  Tensor t{{1, 1, 2, 2}, {1, 2, 3, 4}};
  write_output(path, t);
  write_output(tmp / "out.bin", t);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(tmp.dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"out.bin", "out.npy"});
  CHECK(read_input(path, 1, 2, 2, Preprocess{}).data == t.data);

  // A shape that does not match the data is refused before anything is created.
  const std::string bad = tmp / "bad.bin";
  CHECK(error_of([&] { write_output(bad, Tensor{{2, 3}, {1, 2}}); }) ==
        bad + ": tensor shape [2, 3] has 6 elements but its data has 2");
  CHECK(!fs::exists(bad));
  // An unwritable destination fails cleanly.
  CHECK(error_of([&] { write_output(tmp / "no/such/dir/x.bin", t); }).find("cannot create") != std::string::npos);
  CHECK(std::distance(fs::directory_iterator(tmp.dir), fs::directory_iterator()) == 2);
}

// --------------------------------------------------------------------------------- top_k

TEST_CASE("top_k: order, ties by index, NaN last, k clamped") {
  const float s[] = {0.5f, 2.0f, -1.0f, 2.0f, std::nanf(""), 0.5f, 3.0f};
  auto r = top_k(s, 7, 4);
  REQUIRE(r.size() == 4);
  CHECK(r[0] == std::make_pair(6, 3.0f));
  CHECK(r[1] == std::make_pair(1, 2.0f));
  CHECK(r[2] == std::make_pair(3, 2.0f));
  CHECK(r[3] == std::make_pair(0, 0.5f));

  r = top_k(s, 7, 100);
  REQUIRE(r.size() == 7);
  CHECK(r[4] == std::make_pair(5, 0.5f));
  CHECK(r[5] == std::make_pair(2, -1.0f));
  CHECK(r[6].first == 4);
  CHECK(std::isnan(r[6].second));

  CHECK(top_k(s, 7, 0).empty());
  CHECK(top_k(nullptr, 0, 5).empty());
  const float eq[] = {1, 1, 1};
  r = top_k(eq, 3, 2);
  CHECK(r[0].first == 0);
  CHECK(r[1].first == 1);
}

// --------------------------------------------------------------------------------- images

TEST_CASE("PPM decode + preprocessing agree with torchvision on PIL") {
  TempDir tmp;
  const std::string path = tmp / "img.ppm";
  write_bytes(path, ppm(23, 17, synth_image(23, 17)));
  {
    const Preprocess pp = make_pp(6, 6, "bilinear", 0.875f);
    check_against_pixels(read_input(path, 3, 6, 6, pp), kDown23x17Bilinear, pp);
  }
  {
    const Preprocess pp = make_pp(6, 6, "bicubic", 0.875f);
    check_against_pixels(read_input(path, 3, 6, 6, pp), kDown23x17Bicubic, pp);
  }
  {
    const Preprocess pp = make_pp(6, 6, "nearest", 0.875f);
    check_against_pixels(read_input(path, 3, 6, 6, pp), kDown23x17Nearest, pp);
  }
  {
    // input_h/input_w 0: taken from read_input's h and w.
    Preprocess pp = make_pp(0, 0, "bicubic", 0.875f);
    const Tensor t = read_input(path, 3, 4, 6, pp);
    pp.input_h = 4;
    pp.input_w = 6;
    check_against_pixels(t, kKeepRatio23x17, pp);
  }
}

TEST_CASE("preprocess_image upscaling agrees with torchvision on PIL") {
  const auto img = synth_image(5, 4);
  Preprocess pp = make_pp(6, 6, "bicubic", 0.875f);
  check_against_pixels(preprocess_image(img.data(), 5, 4, pp), kUp5x4Bicubic, pp);
  pp.interpolation = "bilinear";
  check_against_pixels(preprocess_image(img.data(), 5, 4, pp), kUp5x4Bilinear, pp);
}

TEST_CASE("vitcc::preprocess: RGBA frames with padded rows, the exact scratch, and what it refuses") {
  const int w = 37, h = 23;
  const auto rgb = synth_image(w, h);
  vitcc::Preprocessing pp;
  pp.input_h = 16;
  pp.input_w = 16;
  for (vitcc::Interpolation interp : {vitcc::Interpolation::bicubic, vitcc::Interpolation::bilinear, vitcc::Interpolation::nearest}) {
    pp.interpolation = interp;
    CAPTURE(vitcc::interpolation_name(interp));
    const std::size_t need = vitcc::preprocess_scratch_bytes(w, h, pp);
    REQUIRE(need > 0);
    std::vector<std::uint64_t> scratch(need / 8 + 2);
    std::vector<float> a(3 * 16 * 16), b(a.size(), -1.0f);
    REQUIRE(vitcc::preprocess(rgb.data(), w, h, std::size_t(w) * 3, 3, pp, a.data(), scratch.data(), need).ok());
    // The same picture as RGBA, 5 bytes of padding after each row, alpha noise: the same floats.
    const std::size_t stride = std::size_t(w) * 4 + 5;
    std::vector<unsigned char> rgba(stride * std::size_t(h), 0xEE);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int c = 0; c < 3; ++c) rgba[std::size_t(y) * stride + std::size_t(x) * 4 + std::size_t(c)] = rgb[std::size_t((y * w + x) * 3 + c)];
    REQUIRE(vitcc::preprocess(rgba.data(), w, h, stride, 4, pp, b.data(), scratch.data(), need).ok());
    CHECK(a == b);
    // The run agrees with vitcc-run's wrapper (the Pillow-checked path).
    Preprocess run_pp = make_pp(16, 16, vitcc::interpolation_name(interp), 0.875f);
    CHECK(preprocess_image(rgb.data(), w, h, run_pp).data == a);
    // Refusals, each before anything is written.
    std::vector<float> untouched(a.size(), 7.0f);
    auto refused = [&](vitcc::Errc want, const unsigned char* px, std::size_t row, int ch, void* scr, std::size_t bytes) {
      const vitcc::Status s = vitcc::preprocess(px, w, h, row, ch, pp, untouched.data(), scr, bytes);
      CHECK(s.code() == want);
      CHECK(std::all_of(untouched.begin(), untouched.end(), [](float v) { return v == 7.0f; }));
    };
    refused(vitcc::Errc::workspace_too_small, rgb.data(), std::size_t(w) * 3, 3, scratch.data(), need - 1);
    refused(vitcc::Errc::misaligned, rgb.data(), std::size_t(w) * 3, 3, reinterpret_cast<unsigned char*>(scratch.data()) + 4, need);
    refused(vitcc::Errc::shape_mismatch, rgb.data(), std::size_t(w) * 3 - 1, 3, scratch.data(), need);
    refused(vitcc::Errc::shape_mismatch, rgb.data(), std::size_t(w) * 3, 2, scratch.data(), need);
    refused(vitcc::Errc::null_pointer, nullptr, std::size_t(w) * 3, 3, scratch.data(), need);
  }
  vitcc::Preprocessing bad = pp;
  bad.crop_pct = 0;
  CHECK(vitcc::preprocess_scratch_bytes(w, h, bad) == 0);
  bad = pp;
  bad.std[1] = 0;
  std::vector<std::uint64_t> scratch(4096);
  std::vector<float> out(3 * 16 * 16);
  CHECK(vitcc::preprocess(rgb.data(), w, h, std::size_t(w) * 3, 3, bad, out.data(), scratch.data(), 8 * scratch.size()).code() ==
        vitcc::Errc::invalid_argument);
  CHECK(vitcc::preprocess_scratch_bytes(0, h, pp) == 0);
}

TEST_CASE("constant image gives (v/255 - mean)/std everywhere, for every mode and crop") {
  const int w = 41, h = 29;
  std::vector<unsigned char> img(static_cast<std::size_t>(w * h * 3));
  for (std::size_t i = 0; i < img.size(); ++i) img[i] = static_cast<unsigned char>(i % 3 == 0 ? 200 : (i % 3 == 1 ? 17 : 255));
  const unsigned char v[3] = {200, 17, 255};
  for (const char* interp : {"bilinear", "bicubic", "nearest"}) {
    for (float crop : {0.875f, 0.9f, 1.0f}) {
      Preprocess pp = make_pp(16, 12, interp, crop);
      pp.mean = {0.5f, 0.25f, 0.0f};
      pp.std = {0.5f, 2.0f, 1.0f};
      const Tensor t = preprocess_image(img.data(), w, h, pp);
      REQUIRE(t.shape == std::vector<std::int64_t>{1, 3, 16, 12});
      for (std::size_t i = 0; i < t.data.size(); ++i) {
        const std::size_t c = i / (16 * 12);
        const float want = (static_cast<float>(v[c]) / 255.0f - pp.mean[c]) / pp.std[c];
        if (t.data[i] != want) {
          FAIL_CHECK(interp << " crop " << crop << " element " << i << ": " << t.data[i] << " != " << want);
          break;
        }
      }
    }
  }
}

TEST_CASE("a crop larger than the resized image is padded with black, as torchvision does") {
  std::vector<unsigned char> img(4 * 4 * 3, 255);
  Preprocess pp = make_pp(4, 4, "bilinear", 1.5f);  // resize to floor(4 / 1.5) = 2, crop 4
  pp.mean = {0, 0, 0};
  pp.std = {1, 1, 1};
  const Tensor t = preprocess_image(img.data(), 4, 4, pp);
  // Padding (4 - 2) // 2 = 1 on each side: a white 2x2 square in the middle.
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) {
      const bool inside = y >= 1 && y < 3 && x >= 1 && x < 3;
      CHECK(t.data[static_cast<std::size_t>(y * 4 + x)] == (inside ? 1.0f : 0.0f));
    }
}

TEST_CASE("a horizontal gradient stays monotonic") {
  const int w = 64, h = 20;
  std::vector<unsigned char> img(static_cast<std::size_t>(w * h * 3));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) img[static_cast<std::size_t>((y * w + x) * 3 + c)] = static_cast<unsigned char>(x * 4);
  for (const char* interp : {"bilinear", "bicubic", "nearest"}) {
    for (int size : {8, 24, 40}) {  // downscale and upscale
      const Preprocess pp = make_pp(size, size, interp, 1.0f);
      const Tensor t = preprocess_image(img.data(), w, h, pp);
      for (int c = 0; c < 3; ++c)
        for (int y = 0; y < size; ++y) {
          const float* row = &t.data[static_cast<std::size_t>((c * size + y) * size)];
          for (int x = 1; x < size; ++x) CHECK(row[x] >= row[x - 1]);
          CHECK(row[size - 1] > row[0]);
        }
    }
  }
}

TEST_CASE("greyscale PGM is expanded to three equal channels") {
  TempDir tmp;
  const std::string path = tmp / "grey.pgm";
  std::string px;
  for (int i = 0; i < 10 * 7; ++i) px += static_cast<char>((i * 29) % 256);
  write_bytes(path, "P5\n10 7\n255\n" + px);
  Preprocess pp = make_pp(5, 5, "bicubic", 0.875f);
  pp.mean = {0.5f, 0.5f, 0.5f};
  pp.std = {0.5f, 0.5f, 0.5f};
  const Tensor t = read_input(path, 3, 5, 5, pp);
  REQUIRE(t.shape == std::vector<std::int64_t>{1, 3, 5, 5});
  for (std::size_t i = 0; i < 25; ++i) {
    CHECK(t.data[i] == t.data[25 + i]);
    CHECK(t.data[i] == t.data[50 + i]);
  }
}

TEST_CASE("image errors name the file and the reason") {
  TempDir tmp;
  const Preprocess pp = make_pp(8, 8, "bicubic", 0.875f);

  const std::string trunc = tmp / "trunc.ppm";
  write_bytes(trunc, "P6\n4 4\n255\nabcdef");
  CHECK(error_of([&] { read_input(trunc, 3, 8, 8, pp); }) ==
        trunc + ": cannot decode image: truncated PNM, 4x4 pixels need 48 bytes of pixel data, found 6");

  const std::string big = tmp / "big.ppm";
  write_bytes(big, "P6\n20000 10\n255\n");
  CHECK(error_of([&] { read_input(big, 3, 8, 8, pp); }) ==
        big + ": image is 20000x10 pixels; at most 16384 per side is accepted");

  const std::string png = tmp / "corrupt.png";
  write_bytes(png, std::string("\x89PNG\r\n\x1a\n", 8) + std::string(40, 'x'));
  const std::string e = error_of([&] { read_input(png, 3, 8, 8, pp); });
  CHECK(e.rfind(png + ": cannot decode image: ", 0) == 0);
  CHECK(e.size() > (png + ": cannot decode image: ").size());

  const std::string jpg = tmp / "cut.jpg";
  write_bytes(jpg, std::string("\xff\xd8\xff\xe0\x00\x10JFIF", 10));
  CHECK(error_of([&] { read_input(jpg, 3, 8, 8, pp); }).rfind(jpg + ": cannot decode image: ", 0) == 0);

  const std::string empty = tmp / "empty.png";
  write_bytes(empty, "");
  CHECK(error_of([&] { read_input(empty, 3, 8, 8, pp); }) == empty + ": cannot decode image: the file is empty");

  const std::string ok = tmp / "ok.ppm";
  write_bytes(ok, ppm(3, 3, synth_image(3, 3)));
  CHECK(error_of([&] { read_input(ok, 1, 8, 8, pp); }) ==
        ok + ": image inputs give 3 channels (RGB) but the model expects 1");
  CHECK(error_of([&] { read_input(ok, 3, 16, 8, pp); }) ==
        ok + ": the preprocessing size 8x8 differs from the model input size 16x8");
  Preprocess bad = pp;
  bad.interpolation = "lanczos";
  CHECK(error_of([&] { read_input(ok, 3, 8, 8, bad); }) ==
        ok + ": image preprocessing: interpolation must be \"bicubic\", \"bilinear\" or \"nearest\", found \"lanczos\"");
}
