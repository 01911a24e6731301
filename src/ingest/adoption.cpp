#include "ingest/adoption.h"

#include <cstdio>
#include <mutex>
#include <system_error>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/thread_annotations.h"
#include "os/data_dir_lock.h"

namespace pb {
namespace {

// One takeover at a time in this process: the periodic look and the staging area's both take
// folders over, and on a file system that emulates flock per process (NFS) the lock alone would
// let both in.
Mutex adopting;

// Whether a stopped instance left anything to do: a journal that names something, or temp files.
bool HasWork(const std::filesystem::path& dir) {
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir / "journal", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    uint64_t n = 0;
    std::error_code size_ec;
    if (std::sscanf(it->path().filename().c_str(), "journal-%lu.log", &n) == 1 && it->file_size(size_ec) > 0)
      return true;
  }
  ec.clear();
  return std::filesystem::directory_iterator(dir / "tmp", ec) != std::filesystem::directory_iterator();
}

int RemoveTempFiles(const std::filesystem::path& tmp) {
  int removed = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(tmp, ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec)) {
    std::error_code rm;
    std::filesystem::remove_all(it->path(), rm);
    if (!rm) ++removed;
  }
  return removed;
}

std::string Named(const std::string& id) {
  return id.empty() ? std::string("the server that owned this data directory alone") : fmt::format("instance '{}'", id);
}

}  // namespace

namespace {

Takeover Adopt(const std::filesystem::path& data_dir, const std::string& id, const std::string& self,
               IngestPipeline& pipeline, Adopted* counts, const std::function<void()>& while_held) {
  // "": the folders a server that owned the directory alone used (data_dir/journal, tmp).
  const std::filesystem::path dir = id.empty() ? data_dir : DataDirLock::InstancesDir(data_dir) / id;
  MutexLock lock(adopting);
  std::error_code ec;
  // An instance whose folder is not here runs on another data directory (or never ran): whether
  // it runs cannot be told, so nothing of it is taken.
  if (!id.empty() && !std::filesystem::is_directory(dir, ec)) return Takeover::kUnknown;
  auto held = DataDirLock::TryAdopt(data_dir, id, self);
  if (!held) {
    spdlog::error("cannot look at the folder of {}: {}", Named(id), held.error().message);
    return Takeover::kUnknown;
  }
  if (!*held) return Takeover::kRunning;  // or another instance is taking it over
  if (HasWork(dir)) {
    auto indexed = pipeline.ReplayJournalsOf(dir / "journal");
    if (!indexed) {
      spdlog::error("{} stopped with journaled instances not indexed, and they cannot be indexed yet: {}", Named(id),
                    indexed.error().message);
      return Takeover::kUnknown;
    }
    const int removed = RemoveTempFiles(dir / "tmp");
    spdlog::info("{} is not running: indexed {} instance(s) its journals named, removed {} unfinished temp file(s)",
                 Named(id), *indexed, removed);
    if (counts) {
      ++counts->instances;
      counts->indexed += *indexed;
      counts->temp_files += removed;
    }
  }
  if (while_held) while_held();
  return Takeover::kStopped;
}

}  // namespace

Takeover AdoptInstance(const std::filesystem::path& data_dir, const std::string& id, const std::string& self,
                       IngestPipeline& pipeline, Adopted* counts, const std::function<void()>& while_held) {
  if (id == self && !id.empty()) return Takeover::kRunning;
  try {
    return Adopt(data_dir, id, self, pipeline, counts, while_held);
  } catch (const std::exception&) {  // a file system error the error_code forms do not cover
    spdlog::error("cannot look at the folder of {} in {}: the file system failed", Named(id), data_dir.string());
    return Takeover::kUnknown;
  }
}

Adopted AdoptStoppedInstances(const std::filesystem::path& data_dir, const std::string& self,
                              IngestPipeline& pipeline) {
  Adopted out;
  try {
    if (HasWork(data_dir)) (void)AdoptInstance(data_dir, "", self, pipeline, &out);
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator(DataDirLock::InstancesDir(data_dir), ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      const std::string id = it->path().filename().string();
      std::error_code dir_ec;
      // Only folders with work are locked: a running instance's is not taken even for a moment.
      if (id == self || !it->is_directory(dir_ec) || !HasWork(it->path())) continue;
      (void)AdoptInstance(data_dir, id, self, pipeline, &out);
    }
  } catch (const std::exception&) {  // a file system error the error_code forms do not cover
    spdlog::error("cannot look at the folders of the other instances in {}: the file system failed", data_dir.string());
  }
  return out;
}

}  // namespace pb
