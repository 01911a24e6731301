#include "jobs/job_service.h"
#include "archive/testing.h"
#include "core/rate_limiter.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <future>
#include <set>
#include <thread>

namespace pb {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

// A runner whose runs block until released (so tests see jobs queued and running), then end as
// scripted: each run takes the next outcome of its job's script, or succeeds. Records the order
// in which jobs started.
class ScriptedRunner : public JobRunner {
 public:
  Result<std::pair<json, std::string>> Prepare(const json& rq) override {
    if (!rq.contains("n")) return Fail(Code::kInvalidArgument, "n is required", "n");
    return std::pair{json{{"n", rq["n"]}}, rq.value("node", std::string("node-a"))};
  }
  JobOutcome Run(JobContext& job) override {
    {
      std::lock_guard lock(mu);
      started.push_back(job.params()["n"].get<int>());
      ++runs[job.params()["n"].get<int>()];
      ++running;
      max_running = std::max(max_running, running);
      if (wanted_extra > 0) granted_extra = job.ExtraConnections(wanted_extra);
      if (give_back > 0) job.ReleaseConnections(give_back);
    }
    started_cv.notify_all();
    job.Progress({{"completed", 1}});
    while (!release && !job.StopRequested()) std::this_thread::sleep_for(2ms);
    std::lock_guard lock(mu);
    --running;
    if (job.StopRequested()) return {"partial", "stopped", {{"completed", 1}}, {}};
    auto& script = scripts[job.params()["n"].get<int>()];
    if (!script.empty()) {
      JobOutcome out = script.front();
      script.pop_front();
      return out;
    }
    return {"succeeded", "", {{"completed", 2}}, {{"missing", json::array()}}};
  }
  int Runs(int n) {
    std::lock_guard lock(mu);
    return runs[n];
  }
  std::vector<int> Started() {
    std::lock_guard lock(mu);
    return started;
  }
  // Waits until `n` runs have begun (a job's row says running a little before its run begins);
  // false after 20 s.
  bool AwaitStarted(size_t n) {
    std::unique_lock lock(mu);
    return started_cv.wait_for(lock, std::chrono::seconds(20), [&] { return started.size() >= n; });
  }

  std::atomic<bool> release{false};
  std::mutex mu;
  std::condition_variable started_cv;             // a run began
  std::map<int, std::deque<JobOutcome>> scripts;  // GUARDED_BY(mu)
  std::map<int, int> runs;                        // GUARDED_BY(mu)
  std::vector<int> started;                       // GUARDED_BY(mu)
  int running = 0, max_running = 0;               // GUARDED_BY(mu)
  int wanted_extra = 0, granted_extra = -1;       // GUARDED_BY(mu)
  int give_back = 0;                              // GUARDED_BY(mu): released right after
};

JobOutcome Transient(const std::string& why, int retry_after = 0) {
  JobOutcome o{"failed", why, {{"completed", 0}}, {}};
  o.transient = true;
  o.retry_after_seconds = retry_after;
  return o;
}

class JobServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pb-jobs-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto db = OpenTestDatabase(dir_);
    ASSERT_TRUE(db) << db.error().message;
    db_ = std::move(*db);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A service on the manual clock; retry delays without jitter (the factor is 1).
  std::unique_ptr<JobService> Make(int workers, NodeJobPolicy policy = {}) {
    JobServiceOptions o;
    o.workers = workers;
    o.clock = &clock_;
    o.policy = [policy](const std::string&) { return policy; };
    o.random = [] { return 0.999999; };
    return std::make_unique<JobService>(*db_, o);
  }

  // Node "pacs" keeps office hours in Paris (Monday to Friday, 08:00-18:00); other nodes are
  // always available.
  std::unique_ptr<JobService> MakeWithOfficeHours(json windows = nullptr) {
    if (windows.is_null()) {
      windows = json::array({{{"days", {"mon", "tue", "wed", "thu", "fri"}}, {"start", "08:00"}, {"end", "18:00"}}});
    }
    auto parsed = Schedule::Parse({{"timezone", "Europe/Paris"}, {"windows", windows}});
    EXPECT_TRUE(parsed);
    auto schedule = std::make_shared<const Schedule>(*parsed);
    JobServiceOptions o;
    o.workers = 1;
    o.clock = &clock_;
    o.policy = [schedule](const std::string& node) {
      NodeJobPolicy p;
      if (node == "pacs") p.schedule = schedule;
      return p;
    };
    return std::make_unique<JobService>(*db_, o);
  }

  json Job(JobService& s, const std::string& id) { return *s.Get(std::stoll(id)); }
  // A job row written straight into the table: `owner`'s, in `state`, with params {"n": n}.
  JobRow InsertOwned(const std::string& state, int n, const std::string& owner, const std::string& lease = "") {
    JobRow row;
    row.type = "test";
    row.state = state;
    row.node = "node-a";
    row.params = json{{"n", n}}.dump();
    auto id = db_->InsertJob(row);
    EXPECT_TRUE(id);
    row.id = id ? *id : 0;
    row.owner = owner;
    row.lease_until = lease;
    auto saved = db_->UpdateJobIf(row, {state});
    EXPECT_TRUE(saved && *saved);
    return row;
  }
  // One of several instances on a database, with a 30 s lease and no heartbeat thread.
  std::unique_ptr<JobService> Instance(Database& db, const std::string& id, int workers, bool shared,
                                       const Clock* clock = nullptr) {
    JobServiceOptions o;
    o.workers = workers;
    o.clock = clock ? clock : &clock_;
    o.instance_id = id;
    o.lease = 30s;
    o.heartbeat = false;
    o.shared = shared;
    o.random = [] { return 0.999999; };
    return std::make_unique<JobService>(db, o);
  }

  template <typename Pred>
  json WaitUntil(JobService& s, const std::string& id, Pred pred) {
    json j;
    for (int i = 0; i < 1000; ++i) {
      j = Job(s, id);
      if (pred(j)) return j;
      std::this_thread::sleep_for(5ms);
    }
    ADD_FAILURE() << "timed out waiting on job " << id << ": " << j.dump();
    return j;
  }
  json WaitFor(JobService& s, const std::string& id, const std::string& state) {
    return WaitUntil(s, id, [&](const json& j) { return j["state"] == state; });
  }
  // Proves the workers have looked at the queue since now: a fresh job on another node runs to
  // its end (a negative check made after this one is not a race).
  void CatchUp(JobService& s, ScriptedRunner& runner, int marker) {
    std::string id = (*s.Submit("test", {{"n", marker}, {"node", "marker-node"}}))["id"];
    bool was = runner.release;
    runner.release = true;
    WaitFor(s, id, "succeeded");
    runner.release = was;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Database> db_;
  ManualClock clock_{std::chrono::sys_days{std::chrono::year{2026} / 3 / 2} + 9h};
};

TEST_F(JobServiceTest, RunsAJobToItsEndAndKeepsItsResult) {
  ScriptedRunner runner;
  auto s = Make(1);
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  auto job = s->Submit("test", {{"n", 1}});
  ASSERT_TRUE(job) << job.error().message;
  std::string id = (*job)["id"];
  auto running = WaitUntil(*s, id, [](const json& j) { return j["progress"].value("completed", -1) == 1; });
  EXPECT_EQ(running["state"], "running");
  runner.release = true;
  auto done = WaitFor(*s, id, "succeeded");
  EXPECT_EQ(done["progress"]["completed"], 2);
  EXPECT_EQ(done["node"], "node-a");
  EXPECT_EQ(done["n"], 1);
  EXPECT_EQ(done["priority"], "normal");
  EXPECT_EQ(done["attempts"], 1);
  EXPECT_TRUE(done["missing"].is_array());
  EXPECT_TRUE(done["error"].is_null());
  EXPECT_FALSE(done["finished_at"].is_null());
  ASSERT_EQ(done["history"].size(), 1u);
  EXPECT_EQ(done["history"][0]["outcome"], "succeeded");
  EXPECT_EQ(done["history"][0]["attempt"], 1);
  EXPECT_EQ(done["history"][0]["completed"], 2);
}

TEST_F(JobServiceTest, AwaitingAJobAnswersWhenItEndsOrWhenTheWaitIsOver) {
  ScriptedRunner runner;
  auto s = Make(1);  // one worker: the second job stays queued behind the first
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  const int64_t first = std::stoll((*s->Submit("test", {{"n", 1}}))["id"].get<std::string>());
  const int64_t second = std::stoll((*s->Submit("test", {{"n", 2}}))["id"].get<std::string>());
  WaitFor(*s, std::to_string(first), "running");

  // A short wait on a running job answers with the job as it is.
  auto as_is = s->AwaitEnd(first, 50ms);
  ASSERT_TRUE(as_is);
  EXPECT_EQ((*as_is)["state"], "running");
  // An unknown job is not found at once.
  auto unknown = s->AwaitEnd(999, 10s);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, Code::kNotFound);

  // A waiter on the running job answers once it ends, not before.
  auto ended = std::async(std::launch::async, [&] { return s->AwaitEnd(first, 30s); });
  // A cancel of the queued job wakes its waiter at once (well before its 30 s).
  auto canceled = std::async(std::launch::async, [&] { return s->AwaitEnd(second, 30s); });
  WaitUntil(*s, std::to_string(first), [&](const json&) { return s->Awaiting() == 2; });
  ASSERT_TRUE(s->Cancel(second));
  ASSERT_EQ(canceled.wait_for(10s), std::future_status::ready);
  EXPECT_EQ((*canceled.get())["state"], "canceled");
  EXPECT_EQ(ended.wait_for(0ms), std::future_status::timeout);

