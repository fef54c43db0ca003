// Debug builds (VITCC_ASSERT active: this file is compiled without NDEBUG) stop a forward pass whose
// template precision P is not the precision of the config it is given: the weights were bound, and
// the workspace sized, for the config's precision, so the kernels of another P would read bfloat16
// or int8 bytes as another type. Each call runs in a child process, which must die of SIGABRT with
// the assertion's message on stderr, before it touches the (absent) weights: without the assertion
// the child runs on and dies otherwise (null weights) or not at all.
#ifdef NDEBUG
#error "this test checks assert(): it must be compiled without NDEBUG"
#endif
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "vitcc/models/efficientvit.hpp"
#include "vitcc/models/vit.hpp"

namespace {

// Runs f in a child; returns its terminating signal (0 if it exited) and what it wrote on stderr.
template <class F>
std::pair<int, std::string> in_child(F f) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(fds[1], 2);
    ::close(fds[0]);
    f();
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string err;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) err.append(buf, std::size_t(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {WIFSIGNALED(status) ? WTERMSIG(status) : 0, err};
}

}  // namespace

TEST_CASE("vit_forward asserts that the config's precision is the template's P") {
  vitcc::VitDynamicConfig c;
  c.img_h = c.img_w = 32;
  c.patch = 16;
  c.dim = 32;
  c.depth = 1;
  c.heads = 2;
  c.mlp_hidden = 64;
  c.has_cls_token = true;
  c.num_classes = 10;
  c.attn_scale = 0.25f;
  c.precision = vitcc::Precision::bf16;
  const auto [sig, err] = in_child([&] {
    vitcc::VitWeights w{};
    std::vector<float> image(3 * 32 * 32), out(10), ws(64);
    vitcc::detail::vit_forward<vitcc::default_arch, vitcc::Precision::int8>(c, w, nullptr, image.data(), out.data(),
                                                                            ws.data());
  });
  INFO("child stderr: ", err);
  CHECK(sig == SIGABRT);
  CHECK(err.find("vit_forward: the config's precision is not the template's P") != std::string::npos);
}

TEST_CASE("efficientvit_forward asserts that the config's precision is the template's P") {
  vitcc::EfficientVitDynamicConfig c;
  c.img_size = 64;
  for (int i = 0; i < 3; ++i) {
    c.embed_dim[i] = 16 * (i + 1);
    c.depth[i] = 1;
    c.num_heads[i] = 2;
    c.key_dim[i] = 8;
    c.window_size[i] = 2;
    c.attn_scale[i] = 0.25f;
  }
  c.kernels[0] = c.kernels[1] = 3;
  c.num_classes = 10;
  c.precision = vitcc::Precision::int8;
  const auto [sig, err] = in_child([&] {
    vitcc::EvitWeights w{};
    std::vector<float> image(3 * 64 * 64), out(10), ws(64);
    vitcc::detail::efficientvit_forward<vitcc::default_arch, vitcc::Precision::bf16>(c, w, nullptr, image.data(),
                                                                                     out.data(), ws.data());
  });
  INFO("child stderr: ", err);
  CHECK(sig == SIGABRT);
  CHECK(err.find("efficientvit_forward: the config's precision is not the template's P") != std::string::npos);
}
