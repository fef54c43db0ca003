#include "artifacts.hpp"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <sstream>
#include <vector>
#include <stdexcept>

#include "../common/names.hpp"
#include "error.hpp"
#include "vitcc/kernels/gemm.hpp"
#include "vitcc/kernels/gemm_q8.hpp"

namespace vitcc::pack {
namespace {

const Tensor& need(const VitSpec& spec, const std::string& name) {
  auto it = spec.tensors.find(name);
  if (it == spec.tensors.end()) throw PackError("recognised model lacks tensor '" + name + "'");
  return it->second;
}
const Tensor* maybe(const VitSpec& spec, const std::string& name) {
  auto it = spec.tensors.find(name);
  return it == spec.tensors.end() ? nullptr : &it->second;
}

BlobTensor plain(std::string name, std::vector<std::uint64_t> dims, std::vector<float> data) {
  return BlobTensor{std::move(name), blob::Layout::plain, std::move(dims), std::move(data)};
}

// PyTorch Linear weight [out, in] (optionally rows scaled by `row_scale`) packed as B = W^T [in, out].
BlobTensor packed_linear(std::string name, const Tensor& w, const std::vector<float>* row_scale) {
  const std::size_t n = std::size_t(w.shape.at(0)), k = std::size_t(w.shape.at(1));
  std::vector<float> src = w.data;
  if (row_scale)
    for (std::size_t o = 0; o < n; ++o)
      for (std::size_t i = 0; i < k; ++i) src[o * k + i] *= (*row_scale)[o];
  std::vector<float> packed(kernels::packed_b_floats(k, n));
  kernels::pack_b_from_linear(src.data(), k, n, packed.data());
  return BlobTensor{std::move(name), blob::Layout::gemm_b16, {k, n}, std::move(packed)};
}

std::vector<float> scaled(const std::vector<float>& v, const std::vector<float>* s) {
  std::vector<float> out = v;
  if (s)
    for (std::size_t i = 0; i < out.size(); ++i) out[i] *= (*s)[i];
  return out;
}

void put_u32(unsigned char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
void put_u64(unsigned char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

}  // namespace

std::string hex64(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::vector<BlobTensor> fold_and_pack_vit(const VitSpec& s) {
  const std::size_t D = std::size_t(s.dim);
  const std::size_t patches = std::size_t((s.img_h / s.patch) * (s.img_w / s.patch));
  const std::size_t prefix = (s.has_cls_token ? 1 : 0) + std::size_t(s.num_reg_tokens);
  std::vector<BlobTensor> out;

  const Tensor* pos = s.has_pos_embed ? &need(s, "pos_embed") : nullptr;
  const std::size_t pos_patch_row = (pos && s.pos_embed_covers_prefix) ? prefix : 0;
  if (pos) {
    const std::size_t rows = s.pos_embed_covers_prefix ? prefix + patches : patches;
    if (pos->data.size() != rows * D)
      throw PackError("pos_embed from " + pos->source + " has " + std::to_string(pos->data.size() / D) +
                      " rows, expected " + std::to_string(rows));
  }

  if (prefix > 0) {
    std::vector<float> pre;
    if (s.has_cls_token) {
      const Tensor& cls = need(s, "cls_token");
      pre.insert(pre.end(), cls.data.begin(), cls.data.end());
    }
    if (s.num_reg_tokens > 0) {
      const Tensor& reg = need(s, "reg_token");
      pre.insert(pre.end(), reg.data.begin(), reg.data.end());
    }
    if (pre.size() != prefix * D) throw PackError("class/register tokens do not have " + std::to_string(prefix) + " rows of " + std::to_string(D));
    if (pos && s.pos_embed_covers_prefix)
      for (std::size_t i = 0; i < prefix * D; ++i) pre[i] += pos->data[i];
    out.push_back(plain("prefix_tokens", {prefix, D}, std::move(pre)));
  }

  const Tensor& pw = need(s, "patch_embed.weight");
  const std::size_t K = std::size_t(s.in_chans * s.patch * s.patch);
  {
    std::vector<float> packed(kernels::packed_b_floats(K, D));
    kernels::pack_b_from_linear(pw.data.data(), K, D, packed.data());
    out.push_back(BlobTensor{"patch_embed.weight", blob::Layout::gemm_b16, {K, D}, std::move(packed)});
  }
  {
    const Tensor* pb = maybe(s, "patch_embed.bias");
    std::vector<float> pos_bias(patches * D, 0.0f);
    for (std::size_t r = 0; r < patches; ++r)
      for (std::size_t j = 0; j < D; ++j)
        pos_bias[r * D + j] = (pos ? pos->data[(pos_patch_row + r) * D + j] : 0.0f) + (pb ? pb->data[j] : 0.0f);
    out.push_back(plain("patch_embed.pos_bias", {patches, D}, std::move(pos_bias)));
  }

  for (std::int64_t i = 0; i < s.depth; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    const Tensor* ls1 = maybe(s, b + "ls1.gamma");
    const Tensor* ls2 = maybe(s, b + "ls2.gamma");
    out.push_back(plain(b + "norm1.weight", {D}, need(s, b + "norm1.weight").data));
    out.push_back(plain(b + "norm1.bias", {D}, need(s, b + "norm1.bias").data));
    out.push_back(packed_linear(b + "attn.qkv.weight", need(s, b + "attn.qkv.weight"), nullptr));
    const Tensor* qb = maybe(s, b + "attn.qkv.bias");
    out.push_back(plain(b + "attn.qkv.bias", {3 * D}, qb ? qb->data : std::vector<float>(3 * D, 0.0f)));
    out.push_back(packed_linear(b + "attn.proj.weight", need(s, b + "attn.proj.weight"), ls1 ? &ls1->data : nullptr));
    out.push_back(plain(b + "attn.proj.bias", {D}, scaled(need(s, b + "attn.proj.bias").data, ls1 ? &ls1->data : nullptr)));
    out.push_back(plain(b + "norm2.weight", {D}, need(s, b + "norm2.weight").data));
    out.push_back(plain(b + "norm2.bias", {D}, need(s, b + "norm2.bias").data));
    out.push_back(packed_linear(b + "mlp.fc1.weight", need(s, b + "mlp.fc1.weight"), nullptr));
    out.push_back(plain(b + "mlp.fc1.bias", {std::size_t(s.mlp_hidden)}, need(s, b + "mlp.fc1.bias").data));
    out.push_back(packed_linear(b + "mlp.fc2.weight", need(s, b + "mlp.fc2.weight"), ls2 ? &ls2->data : nullptr));
    out.push_back(plain(b + "mlp.fc2.bias", {D}, scaled(need(s, b + "mlp.fc2.bias").data, ls2 ? &ls2->data : nullptr)));
  }
  if (s.final_norm) {
    out.push_back(plain("norm.weight", {D}, need(s, "norm.weight").data));
    out.push_back(plain("norm.bias", {D}, need(s, "norm.bias").data));
  }
  if (s.fc_norm) {
    out.push_back(plain("fc_norm.weight", {D}, need(s, "fc_norm.weight").data));
    out.push_back(plain("fc_norm.bias", {D}, need(s, "fc_norm.bias").data));
  }
  if (s.output == VitOutput::logits) {
    out.push_back(packed_linear("head.weight", need(s, "head.weight"), nullptr));
    const Tensor* hb = maybe(s, "head.bias");
    out.push_back(plain("head.bias", {std::size_t(s.num_classes)},
                        hb ? hb->data : std::vector<float>(std::size_t(s.num_classes), 0.0f)));
  }
  for (const BlobTensor& t : out) {
    std::uint64_t want = 1;
    if (t.layout == blob::Layout::gemm_b16) want = kernels::packed_b_floats(t.dims[0], t.dims[1]);
    else for (auto d : t.dims) want *= d;
    if (t.data.size() != want)
      throw PackError("tensor '" + t.name + "' has " + std::to_string(t.data.size()) + " values, its shape needs " + std::to_string(want));
  }
  return out;
}

VitDynamicConfig dynamic_config(const VitSpec& s) {
  VitDynamicConfig c;
  c.in_chans = int(s.in_chans);
  c.img_h = int(s.img_h);
  c.img_w = int(s.img_w);
  c.patch = int(s.patch);
  c.dim = int(s.dim);
  c.depth = int(s.depth);
  c.heads = int(s.heads);
  c.mlp_hidden = int(s.mlp_hidden);
  c.has_cls_token = s.has_cls_token;
  c.num_reg_tokens = int(s.num_reg_tokens);
  c.final_norm = s.final_norm;
  c.fc_norm = s.fc_norm;
  c.pool = s.pool;
  c.output = s.output;
  c.num_classes = int(s.num_classes);
  c.ln_eps = s.ln_eps;
  c.attn_scale = s.attn_scale;
  return c;
}

std::vector<unsigned char> serialize_blob(const std::vector<BlobTensor>& tensors) {
  const std::size_t header = blob::header_fixed_bytes + tensors.size() * blob::entry_bytes;
  auto align = [](std::size_t v) { return (v + blob::tensor_alignment - 1) / blob::tensor_alignment * blob::tensor_alignment; };
  std::size_t offset = align(header);
  const std::size_t data_offset = offset;
  std::vector<std::size_t> offsets;
  auto byte_count = [](const BlobTensor& t) { return t.dtype == blob::DType::f32 ? t.data.size() * sizeof(float) : t.raw.size(); };
  for (const BlobTensor& t : tensors) {
    offsets.push_back(offset);
    offset = align(offset + byte_count(t));
  }
  std::vector<unsigned char> bytes(offset, 0);
  unsigned char* p = bytes.data();
  std::memcpy(p, blob::magic, sizeof blob::magic);
  put_u32(p + 8, blob::format_version);
  put_u32(p + 12, blob::endian_tag);
  put_u32(p + 16, static_cast<std::uint32_t>(header));
  put_u32(p + 20, static_cast<std::uint32_t>(tensors.size()));
  put_u64(p + 24, bytes.size());
  put_u64(p + 40, data_offset);
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const BlobTensor& t = tensors[i];
    unsigned char* e = p + blob::header_fixed_bytes + i * blob::entry_bytes;
    if (t.name.size() >= blob::name_capacity) throw PackError("tensor name too long for the blob: " + t.name);
    if (t.dims.empty() || t.dims.size() > blob::max_rank) throw PackError("tensor '" + t.name + "' has an unsupported rank");
    std::memcpy(e, t.name.data(), t.name.size());
    put_u32(e + 64, static_cast<std::uint32_t>(t.dtype));
    put_u32(e + 68, static_cast<std::uint32_t>(t.layout));
    put_u32(e + 72, static_cast<std::uint32_t>(t.dims.size()));
    for (std::size_t d = 0; d < t.dims.size(); ++d) put_u64(e + 80 + 8 * d, t.dims[d]);
    put_u64(e + 112, offsets[i]);
    put_u64(e + 120, byte_count(t));
    static_assert(sizeof(float) == 4, "blob floats are IEEE binary32");
    // Little-endian host assumed (x86-64, aarch64); the reader refuses anything else.
    if (t.dtype == blob::DType::f32) std::memcpy(p + offsets[i], t.data.data(), t.data.size() * sizeof(float));
    else std::memcpy(p + offsets[i], t.raw.data(), t.raw.size());
  }
  put_u64(p + blob::checksum_offset, blob::checksum(p, bytes.size()));
  return bytes;
}

std::vector<BlobTensor> convert_precision(const std::vector<BlobTensor>& tensors, Precision p) {
  if (p == Precision::fp32) return tensors;
  std::vector<BlobTensor> out;
  for (const BlobTensor& original : tensors) {
    const BlobTensor& t = original.reduced_form.empty() ? original : original.reduced_form.front();
    if (t.layout == blob::Layout::plain && t.dtype == blob::DType::f32 && t.reduce != BlobTensor::Reduce::keep) {
      if (p == Precision::bf16 || t.reduce == BlobTensor::Reduce::bf16) {
        BlobTensor w{t.name, blob::Layout::plain, t.dims, {}};
        w.dtype = blob::DType::bf16;
        w.raw.resize(t.data.size() * sizeof(std::uint16_t));
        for (std::size_t i = 0; i < t.data.size(); ++i) {
          const std::uint16_t h = kernels::to_bf16(t.data[i]);
          std::memcpy(w.raw.data() + i * sizeof h, &h, sizeof h);
        }
        out.push_back(std::move(w));
      } else {  // int8, one scale per index of the last dim
        const std::size_t c = std::size_t(t.dims.back()), rows = t.data.size() / c;
        BlobTensor w{t.name, blob::Layout::plain, t.dims, {}};
        w.dtype = blob::DType::i8;
        w.raw.resize(t.data.size());
        BlobTensor scale{t.name + "_scale", blob::Layout::plain, {c}, std::vector<float>(c)};
        for (std::size_t ch = 0; ch < c; ++ch) {
          float mx = 0.0f;
          for (std::size_t r = 0; r < rows; ++r) mx = std::fmax(mx, std::fabs(t.data[r * c + ch]));
          const float inv = mx > 0.0f ? 127.0f / mx : 0.0f;
          scale.data[ch] = mx / 127.0f;
          for (std::size_t r = 0; r < rows; ++r) {
            float q = std::nearbyint(t.data[r * c + ch] * inv);
            q = q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
            w.raw[r * c + ch] = static_cast<unsigned char>(static_cast<std::int8_t>(q));
          }
        }
        out.push_back(std::move(w));
        out.push_back(std::move(scale));
      }
      continue;
    }
    if (t.layout != blob::Layout::gemm_b16) {
      out.push_back(t);
      continue;
    }
    const std::size_t k = std::size_t(t.dims[0]), n = std::size_t(t.dims[1]);
    if (p == Precision::bf16) {
      BlobTensor w{t.name, blob::Layout::gemm_b16_k2, t.dims, {}};
      w.dtype = blob::DType::bf16;
      std::vector<std::uint16_t> h(kernels::packed_b_bf16_elements(k, n));
      kernels::pack_b_bf16(t.data.data(), k, n, h.data());
      w.raw.resize(h.size() * sizeof(std::uint16_t));
      std::memcpy(w.raw.data(), h.data(), w.raw.size());
      out.push_back(std::move(w));
    } else {
      const std::size_t np = kernels::q8_padded_n(n);
      BlobTensor w{t.name, blob::Layout::gemm_b16_k4, t.dims, {}};
      w.dtype = blob::DType::i8;
      w.raw.resize(kernels::packed_b_q8_elements(k, n));
      BlobTensor scale{t.name + "_scale", blob::Layout::plain, {np}, std::vector<float>(np)};
      std::vector<std::int32_t> colsum(np);
      kernels::pack_b_q8(t.data.data(), k, n, reinterpret_cast<std::int8_t*>(w.raw.data()), scale.data.data(),
                         colsum.data());
      BlobTensor sums{t.name + "_colsum", blob::Layout::plain, {np}, {}};
      sums.dtype = blob::DType::i32;
      sums.raw.resize(np * sizeof(std::int32_t));
      std::memcpy(sums.raw.data(), colsum.data(), sums.raw.size());
      out.push_back(std::move(w));
      out.push_back(std::move(scale));
      out.push_back(std::move(sums));
    }
  }
  return out;
}

void test_step(const std::string& what) {
  static int step = 0;
  ++step;
  const std::string line = std::to_string(step) + " " + what + "\n";
  if (const char* log = std::getenv("VITCC_TEST_STEPS"); log && *log) {
    const int fd = ::open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      (void)!::write(fd, line.data(), line.size());
      ::close(fd);
    }
  }
  const char* pause = std::getenv("VITCC_TEST_PAUSE_AT");
  if (!pause || !*pause) return;
  const std::string spec = pause;
  const auto colon = spec.find(':');
  if (colon == std::string::npos || std::atoi(spec.substr(0, colon).c_str()) != step) return;
  const std::string marker = spec.substr(colon + 1);
  const int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    (void)!::write(fd, line.data(), line.size());
    ::fsync(fd);
    ::close(fd);
  }
  ::sleep(120);
  ::_exit(99);  // never killed: a broken test; do not go on writing as if nothing happened
}

void write_file_atomically(const std::string& path, const void* bytes, std::size_t size, const WrittenCheck& verify) {
  // On Linux the data goes to an unnamed file in the target folder (O_TMPFILE), which gets a name
  // only once it is complete and synced: a crash or SIGKILL while writing leaves nothing behind.
  // Elsewhere (or on a file system without O_TMPFILE) a named temporary file, removed on errors.
  // Either way the finished file is renamed over PATH; between naming and renaming (microseconds)
  // a kill leaves PATH.tmp.PID, which the next vitcc-pack run into the folder removes.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  bool anonymous = false;
  int fd = -1;
#ifdef O_TMPFILE
  fd = ::open(dir.c_str(), O_TMPFILE | O_WRONLY, 0644);
  anonymous = fd >= 0;
#endif
  if (fd < 0) fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw PackError(path + ": cannot create temporary file " + tmp + ": " + std::strerror(errno));
  auto give_up = [&](const std::string& what) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    if (!anonymous) ::unlink(tmp.c_str());
    throw PackError(path + ": " + what + ": " + why);
  };
  const auto* p = static_cast<const unsigned char*>(bytes);
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, p + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      give_up("write failed");
    }
    done += std::size_t(n);
  }
  if (::fsync(fd) != 0) give_up("cannot flush");
  test_step(path + ": written and synced" + (anonymous ? " to an unnamed file" : " to " + tmp) + ", not yet in place");
  if (anonymous) {
    const std::string proc = "/proc/self/fd/" + std::to_string(fd);
    ::unlink(tmp.c_str());  // a leftover of an earlier process with our pid
    if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, tmp.c_str(), AT_SYMLINK_FOLLOW) != 0) give_up("cannot name the temporary file");
    test_step(path + ": complete as " + tmp + ", not yet renamed over " + path);
  }
  if (::close(fd) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw PackError(path + ": cannot flush: " + why);
  }
  if (verify) {
    const char* corrupt = std::getenv("VITCC_TEST_CORRUPT_WRITTEN");
    if (corrupt && *corrupt && size > 0 && path.size() >= std::strlen(corrupt) &&
        path.compare(path.size() - std::strlen(corrupt), std::string::npos, corrupt) == 0) {
      const int cfd = ::open(tmp.c_str(), O_RDWR);
      unsigned char byte = 0;
      if (cfd >= 0 && ::pread(cfd, &byte, 1, off_t(size / 2)) == 1) {
        byte ^= 0x01;
        (void)!::pwrite(cfd, &byte, 1, off_t(size / 2));
      }
      if (cfd >= 0) ::close(cfd);
    }
    std::vector<unsigned char> back;
    try {
      back.resize(size);
    } catch (...) {  // no memory for the copy: leave no temporary file behind
      ::unlink(tmp.c_str());
      throw PackError(path + ": no memory to read the written file back (" + std::to_string(size) + " bytes)");
    }
    const int rfd = ::open(tmp.c_str(), O_RDONLY);
    std::size_t got = 0;
    while (rfd >= 0 && got < size) {
      const ssize_t n = ::read(rfd, back.data() + got, size - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += std::size_t(n);
    }
    unsigned char extra = 0;
    const bool longer = rfd >= 0 && ::read(rfd, &extra, 1) == 1;
    if (rfd >= 0) ::close(rfd);
    try {
      if (rfd < 0) throw PackError(std::string("cannot read it back: ") + std::strerror(errno));
      if (got != size || longer)
        throw PackError("read back " + std::string(longer ? "more than " : "") + std::to_string(got) + " bytes, wrote " +
                        std::to_string(size));
      verify(back.data(), size);
    } catch (const PackError& e) {
      ::unlink(tmp.c_str());
      throw PackError(path + ": the written file does not verify, not put in place: " + e.what());
    } catch (...) {
      ::unlink(tmp.c_str());
      throw;
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw PackError(path + ": cannot rename the temporary file into place: " + why);
  }
  // Make the rename itself durable.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

WrittenCheck blob_check(std::uint64_t expected) {
  return [expected](const unsigned char* bytes, std::size_t size) {
    // BlobView wants 64-byte aligned data: a copy in an aligned buffer.
    std::unique_ptr<void, decltype(&std::free)> copy(std::aligned_alloc(64, (size + 63) / 64 * 64), &std::free);
    if (!copy) throw PackError("no memory to check the blob");
    std::memcpy(copy.get(), bytes, size);
    BlobView view;
    const Status st = view.open(copy.get(), size);
    if (!st.ok()) throw PackError(std::string("blob check: ") + st.message());
    if (view.checksum() != expected)
      throw PackError("blob check: checksum " + hex64(view.checksum()) + ", expected " + hex64(expected));
  };
}

void check_finite(const std::vector<BlobTensor>& tensors, const std::string& file) {
  for (const BlobTensor& t : tensors)
    for (std::size_t k = 0; k < t.data.size(); ++k)
      if (!std::isfinite(t.data[k]))
        throw PackError(file + ": tensor '" + t.name + "' holds " + (std::isnan(t.data[k]) ? "NaN" : "Inf") +
                        " at element " + std::to_string(k) + " of " + std::to_string(t.data.size()) +
                        ": refusing to pack non-finite weights");
}

std::uint64_t vit_config_hash(const VitSpec& s) {
  std::ostringstream o;
  char eps[32], scale[32];
  std::snprintf(eps, sizeof eps, "%a", double(s.ln_eps));
  std::snprintf(scale, sizeof scale, "%a", double(s.attn_scale));
  o << "vit/1;" << s.in_chans << ';' << s.img_h << ';' << s.img_w << ';' << s.patch << ';' << s.dim << ';' << s.depth
    << ';' << s.heads << ';' << s.mlp_hidden << ';' << s.has_cls_token << ';' << s.num_reg_tokens << ';'
    << s.final_norm << ';' << s.fc_norm << ';' << int(s.pool) << ';' << int(s.output) << ';' << s.num_classes
    << ';' << eps << ';' << scale;
  return tools::fnv1a(o.str());
}

ModelStats vit_stats(const VitSpec& s) {
  ModelStats st;
  for (const auto& [name, t] : s.tensors) st.parameters += t.data.size();
  const std::uint64_t D = s.dim, H = s.mlp_hidden, P = (s.img_h / s.patch) * (s.img_w / s.patch);
  const std::uint64_t T = P + (s.has_cls_token ? 1 : 0) + s.num_reg_tokens;
  const std::uint64_t K = s.in_chans * s.patch * s.patch;
  // Multiply-adds count as 2 FLOPs; norms, softmax and GELU are left out (under 1%).
  std::uint64_t f = 2 * P * K * D;
  f += s.depth * (2 * T * D * 3 * D + 2 * T * D * D + 2 * 2 * T * T * D + 2 * 2 * T * D * H);
  if (s.output == VitOutput::logits) f += 2 * D * s.num_classes;
  st.flops = f;
  st.workspace_bytes = VitDims::of(dynamic_config(s)).workspace_floats() * sizeof(float);
  return st;
}

}  // namespace vitcc::pack
