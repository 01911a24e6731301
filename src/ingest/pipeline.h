#pragma once
// The ingest pipeline: the one commit of every instance, whatever its target. Callers
// (receivers, retrieve jobs, imports) put a complete file into a temp path from NewTempPath() and
// call Ingest() with a target: the archive, or a session of the staging area. Ingest() returns
// once the instance is in its final place (or refused) and never leaves the temp file behind.
//
// One commit, two targets: the header is parsed and the SOP Instance UID checked once, here;
// then, for either target, the same steps in the same order:
//   [fsync the file] → journal append [fdatasync] → atomic rename into archive/... or
//   staging/<session>/... → [fsync its folder] → the sender is answered.
// Durability before indexing: the journal names the instance before the rename, and the sender
// is answered only after both. The index rows (the archive's, or the staged_instances row of a
// staged instance) follow within milliseconds, in batches, from a background indexer; journals
// left by a crash are replayed by Recover() at the next start, staged entries into their
// session. So an answered instance is always either indexed or recoverable.
// Ingest() is thread-safe and meant to be called from many threads at once.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "archive/blob_store.h"
#include "archive/database.h"
#include "core/thread_annotations.h"
#include "ingest/arrivals.h"
#include "ingest/duplicate_policy.h"

namespace pb {

struct IngestSource {
  std::string calling_ae, called_ae, peer;
  std::string expected_sop_uid;            // from the C-STORE request; a mismatch is refused
  int64_t size = -1;                       // the temp file's size when the caller knows it
  const InstanceRecord* header = nullptr;  // already parsed by the caller (else read from file)
  std::string move_originator_ae;          // C-STORE sub-operations of a C-MOVE
  int move_originator_id = -1;
  std::string project, subject, session;  // routing's labels (cleaned); kept in the journal
  // The UIDs as sent, when anonymization replaced them: jobs recognise their instances by these.
  std::string original_sop_uid, original_study_uid, original_series_uid;
  // Success was already sent: never refused for the index's state (its journal keeps it).
  bool answered = false;
};

enum class IngestStatus { kStored, kDuplicate, kReplaced, kInvalid, kOutOfSpace, kFailed, kNotAuthorized };

struct IngestOutcome {
  IngestStatus status = IngestStatus::kFailed;
  std::string message;
  std::string sop_uid;
  bool ok() const {
    return status == IngestStatus::kStored || status == IngestStatus::kDuplicate || status == IngestStatus::kReplaced;
  }
};

struct IngestOptions {
  DuplicatePolicy duplicates = DuplicatePolicy::kKeep;  // the archive's; a staged copy replaces
  bool fsync = false;  // for every target: the file, the journal, the folder it is renamed into
  size_t max_batch = 512;
  // How long the indexer gathers instances into one transaction: longer windows cost less CPU
  // per instance (fewer commits) and delay only what the API can see.
  std::chrono::milliseconds batch_window{20};
  // Entries a journal takes before arrivals move to a fresh one; a journal whose entries are
  // all indexed is emptied in place. Rotating per batch would create and delete a file every
  // few milliseconds under load, and on ext4 without a journal every file created for ~30 s
  // after a deletion walks past the deleted inodes (measured: a small study's C-MOVE 0.17 s →
  // 0.25–0.33 s after a few such runs). After a crash, at most this many indexed entries are
  // replayed again (harmlessly).
  size_t journal_rotate_entries = 4096;
  // Tests only (PACSBRIDGE_TEST_INDEX_DELAY_MS): the indexer waits this long before each batch,
  // so that a crash test can kill the server with index writes surely pending.
  std::chrono::milliseconds test_index_delay{0};
};

// The staging area as a target of the commit (ingest/staging.h implements it): it names the
// session an instance goes to and learns when the commit ended. Between Enter() and Leave() the
// session cannot start archiving or be discarded, so no committed file is left behind.
class StagingSessions {
 public:
  // The open session of this receiver for the source's labels, created when there is none.
  [[nodiscard]] virtual Result<int64_t> Enter(const std::string& receiver, const IngestSource& src) = 0;
  // `durable`: journaled and renamed into the session's folder (its row follows in a batch);
  // `sent_sop_uid`: the SOP Instance UID as the sender sent it (before anonymization).
  virtual void Leave(int64_t session, const std::string& sent_sop_uid, bool durable) = 0;

 protected:
  ~StagingSessions() = default;
};

// Where Ingest() commits an instance.
struct IngestTarget {
  StagingSessions* staging = nullptr;  // null: the archive
  std::string receiver;                // the staging receiver whose session takes it