  // At most kMaxWaiters wait at once; one more gets the job as it is, without waiting.
  std::vector<std::future<Result<json>>> more;
  for (int i = 1; i < JobService::kMaxWaiters; ++i) {
    more.push_back(std::async(std::launch::async, [&] { return s->AwaitEnd(first, 30s); }));
  }
  WaitUntil(*s, std::to_string(first), [&](const json&) { return s->Awaiting() == JobService::kMaxWaiters; });
  const auto before = std::chrono::steady_clock::now();
  auto extra = s->AwaitEnd(first, 30s);
  ASSERT_TRUE(extra);
  EXPECT_EQ((*extra)["state"], "running");
  EXPECT_LT(std::chrono::steady_clock::now() - before, 10s);

  runner.release = true;
  ASSERT_EQ(ended.wait_for(10s), std::future_status::ready);
  EXPECT_EQ((*ended.get())["state"], "succeeded");
  for (auto& f : more) {
    ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
    EXPECT_EQ((*f.get())["state"], "succeeded");
  }
  EXPECT_EQ(s->Awaiting(), 0);
}

TEST_F(JobServiceTest, ReleasingTheWaitersAnswersThemAtOnce) {
  ScriptedRunner runner;
  auto s = Make(1);
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  const int64_t id = std::stoll((*s->Submit("test", {{"n", 1}}))["id"].get<std::string>());
  WaitFor(*s, std::to_string(id), "running");
  auto waiting = std::async(std::launch::async, [&] { return s->AwaitEnd(id, 60s); });
  WaitUntil(*s, std::to_string(id), [&](const json&) { return s->Awaiting() == 1; });
  s->ReleaseWaiters();  // as before the HTTP server stops
  ASSERT_EQ(waiting.wait_for(10s), std::future_status::ready);
  EXPECT_EQ((*waiting.get())["state"], "running");
  const auto before = std::chrono::steady_clock::now();
  EXPECT_EQ((*s->AwaitEnd(id, 60s))["state"], "running");
  EXPECT_LT(std::chrono::steady_clock::now() - before, 10s);
  runner.release = true;
}

TEST_F(JobServiceTest, RefusesBadParametersUnknownTypesAndPriorities) {
  ScriptedRunner runner;
  auto s = Make(1);
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  auto bad = s->Submit("test", json::object());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "n");
  EXPECT_FALSE(s->Submit("nope", {{"n", 1}}));
  auto urgent = s->Submit("test", {{"n", 1}, {"priority", "urgent"}});
  ASSERT_FALSE(urgent);
  EXPECT_EQ(urgent.error().field, "priority");
  EXPECT_EQ(s->Get(999).error().code, Code::kNotFound);
}

TEST_F(JobServiceTest, CancelsQueuedAndRunningJobs) {
  ScriptedRunner runner;
  auto s = Make(1);  // one worker: the second job waits in the queue
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  std::string first = (*s->Submit("test", {{"n", 1}}))["id"];
  std::string second = (*s->Submit("test", {{"n", 2}}))["id"];
  WaitFor(*s, first, "running");
  EXPECT_EQ(Job(*s, second)["state"], "queued");
  EXPECT_EQ((*s->Cancel(std::stoll(second)))["state"], "canceled");
  auto asked = s->Cancel(std::stoll(first));
  ASSERT_TRUE(asked);
  EXPECT_EQ((*asked)["cancel_requested"], true);
  auto ended = WaitFor(*s, first, "canceled");
  EXPECT_EQ(ended["history"].back()["outcome"], "canceled");
  auto again = s->Cancel(std::stoll(first));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Code::kConflict);
  CatchUp(*s, runner, 99);
  EXPECT_EQ(Job(*s, second)["state"], "canceled");
  EXPECT_EQ(runner.Runs(2), 0);  // never ran
}

TEST_F(JobServiceTest, ACancelRacingAClaimNeverLetsTheJobRunAsCanceled) {
  // The race of the issue: a cancel between the queue and a worker's claim. Whatever wins,
  // a job reported canceled before it started never runs.
  ScriptedRunner runner;
  runner.release = true;
  auto s = Make(4);
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  std::vector<std::pair<int, bool>> canceled_before_start;
  auto submit_and_cancel = [&](int n) {
    std::string id = (*s->Submit("test", {{"n", n}}))["id"];
    auto c = s->Cancel(std::stoll(id));
    if (c && !(*c).contains("cancel_requested")) canceled_before_start.push_back({n, true});
  };
  // Free workers: each cancel races a claim (either may win).
  for (int n = 1000; n < 1200; ++n) submit_and_cancel(n);
  // Busy workers: the cancels certainly come first, so the check below has cases to check.
  runner.release = false;
  std::vector<std::string> busy;
  for (int n = 2000; n < 2004; ++n)
    busy.push_back((*s->Submit("test", {{"n", n}, {"node", "node-" + std::to_string(n)}}))["id"]);
  for (const auto& id : busy) WaitFor(*s, id, "running");
  for (int n = 1200; n < 1220; ++n) submit_and_cancel(n);
  runner.release = true;
  CatchUp(*s, runner, 99);
  ASSERT_FALSE(canceled_before_start.empty());
  for (auto [n, _] : canceled_before_start) EXPECT_EQ(runner.Runs(n), 0) << n;
}

TEST_F(JobServiceTest, RetryMakesANewJobWithTheSameParametersAndPriority) {
  ScriptedRunner runner;
  runner.release = true;
  auto s = Make(1);
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  std::string id = (*s->Submit("test", {{"n", 7}, {"priority", "high"}}))["id"];
  WaitFor(*s, id, "succeeded");
  auto retry = s->Retry(std::stoll(id));
  ASSERT_TRUE(retry) << retry.error().message;
  EXPECT_NE((*retry)["id"], id);
  EXPECT_EQ((*retry)["retry_of"], id);
  EXPECT_EQ((*retry)["n"], 7);
  EXPECT_EQ((*retry)["priority"], "high");
  EXPECT_EQ(WaitFor(*s, (*retry)["id"], "succeeded")["state"], "succeeded");
}

// Several instances on one database: a job runs on the instance that claimed it while that
// instance renews its lease; once the lease runs out another instance queues it again and runs
// it, and the first instance's run, when it goes on, stops without writing anything.
TEST_F(JobServiceTest, AnotherInstanceTakesOverAJobWhoseLeaseRanOutAndItNeverRunsTwice) {
  auto db_b = ReopenTestDatabase(dir_);  // the same database, other connections
  ASSERT_TRUE(db_b) << db_b.error().message;
  auto make = [&](Database& db, const std::string& instance) {
    return Instance(db, instance, 1, /*shared=*/false);  // renewals only when the test calls Heartbeat()
  };
  ScriptedRunner runner_a, runner_b;
  runner_b.release = true;
  auto a = make(*db_, "a");
  a->Register("test", runner_a);
  ASSERT_TRUE(a->Start());
  std::string id = (*a->Submit("test", {{"n", 1}}))["id"];
  WaitUntil(*a, id, [](const json& j) { return j["progress"].value("completed", -1) == 1; });
  EXPECT_EQ(runner_a.Runs(1), 1);

  // B starts beside it: A's running job is not B's to resume, now or while A renews its lease.
  auto b = make(**db_b, "b");
  b->Register("test", runner_b);
  auto resumed = b->Start();
  ASSERT_TRUE(resumed) << resumed.error().message;
  EXPECT_EQ(*resumed, 0);
  CatchUp(*b, runner_b, 99);  // B's worker looked at the queue (A's one worker is busy)
  clock_.Advance(20s);
  ASSERT_TRUE(a->Heartbeat());  // renewed to 20 s + 30 s
  clock_.Advance(20s);
  auto taken = b->Heartbeat();
  ASSERT_TRUE(taken) << taken.error().message;
  EXPECT_EQ(*taken, 0);
  EXPECT_EQ(Job(*b, id)["state"], "running");
  EXPECT_EQ(runner_b.Runs(1), 0);

  // A stops renewing (it hangs, or lost the database): past its lease, B takes the job over and
  // runs it to its end.
  clock_.Advance(31s);
  taken = b->Heartbeat();
  ASSERT_TRUE(taken) << taken.error().message;
  EXPECT_EQ(*taken, 1);
  auto done = WaitFor(*b, id, "succeeded");
  EXPECT_EQ(runner_b.Runs(1), 1);
  ASSERT_EQ(done["history"].size(), 2u) << done.dump();
  EXPECT_EQ(done["history"][0]["outcome"], "interrupted");
  EXPECT_NE(done["history"][0]["error"].get<std::string>().find("'a'"), std::string::npos) << done.dump();
  EXPECT_EQ(done["history"][1]["outcome"], "succeeded");

  // A comes back: its next heartbeat finds the job no longer its own, and its run stops by
  // itself (without a release) and writes nothing.
  ASSERT_TRUE(a->Heartbeat());
  for (int i = 0; i < 1000; ++i) {
    {
      std::lock_guard lock(runner_a.mu);
      if (runner_a.running == 0) break;
    }
    std::this_thread::sleep_for(5ms);
  }
  {
    std::lock_guard lock(runner_a.mu);
    EXPECT_EQ(runner_a.running, 0) << "A's run did not stop";
  }
  a->Stop();  // whatever A would still write is written by now
  auto after = *b->Get(std::stoll(id));
  EXPECT_EQ(after["state"], "succeeded");
  EXPECT_EQ(after["history"].size(), 2u) << after.dump();
  EXPECT_EQ(runner_a.Runs(1), 1);
  b->Stop();
}

