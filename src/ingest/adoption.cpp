#include "ingest/adoption.h"

#include <cstdio>
#include <system_error>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "os/data_dir_lock.h"

namespace pb {
namespace {

// Whether a stopped instance left anything to do: a journal that names something, or temp files.
bool HasWork(const std::filesystem::path& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir / "journal", ec)) {
    uint64_t n = 0;
    if (std::sscanf(e.path().filename().c_str(), "journal-%lu.log", &n) == 1 && e.file_size(ec) > 0) return true;
  }
  return std::filesystem::directory_iterator(dir / "tmp", ec) != std::filesystem::directory_iterator();
}

}  // namespace

Takeover AdoptInstance(const std::filesystem::path& data_dir, const std::string& id, const std::string& self,
                       IngestPipeline& pipeline, Adopted* counts) {
  const std::filesystem::path dir = DataDirLock::InstancesDir(data_dir) / id;
  std::error_code ec;
  if (id == self) return Takeover::kRunning;
  if (!std::filesystem::is_directory(dir, ec)) return Takeover::kStopped;  // never ran here
  auto lock = DataDirLock::TryAdopt(data_dir, id, self);
  if (!lock) {
    spdlog::error("cannot look at the folder of instance '{}': {}", id, lock.error().message);
    return Takeover::kUnknown;
  }
  if (!*lock) return Takeover::kRunning;  // or another instance is taking it over
  if (!HasWork(dir)) return Takeover::kStopped;
  auto indexed = pipeline.ReplayJournalsOf(dir / "journal");
  if (!indexed) {
    spdlog::error("instance '{}' stopped with journaled instances not indexed, and they cannot be indexed yet: {}", id,
                  indexed.error().message);
    return Takeover::kUnknown;
  }
  int removed = 0;
  for (const auto& t : std::filesystem::directory_iterator(dir / "tmp", ec)) {
    std::error_code rm;
    std::filesystem::remove_all(t.path(), rm);
    if (!rm) ++removed;
  }
  spdlog::info(
      "instance '{}' is not running: indexed {} instance(s) its journals named, removed {} unfinished temp file(s)", id,
      *indexed, removed);
  if (counts) {
    ++counts->instances;
    counts->indexed += *indexed;
    counts->temp_files += removed;
  }
  return Takeover::kStopped;
}

Adopted AdoptStoppedInstances(const std::filesystem::path& data_dir, const std::string& self,
                              IngestPipeline& pipeline) {
  Adopted out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(DataDirLock::InstancesDir(data_dir), ec)) {
    const std::string id = e.path().filename().string();
    // Only folders with work are locked: a running instance's is not taken even for a moment.
    if (id == self || !e.is_directory(ec) || !HasWork(e.path())) continue;
    (void)AdoptInstance(data_dir, id, self, pipeline, &out);
  }
  return out;
}

}  // namespace pb
