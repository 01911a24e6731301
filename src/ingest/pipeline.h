#pragma once
// The ingest pipeline. Callers (receivers, retrieve jobs, imports) put a complete file into a
// temp path from NewTempPath() and call Ingest(), which returns once the instance is in its
// final place in the archive (or refused) and never leaves the temp file behind.
//
// Durability before indexing: an instance is first written to the journal (its archive path),
// then renamed into place; only then is the sender answered. The index follows within
// milliseconds, in batches, from a background indexer; journals left by a crash are replayed by
// Recover() at the next start. So an answered instance is always either indexed or recoverable.
// Ingest() is thread-safe and meant to be called from many threads at once.
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "archive/blob_store.h"
#include "archive/database.h"
#include "config/settings.h"
#include "ingest/arrivals.h"

namespace pb {

struct IngestSource {
  std::string calling_ae, called_ae, peer;
  std::string expected_sop_uid;  // from the C-STORE request; a mismatch is refused
  int64_t size = -1;             // the temp file's size when the caller knows it
  const InstanceRecord* header = nullptr;  // already parsed by the caller (else read from file)
  std::string move_originator_ae;  // C-STORE sub-operations of a C-MOVE
  int move_originator_id = -1;
  std::string project, subject, session;  // routing's labels (cleaned); kept in the journal
  // The UIDs as sent, when anonymization replaced them: jobs recognise their instances by these.
  std::string original_sop_uid, original_study_uid, original_series_uid;
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
  size_t max_batch = 512;
};

class IngestPipeline {
 public:
  IngestPipeline(BlobStore& blobs, Database& db, IngestOptions options);
  // Indexes what is still pending, then stops the indexer.
  ~IngestPipeline();
  IngestPipeline(const IngestPipeline&) = delete;
  IngestPipeline& operator=(const IngestPipeline&) = delete;

  // Indexes the instances named by journals of an earlier run; call before receiving.
  Result<int> Recover();

  std::filesystem::path NewTempPath() { return blobs_.NewTempPath(); }
  // Every instance Ingest() puts in (or finds in) the archive is published here.
  ArrivalHub& arrivals() { return arrivals_; }
  IngestOutcome Ingest(const std::filesystem::path& temp, const IngestSource& source);

  // Waits until every instance stored before the call is indexed (tests, shutdown).
  Result<void> Flush(std::chrono::seconds timeout = std::chrono::seconds(30));

  // Tells the jobs that wait for it that an instance arrived somewhere other than the archive
  // (the staging area).
  void Announce(const InstanceRecord& rec, const IngestSource& src, bool was_present);

 private:
  struct Entry {
    InstanceRecord record;
    uint64_t journal = 0;  // the journal generation that names it
  };
  Result<uint64_t> Journal(const InstanceRecord& rec);  // appends; returns the generation
  void Release(uint64_t generation);                       // an entry of it is settled
  Result<void> OpenJournal(uint64_t generation);
  std::filesystem::path JournalPath(uint64_t generation) const;
  void IndexLoop();
  Result<void> IndexBatch(const std::vector<InstanceRecord>& records);

  BlobStore& blobs_;
  Database& db_;
  ArrivalHub arrivals_;
  IngestOptions options_;
  std::filesystem::path journal_dir_;

  std::mutex mu_;
  std::condition_variable wake_;     // the indexer: work or stop
  std::condition_variable indexed_;  // Flush(): progress
  std::vector<Entry> pending_;                // GUARDED_BY(mu_)
  std::map<uint64_t, int64_t> outstanding_;   // GUARDED_BY(mu_): unsettled entries per journal
  uint64_t active_journal_ = 0;               // GUARDED_BY(mu_)
  int journal_fd_ = -1;                       // GUARDED_BY(mu_)
  uint64_t pushed_ = 0, done_ = 0;            // GUARDED_BY(mu_): entries queued / indexed
  std::string last_error_;                    // GUARDED_BY(mu_)
  bool stopping_ = false;                     // GUARDED_BY(mu_)
  bool flush_requested_ = false;              // GUARDED_BY(mu_): end the batch window now
  std::thread indexer_;
};

}  // namespace pb
