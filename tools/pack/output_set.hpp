// The files one vitcc-pack run writes into its output folder, and the order that keeps every
// reader on one whole set (docs/FORMAT.md "Files", docs/ARCHITECTURE.md "Writing a set"):
//
//   1. NAME.<checksum>.vitcc and NAME.<hash>.hpp, content-addressed: a name never holds other bytes,
//      so writing them cannot disturb the set NAME.json names now;
//   2. the stable names users build with, each replaced on its own: NAME_weights.h, NAME_blob.{s,h,o}
//      (--emit-c-array, --emit-object), then NAME.hpp (a two-line header including NAME.<hash>.hpp);
//   3. NAME.json, renamed over the old one: the commit. It names the blob and the header (with their
//      checksums), so whoever reads it gets the new set whole; before this rename, the old one;
//   4. the files of NAME that the new set does not hold (the old set's blob and header, embedded
//      outputs this run did not write, a NAME.vitcc of the earlier untagged layout, temporaries of
//      killed runs) are removed.
// Each file is written with write_file_atomically. The folder is locked (flock) from the first
// write to the last removal, so two runs into one folder cannot remove each other's new files.
#pragma once
#include <set>
#include <string>

#include "artifacts.hpp"

namespace vitcc::pack {

class OutputSet {
 public:
  // Creates `dir` if needed and takes its lock (waiting for another vitcc-pack run to finish).
  OutputSet(const std::string& dir, const std::string& name);
  ~OutputSet();
  OutputSet(const OutputSet&) = delete;
  OutputSet& operator=(const OutputSet&) = delete;

  const std::string& dir() const { return dir_; }
  std::string path(const std::string& file) const { return dir_ + "/" + file; }

  // Writes `file` (a name in the folder) atomically, as part of the new set; `verify`: see
  // write_file_atomically.
  void write(const std::string& file, const void* bytes, std::size_t size, const WrittenCheck& verify = {});
  void write(const std::string& file, const std::string& text) { write(file, text.data(), text.size()); }
  // `file` was put in place by other means (the assembled object), as part of the new set.
  void keep(const std::string& file) { files_.insert(file); }

  // Steps 3 and 4: NAME.json, then the removal of what the new set does not hold.
  void commit(const std::string& config_text);

 private:
  void remove_stale();
  bool stale(const std::string& file) const;

  std::string dir_, name_;
  std::set<std::string> files_;
  int lock_fd_ = -1;
};

}  // namespace vitcc::pack
