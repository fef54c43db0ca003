#include "tensor_io.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_preprocess.hpp"

// stb_image 2.27's JPEG Huffman decoder (stbi__jpeg_huff_decode) can turn a malformed bit
// stream into a table index up to about 65 800 entries out of range and read values[index]
// (fixed upstream later; found by tests/fuzz/fuzz_image.cpp). stb's allocations therefore come
// with 96 KiB of zeroed guard bytes on each side, so that such a read stays inside memory this
// file owns and reads zeros: the image decodes to garbage or is refused, never reads elsewhere.
namespace vitcc::run::stb_guard {
constexpr std::size_t kGuard = 96 * 1024, kHeader = 64;
inline void* allocate(std::size_t n) {
  auto* block = static_cast<unsigned char*>(std::calloc(1, kHeader + 2 * kGuard + n));
  if (!block) return nullptr;
  std::memcpy(block, &n, sizeof n);
  return block + kHeader + kGuard;
}
inline void release(void* p) {
  if (p) std::free(static_cast<unsigned char*>(p) - kGuard - kHeader);
}
inline void* reallocate(void* p, std::size_t n) {
  void* q = allocate(n);
  if (q && p) {
    std::size_t old;
    std::memcpy(&old, static_cast<unsigned char*>(p) - kGuard - kHeader, sizeof old);
    std::memcpy(q, p, old < n ? old : n);
    release(p);
  }
  return q;
}
}  // namespace vitcc::run::stb_guard
#define STBI_MALLOC(n) vitcc::run::stb_guard::allocate(n)
#define STBI_REALLOC(p, n) vitcc::run::stb_guard::reallocate(p, n)
#define STBI_FREE(p) vitcc::run::stb_guard::release(p)

// stb_image, compiled into this file with internal linkage so it cannot clash with another
// copy elsewhere in the program.
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNM
#define STBI_NO_STDIO
#define STBI_FAILURE_USERMSG
#define STBI_MAX_DIMENSIONS 16384
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wuseless-cast"
#endif
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace vitcc::run {
namespace {

constexpr std::int64_t kMaxImageSide = 16384;
// 64 Mpx (192 MiB decoded): more than any camera gives, and a bound on what a small file that
// claims a huge image (a PNG header costs 33 bytes) can make the decoder allocate.
constexpr std::int64_t kMaxImagePixels = std::int64_t(1) << 26;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}

std::string lower_extension(const std::string& path) {
  const auto slash = path.find_last_of('/');
  const auto dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string ext = path.substr(dot);
  for (char& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return ext;
}

bool host_is_little_endian() {
  const std::uint16_t one = 1;
  unsigned char b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

template <typename T>
void byteswap_all(T* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    unsigned char b[sizeof(T)];
    std::memcpy(b, p + i, sizeof(T));
    std::reverse(b, b + sizeof(T));
    std::memcpy(p + i, b, sizeof(T));
  }
}

std::string describe_errno() { return std::strerror(errno); }

std::vector<unsigned char> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, "cannot open for reading (" + describe_errno() + ")");
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  if (size < 0) fail(path, "cannot determine the file size (is it a regular file?)");
  f.seekg(0, std::ios::beg);
  std::vector<unsigned char> bytes(static_cast<std::size_t>(size));
  if (size > 0 && !f.read(reinterpret_cast<char*>(bytes.data()), size))
    fail(path, "read error after " + std::to_string(f.gcount()) + " of " +
                   std::to_string(size) + " bytes");
  return bytes;
}

// c*h*w, checked to be positive and small enough that the byte size of one image fits.
std::int64_t image_elems(const std::string& path, std::int64_t c, std::int64_t h,
                         std::int64_t w) {
  constexpr std::int64_t kLimit = std::numeric_limits<std::int64_t>::max() / 8;
  if (c <= 0 || h <= 0 || w <= 0 || c > kLimit / h || c * h > kLimit / w)
    fail(path, "the expected input size " + std::to_string(c) + "x" + std::to_string(h) + "x" +
                   std::to_string(w) + " is not a valid positive size");
  return c * h * w;
}

std::string dims(std::int64_t c, std::int64_t h, std::int64_t w) {
  return std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w);
}

