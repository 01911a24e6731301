#include "jobs/job_service.h"

#include <cstdlib>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "core/rate_limiter.h"
#include "core/thread_annotations.h"
#include "jobs/job_text.h"

namespace pb {
namespace {

using jobs_text::Dump;
using jobs_text::Finished;
using jobs_text::ParseOr;

using Steady = std::chrono::steady_clock;
using json = nlohmann::json;
constexpr auto kPersistEvery = std::chrono::seconds(1);
// A worker with nothing to claim looks again at least this often (a due retry, a freed node).
constexpr auto kIdleLook = std::chrono::milliseconds(500);

// Every state of the contract, in lifecycle order (`waiting`: a retry pending, or paused).
constexpr const char* kStates[] = {"queued", "waiting", "running", "succeeded", "partial", "failed", "canceled"};

const std::vector<std::string> kPending{"queued", "waiting"};
// A cancel or a pause that meets a job between the table and a worker looks again this often.
constexpr int kStateRounds = 200;
// Runs in a row that ended with the process (found `running` at a start) before a job is no
// longer resumed by itself.
constexpr int kCrashRuns = 3;
// Utilization stretches in a row without progress before a job stops waiting for the next one.
constexpr int kStuckShares = 5;
// Several instances: a node whose limiter paced a transfer this recently counts as one this
// instance transfers to; published for this long (renewed every second while it does), so that a
// stopped instance's transfers leave the others' shares within seconds.
constexpr auto kTransferSeen = std::chrono::seconds(2);
constexpr auto kTransferLease = std::chrono::seconds(5);

}  // namespace

struct JobService::Live {
  // Fixed when the job is claimed, before the Live is shared: read without a lock.
  int64_t id = 0;
  std::string node, type;
  int attempt = 0;

  Mutex mu;
  JobRow row GUARDED_BY(mu);
  json params;
  Steady::time_point persisted GUARDED_BY(mu);
  std::atomic<bool> cancel{false};
  std::atomic<bool> pause{false};
  std::atomic<bool> resume{false};  // resumed while stopping for a pause: queued again at the end
  // When the node's availability window closes (system clock ticks; max: never). Atomic: a
  // schedule change moves it while the job runs.
  std::atomic<int64_t> window_ends{std::numeric_limits<int64_t>::max()};
  bool ending GUARDED_BY(mu) = false;  // the run is over; a cancel or pause goes to the table
  // window_ends is the end of the node's utilization share, not of its schedule window.
  std::atomic<bool> share_ends{false};
  std::atomic<int64_t> share_end{std::numeric_limits<int64_t>::max()};  // the utilization stretch's end
  std::atomic<bool> stop_seen{false};  // the runner was told to stop (its outcome may be because of it)
  std::atomic<bool> lost{false};       // another instance took the job over: nothing more is written
  bool busy = false;                   // counted in the node's DutyCycle (GUARDED_BY the service's mu_)
  int connections = 1;                 // held on the node (GUARDED_BY the service's mu_)
};

class JobService::Context : public JobContext {
 public:
  Context(JobService& service, Live& live) : service_(service), live_(live) {}
  int64_t id() const override { return live_.id; }
  const json& params() const override { return live_.params; }
  int attempt() const override { return live_.attempt; }
  void Progress(const json& progress) override {
    JobRow copy;
    {
      MutexLock lock(live_.mu);
      live_.row.progress = Dump(progress);
      service_.Changed();
      if (Steady::now() - live_.persisted < kPersistEvery) return;
      live_.persisted = Steady::now();
      copy = live_.row;
    }
    auto r = service_.db_.UpdateJobIf(copy, {"running"}, false, service_.options_.instance_id);
    if (!r) {
      spdlog::warn("job {}: cannot save progress: {}", copy.id, r.error().message);
    } else if (!*r) {
      LostToAnotherInstance();
    }
  }
  // The job is no longer this instance's (its lease ran out and another instance took it over):
  // the run stops between instances, and its end is not written.
  void LostToAnotherInstance() {
    if (!live_.lost.exchange(true)) {
      spdlog::warn("job {}: another instance took it over (this instance's lease on it ran out); this run stops",
                   live_.id);
    }
  }
  bool StopRequested() const override {
    const bool stop = live_.cancel || live_.pause || live_.lost || service_.server_stopping_ || WindowClosed();
    if (stop) live_.stop_seen = true;
    return stop;
  }
  bool WindowClosed() const { return service_.clock_.Now().time_since_epoch().count() >= live_.window_ends.load(); }
  bool ServerStopping() const override { return service_.server_stopping_; }
  int ExtraConnections(int wanted) override {
    MutexLock lock(service_.mu_);
    const NodeJobPolicy policy = service_.PolicyOf(live_.node);
    int& held = service_.node_connections_[live_.node];
    int granted = std::clamp(policy.max_connections - held, 0, std::max(0, wanted));
    if (granted > 0 && service_.options_.shared) {
      // The other instances' jobs on the node count too: the database holds what each job has.
      auto taken = service_.db_.TakeNodeConnections(live_.id, service_.options_.instance_id,
                                                    service_.NodeLimit(live_.node, policy.max_connections), granted);
      if (!taken) spdlog::warn("job {}: cannot count the node's connections: {}", live_.id, taken.error().message);
      granted = taken ? *taken : 0;
    }
    held += granted;
    live_.connections += granted;
    return granted;
  }
  void ReleaseConnections(int n) override {
    {
      MutexLock lock(service_.mu_);
      n = std::clamp(n, 0, live_.connections - 1);  // the job's own connection stays held
      if (n > 0 && service_.options_.shared) {
        // Giving back: the limit is not consulted.
        auto given = service_.db_.TakeNodeConnections(live_.id, service_.options_.instance_id,
                                                      service_.NodeLimit(live_.node, 0), -n);
        if (!given) spdlog::warn("job {}: cannot count the node's connections: {}", live_.id, given.error().message);
      }
      service_.node_connections_[live_.node] -= n;
      live_.connections -= n;
      ++service_.pokes_;  // a node slot is free again: the other workers look
    }
    service_.cv_.notify_all();
  }