// Instances on hosts whose clocks differ agree on when a lease runs out: leases are measured on
// the database server's clock. A's host is an hour behind B's; on the hosts' own clocks, A's
// lease would look an hour gone to B, which would take A's running job over at once and run it
// a second time.
TEST_F(JobServiceTest, LeasesAreMeasuredOnTheDatabasesClockWhateverTheHostsClocks) {
  auto db_b = ReopenTestDatabase(dir_);
  ASSERT_TRUE(db_b) << db_b.error().message;
  ManualClock behind{clock_.Now() - 1h};
  ScriptedRunner runner_a, runner_b;
  runner_b.release = true;
  auto a = Instance(*db_, "a", 1, /*shared=*/false, &behind);
  a->Register("test", runner_a);
  ASSERT_TRUE(a->Start());
  std::string id = (*a->Submit("test", {{"n", 1}}))["id"];
  WaitUntil(*a, id, [](const json& j) { return j["progress"].value("completed", -1) == 1; });
  auto b = Instance(**db_b, "b", 1, /*shared=*/false);
  b->Register("test", runner_b);
  ASSERT_TRUE(b->Start());
  const auto apart = a->LeaseNow() - b->LeaseNow();
  EXPECT_LT(std::chrono::abs(apart), std::chrono::duration_cast<TimePoint::duration>(5s))
      << "both measure leases on the database's clock";

  auto taken = b->Heartbeat();
  ASSERT_TRUE(taken) << taken.error().message;
  EXPECT_EQ(*taken, 0) << "A's lease is 30 s ahead on the database's clock";
  EXPECT_EQ(Job(*b, id)["state"], "running");
  EXPECT_EQ(runner_b.Runs(1), 0);

  // Past the lease on both hosts (A does not renew): B takes it over and runs it.
  clock_.Advance(31s);
  behind.Advance(31s);
  taken = b->Heartbeat();
  ASSERT_TRUE(taken) << taken.error().message;
  EXPECT_EQ(*taken, 1);
  WaitFor(*b, id, "succeeded");
  EXPECT_EQ(runner_b.Runs(1), 1);
  runner_a.release = true;
  a->Stop();
  b->Stop();
}

// Several instances on one database: a cancel or a pause asked through an instance that does not
// run the job is left for the one that does, which applies it when it takes its requests; one
// that dies before taking it has it applied by the instance that takes the job over.
TEST_F(JobServiceTest, ACancelOrPauseThroughAnotherInstanceReachesTheRunAndSurvivesItsInstance) {
  auto db_b = ReopenTestDatabase(dir_);
  ASSERT_TRUE(db_b) << db_b.error().message;
  auto make = [&](Database& db, const std::string& instance) {
    return Instance(db, instance, 2, /*shared=*/true);  // requests and renewals when the test asks
  };
  ScriptedRunner runner_a, runner_b;
  auto a = make(*db_, "a");
  a->Register("test", runner_a);
  ASSERT_TRUE(a->Start());
  auto b = make(**db_b, "b");  // not started: it runs no job, only answers and takes over
  b->Register("test", runner_b);
  std::string to_cancel = (*a->Submit("test", {{"n", 1}}))["id"];
  std::string to_pause = (*a->Submit("test", {{"n", 2}}))["id"];
  for (const auto& id : {to_cancel, to_pause}) {
    auto j = WaitUntil(*a, id, [](const json& j) { return j["progress"].value("completed", -1) == 1; });
    EXPECT_EQ(j["instance"], "a") << j.dump();
  }
  ASSERT_EQ(runner_a.Runs(1) + runner_a.Runs(2), 2);  // both run on A

  auto canceled = b->Cancel(std::stoll(to_cancel));
  ASSERT_TRUE(canceled) << canceled.error().message;
  EXPECT_EQ((*canceled)["cancel_requested"], true);
  auto paused = b->Pause(std::stoll(to_pause));
  ASSERT_TRUE(paused) << paused.error().message;
  EXPECT_EQ((*paused)["pause_requested"], true);
  EXPECT_EQ(Job(*a, to_cancel)["state"], "running");  // left for A, not done behind its back

  auto taken = a->TakeRequests();
  ASSERT_TRUE(taken) << taken.error().message;
  EXPECT_EQ(*taken, 2);
  EXPECT_EQ(WaitFor(*a, to_cancel, "canceled")["state"], "canceled");
  auto p = WaitUntil(*a, to_pause, [](const json& j) { return j["state"] == "waiting" && j["paused"] == true; });
  EXPECT_EQ(p["paused"], true) << p.dump();
  EXPECT_EQ(*a->TakeRequests(), 0);  // taken once
  EXPECT_EQ(runner_b.Runs(1) + runner_b.Runs(2), 0);

  // A cancel left for an instance that dies before taking it: applied at the take-over.
  std::string orphan = (*a->Submit("test", {{"n", 3}}))["id"];
  WaitUntil(*a, orphan, [](const json& j) { return j["progress"].value("completed", -1) == 1; });
  ASSERT_TRUE(b->Cancel(std::stoll(orphan)));
  auto early = b->Heartbeat();  // B's heartbeat runs beside A (its first reads the database's clock)
  ASSERT_TRUE(early) << early.error().message;
  EXPECT_EQ(*early, 0);
  clock_.Advance(31s);  // A renews nothing from here on
  auto over = b->Heartbeat();
  ASSERT_TRUE(over) << over.error().message;
  EXPECT_EQ(*over, 1);
  auto j = Job(*b, orphan);
  EXPECT_EQ(j["state"], "canceled") << j.dump();
  EXPECT_NE(j["error"].get<std::string>().find("'a'"), std::string::npos) << j.dump();
  EXPECT_EQ(runner_b.Runs(3), 0);
  runner_a.release = true;
  a->Stop();
  b->Stop();
}

// A request that found the run gone (it ended into a retry, or a restart queued it again before
// the request was taken) still applies: to the job as it is now.
TEST_F(JobServiceTest, ARequestLeftForARunThatIsGoneAppliesToTheJobAsItIsNow) {
  auto a = Instance(*db_, "a", 1, /*shared=*/true);  // not started: no run of its own
  std::map<std::string, int64_t> ids;
  for (const char* what : {"cancel", "pause"}) {
    ids[what] = InsertOwned("queued", 1, "a").id;  // queued again by a restart of "a" after the request was left
  }
  // The rows as RequestJob leaves them while running, then queued again with the request kept.
  for (const auto& [what, id] : ids) {
    JobRow r = **db_->GetJob(id);
    r.state = "running";
    ASSERT_TRUE(*db_->UpdateJobIf(r, {"queued"}));
    ASSERT_TRUE(*db_->RequestJob(id, what));
    r.state = "queued";
    ASSERT_TRUE(*db_->UpdateJobIf(r, {"running"}));
    EXPECT_EQ((**db_->GetJob(id)).requested, what);
  }
  auto taken = a->TakeRequests();
  ASSERT_TRUE(taken) << taken.error().message;
  EXPECT_EQ(*taken, 2);
  EXPECT_EQ(Job(*a, std::to_string(ids["cancel"]))["state"], "canceled");
  auto paused = Job(*a, std::to_string(ids["pause"]));
  EXPECT_EQ(paused["state"], "waiting");
  EXPECT_EQ(paused["paused"], true);
  EXPECT_EQ(*a->TakeRequests(), 0);
}

// A run of ours that stopped while the database was gone (its end not written) leaves its row
// running under our name: once its lease runs out, our own heartbeat queues it again.
TEST_F(JobServiceTest, OurOwnRunningRowWithoutARunIsQueuedAgainOnceItsLeaseRunsOut) {
  JobServiceOptions o;
  o.workers = 1;
  o.clock = &clock_;
  o.instance_id = "a";
  o.heartbeat = false;
  ScriptedRunner runner;
  runner.release = true;
  auto s = std::make_unique<JobService>(*db_, o);
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  // Written after the start (which would have resumed it), as never claimable: running, ours.
  JobRow orphan = InsertOwned("running", 7, "a", UtcIso(s->LeaseNow() + 30s));
  ASSERT_NE(orphan.id, 0);
  auto taken = s->Heartbeat();
  ASSERT_TRUE(taken) << taken.error().message;
  EXPECT_EQ(*taken, 0);  // its lease runs yet, and is not renewed: no run of ours holds it
  EXPECT_EQ((*db_->GetJob(orphan.id))->lease_until, orphan.lease_until);
  clock_.Advance(31s);
  taken = s->Heartbeat();
  ASSERT_TRUE(taken) << taken.error().message;
  EXPECT_EQ(*taken, 1);
  auto done = WaitFor(*s, std::to_string(orphan.id), "succeeded");
  EXPECT_EQ(runner.Runs(7), 1);
  EXPECT_EQ(done["history"][0]["outcome"], "interrupted");
}

// Several instances on one database, each with one worker, as `shared` servers run them.
std::unique_ptr<JobService> SharedInstance(Database& db, const Clock& clock, const std::string& id, int max_connections,
                                           int max_retrieves = 1, int utilization_percent = 100) {
  JobServiceOptions o;
  o.workers = 1;
  o.clock = &clock;
  NodeJobPolicy policy;
  policy.max_connections = max_connections;
  policy.max_parallel_retrieves = max_retrieves;
  policy.utilization_percent = utilization_percent;
  o.policy = [policy](const std::string&) { return policy; };
  o.instance_id = id;
  o.heartbeat = false;
  o.shared = true;
  return std::make_unique<JobService>(db, o);
}

