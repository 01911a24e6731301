#pragma once
// The persistent job queue: jobs are rows of the `jobs` table, run by a configurable number of
// worker threads. A job is `queued`, `waiting` (for its next attempt, or paused), `running`,
// then `succeeded`, `partial`, `failed` or `canceled`.
//
// Nothing stops a job for good but its own outcome or a person:
//   - a job that was running when the server stopped or died is queued again at the next start
//     and resumes (its runner does only what is still missing);
//   - a run that ended on a transient fault is tried again after an exponential backoff with
//     jitter, up to the node's attempts; a permanent fault ends the job and says why;
//   - outside its node's availability window a job waits for the next one, and a running one
//     stops between instances when its window ends, to go on at the next;
//   - every run is an entry of the job's history.
// Jobs run by priority, then queue order, and never more at once against a node than the node
// allows. Live progress is kept in memory and written about once a second. Thread-safe.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "archive/database.h"
#include "core/clock.h"
#include "core/result.h"
#include "core/thread_annotations.h"
#include "jobs/duty_cycle.h"
#include "nodes/schedule.h"

namespace pb {

// What a runner sees of its job.
class JobContext {
 public:
  virtual ~JobContext() = default;
  virtual int64_t id() const = 0;
  virtual const nlohmann::json& params() const = 0;
  virtual int attempt() const = 0;  // this run's number, 1 for the first
  // Replaces the job's progress document (shown live; persisted about once a second).
  virtual void Progress(const nlohmann::json& progress) = 0;
  // True once the job was canceled or paused or the server is stopping: end soon (between
  // instances), keep what arrived. The service decides what the job becomes.
  virtual bool StopRequested() const = 0;
  virtual bool ServerStopping() const = 0;
  // More connections to the job's node beyond the one the job holds: up to `wanted`, as many
  // as the node's limit leaves free across all jobs now. Returns how many were granted (held
  // until the run ends).
  virtual int ExtraConnections(int wanted) = 0;
  // Gives back `n` of the extra connections before the run ends (at most those granted).
  virtual void ReleaseConnections(int n) = 0;
};

struct JobOutcome {
  // succeeded, partial, failed, canceled; or waiting: the job is not over but waits for
  // `wait_for` ("confirmation": a person; "children": the jobs it submitted with it as parent)
  // and runs again when that comes.
  std::string state;
  std::string error;  // why it is not succeeded (or a note), "" otherwise
  nlohmann::json progress;
  nlohmann::json result = nlohmann::json::object();  // kind-specific fields shown with the job
  bool transient = false;                            // the fault may go away by itself: worth another attempt
  int retry_after_seconds = 0;                       // the peer asked us to wait at least this long (HTTP 429)
  std::string wait_for = {};
};

class JobRunner {
 public:
  virtual ~JobRunner() = default;
  // Checks and completes the parameters of a new job (errors name the field); returns the
  // parameters to store and the node the job is about.
  [[nodiscard]] virtual Result<std::pair<nlohmann::json, std::string>> Prepare(const nlohmann::json& request) = 0;
  // One run. A run after the first (a resume or a retry) does only what is still missing.
  virtual JobOutcome Run(JobContext& job) = 0;
};

// How hard jobs may use a node, and how they retry on it.
struct NodeJobPolicy {
  int max_connections = 2;         // associations or HTTP connections at once, all jobs together
  int max_parallel_retrieves = 1;  // retrieve jobs at once
  int attempts = 5;                // runs of a job ending on a transient fault, the first included
  int first_delay_seconds = 30;
  int max_delay_seconds = 1800;
  std::shared_ptr<const Schedule> schedule;  // null: always available
  int utilization_percent = 100;             // the share of each minute the node may be busy (100: no limit)
};

struct JobServiceOptions {
  int workers = 2;
  const Clock* clock = nullptr;  // default: the system's
  // The policy of a node by name (unknown node: the defaults).
  std::function<NodeJobPolicy(const std::string& node)> policy;
  // A number in [0, 1) for the jitter of retry delays (default: random).
  std::function<double()> random;
  // Several instances on one database: this instance's id ([server] instance_id), the owner of
  // the jobs it runs; each running job is held for `lease` past the last renewal (every third
  // of it); another instance queues it again once that ran out. `heartbeat` false: renewals
  // and take-overs only when Heartbeat() is called (tests that drive the clock).
  std::string instance_id = "local";
  std::chrono::seconds lease{30};
  bool heartbeat = true;
  // Other instances share the database: a cancel or pause of a job one of them runs is left for
  // it in the job's row, and the heartbeat's thread takes those left for this one every second.
  bool shared = false;
};

class JobService {
 public:
  JobService(Database& db, JobServiceOptions options);
  ~JobService();  // Stop()
  JobService(const JobService&) = delete;
  JobService& operator=(const JobService&) = delete;

