#pragma once
// Where instance files live: `<data_dir>/tmp` for data still arriving and `<data_dir>/archive`
// for committed files, laid out as STUDY_UID/SERIES_UID/SOP_UID.dcm. Both are inside the data
// directory, on one file system, so a commit is an atomic rename. `<data_dir>/journal` holds the
// ingest journals, `<data_dir>/staging` sessions not archived yet. Servers that share a data
// directory (one PostgreSQL index) share archive/ and staging/ and keep their temp files and
// journals apart, in `<data_dir>/instances/<instance id>/`. Thread-safe (no state).
#include <filesystem>
#include <string>

#include "core/result.h"

namespace pb {

class BlobStore {
 public:
  // `instance`: this server's id when it shares the directory ("" when it owns it).
  explicit BlobStore(const std::filesystem::path& data_dir, const std::string& instance = "");

  // Creates the folders and removes what a previous run left in tmp/ (never indexed).
  [[nodiscard]] Result<int> Prepare();

  // A fresh, unique path in tmp/ (the file is not created).
  std::filesystem::path NewTempPath();

  // The archive-relative path of an instance. UIDs that are not plain DICOM UIDs are hashed, so
  // a hostile UID cannot escape the archive folder.
  static std::string RelativePathFor(const std::string& study_uid, const std::string& series_uid,
                                     const std::string& sop_uid);

  std::filesystem::path Absolute(const std::string& relative) const;

  // The two places a commit puts files: the archive, or the staging area (paths relative to
  // staging/ start with the session's id).
  enum class Root { kArchive, kStaging };
  std::filesystem::path Absolute(Root root, const std::string& relative) const;

  enum class Placed { kNew, kReplaced, kExists };
  // Moves a finished temp file into the archive (or staging), creating folders. An existing file
  // is replaced only when `replace` is set (atomically either way); otherwise kExists and the
  // temp stays.
  [[nodiscard]] Result<Placed> Place(const std::filesystem::path& temp, const std::string& relative, bool replace,
                                     Root root = Root::kArchive);

  // Makes the file's content durable (fsync).
  [[nodiscard]] static Result<void> Sync(const std::filesystem::path& file);
  // Makes the directory entries of `relative`'s folder durable after a rename.
  [[nodiscard]] Result<void> SyncDirOf(const std::string& relative, Root root = Root::kArchive) const;

  const std::filesystem::path& tmp_dir() const { return tmp_; }
  const std::filesystem::path& journal_dir() const { return journal_; }
  const std::filesystem::path& archive_dir() const { return archive_; }
  // Sessions waiting to be archived (receivers without direct archive): staging/<session id>/.
  const std::filesystem::path& staging_dir() const { return staging_; }

 private:
  std::filesystem::path tmp_, archive_, journal_, staging_;
};

}  // namespace pb