 private:
  JobService& service_;
  Live& live_;
};

JobService::JobService(Database& db, JobServiceOptions options)
    : db_(db), options_(std::move(options)), clock_(options_.clock ? *options_.clock : SystemClock()) {
  options_.workers = std::clamp(options_.workers, 1, 64);
  if (!options_.random) {
    options_.random = [] {
      thread_local std::mt19937_64 gen{std::random_device{}()};
      return std::uniform_real_distribution<double>(0.0, 1.0)(gen);
    };
  }
}

JobService::~JobService() { Stop(); }

void JobService::Register(const std::string& type, JobRunner& runner) { runners_[type] = &runner; }

std::optional<int> JobService::ParsePriority(const std::string& word) {
  if (word == "high") return 1;
  if (word == "normal") return 0;
  if (word == "low") return -1;
  return std::nullopt;
}

const char* JobService::PriorityName(int priority) { return priority > 0 ? "high" : priority < 0 ? "low" : "normal"; }

NodeJobPolicy JobService::PolicyOf(const std::string& node) const {
  NodeJobPolicy p = options_.policy ? options_.policy(node) : NodeJobPolicy{};
  p.max_connections = std::max(1, p.max_connections);
  p.max_parallel_retrieves = std::max(1, p.max_parallel_retrieves);
  return p;
}

Result<int> JobService::Start() {
  {
    MutexLock heartbeat_lock(heartbeat_mu_);
    MeasureClockOffset();  // before the first claim writes a lease
  }
  // Jobs an earlier run left running: that run is over (the process stopped or died); the job
  // is queued again and resumes where it was.
  auto running = db_.ListJobs(JobFilter{"running", "", "", "", "", 1000000});
  if (!running) return tl::unexpected(running.error());
  int resumed = 0;
  const std::string now = UtcIso(clock_.Now());
  for (JobRow row : *running) {
    // Another instance's job runs there, or is taken over once its lease runs out (Heartbeat).
    if (!row.owner.empty() && row.owner != options_.instance_id) continue;
    json history = ParseOr(row.history, json::array());
    json p = ParseOr(row.progress, json::object());
    history.push_back({{"attempt", row.attempts},
                       {"started_at", row.started_at},
                       {"ended_at", now},
                       {"outcome", "interrupted"},
                       {"error", "the server stopped while this run was under way (it did not stop cleanly)"},
                       {"transient", true},
                       {"crash", true},
                       {"completed", p.value("completed", json(0))}});
    row.history = Dump(history);
    row.interrupted = true;
    // A job whose runs keep ending with the process (a crash it may cause itself) is not
    // started again and again: after kCrashRuns in a row it waits for a person.
    int crashes = 0;
    for (auto it = history.rbegin(); it != history.rend() && it->value("crash", false); ++it) ++crashes;
    if (crashes >= kCrashRuns) {
      row.state = "failed";
      row.error = fmt::format(
          "the server stopped abruptly during each of this job's last {} runs; it is not "
          "resumed again by itself: see the server log, then retry it",
          crashes);
      row.finished_at = now;
      spdlog::error("job {}: {}", row.id, row.error);
      if (auto r = db_.UpdateJobIf(row, {"running"}); !r) return tl::unexpected(r.error());
      continue;
    }
    row.state = "queued";
    row.not_before.clear();
    row.wait_reason.clear();
    row.lease_until.clear();
    // Still ours (another instance may have taken it over meanwhile, its lease having run out).
    auto r = db_.UpdateJobIf(row, {"running"}, false, row.owner);
    if (!r) return tl::unexpected(r.error());
    if (*r) ++resumed;
  }
  // Jobs waiting for their jobs look again (a wake-up may have been lost with the process).
  auto waiting = db_.ListJobs(JobFilter{"waiting", "", "", "", "", 1000000});
  if (!waiting) return tl::unexpected(waiting.error());
  for (const JobRow& row : *waiting) {
    if (row.wait_reason == "children") WakeParent(row.id);
  }
  for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  {
    MutexLock heartbeat_lock(heartbeat_mu_);
    last_renewal_ = LeaseNow();  // claims from now on hold a lease from about now
  }
  if (options_.heartbeat) heartbeat_ = std::thread([this] { HeartbeatLoop(); });
  return resumed;
}

void JobService::Stop() {
  {
    MutexLock lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    server_stopping_ = true;
  }
  cv_.notify_all();
  {
    MutexLock lock(feed_mu_);
    feed_closed_ = true;
  }
  feed_cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  if (heartbeat_.joinable()) heartbeat_.join();
  MutexLock heartbeat_lock(heartbeat_mu_);
  if (!published_transfers_.empty()) {
    // Gone from the others' shares now rather than when the lease runs out.
    if (auto r = db_.PublishTransfers(options_.instance_id, {}, UtcIso(LeaseNow())); r) published_transfers_.clear();
  }
}

void JobService::HeartbeatLoop() {
  const auto every = std::max<std::chrono::milliseconds>(std::chrono::seconds(1), options_.lease / 3);
  const auto tick = options_.shared ? std::chrono::milliseconds(1000) : every;
  auto next_beat = std::chrono::steady_clock::now() + every;
  bool requests_failing = false;
  MutexLock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, tick, [&]() REQUIRES(mu_) { return stopping_; });
    if (stopping_) return;
    lock.Unlock();
    if (options_.shared) {
      auto r = TakeRequests();
      if (!r && !requests_failing) spdlog::warn("jobs: {}", r.error().message);
      requests_failing = !r;
      // Failing with the database: the shares stay as they were, and the requests' warning says why.
      (void)ShareNodeRates();
    }
    if (std::chrono::steady_clock::now() >= next_beat) {
      next_beat = std::chrono::steady_clock::now() + every;
      if (auto r = Heartbeat(); !r) spdlog::warn("jobs: {}", r.error().message);
    }
    lock.Lock();
  }
}

Result<int> JobService::TakeRequests() {
  auto requests = db_.TakeJobRequests(options_.instance_id);
  if (!requests) return tl::unexpected(requests.error());
  int applied = 0;
  for (const auto& [id, what] : *requests) {
    if (what != "cancel" && what != "pause") continue;  // written by a later version: not ours to read
    bool found = false;
    {
      MutexLock lock(mu_);
      if (auto it = live_.find(id); it != live_.end()) {
        Live& l = *it->second;
        MutexLock live_lock(l.mu);
        if (!l.ending) {
          if (what == "cancel") {
            l.cancel = true;
          } else if (what == "pause") {
            l.pause = true;
            l.resume = false;
            Changed();
          }
          found = true;
        }
      }
    }
    spdlog::info("job {}: {} asked through another instance", id, what == "cancel" ? "a cancel" : "a pause");
    if (!found) {
      // Its run ended (or was queued again by a restart) since it was asked: the table's path, as
      // for a job that does not run; one that has ended meanwhile stays as it ended.
      auto done = what == "cancel" ? Cancel(id) : Pause(id);
      if (!done && done.error().code != Code::kConflict && done.error().code != Code::kNotFound) {
        spdlog::warn("job {}: the {} asked through another instance: {}", id, what, done.error().message);
      }
      ++applied;
      continue;
    }
    if (what == "cancel") ForChildren(id, [this](int64_t child) { (void)Cancel(child); });
    ++applied;
  }
  return applied;
}

