#pragma once
// One process owns a data directory at a time. The server takes an exclusive `flock` on
// `<data_dir>/pacsbridge.lock` before it reads, replays, cleans or writes anything there, and
// writes its PID into the file. The kernel releases the lock when the process ends in any way
// (crash and kill -9 included), so there is never a stale lock to remove by hand; a PID left in
// the file of a dead process means nothing.
//
// Several instances on one directory (servers on one PostgreSQL index) keep this file as the
// directory's lock: each takes it shared (AcquireShared), which still excludes a single-process
// server and is excluded by one, and takes `instances/<id>/pacsbridge.lock` exclusively
// (AcquireInstance), the folder where its temp files and journals live. The folder of an
// instance that does not run is taken over (TryAdopt) by one that does, to index what its
// journals name.
//
// Not thread-safe; one object per process, alive for the whole run.
#include <chrono>
#include <filesystem>
#include <optional>
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

  // The directory's lock taken shared, for servers on one PostgreSQL index. Refused (kAlreadyExists)
  // while a server with its own SQLite index holds it, naming its PID.
  [[nodiscard]] static Result<DataDirLock> AcquireShared(const std::filesystem::path& data_dir);
  // The instance's own folder, `instances/<id>/` (created if need be). Refused when a server with
  // the same instance id runs on this directory. When another instance is indexing what this
  // one's journals name (TryAdopt), waits up to `wait` for it to finish.
  [[nodiscard]] static Result<DataDirLock> AcquireInstance(const std::filesystem::path& data_dir, const std::string& id,
                                                           std::chrono::milliseconds wait);
  // Another instance's folder, when that instance does not run: nullopt when it does (or another
  // instance is taking it over). `by` (our id) is written into its lock file meanwhile. Id ""
  // stands for the journal and temp folders of a server that owned the directory alone (before
  // instances shared it), held through `journal.lock`.
  [[nodiscard]] static Result<std::optional<DataDirLock>> TryAdopt(const std::filesystem::path& data_dir,
                                                                   const std::string& id, const std::string& by);
  static std::filesystem::path InstancesDir(const std::filesystem::path& data_dir) { return data_dir / "instances"; }
  // The data directory's identity: a random id kept in `data_dir/pacsbridge.id`, made by the first
  // server that asks (several starting together agree on one). A copy of the directory (a backup
  // restored) keeps it.
  [[nodiscard]] static Result<std::string> DirectoryId(const std::filesystem::path& data_dir);

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