// A node's max_connections holds across instances: instance b passes over the job of a node whose
// one connection instance a holds (b holds none itself), takes the next job, of another node, and
// runs the first only once a's job has ended.
TEST_F(JobServiceTest, ANodesConnectionLimitHoldsAcrossInstances) {
  ScriptedRunner runner;
  auto a = SharedInstance(*db_, clock_, "a", 1);
  a->Register("test", runner);
  ASSERT_TRUE(a->Start());
  const std::string first = (*a->Submit("test", {{"n", 1}}))["id"];
  EXPECT_EQ(WaitFor(*a, first, "running")["instance"], "a");
  auto b = SharedInstance(*db_, clock_, "b", 1);
  b->Register("test", runner);
  ASSERT_TRUE(b->Start());
  const std::string same_node = (*b->Submit("test", {{"n", 2}}))["id"];
  const std::string other_node = (*b->Submit("test", {{"n", 3}, {"node", "node-b"}}))["id"];
  EXPECT_EQ(WaitFor(*b, other_node, "running")["instance"], "b");  // b's worker looked past job 2
  EXPECT_EQ(Job(*b, same_node)["state"], "queued");
  ASSERT_TRUE(runner.AwaitStarted(2));  // the second instance's run too, before the first one's ends
  runner.release = true;
  WaitFor(*b, first, "succeeded");
  WaitFor(*b, same_node, "succeeded");
  EXPECT_EQ(runner.Started(), (std::vector<int>{1, 3, 2}));
}

// The connections a job takes beyond its own are counted for the other instances too: b's job
// holds both of the node's two (its own and one more, granted), so a passes over a job of that
// node and runs the one after it.
TEST_F(JobServiceTest, FurtherConnectionsOfAJobCountForTheOtherInstances) {
  ScriptedRunner runner;
  runner.wanted_extra = 1;
  auto b = SharedInstance(*db_, clock_, "b", 2);
  b->Register("test", runner);
  ASSERT_TRUE(b->Start());
  const std::string wide = (*b->Submit("test", {{"n", 1}}))["id"];
  WaitUntil(*b, wide, [&](const json&) {
    std::lock_guard lock(runner.mu);
    return runner.granted_extra != -1;
  });
  {
    std::lock_guard lock(runner.mu);
    EXPECT_EQ(runner.granted_extra, 1);  // the node had room for it
  }
  auto a = SharedInstance(*db_, clock_, "a", 2);
  a->Register("test", runner);
  ASSERT_TRUE(a->Start());
  const std::string same_node = (*a->Submit("test", {{"n", 2}}))["id"];
  const std::string other_node = (*a->Submit("test", {{"n", 3}, {"node", "node-b"}}))["id"];
  EXPECT_EQ(WaitFor(*a, other_node, "running")["instance"], "a");
  EXPECT_EQ(Job(*a, same_node)["state"], "queued");
  ASSERT_TRUE(runner.AwaitStarted(2));  // the second instance's run too, before the first one's ends
  runner.release = true;
  WaitFor(*a, same_node, "succeeded");
  EXPECT_EQ(runner.Started(), (std::vector<int>{1, 3, 2}));
}

// A node's max_parallel_retrieves holds across instances too: with connections to spare, b
// passes over a retrieve of the node while a runs one there, runs a job of another kind on that
// node meanwhile, and the retrieve once a's has ended.
TEST_F(JobServiceTest, ANodesRetrieveLimitHoldsAcrossInstances) {
  ScriptedRunner runner;
  auto a = SharedInstance(*db_, clock_, "a", 4, 1);
  a->Register("retrieve", runner);
  ASSERT_TRUE(a->Start());
  const std::string first = (*a->Submit("retrieve", {{"n", 1}}))["id"];
  EXPECT_EQ(WaitFor(*a, first, "running")["instance"], "a");
  auto b = SharedInstance(*db_, clock_, "b", 4, 1);
  b->Register("retrieve", runner);
  b->Register("test", runner);
  ASSERT_TRUE(b->Start());
  const std::string retrieve = (*b->Submit("retrieve", {{"n", 2}}))["id"];
  const std::string other_kind = (*b->Submit("test", {{"n", 3}}))["id"];
  EXPECT_EQ(WaitFor(*b, other_kind, "running")["instance"], "b");  // the same node, not a retrieve
  EXPECT_EQ(Job(*b, retrieve)["state"], "queued");
  ASSERT_TRUE(runner.AwaitStarted(2));  // the second instance's run too, before the first one's ends
  runner.release = true;
  WaitFor(*b, first, "succeeded");
  WaitFor(*b, retrieve, "succeeded");
  EXPECT_EQ(runner.Started(), (std::vector<int>{1, 3, 2}));
}

