#include "jobs/job_service.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "core/clock.h"

namespace pb {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPersistEvery = std::chrono::seconds(1);

nlohmann::json ParseOr(const std::string& text, nlohmann::json fallback) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  return j.is_discarded() ? fallback : j;
}

// Every state of the contract, in lifecycle order (`waiting`: a retry or a schedule pending).
constexpr const char* kStates[] = {"queued", "waiting", "running", "succeeded", "partial", "failed", "canceled"};

bool Finished(const std::string& state) {
  return state == "succeeded" || state == "partial" || state == "failed" || state == "canceled";
}

}  // namespace

struct JobService::Live {
  std::mutex mu;
  JobRow row;                  // GUARDED_BY(mu)
  nlohmann::json params;
  Clock::time_point persisted; // GUARDED_BY(mu)
  std::atomic<bool> cancel{false};
};

class JobService::Context : public JobContext {
 public:
  Context(JobService& service, Live& live) : service_(service), live_(live) {}
  int64_t id() const override { return live_.row.id; }
  const nlohmann::json& params() const override { return live_.params; }
  void Progress(const nlohmann::json& progress) override {
    JobRow copy;
    {
      std::lock_guard lock(live_.mu);
      live_.row.progress = progress.dump();
      if (Clock::now() - live_.persisted < kPersistEvery) return;
      live_.persisted = Clock::now();
      copy = live_.row;
    }
    if (auto r = service_.db_.UpdateJob(copy); !r) {
      spdlog::warn("job {}: cannot save progress: {}", copy.id, r.error().message);
    }
  }
  bool StopRequested() const override { return live_.cancel || service_.server_stopping_; }
  bool ServerStopping() const override { return service_.server_stopping_; }

 private:
  JobService& service_;
  Live& live_;
};

JobService::JobService(Database& db, int workers) : db_(db), workers_count_(std::max(1, workers)) {}

JobService::~JobService() { Stop(); }

void JobService::Register(const std::string& type, JobRunner& runner) { runners_[type] = &runner; }

Result<int> JobService::Start() {
  auto interrupted = db_.InterruptRunningJobs(
      "interrupted: the server stopped while this job ran; retry it to fetch what is missing");
  if (!interrupted) return tl::unexpected(interrupted.error());
  auto queued = db_.ListJobs(JobFilter{"queued", "", "", 100000});
  if (!queued) return tl::unexpected(queued.error());
  {
    std::lock_guard lock(mu_);
    for (auto it = queued->rbegin(); it != queued->rend(); ++it) queue_.push_back(it->id);
  }
  for (int i = 0; i < workers_count_; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  return *interrupted;
}

void JobService::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    server_stopping_ = true;
    for (auto& [id, live] : live_) live->cancel = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

void JobService::WorkerLoop() {
  while (true) {
    int64_t id = 0;
    std::shared_ptr<Live> live = std::make_shared<Live>();
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;  // queued jobs stay queued in the table for the next start
      id = queue_.front();
      queue_.pop_front();
      live_[id] = live;  // from here on a cancel reaches the job through `live`
    }
    RunOne(id, live);
    std::lock_guard lock(mu_);
    live_.erase(id);
  }
}

void JobService::RunOne(int64_t id, const std::shared_ptr<Live>& live) {
  auto row = db_.GetJob(id);
  if (!row || !*row || (*row)->state != "queued") return;  // canceled meanwhile
  auto runner = runners_.find((*row)->type);
  {
    std::lock_guard lock(live->mu);
    live->row = **row;
    live->params = ParseOr(live->row.params, nlohmann::json::object());
    live->row.state = "running";
    live->row.started_at = UtcNowIso();
    live->row.attempts += 1;
    live->persisted = Clock::now();
  }
  if (server_stopping_) return;  // not started: it stays queued for the next start
  if (live->cancel) {  // canceled between the queue and here
    std::lock_guard lock(live->mu);
    live->row.state = "canceled";
    live->row.error = "canceled before it started";
    live->row.finished_at = UtcNowIso();
    (void)db_.UpdateJob(live->row);
    return;
  }
  if (auto r = db_.UpdateJob(live->row); !r) spdlog::warn("job {}: cannot save: {}", id, r.error().message);
  JobOutcome out;
  if (runner == runners_.end()) {
    out = {"failed", fmt::format("no runner for jobs of type '{}'", live->row.type), {}, {}};
  } else {
    Context ctx(*this, *live);
    // Nothing a peer sends may take the process down: an exception that escaped a runner ends
    // its job, without its text (it may quote what the peer sent).
    try {
      out = runner->second->Run(ctx);
    } catch (...) {
      spdlog::error("job {} ({}): an unexpected error ended it", id, live->row.type);
      out = {"failed", "internal error: the job stopped unexpectedly (see the server log)", {}, {}};
    }
  }
  JobRow final_row;
  {
    std::lock_guard lock(live->mu);
    live->row.state = out.state;
    live->row.error = out.error;
    if (!out.progress.is_null()) live->row.progress = out.progress.dump();
    live->row.result = out.result.dump();
    live->row.interrupted = server_stopping_ && out.state != "succeeded";
    live->row.finished_at = UtcNowIso();
    final_row = live->row;
  }
  if (auto r = db_.UpdateJob(final_row); !r) {
    spdlog::error("job {}: cannot save its end ({}): {}", id, out.state, r.error().message);
  }
  nlohmann::json p = ParseOr(final_row.progress, nlohmann::json::object());
  std::string counts;
  if (p.contains("completed") && p.contains("total")) {
    counts = fmt::format(" ({} of {} instances, {:.1f} MB transferred)", p["completed"].dump(),
                         p["total"].dump(), p.value("bytes", 0.0) / 1e6);
  }
  spdlog::info("job {} ({} {} {}) {}{}{}{}", id, final_row.type, final_row.type == "send" ? "to" : "from",
               final_row.node, final_row.state,
               counts, out.error.empty() ? "" : ": ", out.error);
}