Result<void> JobService::ShareNodeRates() {
  MutexLock heartbeat_lock(heartbeat_mu_);
  // What this instance transfers to by any path, as its node limiters saw it: the C-STOREs of a
  // C-MOVE its Query/Retrieve SCP serves are no job the others could see.
  std::vector<std::string> mine = NodesTransferringSince(std::chrono::steady_clock::now() - kTransferSeen);
  if (!mine.empty() || !published_transfers_.empty()) {
    if (auto r = db_.PublishTransfers(options_.instance_id, mine, UtcIso(LeaseNow() + kTransferLease)); !r) {
      return tl::unexpected(r.error());
    }
    published_transfers_ = std::move(mine);
  }
  auto transferring = db_.InstancesTransferring(UtcIso(LeaseNow()));
  if (!transferring) return tl::unexpected(transferring.error());
  std::set<std::string> shared;
  for (const auto& [node, owners] : *transferring) {
    const int others = static_cast<int>(
        std::count_if(owners.begin(), owners.end(), [&](const std::string& o) { return o != options_.instance_id; }));
    if (others == 0) continue;
    ShareNodeRate(node, others + 1);
    shared.insert(node);
  }
  for (const auto& node : rates_shared_) {
    if (!shared.count(node)) ShareNodeRate(node, 1);  // the others are done: the whole rate again
  }
  rates_shared_ = std::move(shared);
  return {};
}

TimePoint JobService::LeaseNow() const {
  return clock_.Now() + std::chrono::duration_cast<TimePoint::duration>(std::chrono::microseconds(clock_offset_us_));
}

void JobService::MeasureClockOffset() {
  const TimePoint before = clock_.Now();
  const auto asked = std::chrono::steady_clock::now();
  auto server = db_.ServerTimeMicros();
  const auto round_trip = std::chrono::steady_clock::now() - asked;
  offset_measured_ = std::chrono::steady_clock::now();
  if (!server) {
    spdlog::warn("jobs: {}; leases stay measured on the offset read before", server.error().message);
    return;
  }
  const auto middle = before + std::chrono::duration_cast<TimePoint::duration>(round_trip / 2);
  const int64_t ours = std::chrono::duration_cast<std::chrono::microseconds>(middle.time_since_epoch()).count();
  const int64_t offset = *server - ours;
  clock_offset_us_ = offset;
  // Said once, and again when it moved by another second: an admin may want to fix the clocks.
  constexpr int64_t kSecond = 1'000'000;
  if (options_.shared && std::llabs(offset) > 2 * kSecond && std::llabs(offset - offset_warned_us_) > kSecond) {
    offset_warned_us_ = offset;
    spdlog::warn(
        "this host's clock is {:.1f} s {} the database server's; job leases are measured on the database "
        "server's clock",
        std::llabs(offset) / 1e6, offset > 0 ? "behind" : "ahead of");
  }
}

Result<int> JobService::Heartbeat() {
  MutexLock heartbeat_lock(heartbeat_mu_);
  if (std::chrono::steady_clock::now() - offset_measured_ >= std::chrono::minutes(1)) MeasureClockOffset();
  const TimePoint now = LeaseNow(), wall = clock_.Now();
  // The runs under way before the renewal: each one's row is running and ours, unless another
  // instance took the job over (or the run ended and wrote its end, which changes nothing now).
  std::vector<std::shared_ptr<Live>> mine;
  {
    MutexLock lock(mu_);
    for (const auto& [id, live] : live_) mine.push_back(live);
  }
  std::vector<int64_t> ids;
  for (const auto& live : mine) ids.push_back(live->id);
  auto renewed = db_.RenewJobLeases(options_.instance_id, UtcIso(now + options_.lease), ids);
  if (!renewed) {
    // Leases not renewed for a whole lease may be taken over anywhere: our runs stop rather
    // than run beside another instance's.
    if (now - last_renewal_ >= options_.lease * 2 / 3) {
      for (const auto& live : mine) {
        if (!live->lost.exchange(true)) {
          spdlog::warn(
              "job {}: this instance could not renew its lease for {} s; this run stops before "
              "another instance may take it over",
              live->id, (now - last_renewal_) / std::chrono::seconds(1));
        }
      }
    }
    return tl::unexpected(renewed.error());
  }
  last_renewal_ = now;
  for (const auto& live : mine) {
    if (std::find(renewed->begin(), renewed->end(), live->id) == renewed->end() && !live->lost.exchange(true)) {
      spdlog::warn("job {}: another instance took it over (this instance's lease on it ran out); this run stops",
                   live->id);
    }
  }
  auto expired = db_.ExpiredJobLeases(UtcIso(now));
  if (!expired) return tl::unexpected(expired.error());
  int taken = 0;
  for (JobRow row : *expired) {
    // Ours and under way here: renewed above (a late heartbeat). Ours and not under way (its
    // run stopped while the database was gone) is queued again like another instance's.
    if (row.owner == options_.instance_id && std::find(ids.begin(), ids.end(), row.id) != ids.end()) {
      continue;
    }
    const std::string owner = row.owner, lease = row.lease_until;
    json history = ParseOr(row.history, json::array());
    json p = ParseOr(row.progress, json::object());
    history.push_back(
        {{"attempt", row.attempts},
         {"started_at", row.started_at},
         {"ended_at", UtcIso(wall)},
         {"outcome", "interrupted"},
         {"error", fmt::format("the instance '{}' running it stopped renewing its lease (until {})", owner, lease)},
         {"transient", true},
         {"crash", true},
         {"completed", p.value("completed", json(0))}});
    row.history = Dump(history);
    row.interrupted = true;
    row.state = "queued";
    row.owner.clear();
    // What was asked of it while it ran there and that instance did not take: done now.
    if (row.requested == "cancel") {
      row.state = "canceled";
      row.error =
          fmt::format("canceled while the instance '{}' ran it (it stopped before it could stop the run)", owner);
      row.finished_at = UtcIso(wall);
    } else if (row.requested == "pause") {
      row.state = "waiting";
      row.paused = true;
    }
    auto r = db_.TakeOverJob(row, owner, lease);
    if (!r) return tl::unexpected(r.error());
    if (!*r) continue;  // renewed meanwhile, or taken over by another instance
    ++taken;
    if (row.state == "canceled") {
      ForChildren(row.id, [this](int64_t child) { (void)Cancel(child); });
      if (row.parent_id) WakeParent(row.parent_id);
    }
    spdlog::warn("job {}: the instance '{}' running it stopped renewing its lease; {} by '{}'", row.id, owner,
                 row.state == "canceled" ? "canceled as asked"
                 : row.paused            ? "paused as asked"
                                         : "queued again",
                 options_.instance_id);
  }
  if (taken) {
    Poke();
    Changed();
  }
  return taken;
}

void JobService::Poke() {
  {
    MutexLock lock(mu_);
    ++pokes_;
  }
  cv_.notify_all();
  Changed();
}

void JobService::Changed() {
  {
    MutexLock lock(feed_mu_);
    ++changes_;
  }
  feed_cv_.notify_all();
}

uint64_t JobService::ChangeCount() {
  MutexLock lock(feed_mu_);
  return changes_;
}

uint64_t JobService::AwaitChange(uint64_t seen, std::chrono::milliseconds max) {
  MutexLock lock(feed_mu_);
  feed_cv_.wait_for(lock, max, [&]() REQUIRES(feed_mu_) { return changes_ != seen || feed_closed_; });
  return changes_;
}

