#pragma once
// The ingest pipeline. Callers (receivers, retrieve jobs, imports) put a complete file into a
// temp path from NewTempPath() and call Ingest(), which blocks until the instance is durable and
// indexed (or refused) and never leaves the temp file behind. Ingest() is thread-safe and meant
// to be called from many threads: header parsing and fsync run in the caller's thread; index
// writes of concurrent callers are grouped into one transaction (leader/follower group commit).
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <string>

#include "archive/blob_store.h"
#include "archive/database.h"
#include "config/settings.h"

namespace pb {

struct IngestSource {
  std::string calling_ae, called_ae, peer;
  std::string expected_sop_uid;  // from the C-STORE request; a mismatch is refused
};

enum class IngestStatus { kStored, kDuplicate, kReplaced, kInvalid, kOutOfSpace, kFailed };

struct IngestOutcome {
  IngestStatus status = IngestStatus::kFailed;
  std::string message;
  std::string sop_uid;
  bool ok() const {
    return status == IngestStatus::kStored || status == IngestStatus::kDuplicate ||
           status == IngestStatus::kReplaced;
  }
};

struct IngestOptions {
  DuplicatePolicy duplicates = DuplicatePolicy::kKeep;
  bool fsync = false;
  size_t max_batch = 256;
};

class IngestPipeline {
 public:
  IngestPipeline(BlobStore& blobs, Database& db, IngestOptions options);
  ~IngestPipeline();
  IngestPipeline(const IngestPipeline&) = delete;
  IngestPipeline& operator=(const IngestPipeline&) = delete;

  std::filesystem::path NewTempPath() { return blobs_.NewTempPath(); }
  IngestOutcome Ingest(const std::filesystem::path& temp, const IngestSource& source);

 private:
  struct Pending;
  void CommitBatch(std::deque<Pending*>& batch);

  BlobStore& blobs_;
  Database& db_;
  IngestOptions options_;
  std::mutex mu_;
  std::deque<Pending*> queue_;  // GUARDED_BY(mu_)
  bool committing_ = false;     // GUARDED_BY(mu_): a caller is committing a batch
};

}  // namespace pb