  void Register(const std::string& type, JobRunner& runner);
  // Queues again the jobs an earlier run left running (history: "interrupted") and starts the
  // workers. Returns how many were resumed.
  [[nodiscard]] Result<int> Start();
  // Asks running jobs to stop between instances, waits for them (they are queued again, to
  // resume at the next start) and joins the workers.
  void Stop();
  // Wakes the workers to look at the queue again (after the clock moved, in tests).
  void Poke();
  // Renews the leases of the jobs this instance runs, and queues again the running jobs of other
  // instances whose lease ran out (they resume here or elsewhere where they were). Returns how
  // many were taken over. Runs every third of the lease on its own thread.
  [[nodiscard]] Result<int> Heartbeat();
  // Now on the clock leases are measured on: the database server's (this host's clock plus the
  // offset measured at Start and every minute of heartbeats), so that instances on hosts whose
  // clocks differ agree on when a lease runs out.
  TimePoint LeaseNow() const;
  // Applies the cancels and pauses asked through other instances for the jobs running here (as
  // if asked here); returns how many. Every second on the heartbeat's thread when `shared`.
  [[nodiscard]] Result<int> TakeRequests();
  // Several instances: each node's rate (max_bytes_per_second) is shared by the instances whose
  // retrieves or sends run on it, or whose limiter of the node paced a transfer in the last
  // kTransferSeen (published for kTransferLease: a C-MOVE it serves), this one counted as
  // if it ran one too (a transfer it starts is within its share from the start): its limiter of
  // the node paces at 1/(others + 1). Every second on the heartbeat's thread when `shared`.
  [[nodiscard]] Result<void> ShareNodeRates();

  // `parent`: the job this one is part of (it runs again once all its jobs have ended).
  [[nodiscard]] Result<nlohmann::json> Submit(const std::string& type, const nlohmann::json& request,
                                              int64_t parent = 0);
  [[nodiscard]] Result<nlohmann::json> Get(int64_t id, bool full = true);
  // The job once it has ended (succeeded, partial, failed, canceled), or as it is after `max`
  // (or when the service stops). At most kMaxWaiters callers wait at once; the others get the
  // job as it is now, so waiting never holds every HTTP thread.
  [[nodiscard]] Result<nlohmann::json> AwaitEnd(int64_t id, std::chrono::milliseconds max);
  static constexpr int kMaxWaiters = 4;
  int Awaiting();  // callers inside AwaitEnd now
  // Ends every wait now and answers later ones at once (before the HTTP server stops).
  void ReleaseWaiters();
  // A state filter outside the contract's states is refused (kInvalidArgument naming them).
  [[nodiscard]] Result<nlohmann::json> List(const JobFilter& filter);

  // A change feed for live views (GET /api/jobs/events): a count that grows whenever a job is
  // submitted, changes state or order, or reports progress.
  uint64_t ChangeCount();
  // Waits until the count differs from `seen`, `max` has passed, or the feed is closed (by
  // ReleaseWaiters or Stop); returns the count.
  uint64_t AwaitChange(uint64_t seen, std::chrono::milliseconds max);
  bool FeedClosed();
  // Other instances share the database: their jobs change without this instance's count moving,
  // so a feed reads the jobs again at each of its keep-alives too.
  bool shared() const { return options_.shared; }
  // Live views at once: at most kMaxStreams, so they never hold every HTTP thread. OpenStream
  // is false when that many are open; each true one is matched by a CloseStream.
  static constexpr int kMaxStreams = 16;
  bool OpenStream();
  void CloseStream();
  // Queued or waiting: canceled at once. Running: asked to stop; it ends `canceled` soon. The
  // jobs it is made of are canceled with it.
  [[nodiscard]] Result<nlohmann::json> Cancel(int64_t id);
  // A new job with the same parameters (a retrieve then fetches only what is still missing).
  [[nodiscard]] Result<nlohmann::json> Retry(int64_t id);
  // Queued or waiting: paused at once. Running: stops between instances, then paused. Pause and
  // resume reach the jobs it is made of too.
  [[nodiscard]] Result<nlohmann::json> Pause(int64_t id);
  [[nodiscard]] Result<nlohmann::json> Resume(int64_t id);
  // A queued or waiting job's priority ("high", "normal", "low"; empty: unchanged) and place
  // ("first", "last" within its priority; empty: unchanged).
  [[nodiscard]] Result<nlohmann::json> Reorder(int64_t id, const std::string& priority, const std::string& position);
  // A node's settings changed: its jobs waiting for its availability window look again.
  void NodeChanged(const std::string& node);
  // Deletes jobs that ended more than `days` days ago. Returns how many.
  [[nodiscard]] Result<int> Prune(int days);