bool JobService::FeedClosed() {
  MutexLock lock(feed_mu_);
  return feed_closed_;
}

bool JobService::OpenStream() {
  MutexLock lock(feed_mu_);
  if (streams_ >= kMaxStreams || feed_closed_) return false;
  ++streams_;
  return true;
}

void JobService::CloseStream() {
  MutexLock lock(feed_mu_);
  --streams_;
}

namespace {
// The key of a node's retrieves among the nodes a claim pass found full.
std::string RetrievesOf(const std::string& node) { return node + '\n' + "retrieve"; }
}  // namespace

std::shared_ptr<JobService::Live> JobService::Claim() {
  const TimePoint now = clock_.Now();
  // Page through the queue: jobs of a busy node must not hide those of a free one behind them.
  constexpr int kPage = 64;
  std::set<std::string> full;  // nodes other instances' jobs fill, found in this pass
  for (int offset = 0;; offset += kPage) {
    auto rows = db_.RunnableJobs(UtcIso(now), kPage, offset);
    if (!rows) {
      spdlog::warn("jobs: cannot read the queue: {}", rows.error().message);
      return nullptr;
    }
    if (auto live = ClaimFrom(*rows, now, full)) return live;
    if (static_cast<int>(rows->size()) < kPage) return nullptr;
  }
}

std::shared_ptr<JobService::Live> JobService::ClaimFrom(std::vector<JobRow>& rows, TimePoint now,
                                                        std::set<std::string>& full) {
  for (JobRow& row : rows) {
    if (live_.count(row.id)) continue;  // its last run is still being put away
    if (full.count(row.node) || (row.type == "retrieve" && full.count(RetrievesOf(row.node)))) {
      continue;  // the next pass looks again
    }
    const NodeJobPolicy policy = PolicyOf(row.node);
    Schedule::Availability window;
    if (policy.schedule) window = policy.schedule->At(now);
    if (!window.open) {
      // Outside the node's window: the job waits for the next one, showing when it opens.
      row.state = "waiting";
      row.wait_reason = "schedule";
      row.not_before = UtcIso(window.next_change ? *window.next_change : now + std::chrono::hours(24));
      if (auto r = db_.UpdateJobIf(row, kPending, true); !r) spdlog::warn("job {}: {}", row.id, r.error().message);
      Changed();
      continue;
    }
    if (node_connections_[row.node] >= policy.max_connections) continue;
    if (row.type == "retrieve" && node_retrieves_[row.node] >= policy.max_parallel_retrieves) continue;
    const bool shared_out = policy.utilization_percent < 100;  // the node's time is shared out
    if (shared_out) {
      TimePoint next = now;
      // The database cannot be read (several instances): the job is looked at again next pass.
      if (!WithDuty(row.node, policy.utilization_percent, 0, now, false,
                    [&](DutyCycle& d) { next = d.NextStart(now); })) {
        full.insert(row.node);  // its other jobs would wait on the same lock: the next pass
        continue;
      }
      if (next > now) {
        // This minute's share of the node is spent: the job waits for the next minute.
        row.state = "waiting";
        row.wait_reason = "utilization";
        row.not_before = UtcIso(next);
        if (auto r = db_.UpdateJobIf(row, kPending, true); !r) spdlog::warn("job {}: {}", row.id, r.error().message);
        Changed();
        continue;
      }
    }
    row.state = "running";
    row.started_at = UtcIso(clock_.Now());
    row.owner = options_.instance_id;
    row.lease_until = UtcIso(LeaseNow() + options_.lease);
    row.finished_at.clear();
    row.attempts += 1;
    row.not_before.clear();
    row.wait_reason.clear();
    // Atomic against a cancel or a pause that reached the row first, and against another
    // instance's claim since the row was read (which counted an attempt). Instances sharing the
    // database also count each other's connections to the node, and its retrieves.
    NodeConnectionLimit limit = NodeLimit(row.node, policy.max_connections);
    if (row.type == "retrieve") limit.max_retrieves = policy.max_parallel_retrieves;
    auto claimed = db_.UpdateJobIf(row, kPending, true, {}, row.attempts - 1, options_.shared ? &limit : nullptr);
    if (!claimed || !*claimed) {
      if (!claimed) spdlog::warn("job {}: cannot start it: {}", row.id, claimed.error().message);
      // With other instances, mostly their jobs filling the node: its other jobs would fail the
      // same way, each in a transaction on the node's lock, so they wait for the next pass (only
      // its retrieves, when a retrieve failed: its retrieve slots may be what is full).
      if (options_.shared) full.insert(row.type == "retrieve" ? RetrievesOf(row.node) : row.node);
      continue;
    }
    auto live = std::make_shared<Live>();
    live->id = row.id;
    live->node = row.node;
    live->type = row.type;
    live->attempt = row.attempts;
    {
      MutexLock live_lock(live->mu);
      live->row = row;
      live->persisted = Steady::time_point{};  // the first progress is written at once
    }
    live->params = ParseOr(row.params, json::object());
    if (window.next_change) live->window_ends = window.next_change->time_since_epoch().count();
    if (shared_out) {
      // Unsaved (the database failed since): the run stops at once and waits for the next minute.
      TimePoint share_end = now;
      (void)WithDuty(row.node, policy.utilization_percent, row.id, now, false,
                     [&](DutyCycle& d) { share_end = d.Begin(now); });
      live->busy = true;
      live->share_end = share_end.time_since_epoch().count();
      if (share_end.time_since_epoch().count() < live->window_ends) {
        live->window_ends = share_end.time_since_epoch().count();
        live->share_ends = true;
      }
    }
    node_connections_[row.node] += 1;
    if (row.type == "retrieve") node_retrieves_[row.node] += 1;
    live_[row.id] = live;  // from here on a cancel or a pause reaches the job through `live`
    Changed();
    return live;
  }
  return nullptr;
}

bool JobService::WithDuty(const std::string& node, int percent, int64_t job, TimePoint now, bool ending,
                          const std::function<void(DutyCycle&)>& use) {
  if (!options_.shared) {
    auto it = duty_.find(node);
    if (it == duty_.end()) it = duty_.emplace(node, DutyCycle(percent)).first;
    it->second.SetPercent(percent);  // keeps the stretch and what was used
    use(it->second);
    return true;
  }
  auto r =
      db_.UpdateNodeDuty(node, UtcIso(LeaseNow()), job, options_.instance_id, [&](NodeDutyRecord& rec, int running) {
        DutyCycle d(percent);
        // The job ending is counted in the stretch it leaves (its row may say running still).
        d.Load({rec.stretch_start_us, rec.stretch_end_us, rec.minute_us, rec.used_us, rec.in_stretch},
               running + (ending ? 1 : 0), now);
        use(d);
        const DutyCycle::Saved s = d.Save();
        rec = {s.stretch_start_us, s.stretch_end_us, s.minute_us, s.used_us, s.in_stretch};
      });
  if (!r) {
    spdlog::warn("jobs: {}", r.error().message);
    return false;
  }
  return true;
}