// A node's max_bytes_per_second is shared by the instances transferring to it: each paces at
// its share while another instance's retrieve or send runs there, and at the whole rate again
// once that has ended. Jobs of other kinds (an import's queries) do not count.
TEST_F(JobServiceTest, ANodesRateIsSharedByTheInstancesTransferringToIt) {
  ScriptedRunner runner;
  // Each instance has one worker, and starts when the others' are busy: it runs the next job.
  auto start = [&](const std::string& id) {
    auto s = SharedInstance(*db_, clock_, id, 4, 4);
    for (const char* type : {"send", "retrieve", "test"}) s->Register(type, runner);
    EXPECT_TRUE(s->Start());
    return s;
  };
  auto limiter = NodeRateLimiter("rate-node", 1'000'000);
  auto c = start("c");
  const std::string query = (*c->Submit("test", {{"n", 1}, {"node", "rate-node"}}))["id"];
  EXPECT_EQ(WaitFor(*c, query, "running")["instance"], "c");
  auto a = start("a");
  ASSERT_TRUE(a->ShareNodeRates());
  EXPECT_EQ(limiter->rate(), 1'000'000);  // c's job transfers nothing
  const std::string send = (*a->Submit("send", {{"n", 2}, {"node", "rate-node"}}))["id"];
  EXPECT_EQ(WaitFor(*a, send, "running")["instance"], "a");
  ASSERT_TRUE(a->ShareNodeRates());
  EXPECT_EQ(limiter->rate(), 1'000'000);  // a alone
  auto b = start("b");
  ASSERT_TRUE(b->ShareNodeRates());
  EXPECT_EQ(limiter->rate(), 500'000);  // b's share, before it transfers too
  const std::string retrieve = (*b->Submit("retrieve", {{"n", 3}, {"node", "rate-node"}}))["id"];
  EXPECT_EQ(WaitFor(*b, retrieve, "running")["instance"], "b");
  ASSERT_TRUE(b->ShareNodeRates());
  EXPECT_EQ(limiter->rate(), 500'000);
  (void)NodeRateLimiter("rate-node", 1'000'000);  // as a's next transfer asks for it
  EXPECT_EQ(limiter->rate(), 500'000);
  ASSERT_TRUE(a->ShareNodeRates());
  EXPECT_EQ(limiter->rate(), 500'000);  // a's share
  runner.release = true;
  for (const auto& id : {query, send, retrieve}) WaitFor(*a, id, "succeeded");
  ASSERT_TRUE(a->ShareNodeRates());
  EXPECT_EQ(limiter->rate(), 1'000'000);  // the others are done
  (void)NodeRateLimiter("rate-node", 0);
}

// Transfers outside any job count too: a C-MOVE an instance's Query/Retrieve SCP serves to a
// node (or a DICOMweb transfer) is seen by its limiter of the node, published, and shared by
// the others until it stops or its short lease runs out; a stopping instance takes its own back.
TEST_F(JobServiceTest, ATransferOutsideAnyJobIsSharedByTheOtherInstances) {
  auto limiter = NodeRateLimiter("served-node", 1'000'000);
  auto a = SharedInstance(*db_, clock_, "a", 4, 4);
  ASSERT_TRUE(a->Start());
  auto b = SharedInstance(*db_, clock_, "b", 4, 4);
  ASSERT_TRUE(b->Start());
  ASSERT_TRUE(a->ShareNodeRates());
  EXPECT_EQ(limiter->rate(), 1'000'000);  // nothing transfers (the limiter has not paced anything yet)
  // Another instance's published transfer, on the database's clock.
  const auto real_now = std::chrono::system_clock::now();
  ASSERT_TRUE(db_->PublishTransfers("c", {"served-node"}, UtcIso(real_now + std::chrono::seconds(30))));
  ASSERT_TRUE(a->ShareNodeRates());
  EXPECT_EQ(limiter->rate(), 500'000);
  // Its lease ran out (a stopped instance): the whole rate again.
  ASSERT_TRUE(db_->PublishTransfers("c", {"served-node"}, UtcIso(real_now - std::chrono::seconds(1))));
  ASSERT_TRUE(a->ShareNodeRates());
  EXPECT_EQ(limiter->rate(), 1'000'000);
  // This process paces a transfer outside any job: each instance publishes it, and counts the
  // other one's (here both are in one process, so both saw it).
  ASSERT_TRUE(limiter->Acquire(1));
  ASSERT_TRUE(a->ShareNodeRates());
  EXPECT_EQ(limiter->rate(), 1'000'000);  // only a's own so far
  ASSERT_TRUE(b->ShareNodeRates());
  EXPECT_EQ(limiter->rate(), 500'000);  // b counts a's
  auto transferring = db_->InstancesTransferring(UtcIso(std::chrono::system_clock::now()));
  ASSERT_TRUE(transferring);
  EXPECT_EQ((*transferring)["served-node"], (std::vector<std::string>{"a", "b"}));
  // a stops: its row is gone at once, not when its lease runs out.
  a->Stop();
  transferring = db_->InstancesTransferring(UtcIso(std::chrono::system_clock::now()));
  ASSERT_TRUE(transferring);
  EXPECT_EQ((*transferring)["served-node"], (std::vector<std::string>{"b"}));
  ASSERT_TRUE(b->ShareNodeRates());
  EXPECT_EQ(limiter->rate(), 1'000'000);
  (void)NodeRateLimiter("served-node", 0);
}

TEST_F(JobServiceTest, AStopQueuesRunningJobsAgainAndTheNextStartResumesThem) {
  ScriptedRunner runner;
  std::string running, queued;
  {
    auto s = Make(1);
    s->Register("test", runner);
    ASSERT_TRUE(s->Start());
    running = (*s->Submit("test", {{"n", 1}}))["id"];
    queued = (*s->Submit("test", {{"n", 2}}))["id"];
    WaitFor(*s, running, "running");
    s->Stop();
    auto j = Job(*s, running);
    EXPECT_EQ(j["state"], "queued");
    EXPECT_TRUE(j["interrupted"]);
    ASSERT_EQ(j["history"].size(), 1u);
    EXPECT_EQ(j["history"][0]["outcome"], "interrupted");
    EXPECT_TRUE(j["finished_at"].is_null());
  }
  // The next start runs both, the interrupted one again (its second run).
  runner.release = true;
  auto s = Make(1);
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  auto resumed = WaitFor(*s, running, "succeeded");
  EXPECT_EQ(resumed["attempts"], 2);
  ASSERT_EQ(resumed["history"].size(), 2u);
  EXPECT_EQ(resumed["history"][1]["outcome"], "succeeded");
  EXPECT_EQ(WaitFor(*s, queued, "succeeded")["state"], "succeeded");
  EXPECT_EQ(runner.Runs(1), 2);
}

TEST_F(JobServiceTest, ACrashLeavesRunningRowsThatTheNextStartResumes) {
  // As if the process died: the row says running, in the middle of its first run.
  JobRow row;
  row.type = "test";
  row.state = "running";
  row.node = "node-a";
  row.params = R"({"n": 5})";
  row.progress = R"({"completed": 3, "total": 10})";
  row.attempts = 1;
  row.started_at = "2026-03-02T08:00:00Z";
  auto id = db_->InsertJob(row);
  ASSERT_TRUE(id);
  row.id = *id;
  ASSERT_TRUE(db_->UpdateJob(row));  // a claim writes started_at and attempts
  ScriptedRunner runner;
  runner.release = true;
  auto s = Make(1);
  s->Register("test", runner);
  auto n = s->Start();
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 1);
  auto done = WaitFor(*s, std::to_string(*id), "succeeded");
  EXPECT_TRUE(done["interrupted"]);
  ASSERT_EQ(done["history"].size(), 2u);
  EXPECT_EQ(done["history"][0]["outcome"], "interrupted");
  EXPECT_EQ(done["history"][0]["completed"], 3);
  EXPECT_EQ(done["history"][0]["started_at"], "2026-03-02T08:00:00Z");
  EXPECT_EQ(done["history"][1]["outcome"], "succeeded");
  EXPECT_EQ(runner.Runs(5), 1);
}

TEST_F(JobServiceTest, AJobThatDiesWithTheServerThreeRunsInARowWaitsForAPerson) {
  // Rows as a dead process leaves them: running, after earlier runs that ended the same way
  // (found running at a start: "crash") or with a clean stop (no "crash").
  auto dead_row = [&](int n, json history) {
    JobRow row;
    row.type = "test";
    row.node = "node-a";
    row.state = "running";
    row.params = json{{"n", n}}.dump();
    row.history = history.dump();
    row.attempts = static_cast<int>(history.size()) + 1;
    auto id = db_->InsertJob(row);
    EXPECT_TRUE(id);
    row.id = *id;
    EXPECT_TRUE(db_->UpdateJob(row));
    return std::to_string(*id);
  };
  const json crash{{"outcome", "interrupted"}, {"crash", true}};
  const json clean_stop{{"outcome", "interrupted"}};
  std::string third = dead_row(1, json::array({crash, crash}));
  std::string second = dead_row(2, json::array({clean_stop, crash}));
  ScriptedRunner runner;
  runner.release = true;
  auto s = Make(1);
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  auto given_up = Job(*s, third);
  EXPECT_EQ(given_up["state"], "failed");
  EXPECT_NE(given_up["error"].get<std::string>().find("last 3 runs"), std::string::npos) << given_up.dump();
  EXPECT_EQ(WaitFor(*s, second, "succeeded")["history"].size(), 4u);  // resumed: only 2 crashes in a row
  CatchUp(*s, runner, 90);
  EXPECT_EQ(runner.Runs(1), 0);
}

TEST_F(JobServiceTest, TransientFailuresWaitForTheirBackoffOnTheClockThenRunAgain) {
  ScriptedRunner runner;
  runner.release = true;
  {
    std::lock_guard lock(runner.mu);
    runner.scripts[1] = {Transient("connection refused"), Transient("timed out"), Transient("aborted")};
  }
  NodeJobPolicy policy;
  policy.attempts = 5;
  policy.first_delay_seconds = 10;
  policy.max_delay_seconds = 25;
  auto s = Make(1, policy);
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  const TimePoint t0 = clock_.Now();
  std::string id = (*s->Submit("test", {{"n", 1}}))["id"];
  auto waiting = WaitFor(*s, id, "waiting");
  EXPECT_EQ(waiting["next_attempt"], UtcIso(t0 + 10s));  // the first delay
  EXPECT_EQ(waiting["error"], "connection refused");
  EXPECT_TRUE(waiting["finished_at"].is_null());
  // One second short of it: nothing runs.
  clock_.Advance(9s);
  s->Poke();
  CatchUp(*s, runner, 90);
  EXPECT_EQ(runner.Runs(1), 1);
  EXPECT_EQ(Job(*s, id)["state"], "waiting");
  // Due: the second run fails too; the delay doubles.
  clock_.Advance(1s);
  s->Poke();
  waiting = WaitUntil(*s, id, [](const json& j) { return j["attempts"] == 2 && j["state"] == "waiting"; });
  EXPECT_EQ(waiting["next_attempt"], UtcIso(t0 + 10s + 20s));
  // Third failure: doubled again, capped at the maximum.
  clock_.Advance(20s);
  s->Poke();
  waiting = WaitUntil(*s, id, [](const json& j) { return j["attempts"] == 3 && j["state"] == "waiting"; });
  EXPECT_EQ(waiting["next_attempt"], UtcIso(t0 + 30s + 25s));
  clock_.Advance(25s);
  s->Poke();
  auto done = WaitFor(*s, id, "succeeded");
  EXPECT_EQ(done["attempts"], 4);
  ASSERT_EQ(done["history"].size(), 4u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(done["history"][i]["outcome"], "failed") << i;
    EXPECT_EQ(done["history"][i]["transient"], true) << i;
  }
  EXPECT_EQ(done["history"][1]["error"], "timed out");
  EXPECT_EQ(done["history"][3]["outcome"], "succeeded");
  EXPECT_FALSE(done.contains("next_attempt"));
}

TEST_F(JobServiceTest, JitterSpreadsADelayBetweenHalfAndAllOfItsStep) {
  ScriptedRunner runner;
  runner.release = true;
  {
    std::lock_guard lock(runner.mu);
    runner.scripts[1] = {Transient("refused")};
    runner.scripts[2] = {Transient("refused")};
  }
  NodeJobPolicy policy;
  policy.first_delay_seconds = 100;
  for (double r : {0.0, 0.5}) {
    JobServiceOptions o;
    o.workers = 1;
    o.clock = &clock_;
    o.policy = [policy](const std::string&) { return policy; };
    o.random = [r] { return r; };
    JobService s(*db_, o);
    s.Register("test", runner);
    ASSERT_TRUE(s.Start());
    const int n = r == 0.0 ? 1 : 2;
    std::string id = (*s.Submit("test", {{"n", n}}))["id"];
    auto waiting = WaitFor(s, id, "waiting");
    EXPECT_EQ(waiting["next_attempt"], UtcIso(clock_.Now() + (r == 0.0 ? 50s : 75s))) << r;
    s.Stop();
  }
}

TEST_F(JobServiceTest, RetryAfterIsAMinimumDelay) {
  ScriptedRunner runner;
  runner.release = true;
  {
    std::lock_guard lock(runner.mu);
    runner.scripts[1] = {Transient("HTTP 429", 300)};
  }
  NodeJobPolicy policy;
  policy.first_delay_seconds = 10;
  auto s = Make(1, policy);
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  std::string id = (*s->Submit("test", {{"n", 1}}))["id"];
  EXPECT_EQ(WaitFor(*s, id, "waiting")["next_attempt"], UtcIso(clock_.Now() + 300s));
}

TEST_F(JobServiceTest, APermanentFailureIsNotRetried) {
  ScriptedRunner runner;
  runner.release = true;
  {
    std::lock_guard lock(runner.mu);
    runner.scripts[1] = {JobOutcome{"failed", "0xA801: move destination unknown", {}, {}}};
  }
  NodeJobPolicy policy;
  policy.first_delay_seconds = 1;
  auto s = Make(1, policy);
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  std::string id = (*s->Submit("test", {{"n", 1}}))["id"];
  auto failed = WaitFor(*s, id, "failed");
  EXPECT_EQ(failed["error"], "0xA801: move destination unknown");
  EXPECT_FALSE(failed.contains("next_attempt"));
  clock_.Advance(1h);
  s->Poke();
  CatchUp(*s, runner, 90);
  EXPECT_EQ(runner.Runs(1), 1);
  EXPECT_EQ(Job(*s, id)["attempts"], 1);
  EXPECT_EQ(Job(*s, id)["history"][0]["transient"], false);
}

TEST_F(JobServiceTest, RetriesStopAfterTheNodesAttempts) {
  ScriptedRunner runner;
  runner.release = true;
  {
    std::lock_guard lock(runner.mu);
    runner.scripts[1] = {Transient("refused"), Transient("refused again"), Transient("never reached")};
  }
  NodeJobPolicy policy;
  policy.attempts = 2;
  policy.first_delay_seconds = 5;
  auto s = Make(1, policy);
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  std::string id = (*s->Submit("test", {{"n", 1}}))["id"];
  WaitFor(*s, id, "waiting");
  clock_.Advance(5s);
  s->Poke();
  auto failed = WaitFor(*s, id, "failed");
  EXPECT_EQ(failed["error"], "refused again");
  EXPECT_EQ(failed["attempts"], 2);
  EXPECT_FALSE(failed["finished_at"].is_null());
}

TEST_F(JobServiceTest, QueuedJobsRunByPriorityThenQueueOrderAndCanBeReordered) {
  ScriptedRunner runner;
  auto s = Make(1);
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  std::string blocker = (*s->Submit("test", {{"n", 1}}))["id"];
  WaitFor(*s, blocker, "running");
  std::string low = (*s->Submit("test", {{"n", 2}, {"priority", "low"}}))["id"];
  std::string normal = (*s->Submit("test", {{"n", 3}}))["id"];
  std::string normal2 = (*s->Submit("test", {{"n", 4}}))["id"];
  std::string high = (*s->Submit("test", {{"n", 5}, {"priority", "high"}}))["id"];
  std::string promoted = (*s->Submit("test", {{"n", 6}, {"priority", "low"}}))["id"];
  ASSERT_TRUE(s->Reorder(std::stoll(normal2), "", "first"));   // before the older normal
  auto up = s->Reorder(std::stoll(promoted), "high", "last");  // after the other high
  ASSERT_TRUE(up);
  EXPECT_EQ((*up)["priority"], "high");
  auto bad = s->Reorder(std::stoll(normal), "", "middle");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "position");
  auto busy = s->Reorder(std::stoll(blocker), "high", "");
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().code, Code::kConflict);
  runner.release = true;
  WaitFor(*s, low, "succeeded");
  EXPECT_EQ(runner.Started(), (std::vector<int>{1, 5, 6, 4, 3, 2}));
}

TEST_F(JobServiceTest, PausesQueuedAndRunningJobsAndResumesThem) {
  ScriptedRunner runner;
  auto s = Make(1);
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  std::string running = (*s->Submit("test", {{"n", 1}}))["id"];
  std::string queued = (*s->Submit("test", {{"n", 2}}))["id"];
  WaitFor(*s, running, "running");
  auto p = s->Pause(std::stoll(queued));
  ASSERT_TRUE(p);
  EXPECT_EQ((*p)["state"], "waiting");
  EXPECT_EQ((*p)["paused"], true);
  auto asked = s->Pause(std::stoll(running));
  ASSERT_TRUE(asked);
  EXPECT_EQ((*asked)["pause_requested"], true);
  auto paused = WaitUntil(*s, running, [](const json& j) { return j["paused"] == true; });
  EXPECT_EQ(paused["state"], "waiting");
  EXPECT_EQ(paused["history"].back()["outcome"], "paused");
  EXPECT_TRUE(paused["finished_at"].is_null());
  // Paused jobs do not run, however long we wait and whoever is free.
  runner.release = true;
  clock_.Advance(24h);
  CatchUp(*s, runner, 90);
  EXPECT_EQ(runner.Runs(1), 1);
  EXPECT_EQ(runner.Runs(2), 0);
  auto not_paused = s->Resume(std::stoll(std::string((*s->Submit("test", {{"n", 3}}))["id"])));
  EXPECT_FALSE(not_paused);
  ASSERT_TRUE(s->Resume(std::stoll(running)));
  ASSERT_TRUE(s->Resume(std::stoll(queued)));
  auto resumed = WaitFor(*s, running, "succeeded");
  EXPECT_EQ(resumed["attempts"], 2);
  EXPECT_EQ(resumed["paused"], false);
  WaitFor(*s, queued, "succeeded");
  EXPECT_EQ(runner.Runs(2), 1);
}

TEST_F(JobServiceTest, ConnectionsGivenBackDuringARunLetTheNextJobStart) {
  ScriptedRunner runner;
  NodeJobPolicy policy;
  policy.max_connections = 2;
  auto s = Make(3, policy);
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  {
    std::lock_guard lock(runner.mu);
    runner.wanted_extra = 1;
    runner.give_back = 5;  // more than it holds: only the extra one goes, never its own
  }
  std::string a = (*s->Submit("test", {{"n", 1}}))["id"];
  WaitUntil(*s, a, [](const json& j) { return j["progress"].value("completed", -1) == 1; });
  {
    std::lock_guard lock(runner.mu);
    EXPECT_EQ(runner.granted_extra, 1);
    runner.wanted_extra = 0;
    runner.give_back = 0;
  }
  // The extra connection is free again while the first job still runs: the second starts.
  std::string b = (*s->Submit("test", {{"n", 2}}))["id"];
  WaitFor(*s, b, "running");
  EXPECT_EQ(Job(*s, a)["state"], "running");
  // And the first job's own connection stayed held: a third waits. A later job of another node
  // starting shows the workers looked at the third first (the queue is read in order).
  std::string c = (*s->Submit("test", {{"n", 3}}))["id"];
  std::string other = (*s->Submit("test", {{"n", 4}, {"node", "node-b"}}))["id"];
  WaitFor(*s, other, "running");
  EXPECT_EQ(Job(*s, c)["state"], "queued");
  runner.release = true;
  WaitFor(*s, c, "succeeded");
}

TEST_F(JobServiceTest, NeverMoreJobsOrConnectionsAtANodeThanItAllows) {
  ScriptedRunner runner;
  NodeJobPolicy policy;
  policy.max_connections = 2;
  policy.max_parallel_retrieves = 1;
  JobServiceOptions o;
  o.workers = 4;
  o.clock = &clock_;
  o.policy = [policy](const std::string&) { return policy; };
  JobService s(*db_, o);
  s.Register("test", runner);
  s.Register("retrieve", runner);
  ASSERT_TRUE(s.Start());
  {
    std::lock_guard lock(runner.mu);
    runner.wanted_extra = 3;
  }
  // The first job takes its connection and asks for three more: one is left.
  std::string a = (*s.Submit("test", {{"n", 1}}))["id"];
  WaitFor(s, a, "running");
  WaitUntil(s, a, [](const json& j) { return j["progress"].value("completed", -1) == 1; });
  {
    std::lock_guard lock(runner.mu);
    EXPECT_EQ(runner.granted_extra, 1);
    runner.wanted_extra = 0;
  }
  // The node is full: the next job waits queued while another node's job runs.
  std::string b = (*s.Submit("test", {{"n", 2}}))["id"];
  std::string other = (*s.Submit("test", {{"n", 3}, {"node", "node-b"}}))["id"];
  WaitFor(s, other, "running");
  EXPECT_EQ(Job(s, b)["state"], "queued");
  runner.release = true;
  WaitFor(s, b, "succeeded");
  runner.release = false;
  // Retrieves: one at a time from the node, although it allows two connections.
  std::string r1 = (*s.Submit("retrieve", {{"n", 4}}))["id"];
  std::string r2 = (*s.Submit("retrieve", {{"n", 5}}))["id"];
  std::string t = (*s.Submit("test", {{"n", 6}}))["id"];
  WaitFor(s, r1, "running");
  WaitFor(s, t, "running");  // the second connection goes to the other kind
  EXPECT_EQ(Job(s, r2)["state"], "queued");
  runner.release = true;
  WaitFor(s, r2, "succeeded");
  std::lock_guard lock(runner.mu);
  EXPECT_LE(runner.max_running, 3);
}

TEST_F(JobServiceTest, ListFiltersByCreationTimeAndPruneDeletesOldFinishedJobs) {
  ScriptedRunner runner;
  runner.release = true;
  auto s = Make(1);
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  std::string done = (*s->Submit("test", {{"n", 1}}))["id"];
  WaitFor(*s, done, "succeeded");
  JobFilter later;
  later.since = UtcIso(std::chrono::system_clock::now() + 24h);
  EXPECT_TRUE(s->List(later)->empty());
  JobFilter earlier;
  earlier.until = UtcIso(std::chrono::system_clock::now() + 24h);
  EXPECT_EQ(s->List(earlier)->size(), 1u);
  // Finished jobs go after keep_days (finished_at is on the service's clock); others stay.
  runner.release = false;  // it never finishes: paused while queued or running
  std::string paused = (*s->Submit("test", {{"n", 2}}))["id"];
  ASSERT_TRUE(s->Pause(std::stoll(paused)));
  WaitUntil(*s, paused, [](const json& j) { return j["paused"] == true; });
  clock_.Advance(24h * 29);
  EXPECT_EQ(*s->Prune(30), 0);
  clock_.Advance(24h * 2);
  EXPECT_EQ(*s->Prune(30), 1);
  EXPECT_EQ(s->Get(std::stoll(done)).error().code, Code::kNotFound);
  EXPECT_TRUE(s->Get(std::stoll(paused)));
}

TEST_F(JobServiceTest, AJobQueuedOutsideItsNodesWindowWaitsThenStartsWhenItOpens) {
  // Wednesday 2 December 2026, 07:00 in Paris (06:00 UTC): the window opens at 07:00 UTC.
  clock_.Set(*ParseUtcIso("2026-12-02T06:00:00Z"));
  ScriptedRunner runner;
  runner.release = true;
  auto s = MakeWithOfficeHours();
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  std::string id = (*s->Submit("test", {{"n", 1}, {"node", "pacs"}}))["id"];
  auto waiting = WaitFor(*s, id, "waiting");
  EXPECT_EQ(waiting["waiting_until"], "2026-12-02T07:00:00Z");
  EXPECT_FALSE(waiting.contains("next_attempt"));
  EXPECT_EQ(waiting["attempts"], 0);
  clock_.Advance(59min);
  s->Poke();
  CatchUp(*s, runner, 90);  // another node's job ran: the queue was looked at
  EXPECT_EQ(runner.Runs(1), 0);
  clock_.Advance(1min);
  s->Poke();
  auto done = WaitFor(*s, id, "succeeded");
  EXPECT_EQ(done["attempts"], 1);
  EXPECT_EQ(done["history"].size(), 1u);
}

TEST_F(JobServiceTest, ATransferCrossingTheEndOfItsWindowStopsAndGoesOnAtTheNext) {
  // Wednesday 17:59 in Paris: one minute of the window left.
  clock_.Set(*ParseUtcIso("2026-12-02T16:59:00Z"));
  ScriptedRunner runner;
  auto s = MakeWithOfficeHours();
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  std::string id = (*s->Submit("test", {{"n", 1}, {"node", "pacs"}}))["id"];
  WaitUntil(*s, id, [](const json& j) { return j["progress"].value("completed", -1) == 1; });
  clock_.Advance(61s);  // 18:00:01 local: the runner is told to stop between instances
  auto waiting = WaitFor(*s, id, "waiting");
  EXPECT_EQ(waiting["waiting_until"], "2026-12-03T07:00:00Z");  // Thursday 08:00 local
  ASSERT_EQ(waiting["history"].size(), 1u);
  EXPECT_EQ(waiting["history"][0]["outcome"], "window_closed");
  EXPECT_EQ(waiting["history"][0]["completed"], 1);
  runner.release = true;
  clock_.Set(*ParseUtcIso("2026-12-03T07:00:00Z"));
  s->Poke();
  auto done = WaitFor(*s, id, "succeeded");
  EXPECT_EQ(done["attempts"], 2);
  EXPECT_EQ(runner.Runs(1), 2);
}

TEST_F(JobServiceTest, OnADaylightSavingDayTheWindowMovesInUtc) {
  // Saturday 28 March 2026, 21:00 in Paris (winter time); summer time starts that night, so
  // Sunday's 08:00 is 06:00 UTC, not 07:00.
  clock_.Set(*ParseUtcIso("2026-03-28T20:00:00Z"));
  ScriptedRunner runner;
  runner.release = true;
  auto s = MakeWithOfficeHours(json::array({{{"days", {"sat", "sun"}}, {"start", "08:00"}, {"end", "18:00"}}}));
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  std::string id = (*s->Submit("test", {{"n", 1}, {"node", "pacs"}}))["id"];
  EXPECT_EQ(WaitFor(*s, id, "waiting")["waiting_until"], "2026-03-29T06:00:00Z");
  clock_.Set(*ParseUtcIso("2026-03-29T06:00:00Z"));
  s->Poke();
  WaitFor(*s, id, "succeeded");
}

TEST_F(JobServiceTest, JobsOfABusyNodeDoNotHideAFreeNodesJobsBehindThem) {
  ScriptedRunner runner;
  NodeJobPolicy policy;
  policy.max_connections = 1;
  auto s = Make(2, policy);
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  std::string blocker = (*s->Submit("test", {{"n", 1}}))["id"];
  WaitFor(*s, blocker, "running");
  for (int n = 100; n < 170; ++n) ASSERT_TRUE(s->Submit("test", {{"n", n}}));  // more than a page
  std::string other = (*s->Submit("test", {{"n", 2}, {"node", "node-b"}}))["id"];
  WaitFor(*s, other, "running");
  runner.release = true;
  WaitFor(*s, other, "succeeded");
}

TEST_F(JobServiceTest, PauseReorderAndResumeDoNotUndoEachOther) {
  ScriptedRunner runner;
  auto s = Make(1);
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  std::string blocker = (*s->Submit("test", {{"n", 1}}))["id"];
  WaitFor(*s, blocker, "running");
  std::string id = (*s->Submit("test", {{"n", 2}}))["id"];
  ASSERT_TRUE(s->Pause(std::stoll(id)));
  auto moved = s->Reorder(std::stoll(id), "high", "first");
  ASSERT_TRUE(moved) << moved.error().message;
  auto j = Job(*s, id);
  EXPECT_EQ(j["paused"], true);  // the reorder kept the pause
  EXPECT_EQ(j["state"], "waiting");
  EXPECT_EQ(j["priority"], "high");
  ASSERT_TRUE(s->Resume(std::stoll(id)));
  j = Job(*s, id);
  EXPECT_EQ(j["paused"], false);
  EXPECT_EQ(j["priority"], "high");  // the resume kept the reorder
  auto canceled = s->Cancel(std::stoll(id));
  ASSERT_TRUE(canceled);
  EXPECT_EQ((*canceled)["state"], "canceled");
  EXPECT_FALSE(s->Resume(std::stoll(id)));
  runner.release = true;
  CatchUp(*s, runner, 90);
  EXPECT_EQ(runner.Runs(2), 0);
}

TEST_F(JobServiceTest, ListRefusesAnUnknownStateAndNamesTheStates) {
  auto s = Make(1);
  JobFilter bogus;
  bogus.state = "bogus";
  auto refused = s->List(bogus);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kInvalidArgument);
  EXPECT_EQ(refused.error().field, "state");
  for (const char* state : {"queued", "waiting", "running", "succeeded", "partial", "failed", "canceled"}) {
    EXPECT_NE(refused.error().message.find(state), std::string::npos) << state;
    JobFilter f;
    f.state = state;
    EXPECT_TRUE(s->List(f)) << state;
  }
}

TEST(ClockTest, ParsesUtcTimesAndDatesAndRefusesTheRest) {
  using std::chrono::sys_days;
  const TimePoint day = sys_days{std::chrono::year{2026} / 12 / 1};
  EXPECT_EQ(ParseUtcIso("2026-12-01"), day);
  EXPECT_EQ(ParseUtcIso("2026-12-01T10:30:05Z"), day + 10h + 30min + 5s);
  EXPECT_EQ(ParseUtcIso("2026-12-01T10:30"), day + 10h + 30min);
  for (const char* bad : {"", "yesterday", "2026-02-30", "2026-13-01", "2026-12-01T25:00:00Z", "2026-12-01 junk"}) {
    EXPECT_FALSE(ParseUtcIso(bad)) << bad;
  }
  EXPECT_EQ(UtcIso(day + 3661s), "2026-12-01T01:01:01Z");
}

}  // namespace
}  // namespace pb

