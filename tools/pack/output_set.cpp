// See output_set.hpp.
#include "output_set.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "../common/names.hpp"
#include "artifacts.hpp"
#include "error.hpp"

namespace vitcc::pack {

OutputSet::OutputSet(const std::string& dir, const std::string& name) : dir_(dir), name_(name) {
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) throw PackError(dir_ + ": cannot create the output folder: " + ec.message());
  lock_fd_ = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lock_fd_ < 0) throw PackError(dir_ + ": cannot open the output folder: " + std::strerror(errno));
  while (::flock(lock_fd_, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    const std::string why = std::strerror(errno);
    ::close(lock_fd_);
    throw PackError(dir_ + ": cannot lock the output folder: " + why);
  }
}

OutputSet::~OutputSet() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the lock
}

void OutputSet::write(const std::string& file, const void* bytes, std::size_t size, const WrittenCheck& verify) {
  write_file_atomically(path(file), bytes, size, verify);
  files_.insert(file);
}

void OutputSet::commit(const std::string& config_text) {
  write(name_ + ".json", config_text);
  test_step(path(name_ + ".json") + ": committed, the new set is in place; the old set's files not yet removed");
  remove_stale();
}

// Whether `file` in the folder belongs to NAME but not to the new set. Only names that vitcc-pack
// writes for NAME can match; a model name cannot end in '.' + 16 hex digits, so NAME.<tag>.hpp is
// never another model's NAME.hpp.
bool OutputSet::stale(const std::string& file) const {
  if (files_.count(file)) return false;
  const std::string& n = name_;
  auto tagged = [&](const std::string& f, const char* ext) {
    const std::size_t e = std::strlen(ext);
    return f.size() == n.size() + 1 + 16 + e && f.compare(0, n.size() + 1, n + ".") == 0 &&
           tools::is_hex16(f, n.size() + 1) && f.compare(f.size() - e, e, ext) == 0;
  };
  if (tagged(file, ".vitcc") || tagged(file, ".hpp")) return true;
  if (file == n + ".vitcc") return true;  // the blob of the layout before tagged names
  for (const char* embedded : {"_weights.h", "_blob.s", "_blob.h", "_blob.o"})
    if (file == n + embedded) return true;
  // A temporary of a run that was killed between naming a finished file and renaming it.
  const auto t = file.rfind(".tmp.");
  if (t == std::string::npos || t + 5 == file.size()) return false;
  const std::string base = file.substr(0, t), pid_text = file.substr(t + 5);
  for (char c : pid_text)
    if (c < '0' || c > '9') return false;
  if (pid_text.size() > 9) return false;
  if (!(base == n + ".json" || base == n + ".hpp" || files_.count(base) || stale(base))) return false;
  const pid_t pid = pid_t(std::atol(pid_text.c_str()));
  return pid == ::getpid() || (::kill(pid, 0) != 0 && errno == ESRCH);
}

void OutputSet::remove_stale() {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir_.c_str())) {
    while (const dirent* e = ::readdir(d)) names.push_back(e->d_name);
    ::closedir(d);
  }
  // Blobs last: a file that names a blob (an old config header) goes before the blob it names, so
  // that a kill during the removal never leaves a file naming one that is gone.
  std::stable_partition(names.begin(), names.end(), [](const std::string& f) {
    return f.size() < 6 || f.compare(f.size() - 6, 6, ".vitcc") != 0;
  });
  bool removed = false;
  for (const std::string& f : names) {
    if (!stale(f)) continue;
    test_step(path(f) + ": removing (not part of the new set)");
    if (::unlink(path(f).c_str()) != 0 && errno != ENOENT)
      throw PackError(path(f) + ": the new set is in place, but this file of the previous one cannot be removed: " +
                      std::strerror(errno));
    removed = true;
  }
  if (removed) {
    const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
}

}  // namespace vitcc::pack