NodeConnectionLimit JobService::NodeLimit(const std::string& node, int max_connections) const {
  return {node, max_connections, UtcIso(LeaseNow())};
}

void JobService::Release(Live& live) {
  node_connections_[live.node] -= live.connections;
  if (live.type == "retrieve") node_retrieves_[live.node] -= 1;
  if (live.busy) {
    const TimePoint now = clock_.Now();
    (void)WithDuty(live.node, PolicyOf(live.node).utilization_percent, live.id, now, true,
                   [&](DutyCycle& d) { d.End(now); });
    live.busy = false;
  }
  auto it = live_.find(live.id);
  if (it != live_.end() && it->second.get() == &live) live_.erase(it);
}

void JobService::WorkerLoop() {
  MutexLock lock(mu_);
  while (!stopping_) {
    auto live = Claim();
    if (!live) {
      // Nothing to start now: wait for a change (a new job, a resume, a freed node, a poke)
      // or for the next look (a retry falls due).
      const uint64_t pokes = pokes_;
      cv_.wait_for(lock, kIdleLook, [&]() REQUIRES(mu_) { return stopping_ || pokes_ != pokes; });
      continue;
    }
    lock.Unlock();
    RunOne(live);
    lock.Lock();
    Release(*live);
    ++pokes_;  // a node slot is free again: the other workers look
    cv_.notify_all();
    Changed();
  }
}

void JobService::RunOne(const std::shared_ptr<Live>& live) {
  auto runner = runners_.find(live->type);
  JobOutcome out;
  if (runner == runners_.end()) {
    out = {"failed", fmt::format("no runner for jobs of type '{}'", live->type), {}, {}};
  } else {
    Context ctx(*this, *live);
    // Nothing a peer sends may take the process down: an exception that escaped a runner ends
    // its job, without its text (it may quote what the peer sent).
    try {
      out = runner->second->Run(ctx);
    } catch (...) {
      spdlog::error("job {} ({}): an unexpected error ended it", live->id, live->type);
      out = {"failed", "internal error: the job stopped unexpectedly (see the server log)", {}, {}};
    }
  }
  Finish(*live, std::move(out));
}

std::chrono::seconds JobService::RetryDelay(const NodeJobPolicy& policy, int failures, int retry_after) const {
  // Exponential backoff (first, 2×first, 4×first, … up to the maximum) with "equal jitter":
  // between half the step and the whole step, so that jobs failing together spread out.
  const double step = std::min(static_cast<double>(policy.max_delay_seconds),
                               policy.first_delay_seconds * std::pow(2.0, std::max(0, failures - 1)));
  const double jittered = step * (0.5 + 0.5 * options_.random());
  // A Retry-After is honoured up to an hour, or the node's longest delay when that is longer (a
  // proxy's "come back in 11 days" must not park the job): the attempt then meets the answer again.
  retry_after = std::min(retry_after, std::max(policy.max_delay_seconds, 3600));
  return std::chrono::seconds(std::max<int64_t>({1, std::llround(jittered), retry_after}));
}