namespace pb {
namespace {

// A job made of others: its first run submits two "test" jobs with itself as parent and waits
// for them; a later run ends it. Or it waits for a confirmation no one gives.
class ParentRunner : public JobRunner {
 public:
  explicit ParentRunner(JobService*& service) : service_(service) {}
  Result<std::pair<json, std::string>> Prepare(const json& rq) override {
    return std::pair{json{{"wait", rq.value("wait", "children")}}, std::string("node-p")};
  }
  JobOutcome Run(JobContext& job) override {
    ++runs;
    JobOutcome out{"waiting", "", nullptr, {}};
    out.wait_for = job.params()["wait"];
    if (out.wait_for == "confirmation") return out;
    if (runs == 1) {
      for (int n : {101, 102}) children.push_back((*service_->Submit("test", {{"n", n}}, job.id()))["id"]);
      return out;
    }
    return {"succeeded", "", nullptr, {}};
  }
  std::atomic<int> runs{0};
  std::vector<std::string> children;  // written by the first run only

 private:
  JobService*& service_;
};

TEST_F(JobServiceTest, AJobWaitsForTheJobsItIsMadeOfThenRunsAgainOnce) {
  ScriptedRunner runner;
  auto s = Make(2);
  JobService* service = s.get();
  ParentRunner parent(service);
  s->Register("test", runner);
  s->Register("parent", parent);
  ASSERT_TRUE(s->Start());
  std::string id = (*s->Submit("parent", json::object()))["id"];
  auto waiting = WaitUntil(*s, id, [](const json& j) { return j.value("waiting_for", "") == "children"; });
  EXPECT_EQ(waiting["state"], "waiting");
  EXPECT_EQ(waiting["history"][0]["outcome"], "awaiting_children");
  ASSERT_EQ(parent.children.size(), 2u);
  for (const auto& c : parent.children) EXPECT_EQ(Job(*s, c)["parent"], id);
  // Both children run; the parent runs again once, after both ended.
  WaitUntil(*s, parent.children[0], [](const json& j) { return j["state"] == "running"; });
  WaitUntil(*s, parent.children[1], [](const json& j) { return j["state"] == "running"; });
  runner.release = true;
  WaitFor(*s, parent.children[0], "succeeded");
  WaitFor(*s, parent.children[1], "succeeded");
  auto done = WaitFor(*s, id, "succeeded");
  EXPECT_EQ(parent.runs, 2);
  ASSERT_EQ(done["history"].size(), 2u);
  EXPECT_EQ(done["history"][1]["outcome"], "succeeded");
}

TEST_F(JobServiceTest, CancelingAJobCancelsTheJobsItIsMadeOf) {
  ScriptedRunner runner;
  auto s = Make(1);
  JobService* service = s.get();
  ParentRunner parent(service);
  s->Register("test", runner);
  s->Register("parent", parent);
  ASSERT_TRUE(s->Start());
  std::string id = (*s->Submit("parent", json::object()))["id"];
  WaitUntil(*s, id, [](const json& j) { return j.value("waiting_for", "") == "children"; });
  ASSERT_EQ(parent.children.size(), 2u);
  // One worker: the first child runs (blocked), the second is queued.
  WaitUntil(*s, parent.children[0], [](const json& j) { return j["state"] == "running"; });
  EXPECT_EQ(Job(*s, parent.children[1])["state"], "queued");
  auto canceled = s->Cancel(std::stoll(id));
  ASSERT_TRUE(canceled) << canceled.error().message;
  EXPECT_EQ(canceled->at("state"), "canceled");
  EXPECT_EQ(canceled->at("error"), "canceled while its jobs ran");
  EXPECT_EQ(WaitFor(*s, parent.children[0], "canceled")["state"], "canceled");
  EXPECT_EQ(Job(*s, parent.children[1])["state"], "canceled");
  CatchUp(*s, runner, 900);
  EXPECT_EQ(Job(*s, id)["state"], "canceled");
  EXPECT_EQ(parent.runs, 1);
}

TEST_F(JobServiceTest, AJobWaitingForAConfirmationIsNotStartedAgainByItself) {
  ScriptedRunner runner;
  auto s = Make(1);
  JobService* service = s.get();
  ParentRunner parent(service);
  s->Register("test", runner);
  s->Register("parent", parent);
  ASSERT_TRUE(s->Start());
  std::string id = (*s->Submit("parent", {{"wait", "confirmation"}}))["id"];
  auto waiting = WaitUntil(*s, id, [](const json& j) { return j.value("waiting_for", "") == "confirmation"; });
  EXPECT_EQ(waiting["state"], "waiting");
  EXPECT_FALSE(waiting.contains("next_attempt"));
  clock_.Advance(std::chrono::hours(48));
  s->Poke();
  CatchUp(*s, runner, 901);
  EXPECT_EQ(Job(*s, id)["state"], "waiting");
  EXPECT_EQ(parent.runs, 1);
}

}  // namespace
}  // namespace pb

