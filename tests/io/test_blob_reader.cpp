// The blob reader and binder against well-formed and malformed blobs. Blobs are made by the
// packer's own serializer, then damaged one field at a time (with the checksum recomputed where the
// test is about another check), so each case proves the reader catches that one problem.
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "artifacts.hpp"
#include "vitcc/io/bind.hpp"
#include "vitcc/io/blob_reader.hpp"

using namespace vitcc;
using vitcc::pack::BlobTensor;

namespace {

struct Aligned {
  unsigned char* p = nullptr;
  std::size_t n = 0;
  explicit Aligned(const std::vector<unsigned char>& bytes, std::size_t shift = 0) : n(bytes.size()) {
    p = static_cast<unsigned char*>(std::aligned_alloc(64, (bytes.size() + shift + 64) / 64 * 64 + 64));
    std::memcpy(p + shift, bytes.data(), bytes.size());
    p += shift;
    base_shift = shift;
  }
  ~Aligned() { std::free(p - base_shift); }
  std::size_t base_shift = 0;
};

std::vector<BlobTensor> sample_tensors() {
  std::vector<BlobTensor> t;
  t.push_back({"a.weight", blob::Layout::plain, {3, 5}, std::vector<float>(15)});
  std::vector<float> packed(kernels::packed_b_floats(7, 20));
  t.push_back({"b.weight", blob::Layout::gemm_b16, {7, 20}, packed});
  t.push_back({"c.bias", blob::Layout::plain, {20}, std::vector<float>(20)});
  for (std::size_t i = 0; i < t[0].data.size(); ++i) t[0].data[i] = float(i) * 0.5f;
  for (std::size_t i = 0; i < t[2].data.size(); ++i) t[2].data[i] = -float(i);
  return t;
}

void put_u32(std::vector<unsigned char>& b, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = static_cast<unsigned char>(v >> (8 * i));
}
void put_u64(std::vector<unsigned char>& b, std::size_t at, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) b[at + i] = static_cast<unsigned char>(v >> (8 * i));
}
void reseal(std::vector<unsigned char>& b) { put_u64(b, blob::checksum_offset, blob::checksum(b.data(), b.size())); }
std::size_t entry(std::size_t i) { return blob::header_fixed_bytes + i * blob::entry_bytes; }

Status open(const std::vector<unsigned char>& bytes, std::size_t size_override = 0) {
  Aligned a(bytes);
  BlobView v;
  return v.open(a.p, size_override ? size_override : bytes.size());
}

bool mentions(const Status& s, const char* text) { return std::strstr(s.message(), text) != nullptr; }

}  // namespace

TEST_CASE("a well-formed blob opens and every tensor reads back") {
  const auto tensors = sample_tensors();
  const auto bytes = pack::serialize_blob(tensors);
  CHECK(bytes.size() % 64 == 0);
  Aligned a(bytes);
  BlobView v;
  REQUIRE(v.open(a.p, bytes.size()).ok());
  CHECK(v.tensor_count() == 3);
  CHECK(v.checksum() == blob::read_u64(bytes.data() + blob::checksum_offset));
  for (const auto& t : tensors) {
    TensorView tv;
    REQUIRE(v.find(t.name.c_str(), tv));
    CHECK(tv.layout == t.layout);
    CHECK(tv.rank == t.dims.size());
    CHECK(is_aligned(tv.data));
    CHECK(std::memcmp(tv.data, t.data.data(), t.data.size() * 4) == 0);
  }
  TensorView none;
  CHECK_FALSE(v.find("nope", none));
}

