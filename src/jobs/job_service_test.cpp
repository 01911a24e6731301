#include "jobs/job_service.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

namespace pb {
namespace {

using namespace std::chrono_literals;

// A runner whose jobs block until released, so tests see them queued and running.
class GatedRunner : public JobRunner {
 public:
  Result<std::pair<nlohmann::json, std::string>> Prepare(const nlohmann::json& rq) override {
    if (!rq.contains("n")) return Fail(Code::kInvalidArgument, "n is required", "n");
    return std::pair{nlohmann::json{{"n", rq["n"]}}, std::string("node-a")};
  }
  JobOutcome Run(JobContext& job) override {
    job.Progress({{"completed", 1}});
    while (!release && !job.StopRequested()) std::this_thread::sleep_for(5ms);
    if (job.StopRequested()) {
      return {job.ServerStopping() ? "partial" : "canceled", "stopped", {{"completed", 1}}, {}};
    }
    return {"succeeded", "", {{"completed", 2}}, {{"missing", nlohmann::json::array()}}};
  }
  std::atomic<bool> release{false};
};

class JobServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pb-jobs-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto db = Database::Open(dir_ / "index.db", false);
    ASSERT_TRUE(db) << db.error().message;
    db_ = std::move(*db);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  nlohmann::json WaitFor(JobService& s, const std::string& id, const std::string& state) {
    nlohmann::json j;
    for (int i = 0; i < 400; ++i) {
      j = *s.Get(std::stoll(id));
      if (j["state"] == state) break;
      std::this_thread::sleep_for(5ms);
    }
    return j;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Database> db_;
};

TEST_F(JobServiceTest, RunsAJobToItsEndAndKeepsItsResult) {
  GatedRunner runner;
  JobService s(*db_, 1);
  s.Register("test", runner);
  ASSERT_TRUE(s.Start());
  auto job = s.Submit("test", {{"n", 1}});
  ASSERT_TRUE(job) << job.error().message;
  std::string id = (*job)["id"];
  nlohmann::json running;
  for (int i = 0; i < 400 && running["progress"]["completed"] != 1; ++i) {
    running = *s.Get(std::stoll(id));
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(running["state"], "running");
  EXPECT_EQ(running["progress"]["completed"], 1);
  runner.release = true;
  auto done = WaitFor(s, id, "succeeded");
  EXPECT_EQ(done["state"], "succeeded");
  EXPECT_EQ(done["progress"]["completed"], 2);
  EXPECT_EQ(done["node"], "node-a");
  EXPECT_EQ(done["n"], 1);
  EXPECT_TRUE(done["missing"].is_array());
  EXPECT_TRUE(done["error"].is_null());
  EXPECT_FALSE(done["finished_at"].is_null());
}

TEST_F(JobServiceTest, RefusesBadParametersAndUnknownTypes) {
  GatedRunner runner;
  JobService s(*db_, 1);
  s.Register("test", runner);
  ASSERT_TRUE(s.Start());
  auto bad = s.Submit("test", nlohmann::json::object());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "n");
  EXPECT_FALSE(s.Submit("nope", {{"n", 1}}));
  EXPECT_EQ(s.Get(999).error().code, Code::kNotFound);
}

TEST_F(JobServiceTest, CancelsQueuedAndRunningJobs) {
  GatedRunner runner;
  JobService s(*db_, 1);  // one worker: the second job waits in the queue
  s.Register("test", runner);
  ASSERT_TRUE(s.Start());
  std::string first = (*s.Submit("test", {{"n", 1}}))["id"];
  std::string second = (*s.Submit("test", {{"n", 2}}))["id"];
  WaitFor(s, first, "running");
  EXPECT_EQ((*s.Get(std::stoll(second)))["state"], "queued");
  EXPECT_EQ((*s.Cancel(std::stoll(second)))["state"], "canceled");
  ASSERT_TRUE(s.Cancel(std::stoll(first)));
  EXPECT_EQ(WaitFor(s, first, "canceled")["state"], "canceled");
  auto again = s.Cancel(std::stoll(first));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Code::kConflict);
  runner.release = true;
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ((*s.Get(std::stoll(second)))["state"], "canceled");  // never ran
}

TEST_F(JobServiceTest, RetryMakesANewJobWithTheSameParameters) {
  GatedRunner runner;
  runner.release = true;
  JobService s(*db_, 1);
  s.Register("test", runner);
  ASSERT_TRUE(s.Start());
  std::string id = (*s.Submit("test", {{"n", 7}}))["id"];
  WaitFor(s, id, "succeeded");
  auto retry = s.Retry(std::stoll(id));
  ASSERT_TRUE(retry) << retry.error().message;
  EXPECT_NE((*retry)["id"], id);
  EXPECT_EQ((*retry)["retry_of"], id);
  EXPECT_EQ((*retry)["n"], 7);
  EXPECT_EQ(WaitFor(s, (*retry)["id"], "succeeded")["state"], "succeeded");
}

TEST_F(JobServiceTest, AStopMarksRunningJobsInterruptedAndKeepsQueuedOnes) {
  GatedRunner runner;
  std::string running, queued;
  {
    JobService s(*db_, 1);
    s.Register("test", runner);
    ASSERT_TRUE(s.Start());
    running = (*s.Submit("test", {{"n", 1}}))["id"];
    queued = (*s.Submit("test", {{"n", 2}}))["id"];
    WaitFor(s, running, "running");
    s.Stop();
    auto j = *s.Get(std::stoll(running));
    EXPECT_EQ(j["state"], "partial");
    EXPECT_TRUE(j["interrupted"]);
  }
  // The next start runs what was still queued.
  runner.release = true;
  JobService s(*db_, 1);
  s.Register("test", runner);
  ASSERT_TRUE(s.Start());
  EXPECT_EQ(WaitFor(s, queued, "succeeded")["state"], "succeeded");
}

TEST_F(JobServiceTest, ACrashLeavesRunningRowsThatTheNextStartMarksInterrupted) {
  // As if the process died: the row says running, with some progress.
  JobRow row;
  row.type = "test";
  row.state = "running";
  row.progress = R"({"arrived": 3})";
  auto arrived = db_->InsertJob(row);
  row.progress = R"({"arrived": 0})";
  auto nothing = db_->InsertJob(row);
  ASSERT_TRUE(arrived && nothing);
  GatedRunner runner;
  JobService s(*db_, 1);
  s.Register("test", runner);
  auto n = s.Start();
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 2);
  auto a = *s.Get(*arrived);
  EXPECT_EQ(a["state"], "partial");
  EXPECT_TRUE(a["interrupted"]);
  EXPECT_NE(a["error"].get<std::string>().find("interrupted"), std::string::npos);
  EXPECT_EQ((*s.Get(*nothing))["state"], "failed");
}

TEST_F(JobServiceTest, ListRefusesAnUnknownStateAndNamesTheStates) {
  JobService s(*db_, 1);
  JobFilter bogus;
  bogus.state = "bogus";
  auto refused = s.List(bogus);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kInvalidArgument);
  EXPECT_EQ(refused.error().field, "state");
  for (const char* state : {"queued", "waiting", "running", "succeeded", "partial", "failed", "canceled"}) {
    EXPECT_NE(refused.error().message.find(state), std::string::npos) << state;
    JobFilter f;
    f.state = state;
    EXPECT_TRUE(s.List(f)) << state;
  }
}

}  // namespace
}  // namespace pb