void JobService::Finish(Live& live, JobOutcome out) {
  const TimePoint now = clock_.Now();
  JobRow row;
  bool canceled, paused, resumed;
  {
    // From here a cancel or a pause no longer reaches this run: it waits for the table.
    MutexLock lock(live.mu);
    live.ending = true;
    canceled = live.cancel;
    paused = live.pause;
    resumed = live.resume;
    if (!out.progress.is_null()) live.row.progress = Dump(out.progress);
    row = live.row;
  }
  if (live.lost) {
    spdlog::warn("job {}: this run ended after another instance took the job over; its end is not saved", live.id);
    return;
  }
  row.lease_until.clear();
  json history = ParseOr(row.history, json::array());
  json progress = ParseOr(row.progress, json::object());
  json entry{{"attempt", row.attempts},
             {"started_at", row.started_at},
             {"ended_at", UtcIso(now)},
             {"outcome", out.state},
             {"error", out.error.empty() ? json(nullptr) : json(out.error)},
             {"transient", out.transient},
             {"completed", progress.value("completed", json(0))}};
  row.result = Dump(out.result);
  row.error = out.error;
  row.not_before.clear();
  row.wait_reason.clear();
  const bool ended_well = out.state == "succeeded";
  std::string what;  // for the log line
  // A window or a utilization share that closed explains the end only when the runner was told
  // to stop; a run that ended by itself (a refusal, a fault) is judged on its own outcome.
  const bool window_closed = live.stop_seen && now.time_since_epoch().count() >= live.window_ends.load();
  if (canceled && !ended_well) {
    entry["outcome"] = "canceled";
    row.state = "canceled";
    row.finished_at = UtcIso(now);
    what = "canceled";
  } else if (!ended_well && paused) {
    entry["outcome"] = "paused";
    entry["error"] = nullptr;
    row.error.clear();
    if (resumed) {
      row.state = "queued";  // resumed before the pause took effect
      what = "paused and resumed";
    } else {
      row.state = "waiting";
      row.paused = true;
      what = "paused";
    }
  } else if (!ended_well && window_closed && live.share_ends) {
    // The node's share of this minute is spent: the job goes on at the next minute, where it was.
    const TimePoint next = std::chrono::floor<std::chrono::minutes>(now) + std::chrono::minutes(1);
    entry["outcome"] = "utilization_pause";
    entry["error"] =
        fmt::format("the node's utilization share of this minute was used; the job goes on at {}", UtcIso(next));
    entry["transient"] = true;
    row.state = "waiting";
    row.wait_reason = "utilization";
    row.not_before = UtcIso(next);
    row.error.clear();
    what = fmt::format("paused for its node's utilization share; it goes on at {}", UtcIso(next));
    // Stretches too short to get anything done (the planning queries alone fill them) would go
    // on every minute for ever: after kStuckShares of them in a row, the job says so and ends.
    int stuck = 1;
    for (auto it = history.rbegin(); it != history.rend() && it->value("outcome", "") == "utilization_pause" &&
                                     it->value("completed", json(0)) == entry["completed"];
         ++it) {
      ++stuck;
    }
    if (stuck >= kStuckShares) {
      row.state = "failed";
      row.wait_reason.clear();
      row.not_before.clear();
      row.finished_at = UtcIso(now);
      row.error = fmt::format(
          "the node's utilization share ({} % of each minute) was used up {} times in a row "
          "before this job could transfer anything: raise the node's utilization_percent, "
          "then retry the job",
          PolicyOf(row.node).utilization_percent, stuck);
      what = "failed";
    }
  } else if (!ended_well && window_closed) {
    // The node's window closed: the run stopped between instances; the job goes on at the
    // next window (of the node's schedule as it is now), where it was.
    const NodeJobPolicy current = PolicyOf(row.node);
    const Schedule::Availability next = current.schedule ? current.schedule->At(now) : Schedule::Availability{};
    const TimePoint opens = !next.open && next.next_change ? *next.next_change : now;
    entry["outcome"] = "window_closed";
    entry["error"] = fmt::format("the node's availability window closed; the job goes on at {}", UtcIso(opens));
    entry["transient"] = true;
    row.state = "waiting";
    row.wait_reason = "schedule";
    row.not_before = UtcIso(opens);
    row.error.clear();
    what = fmt::format("stopped at the end of its node's window; it goes on at {}", UtcIso(opens));
  } else if (!ended_well && server_stopping_ && live.stop_seen) {
    // Stopped with the server: queued again, it resumes at the next start.
    entry["outcome"] = "interrupted";
    entry["error"] = "the server stopped while this run was under way";
    entry["transient"] = true;
    row.state = "queued";
    row.interrupted = true;
    what = "interrupted by the server's stop; it resumes at the next start";
  } else if (out.state == "waiting") {
    // Not over: waits for a person or for its own jobs, without a time.
    entry["outcome"] = "awaiting_" + out.wait_for;
    row.state = "waiting";
    row.wait_reason = out.wait_for;
    what = "waiting for " + (out.wait_for == "children" ? std::string("its jobs") : out.wait_for);
  } else {
    row.state = out.state;
    int failures = 0;
    for (const auto& h : history) {
      const std::string o = h.value("outcome", "");
      if ((o == "failed" || o == "partial") && h.value("transient", false)) ++failures;
    }
    const bool retryable = (out.state == "failed" || out.state == "partial") && out.transient;
    const NodeJobPolicy policy = PolicyOf(row.node);
    if (retryable && failures + 1 < policy.attempts) {
      const auto delay = RetryDelay(policy, failures + 1, out.retry_after_seconds);
      row.state = "waiting";
      row.wait_reason = "retry";
      row.not_before = UtcIso(now + delay);
      what = fmt::format("{} on a transient fault; attempt {} of {} in {} s", out.state, failures + 2, policy.attempts,
                         delay.count());
    } else {
      row.finished_at = UtcIso(now);
      what = out.state;
      if (retryable) what += fmt::format(" after {} attempt(s)", failures + 1);
    }
  }
  history.push_back(entry);
  row.history = Dump(history);
  // The table first, then what GET shows: whoever sees the end (and retries the job at once)
  // finds it in the table too.
  if (auto r = db_.UpdateJobIf(row, {"running"}, false, options_.instance_id); !r) {
    spdlog::error("job {}: cannot save the end of its run ({}): {}", row.id, out.state, r.error().message);
  } else if (!*r) {
    live.lost = true;
    spdlog::warn("job {}: another instance took it over while this run went on; its end ({}) is not saved", row.id,
                 out.state);
    return;
  }
  {
    MutexLock lock(live.mu);
    live.row = row;
  }
  // A job that waits for its jobs looks again now if they all ended while it ran (their own
  // wake-up found it running); a job that ended wakes the one it is part of.
  if (row.state == "waiting" && row.wait_reason == "children") WakeParent(row.id);
  if (row.parent_id && Finished(row.state)) WakeParent(row.parent_id);
  // Jobs a canceled or paused job submitted while the cancel or pause reached it follow it.
  if (row.state == "canceled") ForChildren(row.id, [this](int64_t child) { (void)Cancel(child); });
  if (row.paused) ForChildren(row.id, [this](int64_t child) { (void)PauseOne(child); });
  std::string counts;
  if (progress.contains("completed") && progress.contains("total")) {
    counts = fmt::format(" ({} of {} instances, {:.1f} MB transferred)", progress["completed"].dump(),
                         progress["total"].dump(), progress.value("bytes", 0.0) / 1e6);
  }
  spdlog::info("job {} ({} {} {}) {}{}{}{}", row.id, row.type, row.type == "send" ? "to" : "from", row.node, what,
               counts, out.error.empty() ? "" : ": ", out.error);
}

json JobService::ToJson(const JobRow& row, bool full) const {
  auto nullable = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  json j{{"id", std::to_string(row.id)},
         {"type", row.type},
         {"state", row.state},
         {"node", row.node},
         {"priority", PriorityName(row.priority)},
         {"progress", ParseOr(row.progress, json::object())},
         {"error", nullable(row.error)},
         {"interrupted", row.interrupted},
         {"paused", row.paused},
         {"attempts", row.attempts},
         {"retry_of", row.retry_of ? json(std::to_string(row.retry_of)) : json(nullptr)},
         {"parent", row.parent_id ? json(std::to_string(row.parent_id)) : json(nullptr)},
         {"created_at", row.created_at},
         {"started_at", nullable(row.started_at)},
         {"finished_at", nullable(row.finished_at)}};
  // Several instances on one database: the one running it.
  if (row.state == "running" && options_.shared && !row.owner.empty()) j["instance"] = row.owner;
  if (row.state == "waiting" && !row.paused && (row.wait_reason == "confirmation" || row.wait_reason == "children")) {
    j["waiting_for"] = row.wait_reason;
  }
  if (row.state == "waiting" && !row.not_before.empty() && !row.paused) {
    if (row.wait_reason == "schedule") {
      j["waiting_until"] = row.not_before;  // the node's next availability window
      j["waiting_for"] = "the node's availability window";
    } else if (row.wait_reason == "utilization") {
      j["waiting_until"] = row.not_before;  // the next minute
      j["waiting_for"] = "the node's utilization share";
    } else {
      j["next_attempt"] = row.not_before;
      j["waiting_for"] = "the next attempt";
    }
  }
  j["history"] = ParseOr(row.history, json::array());
  json params = ParseOr(row.params, json::object());
  for (auto it = params.begin(); it != params.end(); ++it) {
    if (it.key().rfind('_', 0) == 0) continue;  // the runner's own (an import's sheet)
    if (!j.contains(it.key())) j[it.key()] = *it;
  }
  json result = ParseOr(row.result, json::object());
  for (auto it = result.begin(); it != result.end(); ++it) {
    if (!full && it->is_array() && it->size() > 20) continue;  // long lists only in the detail
    if (!j.contains(it.key())) j[it.key()] = *it;
  }
  return j;
}

Result<json> JobService::Submit(const std::string& type, const json& request, int64_t parent) {
  auto runner = runners_.find(type);
  if (runner == runners_.end()) return Fail(Code::kInvalidArgument, fmt::format("no job type '{}'", type), "type");
  json rq = request;
  int priority = 0;
  if (rq.is_object() && rq.contains("priority")) {
    auto p = rq["priority"].is_string() ? ParsePriority(rq["priority"].get<std::string>()) : std::nullopt;
    if (!p) return Fail(Code::kInvalidArgument, "priority must be \"high\", \"normal\" or \"low\"", "priority");
    priority = *p;
    rq.erase("priority");
  }
  auto prepared = runner->second->Prepare(rq);
  if (!prepared) return tl::unexpected(prepared.error());
  JobRow row;
  row.type = type;
  row.state = "queued";
  row.params = Dump(prepared->first);
  row.node = prepared->second;
  row.priority = priority;
  row.parent_id = parent;
  if (rq.contains("retry_of") && rq["retry_of"].is_number_integer()) row.retry_of = rq["retry_of"].get<int64_t>();
  auto id = db_.InsertJob(row);
  if (!id) return tl::unexpected(id.error());
  Poke();
  return Get(*id);
}