  static std::optional<int> ParsePriority(const std::string& word);
  static const char* PriorityName(int priority);

 private:
  struct Live;
  class Context;
  void WorkerLoop();
  void HeartbeatLoop();
  std::shared_ptr<Live> Claim() REQUIRES(mu_);
  // `full`: nodes whose jobs are not tried again in this pass (a claim of one failed on them).
  std::shared_ptr<Live> ClaimFrom(std::vector<JobRow>& rows, TimePoint now, std::set<std::string>& full) REQUIRES(mu_);
  void RunOne(const std::shared_ptr<Live>& live);
  void Finish(Live& live, JobOutcome out);
  void Release(Live& live) REQUIRES(mu_);
  // The jobs `parent` is made of that have not ended; `fn` on each.
  void ForChildren(int64_t parent, const std::function<void(int64_t)>& fn);
  void WakeParent(int64_t parent);
  [[nodiscard]] Result<nlohmann::json> PauseOne(int64_t id);
  [[nodiscard]] Result<nlohmann::json> ResumeOne(int64_t id);
  nlohmann::json ToJson(const JobRow& row, bool full) const;
  std::chrono::seconds RetryDelay(const NodeJobPolicy& policy, int failures, int retry_after) const;
  NodeJobPolicy PolicyOf(const std::string& node) const;
  // The node's connection limit over every instance's running jobs, as of now (leases' clock).
  NodeConnectionLimit NodeLimit(const std::string& node, int max_connections) const;
  // Runs `use` on `node`'s utilization share: this instance's (one instance), or, with several,
  // the one all of them keep in the database (loaded and saved around `use`, under the node's
  // lock, with the node's jobs running on any instance other than this instance's run of job
  // `job`, which `ending` counts in; times on the instances' clocks, kept in time by NTP). False
  // when the database failed (said in the log).
  bool WithDuty(const std::string& node, int percent, int64_t job, TimePoint now, bool ending,
                const std::function<void(DutyCycle&)>& use) REQUIRES(mu_);

  Database& db_;
  JobServiceOptions options_;
  const Clock& clock_;
  std::map<std::string, JobRunner*> runners_;
  Mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, std::shared_ptr<Live>> live_ GUARDED_BY(mu_);  // running jobs
  std::map<std::string, int> node_connections_ GUARDED_BY(mu_);    // held per node
  int waiters_ GUARDED_BY(mu_) = 0;                                // callers in AwaitEnd
  bool waiters_released_ GUARDED_BY(mu_) = false;
  std::map<std::string, int> node_retrieves_ GUARDED_BY(mu_);  // running retrieves per node
  std::map<std::string, DutyCycle> duty_ GUARDED_BY(mu_);      // nodes with a utilization share (one instance)
  bool stopping_ GUARDED_BY(mu_) = false;
  uint64_t pokes_ GUARDED_BY(mu_) = 0;
  std::atomic<bool> server_stopping_{false};
  std::vector<std::thread> workers_;
  std::thread heartbeat_;
  Mutex heartbeat_mu_;                                  // one Heartbeat at a time
  TimePoint last_renewal_ GUARDED_BY(heartbeat_mu_){};  // of the leases
  // The database server's clock minus ours (LeaseNow), and when it was last measured.
  void MeasureClockOffset() REQUIRES(heartbeat_mu_);
  std::atomic<int64_t> clock_offset_us_{0};
  std::chrono::steady_clock::time_point offset_measured_ GUARDED_BY(heartbeat_mu_){};
  int64_t offset_warned_us_ GUARDED_BY(heartbeat_mu_) = 0;
  std::set<std::string> rates_shared_ GUARDED_BY(heartbeat_mu_);            // nodes whose rate ShareNodeRates divided
  std::vector<std::string> published_transfers_ GUARDED_BY(heartbeat_mu_);  // what PublishTransfers holds of ours
  // The change feed; feed_mu_ is taken last (never while waiting for another lock).
  void Changed();
  Mutex feed_mu_;
  std::condition_variable feed_cv_;
  uint64_t changes_ GUARDED_BY(feed_mu_) = 0;
  bool feed_closed_ GUARDED_BY(feed_mu_) = false;
  int streams_ GUARDED_BY(feed_mu_) = 0;
};

}  // namespace pb
