#include "archive/blob_store.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

#include <fmt/format.h>

#include "core/validate.h"

namespace pb {
namespace {

std::string SafeComponent(const std::string& uid) {
  if (IsValidUid(uid)) return uid;
  uint64_t h = 1469598103934665603ull;  // FNV-1a: stable across runs and builds
  for (unsigned char c : uid) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return fmt::format("x{:016x}", h);
}

Error IoError(std::string what, int err) {
  return Error{err == ENOSPC || err == EDQUOT ? Code::kOutOfSpace : Code::kIoError,
               fmt::format("{}: {}", what, std::strerror(err)), ""};
}

}  // namespace

BlobStore::BlobStore(const std::filesystem::path& data_dir, const std::string& instance)
    : tmp_((instance.empty() ? data_dir : data_dir / "instances" / instance) / "tmp"),
      archive_(data_dir / "archive"),
      journal_((instance.empty() ? data_dir : data_dir / "instances" / instance) / "journal"),
      staging_(data_dir / "staging") {}

Result<int> BlobStore::Prepare() {
  std::error_code ec;
  for (const auto& d : {tmp_, archive_, journal_, staging_}) {
    std::filesystem::create_directories(d, ec);
    if (ec) return Fail(Code::kIoError, fmt::format("cannot create {}: {}", d.string(), ec.message()));
  }
  int removed = 0;
  for (const auto& e : std::filesystem::directory_iterator(tmp_, ec)) {
    std::filesystem::remove_all(e.path(), ec);
    ++removed;
  }
  return removed;
}

std::filesystem::path BlobStore::NewTempPath() {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t salt = std::random_device{}();
  static const pid_t pid = getpid();
  return tmp_ / fmt::format("{}-{:x}-{}.part", pid, salt & 0xffffff, counter.fetch_add(1));
}

std::string BlobStore::RelativePathFor(const std::string& study_uid, const std::string& series_uid,
                                       const std::string& sop_uid) {
  return fmt::format("{}/{}/{}.dcm", SafeComponent(study_uid), SafeComponent(series_uid), SafeComponent(sop_uid));
}

std::filesystem::path BlobStore::Absolute(const std::string& relative) const { return archive_ / relative; }

std::filesystem::path BlobStore::Absolute(Root root, const std::string& relative) const {
  return (root == Root::kStaging ? staging_ : archive_) / relative;
}

Result<BlobStore::Placed> BlobStore::Place(const std::filesystem::path& temp, const std::string& relative, bool replace,
                                           Root root) {
  std::filesystem::path dest = Absolute(root, relative);
  const char* what = root == Root::kStaging ? "rename into the staging area" : "rename into archive";
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, dest.c_str(), RENAME_NOREPLACE) == 0) {
      return Placed::kNew;
    }
    if (errno == EEXIST) {
      if (!replace) return Placed::kExists;
      if (::rename(temp.c_str(), dest.c_str()) != 0) return tl::unexpected(IoError(what, errno));
      return Placed::kReplaced;
    }
    if (errno != ENOENT || attempt > 0) return tl::unexpected(IoError(what, errno));
    std::error_code ec;
    std::filesystem::create_directories(dest.parent_path(), ec);
    if (ec) {
      return Fail(ec == std::errc::no_space_on_device ? Code::kOutOfSpace : Code::kIoError,
                  fmt::format("cannot create {}: {}", dest.parent_path().string(), ec.message()));
    }
  }
  return Fail(Code::kIoError, fmt::format("{} failed", what));
}

Result<void> BlobStore::Sync(const std::filesystem::path& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return tl::unexpected(IoError("open for fsync", errno));
  int rc = ::fdatasync(fd);  // the data and the size; other metadata is not needed to read it
  int err = errno;
  ::close(fd);
  if (rc != 0) return tl::unexpected(IoError("fsync", err));
  return {};
}

Result<void> BlobStore::SyncDirOf(const std::string& relative, Root root) const {
  int fd = ::open(Absolute(root, relative).parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return tl::unexpected(IoError("open folder for fsync", errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return tl::unexpected(IoError("fsync folder", err));
  return {};
}

}  // namespace pb
