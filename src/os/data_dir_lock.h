#pragma once
// One process owns a data directory at a time. The server takes an exclusive `flock` on
// `<data_dir>/pacsbridge.lock` before it reads, replays, cleans or writes anything there, and
// writes its PID into the file. The kernel releases the lock when the process ends in any way
// (crash and kill -9 included), so there is never a stale lock to remove by hand; a PID left in
// the file of a dead process means nothing.
//
// Several instances on one directory (a shared database, later) keep this file as the
// directory's lock: each instance would take it shared, which still excludes a single-process
// server, and take an exclusive lock on its own `instances/<id>/` folder, where its temp files
// and journal live. Today's server takes the exclusive form.
//
// Not thread-safe; one object per process, alive for the whole run.
#include <filesystem>
#include <string>

#include "core/result.h"

namespace pb {

class DataDirLock {
 public:
  // Creates `data_dir` if it does not exist yet, then locks it. When another process holds it,
  // fails with kAlreadyExists: "data directory X is in use by pacsbridge PID N" (the PID read
  // from the lock file), having changed nothing in the directory.
  [[nodiscard]] static Result<DataDirLock> Acquire(const std::filesystem::path& data_dir);
  // The same for something else one process must own, through `lock_file` (created if need be;
  // its folder must exist): an SQLite index outside the data directory. `what` names it in the
  // error ("the index database /srv/index.db is in use by pacsbridge PID N").
  [[nodiscard]] static Result<DataDirLock> AcquireFile(const std::filesystem::path& lock_file, const std::string& what,
                                                       const std::string& field);

  DataDirLock(DataDirLock&& other) noexcept;
  DataDirLock& operator=(DataDirLock&& other) noexcept;
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;
  ~DataDirLock();

  const std::filesystem::path& file() const { return file_; }

  static constexpr const char* kFileName = "pacsbridge.lock";

 private:
  DataDirLock(int fd, std::filesystem::path file) : fd_(fd), file_(std::move(file)) {}
  int fd_ = -1;
  std::filesystem::path file_;
};

}  // namespace pb