nlohmann::json JobService::ToJson(const JobRow& row, bool full) const {
  auto nullable = [](const std::string& s) { return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s); };
  nlohmann::json j{{"id", std::to_string(row.id)},
                   {"type", row.type},
                   {"state", row.state},
                   {"node", row.node},
                   {"progress", ParseOr(row.progress, nlohmann::json::object())},
                   {"error", nullable(row.error)},
                   {"interrupted", row.interrupted},
                   {"attempts", row.attempts},
                   {"retry_of", row.retry_of ? nlohmann::json(std::to_string(row.retry_of)) : nlohmann::json(nullptr)},
                   {"created_at", row.created_at},
                   {"started_at", nullable(row.started_at)},
                   {"finished_at", nullable(row.finished_at)}};
  nlohmann::json params = ParseOr(row.params, nlohmann::json::object());
  for (auto it = params.begin(); it != params.end(); ++it) {
    if (!j.contains(it.key())) j[it.key()] = *it;
  }
  nlohmann::json result = ParseOr(row.result, nlohmann::json::object());
  for (auto it = result.begin(); it != result.end(); ++it) {
    if (!full && it->is_array() && it->size() > 20) continue;  // long lists only in the detail
    if (!j.contains(it.key())) j[it.key()] = *it;
  }
  return j;
}

Result<nlohmann::json> JobService::Submit(const std::string& type, const nlohmann::json& request) {
  auto runner = runners_.find(type);
  if (runner == runners_.end()) return Fail(Code::kInvalidArgument, fmt::format("no job type '{}'", type), "type");
  auto prepared = runner->second->Prepare(request);
  if (!prepared) return tl::unexpected(prepared.error());
  JobRow row;
  row.type = type;
  row.state = "queued";
  row.params = prepared->first.dump();
  row.node = prepared->second;
  if (request.contains("retry_of") && request["retry_of"].is_number_integer()) {
    row.retry_of = request["retry_of"].get<int64_t>();
  }
  auto id = db_.InsertJob(row);
  if (!id) return tl::unexpected(id.error());
  {
    std::lock_guard lock(mu_);
    queue_.push_back(*id);
  }
  cv_.notify_one();
  return Get(*id);
}

Result<nlohmann::json> JobService::Get(int64_t id, bool full) {
  std::shared_ptr<Live> live;
  {
    std::lock_guard lock(mu_);
    auto it = live_.find(id);
    if (it != live_.end()) live = it->second;
  }
  if (live) {
    std::lock_guard lock(live->mu);
    if (live->row.id == id) return ToJson(live->row, full);  // else not loaded yet: the table
  }
  auto row = db_.GetJob(id);
  if (!row) return tl::unexpected(row.error());
  if (!*row) return Fail(Code::kNotFound, fmt::format("no job {}", id), "id");
  return ToJson(**row, full);
}

Result<nlohmann::json> JobService::List(const JobFilter& filter) {
  if (!filter.state.empty() &&
      std::find(std::begin(kStates), std::end(kStates), filter.state) == std::end(kStates)) {
    return Fail(Code::kInvalidArgument,
                fmt::format("no job state '{}'; the states are {}", filter.state, fmt::join(kStates, ", ")),
                "state");
  }
  auto rows = db_.ListJobs(filter);
  if (!rows) return tl::unexpected(rows.error());
  nlohmann::json out = nlohmann::json::array();
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

Result<nlohmann::json> JobService::Cancel(int64_t id) {
  {
    std::lock_guard lock(mu_);
    auto it = live_.find(id);
    if (it != live_.end()) {
      std::lock_guard live_lock(it->second->mu);
      if (Finished(it->second->row.state)) {
        return Fail(Code::kConflict,
                    fmt::format("job {} has already ended ({})", id, it->second->row.state), "id");
      }
      it->second->cancel = true;
      if (it->second->row.id != id) return nlohmann::json{{"id", std::to_string(id)}, {"state", "queued"}, {"cancel_requested", true}};
      nlohmann::json j = ToJson(it->second->row, true);
      j["cancel_requested"] = true;
      return j;
    }
  }
  auto row = db_.GetJob(id);
  if (!row) return tl::unexpected(row.error());
  if (!*row) return Fail(Code::kNotFound, fmt::format("no job {}", id), "id");
  JobRow r = **row;
  if (Finished(r.state)) {
    return Fail(Code::kConflict, fmt::format("job {} has already ended ({})", id, r.state), "id");
  }
  {
    std::lock_guard lock(mu_);
    queue_.erase(std::remove(queue_.begin(), queue_.end(), id), queue_.end());
  }
  r.state = "canceled";
  r.error = "canceled before it started";
  r.finished_at = UtcNowIso();
  if (auto u = db_.UpdateJob(r); !u) return tl::unexpected(u.error());
  return ToJson(r, true);
}

Result<nlohmann::json> JobService::Retry(int64_t id) {
  auto row = db_.GetJob(id);
  if (!row) return tl::unexpected(row.error());
  if (!*row) return Fail(Code::kNotFound, fmt::format("no job {}", id), "id");
  if (!Finished((*row)->state)) {
    return Fail(Code::kConflict, fmt::format("job {} is still {}", id, (*row)->state), "id");
  }
  nlohmann::json request = ParseOr((*row)->params, nlohmann::json::object());
  request["retry_of"] = id;
  return Submit((*row)->type, request);
}

}  // namespace pb