std::string shape_string(const std::vector<std::int64_t>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// ---------------------------------------------------------------------------------- .bin

Tensor read_bin(const std::string& path, std::int64_t c, std::int64_t h, std::int64_t w) {
  const std::int64_t per_image = image_elems(path, c, h, w);
  const std::int64_t image_bytes = per_image * 4;
  std::vector<unsigned char> bytes = read_file(path);
  const auto size = static_cast<std::int64_t>(bytes.size());
  if (size == 0 || size % image_bytes != 0)
    fail(path, "file size " + std::to_string(size) +
                   " bytes is not a whole, non-zero number of " + dims(c, h, w) +
                   " float32 images (" + std::to_string(image_bytes) + " bytes each)");
  Tensor t;
  t.shape = {size / image_bytes, c, h, w};
  t.data.resize(static_cast<std::size_t>(size / 4));
  std::memcpy(t.data.data(), bytes.data(), bytes.size());
  if (!host_is_little_endian()) byteswap_all(t.data.data(), t.data.size());
  return t;
}

// ---------------------------------------------------------------------------------- .npy
// Header: a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (...), }.

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<std::int64_t> shape;
};

class HeaderParser {
 public:
  HeaderParser(const std::string& path, const std::string& text) : path_(path), s_(text) {}

  NpyHeader parse() {
    NpyHeader h;
    bool have_descr = false, have_order = false, have_shape = false;
    expect('{');
    skip_ws();
    while (peek() != '}') {
      const std::string key = parse_string();
      expect(':');
      if (key == "descr") {
        skip_ws();
        if (peek() != '\'' && peek() != '"')
          bad("'descr' is not a simple dtype string (structured dtypes are not supported)");
        h.descr = parse_string();
        have_descr = true;
      } else if (key == "fortran_order") {
        h.fortran_order = parse_bool();
        have_order = true;
      } else if (key == "shape") {
        h.shape = parse_tuple();
        have_shape = true;
      } else {
        bad("unexpected key '" + key + "'");
      }
      skip_ws();
      if (peek() == ',') {
        ++i_;
        skip_ws();
      } else if (peek() != '}') {
        bad("expected ',' or '}'");
      }
    }
    if (!have_descr || !have_order || !have_shape)
      bad("the header must have the keys 'descr', 'fortran_order' and 'shape'");
    return h;
  }

 private:
  [[noreturn]] void bad(const std::string& what) {
    fail(path_, "malformed .npy header (" + what + " at offset " + std::to_string(i_) +
                    "): " + s_);
  }
  void skip_ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  char peek() { return i_ < s_.size() ? s_[i_] : '\0'; }
  void expect(char ch) {
    skip_ws();
    if (peek() != ch) bad(std::string("expected '") + ch + "'");
    ++i_;
  }
  std::string parse_string() {
    skip_ws();
    const char q = peek();
    if (q != '\'' && q != '"') bad("expected a quoted string");
    const auto end = s_.find(q, i_ + 1);
    if (end == std::string::npos) bad("unterminated string");
    std::string out = s_.substr(i_ + 1, end - i_ - 1);
    i_ = end + 1;
    return out;
  }
  bool parse_bool() {
    skip_ws();
    if (s_.compare(i_, 4, "True") == 0) {
      i_ += 4;
      return true;
    }
    if (s_.compare(i_, 5, "False") == 0) {
      i_ += 5;
      return false;
    }
    bad("expected True or False");
  }
  std::vector<std::int64_t> parse_tuple() {
    expect('(');
    std::vector<std::int64_t> out;
    skip_ws();
    while (peek() != ')') {
      if (!std::isdigit(static_cast<unsigned char>(peek()))) bad("expected a dimension");
      std::int64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        const int d = s_[i_++] - '0';
        if (v > (std::numeric_limits<std::int64_t>::max() - d) / 10) bad("dimension too large");
        v = v * 10 + d;
      }
      if (peek() == 'L') ++i_;  // written by Python 2
      out.push_back(v);
      skip_ws();
      if (peek() == ',') {
        ++i_;
        skip_ws();
      } else if (peek() != ')') {
        bad("expected ',' or ')'");
      }
    }
    ++i_;
    return out;
  }

  const std::string& path_;
  const std::string& s_;
  std::size_t i_ = 0;
};

