#pragma once
// The staging area: receivers without direct archive collect instances here, one folder per
// session (project / subject / session labels of one receiver), until the session is complete:
// no instance arrived for the receiver's idle time, or a retrieve job that expected an exact
// set of instances has all of them, or someone archives it by hand. Complete sessions go
// through the ingest pipeline into the archive, then an event is emitted; a session can also
// be discarded.
//
// Durability: a staged file is renamed into staging/<id>/ and recorded in the index database
// before the sender is answered; at start, files without their row are recorded again and
// sessions left half archived are finished. Time comes from an injected clock (tests).
// Thread-safe.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "archive/blob_store.h"
#include "archive/database.h"
#include "ingest/pipeline.h"
#include "ingest/staging_plan.h"

namespace pb {

struct ArchivedSession {
  StagedSession session;
  int64_t archived = 0, failed = 0;
  std::string error;  // the first failure
};

class StagingArea {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  // `idle_seconds` gives a receiver's current idle time (it can change at run time).
  StagingArea(IngestPipeline& pipeline, Database& db, BlobStore& blobs,
              std::function<int(const std::string& receiver)> idle_seconds,
              Clock clock = [] { return std::chrono::steady_clock::now(); });
  ~StagingArea();
  StagingArea(const StagingArea&) = delete;
  StagingArea& operator=(const StagingArea&) = delete;

  // Records files left by a crash and finishes sessions left half archived. Call before
  // receiving; returns the number of sessions waiting.
  Result<int> Recover();
  // Checks for idle sessions once a second on a thread of its own.
  void StartTicker();
  void Stop();

  // Moves a complete temp file into its session (labels and receiver from `src` and
  // `receiver`); removes the temp file on failure. The outcome is what the sender is told.
  IngestOutcome Stage(const std::filesystem::path& temp, const IngestSource& src, const std::string& receiver);

  // Archives every open session whose last arrival is older than its receiver's idle time.
  std::vector<ArchivedSession> ArchiveIdle();
  Result<ArchivedSession> Archive(int64_t id);
  Result<void> Discard(int64_t id);
  // Archives the open sessions holding any of these SOP Instance UIDs (as sent, before
  // anonymization): a retrieve job received everything it expected.
  std::vector<ArchivedSession> ArchiveHolding(const std::vector<std::string>& original_sop_uids);

  Result<std::vector<StagedSession>> List() { return db_.ListStagedSessions(); }
  // Where the session's series will be filed once archived (staging_plan.h).
  Result<FilingPlan> Plan(const StagedSession& session);
  Result<std::optional<StagedSession>> Get(int64_t id) { return db_.GetStagedSession(id); }

  // Called after a session reached the archive (for later automations); on the archiving thread.
  void OnArchived(std::function<void(const ArchivedSession&)> f) { on_archived_ = std::move(f); }

 private:
  std::filesystem::path SessionDir(int64_t id) const;

  IngestPipeline& pipeline_;
  Database& db_;
  BlobStore& blobs_;
  std::function<int(const std::string&)> idle_seconds_;
  Clock clock_;
  std::function<void(const ArchivedSession&)> on_archived_;

  std::mutex mu_;  // Stage() vs. the start of archiving (a session must not move under Stage)
  std::map<int64_t, std::chrono::steady_clock::time_point> last_arrival_;  // GUARDED_BY(mu_)
  std::map<int64_t, std::vector<std::string>> originals_;  // GUARDED_BY(mu_): UIDs as sent, by session
  std::mutex archive_mu_;  // one archiving at a time

  std::mutex tick_mu_;
  std::condition_variable tick_cv_;
  bool stopping_ = false;  // GUARDED_BY(tick_mu_)
  std::thread ticker_;
};

}  // namespace pb