  static IngestTarget Archive() { return {}; }
  static IngestTarget Staging(StagingSessions& area, std::string receiver) { return {&area, std::move(receiver)}; }
};

// How many fsyncs the commits made (the fsync option must reach every target; tests check it).
struct SyncCounts {
  uint64_t files = 0, journal = 0, folders = 0;
};

class IngestPipeline {
 public:
  IngestPipeline(BlobStore& blobs, Database& db, IngestOptions options);
  // Indexes what is still pending, then stops the indexer.
  ~IngestPipeline();
  IngestPipeline(const IngestPipeline&) = delete;
  IngestPipeline& operator=(const IngestPipeline&) = delete;

  // Indexes the instances named by journals of an earlier run (archived ones into the index,
  // staged ones into their session's rows); call before receiving. Returns how many.
  [[nodiscard]] Result<int> Recover();
  // The same for the journals in `dir` of another instance sharing the data directory, which does
  // not run (its folder is locked by the caller): every journal there is indexed, then removed.
  [[nodiscard]] Result<int> ReplayJournalsOf(const std::filesystem::path& dir);

  // Called (from the indexer, no lock held) after instances were indexed: work that follows
  // indexing, such as writing their WADO-RS metadata ahead. Set before Recover().
  void SetIndexedListener(std::function<void()> listener);

  std::filesystem::path NewTempPath() { return blobs_.NewTempPath(); }
  const BlobStore& blobs() const { return blobs_; }
  // Every instance Ingest() puts in (or finds in) the archive or the staging area is published
  // here (retrieve jobs count their arrivals).
  ArrivalHub& arrivals() { return arrivals_; }
  IngestOutcome Ingest(const std::filesystem::path& temp, const IngestSource& source,
                       const IngestTarget& target = IngestTarget::Archive());

  // Why the index refuses writes (a full disk under it, a lost database), while it does, and
  // arrivals are refused for it; empty when it takes them.
  std::string IndexWriteError() EXCLUDES(mu_);

  // Waits until every instance stored before the call is indexed (tests, shutdown, API reads).
  [[nodiscard]] Result<void> Flush(std::chrono::seconds timeout = std::chrono::seconds(30));

  // Instances stored and journaled, not yet in the index.
  uint64_t QueueDepth() {
    MutexLock lock(mu_);
    return pushed_ - done_;
  }

  SyncCounts syncs() const { return {synced_files_.load(), synced_journal_.load(), synced_folders_.load()}; }

 private:
  struct Entry {
    InstanceRecord record;                 // archived: its index row
    std::optional<StagedInstance> staged;  // staged: its row instead
    uint64_t journal = 0;                  // the journal generation that names it
  };
  // Header (parsed once, here, for every target) and SOP Instance UID; else the refusal.
  [[nodiscard]] tl::expected<InstanceRecord, IngestOutcome> Check(const std::filesystem::path& temp,
                                                                  const IngestSource& src);
  IngestOutcome Commit(const std::filesystem::path& temp, const IngestSource& src, Entry entry);
  [[nodiscard]] Result<uint64_t> Journal(const std::string& line);  // appends; returns the generation
  void Release(uint64_t generation) REQUIRES(mu_);                  // an entry of it is settled
  [[nodiscard]] Result<void> OpenJournal(uint64_t generation) REQUIRES(mu_);
  std::filesystem::path JournalPath(uint64_t generation) const;
  void Announce(const InstanceRecord& rec, const IngestSource& src, bool was_present);
  void IndexLoop();
  [[nodiscard]] Result<void> IndexBatch(const std::vector<Entry>& entries);
  std::optional<Entry> Replay(const std::string& line);
  [[nodiscard]] Result<int> ReplayJournals(const std::filesystem::path& dir,
                                           uint64_t below);  // a journal line of an earlier run

  BlobStore& blobs_;
  Database& db_;
  ArrivalHub arrivals_;
  IngestOptions options_;
  std::filesystem::path journal_dir_;

  Mutex mu_;
  std::condition_variable wake_;     // the indexer: work or stop
  std::condition_variable indexed_;  // Flush(): progress
  std::vector<Entry> pending_ GUARDED_BY(mu_);
  std::map<uint64_t, int64_t> outstanding_ GUARDED_BY(mu_);  // unsettled entries per journal
  uint64_t active_journal_ GUARDED_BY(mu_) = 0;
  int journal_fd_ GUARDED_BY(mu_) = -1;
  size_t active_entries_ GUARDED_BY(mu_) = 0;  // written to the active journal
  uint64_t pushed_ GUARDED_BY(mu_) = 0;        // entries queued
  uint64_t done_ GUARDED_BY(mu_) = 0;          // entries indexed
  std::string last_error_ GUARDED_BY(mu_);
  // The index refuses writes (a full disk under it): new arrivals are refused until it takes
  // them again, rather than piling up answered instances only the journal knows.
  bool index_failing_ GUARDED_BY(mu_) = false;
  std::function<void()> on_indexed_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  bool flush_requested_ GUARDED_BY(mu_) = false;  // end the batch window now
  std::atomic<uint64_t> synced_files_{0}, synced_journal_{0}, synced_folders_{0};
  std::thread indexer_;
};

}  // namespace pb
