#pragma once
// The staging area: receivers without direct archive collect instances here, one folder per
// session (project / subject / session labels of one receiver), until the session is complete:
// no instance arrived for the receiver's idle time, or a retrieve job that expected an exact
// set of instances has all of them, or someone archives it by hand. Complete sessions go
// through the ingest pipeline into the archive, then an event is emitted; a session can also
// be discarded.
//
// Staging is a target of the pipeline's one commit, not a store of its own:
// `pipeline.Ingest(temp, src, staging.Target(receiver))` checks the instance, asks this area for
// the session (Enter), journals, renames into staging/<id>/ (with the fsync option, as for the
// archive) and queues the staged row for the indexer's next batch; only then is the sender
// answered. A crash before the row is written is repaired by the pipeline's Recover() from the
// journal; this area's Recover() also records files still without a row (a second net) and
// finishes sessions left half archived. Archiving or discarding a session first waits for the
// commits in flight into it, then for their rows. Time comes from an injected clock (tests).
// Thread-safe.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "archive/blob_store.h"
#include "archive/database.h"
#include "core/thread_annotations.h"
#include "ingest/pipeline.h"
#include "ingest/staging_plan.h"

namespace pb {

struct ArchivedSession {
  StagedSession session;
  int64_t archived = 0, failed = 0;
  std::string error;  // the first failure
};

class StagingArea final : public StagingSessions {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  // `idle_seconds` gives a receiver's current idle time (it can change at run time).
  StagingArea(
      IngestPipeline& pipeline, Database& db, BlobStore& blobs,
      std::function<int(const std::string& receiver)> idle_seconds,
      Clock clock = [] { return std::chrono::steady_clock::now(); });
  ~StagingArea();
  StagingArea(const StagingArea&) = delete;
  StagingArea& operator=(const StagingArea&) = delete;

  // Servers sharing the data directory (one PostgreSQL index): sessions belong to the instance
  // that opened them (`owner`, this one's id), which alone archives them. The session of another
  // instance is taken over when `take_over(instance, claim)` finds that instance stopped: it runs
  // `claim` while the instance cannot start again (and after its journals were indexed) and
  // answers true. Call before Recover().
  using TakeOver = std::function<bool(const std::string& instance, const std::function<void()>& claim)>;
  void ShareWith(std::string owner, TakeOver take_over);

  // Records files left by a crash without their row (after the pipeline's Recover(), which
  // replays the journal) and removes folders of discarded sessions. Call before receiving;
  // returns the number of sessions waiting.
  [[nodiscard]] Result<int> Recover();
  // Checks for idle sessions once a second on a thread of its own.
  void StartTicker();
  void Stop();

  // The commit target that stages into this receiver's session for the instance's labels:
  // `pipeline.Ingest(temp, src, staging.Target(receiver))`.
  IngestTarget Target(const std::string& receiver) { return IngestTarget::Staging(*this, receiver); }

  // Archives every open session whose last arrival is older than its receiver's idle time.
  std::vector<ArchivedSession> ArchiveIdle();
  [[nodiscard]] Result<ArchivedSession> Archive(int64_t id);
  [[nodiscard]] Result<void> Discard(int64_t id);
  // Archives the open sessions holding any of these SOP Instance UIDs (as sent, before
  // anonymization): a retrieve job received everything it expected.
  std::vector<ArchivedSession> ArchiveHolding(const std::vector<std::string>& original_sop_uids);

  // Reads see every instance whose sender was answered (they wait briefly for the indexer).
  [[nodiscard]] Result<std::vector<StagedSession>> List();
  // Where the session's series will be filed once archived (staging_plan.h).
  [[nodiscard]] Result<FilingPlan> Plan(const StagedSession& session);
  [[nodiscard]] Result<std::optional<StagedSession>> Get(int64_t id);

  // Called after a session reached the archive (for later automations); on the archiving thread.
  void OnArchived(std::function<void(const ArchivedSession&)> f) { on_archived_ = std::move(f); }

 private:
  using SessionKey = std::tuple<std::string, std::string, std::string, std::string>;  // receiver, labels

  // StagingSessions, for the pipeline's commit.
  [[nodiscard]] Result<int64_t> Enter(const std::string& receiver, const IngestSource& src) override;
  void Leave(int64_t session, const std::string& sent_sop_uid, bool durable) override;

  std::filesystem::path SessionDir(int64_t id) const;
  // New arrivals no longer go to session `id`; returns once no commit into it is in flight.
  void Close(int64_t id, MutexLock& lock) REQUIRES(mu_);
  void CatchUp() { (void)pipeline_.Flush(std::chrono::seconds(2)); }
  // Whether this instance archives `s`: its own, or taken over now from an instance that does
  // not run (its idle time then starts again here).
  bool Mine(const StagedSession& s);
  // kConflict when session `id` belongs to another instance that runs (it alone knows its
  // arrivals in flight). Called without mu_ held.
  [[nodiscard]] Result<void> CheckOwner(int64_t id, const char* what);

  IngestPipeline& pipeline_;
  Database& db_;
  BlobStore& blobs_;
  std::function<int(const std::string&)> idle_seconds_;
  Clock clock_;
  std::function<void(const ArchivedSession&)> on_archived_;
  std::string owner_;   // set before use (ShareWith)
  TakeOver take_over_;  // empty: the sessions are all ours

  Mutex mu_;                         // sessions: which are open, commits in flight into them, arrivals
  std::condition_variable settled_;  // a commit left its session
  std::map<SessionKey, int64_t> open_ GUARDED_BY(mu_);  // sessions taking arrivals
  std::map<int64_t, int> in_flight_ GUARDED_BY(mu_);    // commits between Enter and Leave
  std::map<int64_t, std::chrono::steady_clock::time_point> last_arrival_ GUARDED_BY(mu_);
  std::map<int64_t, std::vector<std::string>> originals_ GUARDED_BY(mu_);  // UIDs as sent, by session
  Mutex archive_mu_;                                                       // one archiving (or discard) at a time

  Mutex tick_mu_;
  std::condition_variable tick_cv_;
  bool stopping_ GUARDED_BY(tick_mu_) = false;
  std::thread ticker_;
};

}  // namespace pb