std::uint32_t read_le(const unsigned char* p, int n) {
  std::uint32_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

Tensor read_npy(const std::string& path, std::int64_t c, std::int64_t h, std::int64_t w) {
  const std::int64_t per_image = image_elems(path, c, h, w);
  std::vector<unsigned char> bytes = read_file(path);
  static const unsigned char kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (bytes.size() < 10 || std::memcmp(bytes.data(), kMagic, 6) != 0)
    fail(path, "not a .npy file (expected the magic string \\x93NUMPY)");
  const int major = bytes[6], minor = bytes[7];
  std::size_t header_start = 0, header_len = 0;
  if (major == 1) {
    header_start = 10;
    header_len = read_le(&bytes[8], 2);
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail(path, "truncated .npy header");
    header_start = 12;
    header_len = read_le(&bytes[8], 4);
  } else {
    fail(path, "unsupported .npy format version " + std::to_string(major) + "." +
                   std::to_string(minor) + " (expected 1.0, 2.0 or 3.0)");
  }
  if (header_len > bytes.size() - header_start)
    fail(path, "truncated .npy header (header length " + std::to_string(header_len) +
                   ", file size " + std::to_string(bytes.size()) + ")");
  const std::string text(reinterpret_cast<const char*>(&bytes[header_start]), header_len);
  const NpyHeader hdr = HeaderParser(path, text).parse();

  std::size_t item = 0;
  if (hdr.descr == "<f4") {
    item = 4;
  } else if (hdr.descr == "<f8") {
    item = 8;
  } else {
    fail(path, "unsupported .npy dtype '" + hdr.descr +
                   "' (expected '<f4' little-endian float32, or '<f8' float64)");
  }
  if (hdr.fortran_order)
    fail(path, ".npy array is in Fortran order (expected C order; save it with "
               "np.ascontiguousarray)");

  std::vector<std::int64_t> shape = hdr.shape;
  const bool shape_ok = (shape.size() == 4 && shape[0] >= 1 && shape[1] == c && shape[2] == h &&
                         shape[3] == w) ||
                        (shape.size() == 3 && shape[0] == c && shape[1] == h && shape[2] == w);
  if (!shape_ok)
    fail(path, ".npy shape " + shape_string(shape) + " does not match the expected [N, " +
                   std::to_string(c) + ", " + std::to_string(h) + ", " + std::to_string(w) +
                   "] with N >= 1, or [" + std::to_string(c) + ", " + std::to_string(h) +
                   ", " + std::to_string(w) + "]");
  if (shape.size() == 3) shape.insert(shape.begin(), 1);

  const std::size_t data_start = header_start + header_len;
  const std::size_t avail = bytes.size() - data_start;
  const std::int64_t n = shape[0];
  if (n > static_cast<std::int64_t>(avail / item) / per_image)
    fail(path, ".npy data is truncated: shape " + shape_string(hdr.shape) + " needs " +
                   std::to_string(n) + "x" + std::to_string(per_image * static_cast<std::int64_t>(item)) +
                   " bytes, the file has " + std::to_string(avail) + " after the header");
  const auto count = static_cast<std::size_t>(n * per_image);
  if (count * item != avail)
    fail(path, ".npy data has " + std::to_string(avail) + " bytes after the header, expected " +
                   std::to_string(count * item) + " for shape " + shape_string(hdr.shape));

  Tensor t;
  t.shape = shape;
  t.data.resize(count);
  const unsigned char* src = &bytes[data_start];
  if (item == 4) {
    std::memcpy(t.data.data(), src, count * 4);
    if (!host_is_little_endian()) byteswap_all(t.data.data(), count);
  } else {
    std::vector<double> tmp(count);
    std::memcpy(tmp.data(), src, count * 8);
    if (!host_is_little_endian()) byteswap_all(tmp.data(), count);
    std::transform(tmp.begin(), tmp.end(), t.data.begin(),
                   [](double v) { return static_cast<float>(v); });
  }
  return t;
}

// --------------------------------------------------------------------------------- images

// stb_image accepts a binary PPM/PGM whose pixel data is cut short (it leaves the missing
// pixels undefined), so check the length here: header "P5"/"P6", width, height, maxval
// (whitespace and #-comments between), one whitespace byte, then the pixels.
// numbers_only: just refuse header numbers stb cannot parse safely (runs before stb sees the file).
void check_pnm_length(const std::string& path, const std::vector<unsigned char>& b, bool numbers_only = false) {
  if (b.size() < 2 || b[0] != 'P' || (b[1] != '5' && b[1] != '6')) return;  // stb decides
  std::size_t i = 2;
  std::uint64_t v[3] = {0, 0, 0};
  for (auto& field : v) {
    for (;;) {
      while (i < b.size() && std::isspace(b[i])) ++i;
      if (i < b.size() && b[i] == '#') {
        while (i < b.size() && b[i] != '\n' && b[i] != '\r') ++i;
        continue;
      }
      break;
    }
    if (i >= b.size() || !std::isdigit(b[i])) return;  // malformed: stb reports it
    while (i < b.size() && std::isdigit(b[i])) {
      field = field * 10 + static_cast<unsigned>(b[i++] - '0');
      // stb_image 2.27 parses these into an int without an overflow check (undefined
      // behaviour; found by tests/fuzz/fuzz_image.cpp), so this runs before stb sees the file.
      if (field > (1u << 30))
        fail(path, "cannot decode image: a PNM header number is larger than " + std::to_string(1u << 30));
    }
  }
  if (numbers_only) return;
  ++i;  // the single whitespace byte before the pixels
  const std::uint64_t channels = b[1] == '6' ? 3 : 1, bytes_per = v[2] > 255 ? 2 : 1;
  const std::uint64_t need = v[0] * v[1] * channels * bytes_per;
  const std::uint64_t have = b.size() >= i ? b.size() - i : 0;
  if (have < need)
    fail(path, "cannot decode image: truncated PNM, " + std::to_string(v[0]) + "x" +
                   std::to_string(v[1]) + " pixels need " + std::to_string(need) +
                   " bytes of pixel data, found " + std::to_string(have));
}

// stb_image 2.27 (Debian 12's libstb) builds a JPEG Huffman table from the 16 code counts of a
// DHT segment without checking that they add up to at most 256, and writes past its 257-entry
// size array when they do not (found by tests/fuzz/fuzz_image.cpp). Walk the JPEG's segments,
// including DHT segments between the scans of a progressive JPEG, and refuse such tables first.
void check_jpeg_huffman_tables(const std::string& path, const std::vector<unsigned char>& b) {
  // A JPEG to stb: 0xff, any number of 0xff fill bytes, then SOI (0xd8), whatever the extension.
  if (b.empty() || b[0] != 0xff) return;
  std::size_t i = 1;
  while (i < b.size() && b[i] == 0xff) ++i;
  if (i >= b.size() || b[i] != 0xd8) return;  // not a JPEG: stb decides
  ++i;
  while (i + 1 < b.size()) {
    if (b[i] != 0xff) {  // entropy-coded data between markers
      ++i;
      continue;
    }
    while (i + 1 < b.size() && b[i + 1] == 0xff) ++i;  // fill bytes
    if (i + 1 >= b.size()) return;
    const unsigned char m = b[i + 1];
    if (m == 0x00 || m == 0x01 || (m >= 0xd0 && m <= 0xd7)) {  // stuffed byte, TEM, RSTn: no length
      i += 2;
      continue;
    }
    if (m == 0xd9 || i + 3 >= b.size()) return;  // EOI, or cut short (stb reports it)
    const std::size_t len = std::size_t(b[i + 2]) << 8 | b[i + 3];
    const std::size_t end = std::min(b.size(), i + 2 + len);
    if (m == 0xc4) {
      // As stb reads them: table after table while the segment has bytes left, each table's 17-byte
      // header read even past the segment's length, and bytes past the end of the file read as 0.
      std::size_t t = i + 4;
      while (t < end) {
        std::size_t codes = 0;
        for (std::size_t k = t + 1; k <= t + 16 && k < b.size(); ++k) codes += b[k];
        if (codes > 256)
          fail(path, "cannot decode image: corrupt JPEG (a Huffman table with " + std::to_string(codes) +
                         " codes; at most 256 exist)");
        t += 17 + codes;
      }
    }
    i += 2 + len;
  }
}

// stb_image 2.27 passes a null buffer to memcpy when a PNG's first IDAT chunk is empty (undefined
// behaviour; found by tests/fuzz/fuzz_image.cpp). Encoders never write one: refuse it.
void check_png_chunks(const std::string& path, const std::vector<unsigned char>& b) {
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (b.size() < 8 || std::memcmp(b.data(), sig, 8) != 0) return;  // not a PNG: stb decides
  std::size_t i = 8;
  while (i + 8 <= b.size()) {
    const std::size_t len = std::size_t(b[i]) << 24 | std::size_t(b[i + 1]) << 16 | std::size_t(b[i + 2]) << 8 | b[i + 3];
    if (std::memcmp(&b[i + 4], "IDAT", 4) == 0) {
      if (len == 0) fail(path, "cannot decode image: corrupt PNG (an empty first IDAT chunk)");
      return;  // the image data has begun
    }
    if (len > b.size()) return;  // stb reports it
    i += 12 + len;
  }
}

Tensor read_image(const std::string& path, std::int64_t c, std::int64_t h, std::int64_t w,
                  const Preprocess& pp) {
  image_elems(path, c, h, w);
  if (c != 3)
    fail(path, "image inputs give 3 channels (RGB) but the model expects " +
                   std::to_string(c));
  if ((pp.input_h != 0 && pp.input_h != h) || (pp.input_w != 0 && pp.input_w != w))
    fail(path, "the preprocessing size " + std::to_string(pp.input_h) + "x" +
                   std::to_string(pp.input_w) + " differs from the model input size " +
                   std::to_string(h) + "x" + std::to_string(w));
  std::vector<unsigned char> bytes = read_file(path);
  if (bytes.empty()) fail(path, "cannot decode image: the file is empty");
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    fail(path, "image file too large (" + std::to_string(bytes.size()) + " bytes)");
  const int len = static_cast<int>(bytes.size());

  // Before stb reads any of it (stbi_info parses JPEG tables and PNM headers too).
  check_jpeg_huffman_tables(path, bytes);
  check_png_chunks(path, bytes);
  check_pnm_length(path, bytes, /*numbers_only=*/true);
  int iw = 0, ih = 0, comp = 0;
  if (!stbi_info_from_memory(bytes.data(), len, &iw, &ih, &comp))
    fail(path, std::string("cannot decode image: ") + stbi_failure_reason());
  if (iw <= 0 || ih <= 0 || iw > kMaxImageSide || ih > kMaxImageSide)
    fail(path, "image is " + std::to_string(iw) + "x" + std::to_string(ih) +
                   " pixels; at most " + std::to_string(kMaxImageSide) + " per side is accepted");
  if (std::int64_t(iw) * ih > kMaxImagePixels)
    fail(path, "image is " + std::to_string(iw) + "x" + std::to_string(ih) + " pixels; at most " +
                   std::to_string(kMaxImagePixels) + " pixels (64 Mpx) are accepted");
  check_pnm_length(path, bytes);

  int dw = 0, dh = 0;
  stbi_uc* px = stbi_load_from_memory(bytes.data(), len, &dw, &dh, &comp, 3);
  if (px == nullptr) fail(path, std::string("cannot decode image: ") + stbi_failure_reason());
  struct Free {
    stbi_uc* p;
    ~Free() { stbi_image_free(p); }
  } guard{px};
  bytes = std::vector<unsigned char>();  // release the encoded copy early

  Preprocess p = pp;
  p.input_h = h;
  p.input_w = w;
  try {
    return preprocess_image(px, dw, dh, p);
  } catch (const std::runtime_error& e) {
    fail(path, e.what());
  }
}

// --------------------------------------------------------------------------------- output

void write_all(int fd, const std::string& tmp, const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  while (n > 0) {
    const ssize_t k = ::write(fd, p, n);
    if (k < 0) {
      if (errno == EINTR) continue;
      fail(tmp, "write failed (" + describe_errno() + ")");
    }
    p += k;
    n -= static_cast<std::size_t>(k);
  }
}

std::string npy_header(const std::vector<std::int64_t>& shape) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    dict += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) dict += shape.size() == 1 ? "," : ", ";
  }
  dict += "), }";
  // Pad with spaces and end with '\n' so the data starts at a multiple of 64 bytes.
  const std::size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(dict.size() & 0xff);
  out += static_cast<char>((dict.size() >> 8) & 0xff);
  return out + dict;
}

}  // namespace