namespace pb {
namespace {

TEST_F(JobServiceTest, AUtilizationShareStopsJobsForTheRestOfTheMinute) {
  ScriptedRunner runner;
  NodeJobPolicy policy;
  policy.utilization_percent = 50;  // 30 s of each minute; the clock starts at 09:00:00
  auto s = Make(1, policy);
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  std::string id = (*s->Submit("test", {{"n", 1}}))["id"];
  WaitUntil(*s, id, [](const json& j) { return j["state"] == "running" && j["progress"].value("completed", 0) == 1; });
  clock_.Advance(std::chrono::seconds(31));  // past the share: the run stops between instances
  auto paused = WaitUntil(*s, id, [](const json& j) { return j["state"] == "waiting"; });
  EXPECT_EQ(paused["waiting_for"], "the node's utilization share");
  EXPECT_EQ(paused["waiting_until"], "2026-03-02T09:01:00Z");
  ASSERT_EQ(paused["history"].size(), 1u);
  EXPECT_EQ(paused["history"][0]["outcome"], "utilization_pause");
  // Another job of the node does not start in this minute either.
  std::string other = (*s->Submit("test", {{"n", 2}}))["id"];
  auto waiting = WaitUntil(*s, other, [](const json& j) { return j["state"] == "waiting"; });
  EXPECT_EQ(waiting["waiting_until"], "2026-03-02T09:01:00Z");
  EXPECT_EQ(runner.Runs(2), 0);
  runner.release = true;
  clock_.Advance(std::chrono::seconds(29));  // 09:01:00
  s->Poke();
  auto done = WaitFor(*s, id, "succeeded");
  EXPECT_EQ(done["attempts"], 2);
  WaitFor(*s, other, "succeeded");
}

}  // namespace
}  // namespace pb