Result<json> JobService::Get(int64_t id, bool full) {
  std::shared_ptr<Live> live;
  {
    MutexLock lock(mu_);
    auto it = live_.find(id);
    if (it != live_.end()) live = it->second;
  }
  if (live) {
    MutexLock lock(live->mu);
    return ToJson(live->row, full);
  }
  auto row = db_.GetJob(id);
  if (!row) return tl::unexpected(row.error());
  if (!*row) return Fail(Code::kNotFound, fmt::format("no job {}", id), "id");
  return ToJson(**row, full);
}

void JobService::ReleaseWaiters() {
  {
    MutexLock lock(mu_);
    waiters_released_ = true;
  }
  cv_.notify_all();
  {
    MutexLock lock(feed_mu_);
    feed_closed_ = true;
  }
  feed_cv_.notify_all();
}

int JobService::Awaiting() {
  MutexLock lock(mu_);
  return waiters_;
}

namespace {
constexpr auto kSharedJobLook = std::chrono::seconds(1);
}  // namespace

Result<json> JobService::AwaitEnd(int64_t id, std::chrono::milliseconds max) {
  const auto deadline = Steady::now() + max;
  bool may_wait = false;
  {
    MutexLock lock(mu_);
    may_wait = waiters_ < kMaxWaiters;
    if (may_wait) ++waiters_;
  }
  if (!may_wait) return Get(id);
  Result<json> job;
  while (true) {
    uint64_t seen = 0;
    {
      MutexLock lock(mu_);
      seen = pokes_;  // every run's end pokes: read the job after this, then wait for a change
    }
    job = Get(id);
    if (!job) break;
    if (Finished(job->value("state", ""))) break;
    MutexLock lock(mu_);
    if (stopping_ || waiters_released_ || Steady::now() >= deadline) break;
    // A job another instance runs ends without a poke here: read again every second.
    const auto until = options_.shared ? std::min(deadline, Steady::now() + kSharedJobLook) : deadline;
    cv_.wait_until(lock, until, [&]() REQUIRES(mu_) { return stopping_ || waiters_released_ || pokes_ != seen; });
  }
  MutexLock lock(mu_);
  --waiters_;
  return job;
}

Result<json> JobService::List(const JobFilter& filter) {
  if (!filter.state.empty() && std::find(std::begin(kStates), std::end(kStates), filter.state) == std::end(kStates)) {
    return Fail(Code::kInvalidArgument,
                fmt::format("no job state '{}'; the states are {}", filter.state, fmt::join(kStates, ", ")), "state");
  }
  auto rows = db_.ListJobs(filter);
  if (!rows) return tl::unexpected(rows.error());
  json out = json::array();
  for (const JobRow& r : *rows) {
    if (r.state == "running") {
      if (auto live = Get(r.id, false)) {
        out.push_back(*live);
        continue;
      }
    }
    out.push_back(ToJson(r, false));
  }
  return out;
}