TEST_CASE("header damage is refused with the matching error") {
  const auto good = pack::serialize_blob(sample_tensors());
  auto b = good;

  SUBCASE("bad magic") {
    b[0] = 'X';
    const Status s = open(b);
    CHECK(s.code() == Errc::bad_magic);
    CHECK(mentions(s, "bad magic"));
  }
  SUBCASE("future version") {
    put_u32(b, 8, 3);
    const Status s = open(b);
    CHECK(s.code() == Errc::bad_version);
    CHECK(mentions(s, "format version 3, this reader supports 1 to 2"));
  }
  SUBCASE("a version-1 blob (float32 only) still loads") {
    put_u32(b, 8, 1);
    const Aligned a(b);  // (a vector's data is not always 64-byte aligned, which the reader requires)
    const Status s = vitcc::BlobView{}.open(a.p, b.size(), false);  // the checksum covers the version
    CHECK(s.ok());
  }
  SUBCASE("big-endian tag") {
    put_u32(b, 12, 0x04030201u);
    CHECK(open(b).code() == Errc::bad_endianness);
  }
  SUBCASE("header bytes inconsistent with the count") {
    put_u32(b, 20, 4);
    reseal(b);
    CHECK(open(b).code() == Errc::bad_header);
  }
  SUBCASE("absurd tensor count") {
    put_u32(b, 20, 0xffffffffu);
    CHECK(open(b).code() == Errc::bad_header);
  }
  SUBCASE("truncated file") {
    b.resize(b.size() - 64);
    const Status s = open(b);
    CHECK(s.code() == Errc::truncated);
    CHECK(mentions(s, "but"));
  }
  SUBCASE("shorter than the fixed header") {
    b.resize(40);
    CHECK(open(b).code() == Errc::truncated);
  }
  SUBCASE("data offset not aligned") {
    put_u64(b, 40, 65);
    reseal(b);
    CHECK(open(b).code() == Errc::bad_header);
  }
  SUBCASE("checksum mismatch after one flipped bit of weight data") {
    b[b.size() - 64 - 4] ^= 0x10;
    const Status s = open(b);
    CHECK(s.code() == Errc::checksum_mismatch);
    CHECK(mentions(s, "corrupted"));
  }
}

TEST_CASE("tensor table damage is refused and names the tensor") {
  auto b = pack::serialize_blob(sample_tensors());
  const std::size_t e1 = entry(1);

  SUBCASE("unknown dtype") {
    put_u32(b, e1 + 64, 9);
    reseal(b);
    const Status s = open(b);
    CHECK(s.code() == Errc::bad_tensor_entry);
    CHECK(mentions(s, "'b.weight'"));
    CHECK(mentions(s, "dtype 9"));
  }
  SUBCASE("unknown layout") {
    put_u32(b, e1 + 68, 7);
    reseal(b);
    CHECK(open(b).code() == Errc::bad_tensor_entry);
  }
  SUBCASE("rank 0 and rank 5") {
    put_u32(b, e1 + 72, 0);
    reseal(b);
    CHECK(open(b).code() == Errc::bad_tensor_entry);
    put_u32(b, e1 + 72, 5);
    reseal(b);
    CHECK(open(b).code() == Errc::bad_tensor_entry);
  }
  SUBCASE("byte size disagrees with the shape") {
    put_u64(b, e1 + 120, 4);
    reseal(b);
    const Status s = open(b);
    CHECK(s.code() == Errc::bad_tensor_entry);
    CHECK(mentions(s, "its shape needs"));
  }
  SUBCASE("dims whose product overflows 64 bits") {
    put_u32(b, entry(0) + 72, 4);
    for (int d = 0; d < 4; ++d) put_u64(b, entry(0) + 80 + 8 * d, 1ull << 20);
    reseal(b);
    CHECK(open(b).code() == Errc::bad_tensor_entry);
  }
  SUBCASE("offset past the end") {
    put_u64(b, e1 + 112, b.size() + 64);
    reseal(b);
    const Status s = open(b);
    CHECK(s.code() == Errc::out_of_bounds);
    CHECK(mentions(s, "'b.weight'"));
  }
  SUBCASE("offset + bytes wraps around") {
    put_u64(b, e1 + 112, 0xffffffffffffffc0ull);
    reseal(b);
    CHECK(open(b).code() == Errc::out_of_bounds);
  }
  SUBCASE("misaligned tensor") {
    put_u64(b, e1 + 112, blob::read_u64(b.data() + e1 + 112) + 4);
    reseal(b);
    CHECK(open(b).code() == Errc::misaligned);
  }
  SUBCASE("overlapping tensors") {
    put_u64(b, entry(2) + 112, blob::read_u64(b.data() + e1 + 112));
    reseal(b);
    const Status s = open(b);
    CHECK(s.code() == Errc::overlapping);
    CHECK(mentions(s, "'c.bias'"));
  }
  SUBCASE("tensor overlapping the table") {
    put_u64(b, entry(0) + 112, 0);
    reseal(b);
    CHECK(open(b).code() == Errc::overlapping);
  }
  SUBCASE("name without a terminating NUL") {
    std::memset(b.data() + e1, 'n', blob::name_capacity);
    reseal(b);
    const Status s = open(b);
    CHECK(s.code() == Errc::bad_tensor_entry);
    CHECK(mentions(s, "entry 1"));
  }
  SUBCASE("empty name") {
    b[e1] = 0;
    reseal(b);
    CHECK(open(b).code() == Errc::bad_tensor_entry);
  }
}