namespace pb {
namespace {

// Several instances keep one utilization share per node: what one instance's job used of a
// minute is not given again to another instance's job in that minute.
TEST_F(JobServiceTest, AUtilizationShareHoldsForSeveralInstancesTogether) {
  ScriptedRunner first, second;
  std::string used;
  {
    auto a = SharedInstance(*db_, clock_, "a", 4, 1, 50);  // 30 s of each minute; from 09:00:00
    a->Register("test", first);
    ASSERT_TRUE(a->Start());
    used = (*a->Submit("test", {{"n", 1}}))["id"];
    WaitUntil(*a, used,
              [](const json& j) { return j["state"] == "running" && j["progress"].value("completed", 0) == 1; });
    clock_.Advance(std::chrono::seconds(20));
    first.release = true;
    WaitFor(*a, used, "succeeded");
    a->Stop();
  }
  // 09:00:20 on another instance: 10 s of this minute's share are left, not 30.
  auto b = SharedInstance(*db_, clock_, "b", 4, 1, 50);
  b->Register("test", second);
  ASSERT_TRUE(b->Start());
  std::string next = (*b->Submit("test", {{"n", 2}}))["id"];
  WaitUntil(*b, next,
            [](const json& j) { return j["state"] == "running" && j["progress"].value("completed", 0) == 1; });
  clock_.Advance(std::chrono::seconds(11));  // 09:00:31: past the 10 s left
  auto paused = WaitUntil(*b, next, [](const json& j) { return j["state"] == "waiting"; });
  EXPECT_EQ(paused["waiting_for"], "the node's utilization share");
  EXPECT_EQ(paused["waiting_until"], "2026-03-02T09:01:00Z");
  EXPECT_EQ(paused["history"][0]["outcome"], "utilization_pause");
  second.release = true;
  clock_.Advance(std::chrono::seconds(29));  // 09:01:00
  b->Poke();
  EXPECT_EQ(WaitFor(*b, next, "succeeded")["attempts"], 2);
}

// Jobs of two instances running at once share one stretch: the first to end leaves it open for
// the other's, and the last one's end counts the whole stretch against the minute.
TEST_F(JobServiceTest, InstancesRunningAtOnceShareOneUtilizationStretch) {
  ScriptedRunner ra, rb;
  auto a = SharedInstance(*db_, clock_, "a", 4, 1, 50);  // 30 s of each minute; from 09:00:00
  a->Register("test", ra);
  ASSERT_TRUE(a->Start());
  auto running = [](const json& j) { return j["state"] == "running" && j["progress"].value("completed", 0) == 1; };
  const std::string first = (*a->Submit("test", {{"n", 1}}))["id"];
  WaitUntil(*a, first, running);
  clock_.Advance(std::chrono::seconds(10));
  auto b = SharedInstance(*db_, clock_, "b", 4, 1, 50);  // a's one worker is busy: b runs the next
  b->Register("test", rb);
  ASSERT_TRUE(b->Start());
  const std::string second = (*b->Submit("test", {{"n", 2}}))["id"];
  WaitUntil(*b, second, running);
  clock_.Advance(std::chrono::seconds(10));  // 09:00:20: a's job ends, b's still holds the stretch
  ra.release = true;
  WaitFor(*a, first, "succeeded");
  clock_.Advance(std::chrono::seconds(5));  // 09:00:25: the last one ends: 25 s used
  rb.release = true;
  WaitFor(*b, second, "succeeded");
  ra.release = false;
  rb.release = false;
  clock_.Advance(std::chrono::seconds(1));  // 09:00:26: 4 s are left
  const std::string third = (*a->Submit("test", {{"n", 3}}))["id"];
  WaitUntil(*a, third, running);
  clock_.Advance(std::chrono::seconds(5));  // 09:00:31
  auto paused = WaitUntil(*a, third, [](const json& j) { return j["state"] == "waiting"; });
  EXPECT_EQ(paused["waiting_until"], "2026-03-02T09:01:00Z");
  EXPECT_EQ(paused["history"][0]["outcome"], "utilization_pause");
  ra.release = true;
  rb.release = true;
  clock_.Advance(std::chrono::seconds(29));  // 09:01:00
  a->Poke();
  b->Poke();
  WaitFor(*a, third, "succeeded");
}

TEST_F(JobServiceTest, AJobThatNeverGetsAnythingDoneInItsShareEndsSayingSo) {
  ScriptedRunner runner;  // never released: each run only gets as far as its first instance
  NodeJobPolicy policy;
  policy.utilization_percent = 10;  // 6 s of each minute
  auto s = Make(1, policy);
  s->Register("test", runner);
  ASSERT_TRUE(s->Start());
  std::string id = (*s->Submit("test", {{"n", 1}}))["id"];
  json j;
  for (int minute = 1; minute <= 5; ++minute) {
    WaitUntil(*s, id, [](const json& x) { return x["state"] == "running"; });
    clock_.Advance(std::chrono::seconds(7));  // past the share
    j = WaitUntil(*s, id, [](const json& x) { return x["state"] != "running"; });
    if (j["state"] != "waiting") break;
    EXPECT_EQ(j["waiting_for"], "the node's utilization share") << minute;
    clock_.Advance(std::chrono::seconds(53));  // the next minute
    s->Poke();
  }
  EXPECT_EQ(j["state"], "failed");
  EXPECT_NE(j["error"].get<std::string>().find("utilization_percent"), std::string::npos) << j.dump();
  EXPECT_EQ(runner.Runs(1), 5);
}

}  // namespace
}  // namespace pb
