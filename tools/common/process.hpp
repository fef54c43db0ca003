// Host-tool helpers shared by vitcc-pack, vitcc-run and vitcc-compile: splitting a command string
// into arguments, running a child process without a shell, and turning any error message into the
// one stderr line the tools promise.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace vitcc::tools {

// A command or flag list from the environment ("ccache g++", "-O2 -march=native") as run_process
// arguments: split at whitespace, no shell quoting.
inline std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream ss(s);
  std::string w;
  while (ss >> w) out.push_back(w);
  return out;
}

// Runs args[0] (looked up on PATH) with args, no shell involved. Returns its exit status (128 +
// signal when killed); its stdout, and its stderr too when merge_stderr, is appended to `out`.
inline int run_process(const std::vector<std::string>& args, std::string& out, bool merge_stderr = true) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::dup2(fds[1], 1);
    if (merge_stderr) ::dup2(fds[1], 2);
    ::close(fds[0]);
    ::close(fds[1]);
    std::vector<char*> c;
    for (const auto& s : args) c.push_back(const_cast<char*>(s.c_str()));
    c.push_back(nullptr);
    ::execvp(c[0], c.data());
    std::fprintf(stderr, "cannot run %s: %s\n", c[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(fds[1]);
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) out.append(buf, std::size_t(n));
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

// The message on one line: newlines and tabs become single spaces (compiler logs and ONNX library
// messages span lines; the tools print exactly one stderr line per error).
inline std::string one_line(const char* message) {
  std::string line;
  for (const char* c = message; *c; ++c) {
    if (*c == '\n' || *c == '\r' || *c == '\t') {
      if (!line.empty() && line.back() != ' ') line += ' ';
    } else {
      line += *c;
    }
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

}  // namespace vitcc::tools