TEST_CASE("the reader refuses misaligned and null memory") {
  const auto b = pack::serialize_blob(sample_tensors());
  Aligned shifted(b, 4);
  BlobView v;
  CHECK(v.open(shifted.p, b.size()).code() == Errc::misaligned);
  CHECK(v.open(nullptr, b.size()).code() == Errc::null_pointer);
}

TEST_CASE("the binder checks name, layout and shape, and refuses unused tensors") {
  const auto bytes = pack::serialize_blob(sample_tensors());
  Aligned a(bytes);
  BlobView v;
  REQUIRE(v.open(a.p, bytes.size()).ok());

  SUBCASE("all present and right") {
    Binder b(v);
    CHECK(b.plain({3, 5}, "a.weight") != nullptr);
    CHECK(b.packed(7, 20, "%s.weight", "b") != nullptr);
    CHECK(b.plain({20}, "c.bias") != nullptr);
    CHECK(b.finish().ok());
  }
  SUBCASE("missing") {
    Binder b(v);
    CHECK(b.plain({3}, "blocks.%d.norm1.weight", 4) == nullptr);
    const Status s = b.finish();
    CHECK(s.code() == Errc::missing_tensor);
    CHECK(mentions(s, "'blocks.4.norm1.weight'"));
  }
  SUBCASE("wrong shape") {
    Binder b(v);
    b.plain({5, 3}, "a.weight");
    const Status s = b.finish();
    CHECK(s.code() == Errc::shape_mismatch);
    CHECK(mentions(s, "shape [3, 5], expected [5, 3]"));
  }
  SUBCASE("wrong layout") {
    Binder b(v);
    b.packed(3, 5, "a.weight");
    CHECK(b.finish().code() == Errc::layout_mismatch);
  }
  SUBCASE("a tensor the model does not use") {
    Binder b(v);
    b.plain({3, 5}, "a.weight");
    b.packed(7, 20, "b.weight");
    const Status s = b.finish();
    CHECK(s.code() == Errc::shape_mismatch);
    CHECK(mentions(s, "holds 3 tensors but the model uses 2"));
  }
}

TEST_CASE("the checksum covers every byte but its own field") {
  auto b = pack::serialize_blob(sample_tensors());
  const std::uint64_t h = blob::checksum(b.data(), b.size());
  b[blob::checksum_offset] ^= 0xff;  // the field itself does not count
  CHECK(blob::checksum(b.data(), b.size()) == h);
  b[blob::checksum_offset + 8] ^= 0x01;  // the next field does
  CHECK(blob::checksum(b.data(), b.size()) != h);
}

TEST_CASE("check_finite looks at bfloat16 tensors too (bf16 and int8 blobs), and not at int8 ones") {
  // A bfloat16 is finite iff its exponent bits (0x7f80) are not all ones.
  auto blob_with = [](std::uint16_t bad) {
    std::vector<BlobTensor> t = sample_tensors();
    BlobTensor h{"d.weight", blob::Layout::plain, {2, 4}, {}};
    h.dtype = blob::DType::bf16;
    const std::uint16_t v[8] = {0x3f80, 0xbf80, 0x0000, bad, 0x7f7f, 0xff7f, 0x0001, 0x8000};  // 1, -1, 0, bad, +-max, ...
    h.raw.assign(reinterpret_cast<const unsigned char*>(v), reinterpret_cast<const unsigned char*>(v) + sizeof v);
    t.push_back(h);
    BlobTensor q{"e.weight", blob::Layout::plain, {4}, {}};
    q.dtype = blob::DType::i8;
    q.raw = {0x7f, 0x80, 0xff, 0x00};  // int8 bytes that would be exponent-all-ones in a float
    t.push_back(q);
    return vitcc::pack::serialize_blob(t);
  };
  auto check = [](const std::vector<unsigned char>& bytes) {
    Aligned a(bytes);
    BlobView v;
    REQUIRE(v.open(a.p, bytes.size()).ok());
    return check_finite(v);
  };
  CHECK(check(blob_with(0x4049)).ok());  // 3.14: every value finite
  const Status inf = check(blob_with(0x7f80));
  CHECK(inf.code() == Errc::non_finite);
  CHECK(mentions(inf, "tensor 'd.weight' holds Inf at element 3"));
  const Status ninf = check(blob_with(0xff80));
  CHECK(mentions(ninf, "tensor 'd.weight' holds Inf at element 3"));
  const Status nan = check(blob_with(0xffc1));
  CHECK(nan.code() == Errc::non_finite);
  CHECK(mentions(nan, "tensor 'd.weight' holds NaN at element 3"));
  CHECK(mentions(check(blob_with(0x7f81)), "holds NaN at element 3"));  // a signalling NaN
}