Result<json> JobService::Cancel(int64_t id) {
  // Twice at most: a worker may claim the job between our read and our write; then it is live.
  for (int round = 0; round < kStateRounds; ++round) {
    json j;
    bool canceled = false;
    {
      MutexLock lock(mu_);
      if (auto it = live_.find(id); it != live_.end()) {
        Live& l = *it->second;
        MutexLock live_lock(l.mu);
        if (!l.ending) {  // else its run is ending: the table
          l.cancel = true;
          j = ToJson(l.row, true);
          j["cancel_requested"] = true;
          canceled = true;
        }
      }
    }
    if (canceled) {
      ForChildren(id, [this](int64_t child) { (void)Cancel(child); });
      return j;
    }
    auto row = db_.GetJob(id);
    if (!row) return tl::unexpected(row.error());
    if (!*row) return Fail(Code::kNotFound, fmt::format("no job {}", id), "id");
    JobRow r = **row;
    if (Finished(r.state)) {
      return Fail(Code::kConflict, fmt::format("job {} has already ended ({})", id, r.state), "id");
    }
    if (r.state == "running" && !r.owner.empty() && r.owner != options_.instance_id) {
      // Another instance runs it: the request waits in its row for that instance.
      auto asked = db_.RequestJob(id, "cancel");
      if (!asked) return tl::unexpected(asked.error());
      if (!*asked) continue;  // it ended meanwhile
      json j = ToJson(r, true);
      j["cancel_requested"] = true;
      return j;
    }
    if (r.state == "running") {  // being claimed or ending right now
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    r.state = "canceled";
    r.error = r.paused                                    ? "canceled while paused"
              : ParseOr(r.history, json::array()).empty() ? "canceled before it started"
              : r.wait_reason == "schedule"     ? "canceled while it waited for its node's availability window"
              : r.wait_reason == "confirmation" ? "canceled while it waited for a confirmation"
              : r.wait_reason == "children"     ? "canceled while its jobs ran"
                                                : "canceled while it waited for its next attempt";
    r.not_before.clear();
    r.wait_reason.clear();
    r.finished_at = UtcIso(clock_.Now());
    auto u = db_.CancelPendingJob(id, r.error, r.finished_at);
    if (!u) return tl::unexpected(u.error());
    if (*u) {
      ForChildren(id, [this](int64_t child) { (void)Cancel(child); });
      if (r.parent_id) WakeParent(r.parent_id);
      Poke();  // whoever awaits its end
      return ToJson(r, true);
    }
  }
  return Fail(Code::kConflict, fmt::format("job {} is changing state; try again", id), "id");
}

Result<json> JobService::Pause(int64_t id) {
  auto paused = PauseOne(id);
  if (paused) ForChildren(id, [this](int64_t child) { (void)PauseOne(child); });
  return paused;
}

Result<json> JobService::PauseOne(int64_t id) {
  for (int round = 0; round < kStateRounds; ++round) {
    {
      MutexLock lock(mu_);
      if (auto it = live_.find(id); it != live_.end()) {
        Live& l = *it->second;
        MutexLock live_lock(l.mu);
        if (!l.ending) {  // else its run is ending: the table
          l.pause = true;
          l.resume = false;
          Changed();
          json j = ToJson(l.row, true);
          j["pause_requested"] = true;
          return j;
        }
      }
    }
    auto row = db_.GetJob(id);
    if (!row) return tl::unexpected(row.error());
    if (!*row) return Fail(Code::kNotFound, fmt::format("no job {}", id), "id");
    JobRow r = **row;
    if (Finished(r.state))
      return Fail(Code::kConflict, fmt::format("job {} has already ended ({})", id, r.state), "id");
    if (r.state == "running" && !r.owner.empty() && r.owner != options_.instance_id) {
      auto asked = db_.RequestJob(id, "pause");  // for the instance that runs it
      if (!asked) return tl::unexpected(asked.error());
      if (!*asked) continue;
      json j = ToJson(r, true);
      j["pause_requested"] = true;
      return j;
    }
    if (r.state == "running") {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    if (r.paused) return ToJson(r, true);
    r.state = "waiting";
    r.paused = true;
    auto u = db_.PauseJob(id);
    if (!u) return tl::unexpected(u.error());
    if (*u) {
      Changed();
      return ToJson(r, true);
    }
  }
  return Fail(Code::kConflict, fmt::format("job {} is changing state; try again", id), "id");
}

Result<json> JobService::Resume(int64_t id) {
  auto resumed = ResumeOne(id);
  if (resumed) ForChildren(id, [this](int64_t child) { (void)ResumeOne(child); });
  return resumed;
}

Result<json> JobService::ResumeOne(int64_t id) {
  for (int round = 0;; ++round) {
    {
      MutexLock lock(mu_);
      auto it = live_.find(id);
      if (it == live_.end()) break;
      MutexLock live_lock(it->second->mu);
      if (!it->second->ending && it->second->pause) {
        // Still stopping for a pause asked a moment ago: once stopped, it is queued again.
        it->second->resume = true;
        json j = ToJson(it->second->row, true);
        j["resume_requested"] = true;
        return j;
      }
      if (!it->second->ending || round >= kStateRounds) {
        return Fail(Code::kConflict,
                    fmt::format("job {} is running (or still stopping for a pause); resume it once it is paused", id),
                    "id");
      }
    }
    // Its run is being put away: look again once it is in the table.
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto row = db_.GetJob(id);
  if (!row) return tl::unexpected(row.error());
  if (!*row) return Fail(Code::kNotFound, fmt::format("no job {}", id), "id");
  JobRow r = **row;
  if (!r.paused || r.state != "waiting")
    return Fail(Code::kConflict, fmt::format("job {} is not paused ({})", id, r.state), "id");
  r.paused = false;
  r.state = "queued";
  r.not_before.clear();
  r.wait_reason.clear();
  auto u = db_.ResumeJob(id);
  if (!u) return tl::unexpected(u.error());
  if (!*u) return Fail(Code::kConflict, fmt::format("job {} is changing state; try again", id), "id");
  Poke();
  return ToJson(r, true);
}

Result<json> JobService::Reorder(int64_t id, const std::string& priority, const std::string& position) {
  std::optional<int> p;
  if (!priority.empty()) {
    p = ParsePriority(priority);
    if (!p) return Fail(Code::kInvalidArgument, "priority must be \"high\", \"normal\" or \"low\"", "priority");
  }
  if (!position.empty() && position != "first" && position != "last") {
    return Fail(Code::kInvalidArgument, "position must be \"first\" or \"last\"", "position");
  }
  if (!p && position.empty()) return Fail(Code::kInvalidArgument, "give a priority, a position or both", "priority");
  auto row = db_.GetJob(id);
  if (!row) return tl::unexpected(row.error());
  if (!*row) return Fail(Code::kNotFound, fmt::format("no job {}", id), "id");
  JobRow r = **row;
  if (r.state != "queued" && r.state != "waiting") {
    return Fail(Code::kConflict, fmt::format("job {} is {}: only queued or waiting jobs can be reordered", id, r.state),
                "id");
  }
  if (p) r.priority = *p;
  if (!position.empty()) {
    auto edge = db_.JobQueueEdge(r.priority, position == "first");
    if (!edge) return tl::unexpected(edge.error());
    r.queue_order = *edge;
  }
  auto u = db_.ReorderJob(id, r.priority, r.queue_order);
  if (!u) return tl::unexpected(u.error());
  if (!*u)
    return Fail(Code::kConflict, fmt::format("job {} has just started or ended; it can no longer be reordered", id),
                "id");
  Poke();
  return ToJson(r, true);
}

Result<json> JobService::Retry(int64_t id) {
  auto row = db_.GetJob(id);
  if (!row) return tl::unexpected(row.error());
  if (!*row) return Fail(Code::kNotFound, fmt::format("no job {}", id), "id");
  if (!Finished((*row)->state)) {
    return Fail(Code::kConflict, fmt::format("job {} is still {}", id, (*row)->state), "id");
  }
  json request = ParseOr((*row)->params, json::object());
  request["retry_of"] = id;
  request["priority"] = PriorityName((*row)->priority);
  return Submit((*row)->type, request, (*row)->parent_id);
}

void JobService::NodeChanged(const std::string& node) {
  {
    // Running jobs of the node stop at the end of its window as the schedule now has it.
    MutexLock lock(mu_);
    const NodeJobPolicy policy = PolicyOf(node);
    const TimePoint now = clock_.Now();
    for (auto& [id, live] : live_) {
      if (live->node != node) continue;
      int64_t ends = std::numeric_limits<int64_t>::max();
      if (policy.schedule) {
        const Schedule::Availability a = policy.schedule->At(now);
        if (!a.open)
          ends = now.time_since_epoch().count();
        else if (a.next_change)
          ends = a.next_change->time_since_epoch().count();
      }
      // The utilization stretch the job is in still ends when it does.
      const int64_t share = live->busy ? live->share_end.load() : std::numeric_limits<int64_t>::max();
      live->share_ends = share < ends;
      live->window_ends = std::min(ends, share);
    }
  }
  if (auto r = db_.RequeueScheduleWaits(node); !r) {
    spdlog::warn("jobs of node '{}': cannot look at its new schedule: {}", node, r.error().message);
  }
  Poke();
}

void JobService::ForChildren(int64_t parent, const std::function<void(int64_t)>& fn) {
  JobFilter f;
  f.parent = parent;
  f.limit = 1000000;
  auto children = db_.ListJobs(f);
  if (!children) {
    spdlog::warn("job {}: cannot read its jobs: {}", parent, children.error().message);
    return;
  }
  for (const JobRow& c : *children) {
    if (!Finished(c.state)) fn(c.id);
  }
}

void JobService::WakeParent(int64_t parent) {
  auto woke = db_.WakeParentJob(parent);
  if (!woke) {
    spdlog::warn("job {}: cannot wake it after its jobs ended: {}", parent, woke.error().message);
  } else if (*woke) {
    Poke();
  }
}

Result<int> JobService::Prune(int days) {
  if (days <= 0) return 0;
  auto pruned = db_.PruneJobs(UtcIso(clock_.Now() - std::chrono::hours(24) * days));
  if (pruned && *pruned > 0) Changed();
  return pruned;
}

}  // namespace pb
