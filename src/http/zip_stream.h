#pragma once
// A ZIP archive written as it goes, for downloads (libarchive's writer): each file's bytes go
// out as they are read, so a download starts at once and never sits whole in memory or on disk.
// Entries are stored, not deflated: DICOM pixel data is often compressed already and deflating
// the rest costs more CPU than it saves on a local network. Sizes beyond 4 GiB use ZIP64.
#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>

#include "core/result.h"

struct archive;

namespace pb::http {

class ZipStream {
 public:
  // `write` gets the archive's bytes in order; false stops everything (the reader went away).
  using Write = std::function<bool(const char* data, std::size_t size)>;
  explicit ZipStream(Write write);
  ~ZipStream();
  ZipStream(const ZipStream&) = delete;
  ZipStream& operator=(const ZipStream&) = delete;

  // Adds `file` as `name` (a relative path with '/').
  [[nodiscard]] Result<void> AddFile(const std::string& name, const std::filesystem::path& file);
  // Writes the central directory. Nothing may be added afterwards.
  [[nodiscard]] Result<void> Finish();

 private:
  static long OnWrite(struct archive*, void* self, const void* data, std::size_t size);
  [[nodiscard]] Result<void> Failed(const std::string& what);
  Write write_;
  struct archive* a_ = nullptr;
  bool reader_gone_ = false;
};

}  // namespace pb::http
