#pragma once
// The persistent job queue: jobs are rows of the `jobs` table (queued → running → succeeded,
// partial, failed or canceled), run by a few worker threads. Live progress is kept in memory
// and written to the table about once a second, so a restart loses at most a second of it;
// jobs that were running when the server stopped are marked interrupted at the next start and
// never claim success. Queued jobs survive restarts. Retries, priorities and schedules come on
// top of the same table. Thread-safe.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "archive/database.h"
#include "core/result.h"

namespace pb {

// What a runner sees of its job.
class JobContext {
 public:
  virtual ~JobContext() = default;
  virtual int64_t id() const = 0;
  virtual const nlohmann::json& params() const = 0;
  // Replaces the job's progress document (shown live; persisted about once a second).
  virtual void Progress(const nlohmann::json& progress) = 0;
  // True once the job was canceled or the server is stopping: end soon, keep what arrived.
  virtual bool StopRequested() const = 0;
  virtual bool ServerStopping() const = 0;
};

struct JobOutcome {
  std::string state;  // succeeded, partial, failed, canceled
  std::string error;  // why it is not succeeded (or a note), "" otherwise
  nlohmann::json progress;
  nlohmann::json result = nlohmann::json::object();  // kind-specific fields shown with the job
};

class JobRunner {
 public:
  virtual ~JobRunner() = default;
  // Checks and completes the parameters of a new job (errors name the field); returns the
  // parameters to store and the node the job is about.
  virtual Result<std::pair<nlohmann::json, std::string>> Prepare(const nlohmann::json& request) = 0;
  virtual JobOutcome Run(JobContext& job) = 0;
};

class JobService {
 public:
  JobService(Database& db, int workers);
  ~JobService();  // Stop()
  JobService(const JobService&) = delete;
  JobService& operator=(const JobService&) = delete;

  void Register(const std::string& type, JobRunner& runner);
  // Marks jobs of an earlier run that were running as interrupted, queues the queued ones and
  // starts the workers. Returns how many were interrupted.
  Result<int> Start();
  // Asks running jobs to stop, waits for them (they end interrupted) and joins the workers.
  void Stop();

  Result<nlohmann::json> Submit(const std::string& type, const nlohmann::json& request);
  Result<nlohmann::json> Get(int64_t id, bool full = true);
  // A state filter outside the contract's states is refused (kInvalidArgument naming them).
  Result<nlohmann::json> List(const JobFilter& filter);
  // Queued: canceled at once. Running: asked to stop (C-CANCEL); it ends `canceled` soon.
  Result<nlohmann::json> Cancel(int64_t id);
  // A new job with the same parameters (a retrieve then fetches only what is still missing).
  Result<nlohmann::json> Retry(int64_t id);

 private:
  struct Live;
  class Context;
  void WorkerLoop();
  void RunOne(int64_t id, const std::shared_ptr<Live>& live);
  nlohmann::json ToJson(const JobRow& row, bool full) const;

  Database& db_;
  int workers_count_;
  std::map<std::string, JobRunner*> runners_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int64_t> queue_;                        // GUARDED_BY(mu_)
  std::map<int64_t, std::shared_ptr<Live>> live_;    // GUARDED_BY(mu_): running jobs
  bool stopping_ = false;                            // GUARDED_BY(mu_)
  std::atomic<bool> server_stopping_{false};
  std::vector<std::thread> workers_;
};

}  // namespace pb