Tensor read_input(const std::string& path, std::int64_t c, std::int64_t h, std::int64_t w,
                  const Preprocess& pp) {
  const std::string ext = lower_extension(path);
  if (ext == ".bin") return read_bin(path, c, h, w);
  if (ext == ".npy") return read_npy(path, c, h, w);
  if (ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".ppm" || ext == ".pgm")
    return read_image(path, c, h, w, pp);
  fail(path, "unknown input extension '" + ext +
                 "' (accepted: .bin, .npy, .png, .jpg, .jpeg, .ppm, .pgm)");
}

void check_output_path(const std::string& path) {
  const std::string ext = lower_extension(path);
  if (ext != ".bin" && ext != ".npy")
    fail(path, "unknown output extension '" + ext + "' (accepted: .bin, .npy)");
}

bool is_image_path(const std::string& path) {
  const std::string ext = lower_extension(path);
  return ext != ".bin" && ext != ".npy";
}

void write_output(const std::string& path, const Tensor& t) {
  check_output_path(path);
  const std::string ext = lower_extension(path);
  std::size_t count = 1;
  for (std::int64_t d : t.shape) {
    if (d < 0) fail(path, "cannot write a tensor of shape " + shape_string(t.shape));
    count *= static_cast<std::size_t>(d);
  }
  if (count != t.data.size())
    fail(path, "tensor shape " + shape_string(t.shape) + " has " + std::to_string(count) +
                   " elements but its data has " + std::to_string(t.data.size()));

  std::string header;
  if (ext == ".npy") {
    header = npy_header(t.shape);
    if (header.size() - 10 > 0xffff) fail(path, "shape too long for a version 1.0 .npy header");
  }
  std::vector<float> swapped;
  const float* data = t.data.data();
  if (!host_is_little_endian()) {
    swapped = t.data;
    byteswap_all(swapped.data(), swapped.size());
    data = swapped.data();
  }

  const std::string tmp = path + ".tmp." + std::to_string(static_cast<long long>(::getpid()));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) fail(tmp, "cannot create (" + describe_errno() + ")");
  try {
    write_all(fd, tmp, header.data(), header.size());
    write_all(fd, tmp, data, t.data.size() * sizeof(float));
    if (::fsync(fd) != 0) fail(tmp, "fsync failed (" + describe_errno() + ")");
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    const std::string err = describe_errno();
    ::unlink(tmp.c_str());
    fail(tmp, "close failed (" + err + ")");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = describe_errno();
    ::unlink(tmp.c_str());
    fail(path, "cannot rename " + tmp + " into place (" + err + ")");
  }
  // Make the rename itself durable; failure here is not an error for the caller.
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

std::vector<std::pair<int, float>> top_k(const float* scores, std::size_t n, std::size_t k) {
  if (n > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw std::runtime_error("top_k: " + std::to_string(n) + " scores do not fit int indices");
  if (n > 0 && scores == nullptr) throw std::runtime_error("top_k: scores is null");
  k = std::min(k, n);
  std::vector<int> idx(n);
  for (std::size_t i = 0; i < n; ++i) idx[i] = static_cast<int>(i);
  // Order: numbers before NaN, higher score first, then lower index.
  auto before = [scores](int a, int b) {
    const float sa = scores[a], sb = scores[b];
    const bool na = std::isnan(sa), nb = std::isnan(sb);
    if (na != nb) return nb;
    if (!na && sa != sb) return sa > sb;
    return a < b;
  };
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(), before);
  std::vector<std::pair<int, float>> out;
  out.reserve(k);
  for (std::size_t i = 0; i < k; ++i) out.emplace_back(idx[i], scores[idx[i]]);
  return out;
}

}  // namespace vitcc::run
