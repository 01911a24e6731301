#include "archive/database.h"
#include "archive/testing.h"

#include <gtest/gtest.h>
#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>
#include <unistd.h>
#include <algorithm>
#include <cstdlib>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>
#include <vector>

#include "archive/blob_store.h"
#include "archive/database_impl.h"
#include "archive/index_query.h"

namespace pb {
namespace {

class DatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pb-db-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto db = OpenTestDatabase(dir_);
    ASSERT_TRUE(db) << db.error().message;
    db_ = std::move(*db);
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  // A queued retrieve job, stored.
  JobRow QueuedJob(const std::string& node = "") {
    JobRow job;
    job.type = "retrieve";
    job.node = node;
    job.state = "queued";
    auto id = db_->InsertJob(job);
    EXPECT_TRUE(id);
    job.id = id ? *id : 0;
    return job;
  }
  InstanceRecord Rec(std::string sop, std::string series = "1.2.3.2", std::string study = "1.2.3") {
    InstanceRecord r;
    r.patient_id = "P1";
    r.patient_name = "Müller^Hans";
    r.study_uid = study;
    r.study_date = "20240115";
    r.series_uid = series;
    r.modality = "CT";
    r.sop_uid = sop;
    r.file_path = BlobStore::RelativePathFor(study, series, sop);
    r.file_size = 100;
    return r;
  }
  std::filesystem::path dir_;
  std::unique_ptr<Database> db_;
};

TEST_F(DatabaseTest, CountsConnectionUseAndWaits) {
  const Database::PoolStatistics start = db_->Pools();
  EXPECT_EQ(start.read.size, 4);
  EXPECT_EQ(start.write.size, 1);
  EXPECT_EQ(start.read.in_use, 0);
  EXPECT_EQ(start.write.in_use, 0);

  ASSERT_TRUE(db_->FindStudies({}));  // one read
  Database::PoolStatistics after_read = db_->Pools();
  EXPECT_EQ(after_read.read.acquisitions, start.read.acquisitions + 1);
  EXPECT_EQ(after_read.read.in_use, 0);

  // A batch holds the writer: it counts as in use, and a job write meanwhile waits for it.
  auto b = db_->BeginBatch();
  ASSERT_TRUE(b);
  EXPECT_EQ(db_->Pools().write.in_use, 1);
  std::thread other([&] { ASSERT_TRUE(db_->SetSetting("pool-test", "1")); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (db_->Pools().write.waiting == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(db_->Pools().write.waiting, 1);
  // It waits at least as long as the batch is held from now.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE((*b)->Commit());
  b->reset();
  other.join();
  const Database::PoolStatistics end = db_->Pools();
  EXPECT_EQ(end.write.in_use, 0);
  EXPECT_EQ(end.write.acquisitions, start.write.acquisitions + 2);
  EXPECT_EQ(end.write.waiting, 0);
  EXPECT_GE(end.write.wait_seconds - start.write.wait_seconds, 0.1);
}

TEST_F(DatabaseTest, IndexesHierarchyWithCounts) {
  auto b = db_->BeginBatch();
  ASSERT_TRUE(b);
  ASSERT_TRUE((*b)->Put(Rec("1.2.3.2.1")));
  ASSERT_TRUE((*b)->Put(Rec("1.2.3.2.2")));
  ASSERT_TRUE((*b)->Put(Rec("1.2.3.3.1", "1.2.3.3")));
  ASSERT_TRUE((*b)->Commit());
  b->reset();
  auto studies = db_->FindStudies({});
  ASSERT_TRUE(studies);
  ASSERT_EQ(studies->size(), 1u);
  EXPECT_EQ((*studies)[0].series_count, 2);
  EXPECT_EQ((*studies)[0].instance_count, 3);
  EXPECT_EQ((*studies)[0].patient_name, "Müller^Hans");
  auto series = db_->ListSeries("1.2.3");
  ASSERT_TRUE(series);
  EXPECT_EQ(series->size(), 2u);
  auto inst = db_->ListInstances("1.2.3.2");
  ASSERT_TRUE(inst);
  EXPECT_EQ(inst->size(), 2u);
}

TEST_F(DatabaseTest, ValuesThatAreNotUtf8AreIndexedWithReplacementCharacters) {
  // A header whose character set was wrong: Latin-1 bytes (0xFC is "ü") left undecoded.
  // PostgreSQL would refuse the text, and with it the whole batch.
  auto latin1 = Rec("1.2.3.2.1");
  latin1.patient_name = "M\xfcller^Hans";
  latin1.source_ae = "CT\xff";
  auto b = db_->BeginBatch();
  ASSERT_TRUE(b);
  auto put = (*b)->Put(latin1);
  ASSERT_TRUE(put) << put.error().message;
  ASSERT_TRUE((*b)->Put(Rec("1.2.3.3.1", "1.2.3.3")));
  auto committed = (*b)->Commit();
  ASSERT_TRUE(committed) << committed.error().message;
  b->reset();
  auto got = db_->GetInstance("1.2.3.2.1");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->source_ae, "CT\xef\xbf\xbd");  // U+FFFD in UTF-8
  IndexQuery q;
  q.level = IndexLevel::kPatient;
  q.returns = {"PatientName"};
  auto patients = db_->QueryIndex(q);
  ASSERT_TRUE(patients) << patients.error().message;
  std::vector<std::string> names;
  for (const auto& p : *patients) names.push_back(p.at("PatientName"));
  EXPECT_NE(std::find(names.begin(), names.end(), "M\xef\xbf\xbdller^Hans"), names.end());
  EXPECT_TRUE(db_->GetInstance("1.2.3.3.1")->has_value());
}

TEST_F(DatabaseTest, InstancesAreInTheOrderOfTheirNumbersWhateverTheText) {
  // Instance Number is text in the index: leading blanks, a sign, and values with no digits
  // first (as 0), on both engines.
  const std::vector<std::pair<std::string, std::string>> numbers{{"1.9.1", "10"}, {"1.9.2", "9"},  {"1.9.3", ""},
                                                                 {"1.9.4", "x3"}, {"1.9.5", " 2"}, {"1.9.6", "-1"}};
  auto b = db_->BeginBatch();
  for (const auto& [uid, number] : numbers) {
    auto r = Rec(uid);
    r.instance_number = number;
    ASSERT_TRUE((*b)->Put(r));
  }
  ASSERT_TRUE((*b)->Commit());
  b->reset();
  auto inst = db_->ListInstances("1.2.3.2");
  ASSERT_TRUE(inst) << inst.error().message;
  std::vector<std::string> order;
  for (const auto& i : *inst) order.push_back(i.sop_uid);
  EXPECT_EQ(order, (std::vector<std::string>{"1.9.6", "1.9.3", "1.9.4", "1.9.5", "1.9.2", "1.9.1"}));
}

TEST_F(DatabaseTest, ALostPostgresConnectionIsOpenedAgain) {
  if (std::string(TestDatabaseEngine()) != "postgresql") GTEST_SKIP() << "PostgreSQL only (unit-pg.archive)";
  auto b = db_->BeginBatch();
  ASSERT_TRUE(b);
  ASSERT_TRUE((*b)->Put(Rec("1.2.3.2.1")));
  ASSERT_TRUE((*b)->Commit());
  b->reset();
  ASSERT_TRUE(db_->GetInstance("1.2.3.2.1"));  // a read connection in use too
  // What a server restart or a network cut does to every connection of ours.
  {
    soci::session admin(soci::postgresql, std::getenv("PACSBRIDGE_TEST_POSTGRES"));
    std::string name;  // this test's: the newest this process made
    const std::string mine = "pbtest_" + std::to_string(::getpid()) + "\\_%";
    admin << "SELECT datname FROM pg_database WHERE datname LIKE :p ORDER BY oid DESC LIMIT 1", soci::use(mine),
        soci::into(name);
    int ended = 0;
    admin << "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = :d", soci::use(name),
        soci::into(ended);
    ASSERT_GE(ended, 2);
  }
  // Each connection is found gone before its next use (SOCI pings it) and opened again: the
  // writer and the reads go on without an error; the indexed instance is still there.
  auto again = db_->BeginBatch();
  ASSERT_TRUE(again) << again.error().message;
  ASSERT_TRUE((*again)->Put(Rec("1.2.3.2.2")));
  auto committed = (*again)->Commit();
  ASSERT_TRUE(committed) << committed.error().message;
  again->reset();
  for (const char* uid : {"1.2.3.2.1", "1.2.3.2.2"}) {
    auto read = db_->GetInstance(uid);
    ASSERT_TRUE(read) << read.error().message;
    EXPECT_TRUE(read->has_value()) << uid;
  }
  auto nodes = db_->LoadNodes();  // another read connection of the pool
  EXPECT_TRUE(nodes) << nodes.error().message;
  EXPECT_TRUE(db_->SaveNode("n", "{}"));  // a write outside a batch
}

TEST_F(DatabaseTest, RollsBackWithoutCommit) {
  {
    auto b = db_->BeginBatch();
    ASSERT_TRUE((*b)->Put(Rec("1.2.3.2.1")));
  }
  auto got = db_->GetInstance("1.2.3.2.1");
  ASSERT_TRUE(got);
  EXPECT_FALSE(got->has_value());
}

TEST_F(DatabaseTest, ReputIsIdempotent) {
  for (int i = 0; i < 2; ++i) {
    auto b = db_->BeginBatch();
    ASSERT_TRUE((*b)->Put(Rec("1.2.3.2.1")));
    ASSERT_TRUE((*b)->Commit());
  }
  auto studies = db_->FindStudies({});
  EXPECT_EQ((*studies)[0].instance_count, 1);
}

TEST_F(DatabaseTest, MetadataIsKeptOnlyForTheFileItWasMadeFrom) {
  auto put = [&] {
    auto b = db_->BeginBatch();
    ASSERT_TRUE((*b)->Put(Rec("1.2.3.2.1")));
    ASSERT_TRUE((*b)->Commit());
  };
  put();
  auto todo = db_->InstancesWithoutMetadata(10);
  ASSERT_TRUE(todo);
  ASSERT_EQ(todo->size(), 1u);
  MetadataRow made = (*todo)[0];
  // The instance is written again (a replacement, within the same second) before its metadata
  // made from the earlier file is stored: that metadata is not kept.
  put();
  made.json = "{\"old\":1}";
  ASSERT_TRUE(db_->PutMetadata({made}));
  IndexQuery q;
  q.level = IndexLevel::kImage;
  auto rows = db_->QueryMetadata(q);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].json, "");
  // Made again from the row as it is now: kept, and read back.
  made = (*db_->InstancesWithoutMetadata(10))[0];
  made.json = "{\"new\":1}";
  ASSERT_TRUE(db_->PutMetadata({made}));
  EXPECT_EQ((*db_->QueryMetadata(q))[0].json, "{\"new\":1}");
  EXPECT_TRUE(db_->InstancesWithoutMetadata(10)->empty());
  // And the next write of the instance drops it.
  put();
  EXPECT_EQ((*db_->QueryMetadata(q))[0].json, "");
}

TEST_F(DatabaseTest, FiltersWithWildcardsAndDateRanges) {
  auto b = db_->BeginBatch();
  ASSERT_TRUE((*b)->Put(Rec("1.1.1", "1.1", "1")));
  auto other = Rec("2.1.1", "2.1", "2");
  other.patient_name = "DOE^JOHN";
  other.study_date = "20230301";
  ASSERT_TRUE((*b)->Put(other));
  ASSERT_TRUE((*b)->Commit());
  b->reset();
  StudyFilter f;
  f.patient_name = "doe*";
  EXPECT_EQ(db_->FindStudies(f)->size(), 1u);
  f = {};
  f.study_date = "20240101-";
  ASSERT_EQ(db_->FindStudies(f)->size(), 1u);
  EXPECT_EQ((*db_->FindStudies(f))[0].study_uid, "1");
  f.study_date = "-20231231";
  EXPECT_EQ((*db_->FindStudies(f))[0].study_uid, "2");
  f = {};
  f.patient_name = "100%";
  EXPECT_EQ(db_->FindStudies(f)->size(), 0u);
  // A list of UIDs (PS3.4 C.2.2.2.2): any of them; empty items and unknown UIDs match nothing.
  f = {};
  f.study_uid = "2\\9.9\\\\1";
  EXPECT_EQ(db_->FindStudies(f)->size(), 2u);
  f.study_uid = "9.9\\2";
  ASSERT_EQ(db_->FindStudies(f)->size(), 1u);
  EXPECT_EQ((*db_->FindStudies(f))[0].study_uid, "2");
}

// An account limited to projects: studies with a visible series, counted over those series;
// series, instances and single instances of other projects are not there.
TEST_F(DatabaseTest, ArchiveReadsLimitedToProjects) {
  auto labelled = [&](std::string sop, std::string series, std::string study, std::string project,
                      std::string modality) {
    InstanceRecord r = Rec(std::move(sop), std::move(series), std::move(study));
    r.project = std::move(project);
    r.modality = std::move(modality);
    return r;
  };
  auto b = db_->BeginBatch();
  ASSERT_TRUE((*b)->Put(labelled("1.1.1", "1.1", "1", "A", "CT")));
  ASSERT_TRUE((*b)->Put(labelled("1.1.2", "1.1", "1", "A", "CT")));
  ASSERT_TRUE((*b)->Put(labelled("1.2.1", "1.2", "1", "B", "MR")));  // study 1: a series in each
  ASSERT_TRUE((*b)->Put(labelled("2.1.1", "2.1", "2", "B", "CT")));
  ASSERT_TRUE((*b)->Commit());
  b->reset();
  StudyFilter f;
  f.projects = {"A"};
  auto studies = db_->FindStudies(f);
  ASSERT_TRUE(studies) << studies.error().message;
  ASSERT_EQ(studies->size(), 1u);
  EXPECT_EQ((*studies)[0].study_uid, "1");
  EXPECT_EQ((*studies)[0].series_count, 1);
  EXPECT_EQ((*studies)[0].instance_count, 2);
  EXPECT_EQ((*studies)[0].modalities, "CT");
  f.modality = "MR";  // study 1's MR series is B's
  EXPECT_EQ(db_->FindStudies(f)->size(), 0u);
  f.projects = {"B", "A"};
  ASSERT_EQ(db_->FindStudies(f)->size(), 1u);
  f = {};
  EXPECT_EQ((*db_->FindStudies(f))[0].series_count + (*db_->FindStudies(f))[1].series_count, 3);
  EXPECT_EQ(db_->ListSeries("1", {"A"})->size(), 1u);
  EXPECT_EQ(db_->ListSeries("1")->size(), 2u);
  EXPECT_TRUE(db_->ListInstances("1.2", {"A"})->empty());
  EXPECT_EQ(db_->ListInstances("1.2", {"A", "B"})->size(), 1u);
  EXPECT_FALSE(db_->GetInstance("2.1.1", {"A"})->has_value());
  EXPECT_TRUE(db_->GetInstance("2.1.1", {"B"})->has_value());
}

TEST_F(DatabaseTest, NodesRoundTripAndRename) {
  ASSERT_TRUE(db_->SaveNode("a", "{\"x\":1}"));
  ASSERT_TRUE(db_->SaveNode("b", "{\"x\":2}", "a"));
  auto nodes = db_->LoadNodes();
  ASSERT_TRUE(nodes);
  ASSERT_EQ(nodes->size(), 1u);
  EXPECT_EQ((*nodes)[0].first, "b");
  ASSERT_TRUE(db_->DeleteNode("b"));
  EXPECT_TRUE(db_->LoadNodes()->empty());
}

TEST_F(DatabaseTest, AJobsLeaseOnlyMovesForwardAndOnlyItsOwnerWritesIt) {
  JobRow job = QueuedJob();
  ASSERT_NE(job.id, 0);
  // A claims it (lease to 10:00:30), its heartbeat renews it (to 10:00:50).
  job.state = "running";
  job.owner = "a";
  job.lease_until = "2026-03-02T10:00:30Z";
  ASSERT_TRUE(*db_->UpdateJobIf(job, {"queued"}));
  auto renewed = db_->RenewJobLeases("a", "2026-03-02T10:00:50Z", {job.id, job.id + 1000});
  ASSERT_TRUE(renewed);
  EXPECT_EQ(*renewed, std::vector<int64_t>{job.id});
  EXPECT_TRUE(db_->RenewJobLeases("b", "2026-03-02T10:09:00Z", {job.id})->empty());  // not b's
  // A progress write carries the claim's lease: the renewal stays.
  job.progress = R"({"completed":1})";
  ASSERT_TRUE(*db_->UpdateJobIf(job, {"running"}, false, "a"));
  EXPECT_EQ((*db_->GetJob(job.id))->lease_until, "2026-03-02T10:00:50Z");
  // Not expired at 10:00:40; expired at 10:01:00, and then taken over only under that lease.
  EXPECT_TRUE(db_->ExpiredJobLeases("2026-03-02T10:00:40Z")->empty());
  auto expired = db_->ExpiredJobLeases("2026-03-02T10:01:00Z");
  ASSERT_TRUE(expired);
  ASSERT_EQ(expired->size(), 1u);
  JobRow back = (*expired)[0];
  back.state = "queued";
  back.owner.clear();
  EXPECT_FALSE(*db_->TakeOverJob(back, "a", "2026-03-02T10:00:30Z"));  // a lease it no longer has
  EXPECT_TRUE(*db_->TakeOverJob(back, "a", "2026-03-02T10:00:50Z"));
  // A's late write finds the job no longer its own.
  job.state = "succeeded";
  job.lease_until.clear();
  EXPECT_FALSE(*db_->UpdateJobIf(job, {"running"}, false, "a"));
  auto now = (*db_->GetJob(job.id));
  EXPECT_EQ(now->state, "queued");
  EXPECT_EQ(now->owner, "");
  EXPECT_EQ(now->lease_until, "");
}

TEST_F(DatabaseTest, AClaimFromAReadThatAnotherClaimOvertookFails) {
  JobRow job = QueuedJob();
  ASSERT_NE(job.id, 0);
  JobRow stale = job;  // read by instance a's worker
  // Instance b claims it, runs it, and it is queued again (a retry): one attempt counted.
  JobRow by_b = job;
  by_b.state = "running";
  by_b.owner = "b";
  by_b.attempts = 1;
  ASSERT_TRUE(*db_->UpdateJobIf(by_b, {"queued"}, true, {}, 0));
  by_b.state = "queued";
  by_b.progress = R"({"completed":7})";
  by_b.history = R"([{"attempt":1,"outcome":"failed"}])";
  ASSERT_TRUE(*db_->UpdateJobIf(by_b, {"running"}, false, "b"));
  // a's claim from its older read: refused, and the row keeps b's run.
  stale.state = "running";
  stale.owner = "a";
  stale.attempts = 1;
  EXPECT_FALSE(*db_->UpdateJobIf(stale, {"queued"}, true, {}, 0));
  auto now = *db_->GetJob(job.id);
  EXPECT_EQ(now->state, "queued");
  EXPECT_EQ(now->progress, R"({"completed":7})");
  EXPECT_EQ(now->attempts, 1);
  // A claim from a current read goes through.
  JobRow fresh = *now;
  fresh.state = "running";
  fresh.owner = "a";
  fresh.attempts = 2;
  EXPECT_TRUE(*db_->UpdateJobIf(fresh, {"queued"}, true, {}, 1));
}

// A node's connections are counted over the running jobs of every owner: a claim under the
// limit fails while others hold it, a running job takes more only up to the limit and gives
// them back down to its own one, only its owner changes them, and a job whose lease ended holds
// none.
TEST_F(DatabaseTest, ANodesConnectionsAreCountedOverItsRunningJobsAndGivenBack) {
  const NodeConnectionLimit limit{"pacs", 3, "2026-03-02T10:00:00Z"};
  auto claim = [&](JobRow& job, const std::string& owner, const NodeConnectionLimit& l) {
    job.state = "running";
    job.owner = owner;
    job.lease_until = "2026-03-02T10:00:30Z";
    auto r = db_->UpdateJobIf(job, {"queued"}, true, {}, -1, &l);
    EXPECT_TRUE(r) << r.error().message;
    return r && *r;
  };
  JobRow a = QueuedJob("pacs"), b = QueuedJob("pacs"), c = QueuedJob("pacs");
  ASSERT_TRUE(claim(a, "one", limit));
  // Asked for 5 more: the node has room for 2.
  EXPECT_EQ(*db_->TakeNodeConnections(a.id, "one", limit, 5), 2);
  EXPECT_FALSE(claim(b, "two", limit));  // 3 of 3 held
  EXPECT_EQ((*db_->GetJob(b.id))->state, "queued");
  EXPECT_EQ(*db_->TakeNodeConnections(a.id, "one", limit, 1), 0);
  // Another instance cannot change a's count, either way.
  EXPECT_EQ(*db_->TakeNodeConnections(a.id, "two", limit, -2), 0);
  EXPECT_FALSE(claim(b, "two", limit));
  // Giving back 5 gives back 2: the job's own connection stays, and room for two more is left.
  EXPECT_EQ(*db_->TakeNodeConnections(a.id, "one", limit, -5), -2);
  ASSERT_TRUE(claim(b, "two", limit));
  ASSERT_TRUE(claim(c, "two", limit));
  JobRow d = QueuedJob("pacs");
  EXPECT_FALSE(claim(d, "two", limit));
  // Once the leases of a, b and c have ended (their instances gone), they hold nothing.
  const NodeConnectionLimit later{"pacs", 3, "2026-03-02T10:01:00Z"};
  EXPECT_TRUE(claim(d, "two", later));
  EXPECT_EQ(*db_->TakeNodeConnections(d.id, "two", later, 9), 2);
}

// Two instances (two connections to one index) claiming jobs of one node at the same moment
// count each other: with room for one connection, one of the two claims wins, every time.
TEST_F(DatabaseTest, TwoInstancesClaimingOneNodeAtOnceCountEachOther) {
  auto other = ReopenTestDatabase(dir_);
  ASSERT_TRUE(other) << other.error().message;
  const NodeConnectionLimit limit{"pacs", 1, "2026-03-02T10:00:00Z"};
  for (int round = 0; round < 20; ++round) {
    JobRow jobs[2] = {QueuedJob("pacs"), QueuedJob("pacs")};
    Database* handles[2] = {db_.get(), other->get()};
    bool won[2] = {false, false};
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i) {
      threads.emplace_back([&, i] {
        JobRow& j = jobs[i];
        j.state = "running";
        j.owner = i == 0 ? "one" : "two";
        j.lease_until = "2026-03-02T10:00:30Z";
        ++ready;
        while (ready < 2) std::this_thread::yield();
        auto r = handles[i]->UpdateJobIf(j, {"queued"}, true, {}, -1, &limit);
        won[i] = r && *r;
      });
    }
    for (auto& t : threads) t.join();
    ASSERT_EQ(won[0] + won[1], 1) << "round " << round;
    for (JobRow& j : jobs) {  // the node is free again for the next round
      j.state = "succeeded";
      j.lease_until.clear();
      ASSERT_TRUE(db_->UpdateJobIf(j, {}));
    }
  }
}

// A node's lock held by a connection that does not let go (its host gone before its commit)
// fails a claim after a bounded wait, instead of stopping the instance's job queue: the job stays
// queued and is claimed once the lock is free.
TEST_F(DatabaseTest, AClaimWaitsABoundedTimeForTheNodesLock) {
  if (std::string(TestDatabaseEngine()) != "postgresql") GTEST_SKIP() << "PostgreSQL only (unit-pg.archive)";
  std::string name;  // this test's database: the newest this process made
  {
    soci::session admin(soci::postgresql, std::getenv("PACSBRIDGE_TEST_POSTGRES"));
    const std::string mine = "pbtest_" + std::to_string(::getpid()) + "\\_%";
    admin << "SELECT datname FROM pg_database WHERE datname LIKE :p ORDER BY oid DESC LIMIT 1", soci::use(mine),
        soci::into(name);
  }
  const std::string base = std::getenv("PACSBRIDGE_TEST_POSTGRES");
  soci::session holder(soci::postgresql, base + (base.find('?') == std::string::npos ? "?" : "&") + "dbname=" + name);
  // Advisory locks are per database: the holder takes the node's in the test's database.
  holder << "SELECT pg_advisory_lock(1346522692, hashtext('pacs'))";  // 0x50424e44, "PBND"
  JobRow job = QueuedJob("pacs");
  job.state = "running";
  job.owner = "one";
  job.lease_until = "2026-03-02T10:00:30Z";
  const NodeConnectionLimit limit{"pacs", 1, "2026-03-02T10:00:00Z"};
  const auto start = std::chrono::steady_clock::now();
  auto blocked = db_->UpdateJobIf(job, {"queued"}, true, {}, -1, &limit);
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(blocked);
  EXPECT_GE(waited, std::chrono::milliseconds(1500));
  EXPECT_LT(waited, std::chrono::seconds(15));
  EXPECT_EQ((*db_->GetJob(job.id))->state, "queued");
  holder << "SELECT pg_advisory_unlock(1346522692, hashtext('pacs'))";
  auto claimed = db_->UpdateJobIf(job, {"queued"}, true, {}, -1, &limit);
  ASSERT_TRUE(claimed) << claimed.error().message;
  EXPECT_TRUE(*claimed);
}

TEST_F(DatabaseTest, ARenameCarriesTheNodesJobsAndStateToItsNewName) {
  ASSERT_TRUE(db_->SaveNode("old", "{}"));
  JobRow mine, other;
  mine.type = other.type = "retrieve";
  mine.state = other.state = "succeeded";
  mine.node = "old";
  mine.params = R"({"node":"old","uids":["1.2"]})";
  other.node = "elsewhere";
  other.params = R"({"node":"elsewhere"})";
  auto mine_id = db_->InsertJob(mine);
  auto other_id = db_->InsertJob(other);
  ASSERT_TRUE(mine_id && other_id);
  ASSERT_TRUE(db_->SetNodeState("old", "retrieve_method", "c-move"));
  ASSERT_TRUE(db_->SaveNode("new", "{}", "old"));
  auto renamed = db_->GetJob(*mine_id);
  ASSERT_TRUE(renamed && *renamed);
  EXPECT_EQ((*renamed)->node, "new");
  EXPECT_EQ((*renamed)->params, R"({"node":"new","uids":["1.2"]})");
  EXPECT_EQ((*db_->GetJob(*other_id))->node, "elsewhere");
  EXPECT_EQ(*db_->GetNodeState("new", "retrieve_method"), "c-move");
  EXPECT_EQ(*db_->GetNodeState("old", "retrieve_method"), "");
}

TEST(BlobStorePaths, HostileUidsStayInsideTheArchive) {
  std::string rel = BlobStore::RelativePathFor("../../etc", "1.2", "passwd/../x");
  EXPECT_EQ(rel.find(".."), std::string::npos);
  EXPECT_EQ(BlobStore::RelativePathFor("1.2", "1.2.3", "1.2.3.4"), "1.2/1.2.3/1.2.3.4.dcm");
}

TEST_F(DatabaseTest, BrowsesTheArchiveByLabelsAndKeepsASeriesFirstLabels) {
  auto labelled = [&](std::string sop, std::string series, std::string study, std::string p, std::string su,
                      std::string se) {
    InstanceRecord r = Rec(std::move(sop), std::move(series), std::move(study));
    r.project = std::move(p);
    r.subject = std::move(su);
    r.session = std::move(se);
    return r;
  };
  auto batch = db_->BeginBatch();
  ASSERT_TRUE(batch);
  ASSERT_TRUE((*batch)->Put(labelled("1.1.1", "1.1", "1", "P1", "S1", "E1")));
  ASSERT_TRUE((*batch)->Put(labelled("1.1.2", "1.1", "1", "P1", "S1", "E1")));
  ASSERT_TRUE((*batch)->Put(labelled("1.2.1", "1.2", "1", "P1", "S1", "E1")));
  ASSERT_TRUE((*batch)->Put(labelled("2.1.1", "2.1", "2", "P1", "S2", "E9")));
  ASSERT_TRUE((*batch)->Put(labelled("3.1.1", "3.1", "3", "Unassigned", "", "")));
  ASSERT_TRUE((*batch)->Commit());
  batch->reset();  // a batch holds the writer until it goes
  // A later instance of a known series does not move it.
  auto again = db_->BeginBatch();
  ASSERT_TRUE((*again)->Put(labelled("1.1.3", "1.1", "1", "P2", "X", "Y")));
  ASSERT_TRUE((*again)->Commit());

  auto projects = db_->ListProjects();
  ASSERT_TRUE(projects) << projects.error().message;
  ASSERT_EQ(projects->size(), 2u);
  EXPECT_EQ((*projects)[0].name, "P1");
  EXPECT_EQ((*projects)[0].subjects, 2);
  EXPECT_EQ((*projects)[0].sessions, 2);
  EXPECT_EQ((*projects)[0].studies, 2);
  EXPECT_EQ((*projects)[0].series, 3);
  EXPECT_EQ((*projects)[0].instances, 5);
  EXPECT_EQ((*projects)[1].name, "Unassigned");
  auto subjects = db_->ListSubjects("P1");
  ASSERT_TRUE(subjects);
  ASSERT_EQ(subjects->size(), 2u);
  EXPECT_EQ((*subjects)[0].name, "S1");
  EXPECT_EQ((*subjects)[0].instances, 4);
  auto sessions = db_->ListSessions("P1", "S2");
  ASSERT_TRUE(sessions);
  ASSERT_EQ(sessions->size(), 1u);
  EXPECT_EQ((*sessions)[0].name, "E9");
  auto series = db_->ListSessionSeries("P1", "S1", "E1");
  ASSERT_TRUE(series);
  ASSERT_EQ(series->size(), 2u);
  EXPECT_EQ((*series)[0].instance_count + (*series)[1].instance_count, 4);
  EXPECT_TRUE(db_->ListSubjects("P2")->empty());
  EXPECT_TRUE(db_->ListSubjects("nope")->empty());
}

TEST_F(DatabaseTest, StoresReceiversAndSettings) {
  auto id = db_->InsertReceiver("{\"ae_title\":\"A\"}");
  ASSERT_TRUE(id);
  ASSERT_TRUE(db_->UpdateReceiver(*id, "{\"ae_title\":\"B\"}"));
  auto all = db_->LoadReceivers();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].second, "{\"ae_title\":\"B\"}");
  ASSERT_TRUE(db_->DeleteReceiver(*id));
  EXPECT_TRUE(db_->LoadReceivers()->empty());
  EXPECT_EQ(*db_->GetSetting("k"), "");
  EXPECT_EQ(*db_->CreateSetting("k", "first"), "first");
  EXPECT_EQ(*db_->CreateSetting("k", "second"), "first");  // an existing value is kept
  ASSERT_TRUE(db_->SetSetting("k", "third"));
  EXPECT_EQ(*db_->GetSetting("k"), "third");
}

}  // namespace
}  // namespace pb

namespace pb {
namespace {

NodeTestRecord ATest(bool ok, std::string message, int64_t latency) {
  NodeTestRecord t;
  t.at = "2026-12-03T07:00:00Z";
  t.ok = ok;
  t.message = std::move(message);
  t.latency_ms = latency;
  t.checks_json = R"([{"name":"echo"}])";
  return t;
}

TEST_F(DatabaseTest, NodeTestHistoryIsNewestFirstPrunedAndFollowsTheNode) {
  ASSERT_TRUE(db_->SaveNode("pacs", "{}"));
  ASSERT_TRUE(db_->SaveNode("other", "{}"));
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(db_->AddNodeTest("pacs", ATest(i % 2 == 0, "test " + std::to_string(i), i), 3));
  ASSERT_TRUE(db_->AddNodeTest("other", ATest(false, "refused", 7), 3));

  auto h = db_->NodeTests("pacs", 10);
  ASSERT_TRUE(h) << h.error().message;
  ASSERT_EQ(h->size(), 3u);  // pruned to the newest 3
  EXPECT_EQ((*h)[0].message, "test 4");
  EXPECT_EQ((*h)[2].message, "test 2");
  EXPECT_TRUE((*h)[0].ok);
  EXPECT_FALSE((*h)[1].ok);
  EXPECT_EQ((*h)[1].latency_ms, 3);
  EXPECT_EQ((*h)[0].checks_json, R"([{"name":"echo"}])");
  EXPECT_EQ(db_->NodeTests("pacs", 1)->size(), 1u);

  auto latest = db_->LatestNodeTests();
  ASSERT_TRUE(latest);
  ASSERT_EQ(latest->size(), 2u);
  EXPECT_EQ(latest->at("pacs").message, "test 4");
  EXPECT_EQ(latest->at("other").message, "refused");

  ASSERT_TRUE(db_->SaveNode("pacs-renamed", "{}", "pacs"));  // a rename keeps the history
  EXPECT_EQ(db_->NodeTests("pacs-renamed", 10)->size(), 3u);
  EXPECT_TRUE(db_->NodeTests("pacs", 10)->empty());

  ASSERT_TRUE(db_->SetNodeState("other", "retrieve_method", "c-move"));
  ASSERT_TRUE(db_->DeleteNode("other"));  // a deleted node's history and state go with it
  ASSERT_TRUE(db_->SaveNode("other", "{}"));
  EXPECT_TRUE(db_->NodeTests("other", 10)->empty());
  EXPECT_EQ(*db_->GetNodeState("other", "retrieve_method"), "");
}

}  // namespace
}  // namespace pb

namespace pb {
namespace {

TEST(DatabaseErrors, KeepSqlitesMessageNotTheStatementOrItsValues) {
  soci::soci_error e("database is locked");
  e.add_context("while executing \"SELECT pk FROM patients WHERE patient_name = :n\" with :n=\"DOE^JOHN\"");
  ASSERT_NE(std::string(e.what()).find("DOE^JOHN"), std::string::npos);  // what SOCI would show
  const Error err = db::DbError(e, "reading the index");
  EXPECT_EQ(err.message, "index database: reading the index: database is locked");
  EXPECT_EQ(err.code, Code::kIoError);
  // The code follows SQLite's result code, never the words of a message.
  EXPECT_EQ(db::DbError(soci::soci_error("database or disk is full"), "writing").code, Code::kIoError);
  EXPECT_EQ(db::DbError(std::runtime_error("bad_cast DOE"), "reading").message,
            "index database: reading: unexpected failure");
}

TEST(DatabaseErrors, AFullDatabaseIsOutOfSpace) {
  // SQLite itself answers SQLITE_FULL when a database may grow no more (max_page_count).
  const auto file = std::filesystem::temp_directory_path() / ("pb-full-" + std::to_string(::getpid()) + ".db");
  {
    soci::session s(soci::sqlite3, file.string());
    s << "CREATE TABLE t(v BLOB)";
    s << "PRAGMA max_page_count = 3";
    std::optional<Error> err;
    try {
      for (int i = 0; i < 100; ++i) s << "INSERT INTO t VALUES (zeroblob(4096))";
    } catch (const soci::soci_error& e) {
      err = db::DbError(e, "writing", false);
    }
    ASSERT_TRUE(err.has_value());
    EXPECT_EQ(err->code, Code::kOutOfSpace) << err->message;
  }
  std::filesystem::remove(file);
}

}  // namespace
}  // namespace pb

namespace pb {
namespace {

TEST(MppsTable, PutGetListByDirectionStatusAndAccession) {
  auto dir = std::filesystem::temp_directory_path() / ("pb-mpps-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto db = OpenTestDatabase(dir);
  ASSERT_TRUE(db) << db.error().message;
  MppsRecord m;
  m.direction = "received";
  m.sop_instance_uid = "1.2.3";
  m.status = "IN PROGRESS";
  m.accession_number = "A1";
  m.created_at = m.updated_at = "2026-12-03T10:00:00Z";
  ASSERT_TRUE((*db)->PutMpps(m));
  MppsRecord sent = m;  // the same UID in the other direction is another row
  sent.direction = "sent";
  sent.node = "ris";
  sent.updated_at = "2026-12-03T10:05:00Z";
  ASSERT_TRUE((*db)->PutMpps(sent));
  m.status = "COMPLETED";
  m.updated_at = "2026-12-03T10:10:00Z";
  ASSERT_TRUE((*db)->PutMpps(m));  // replaces
  auto got = (*db)->GetMpps("received", "1.2.3");
  ASSERT_TRUE(got && *got);
  EXPECT_EQ((*got)->status, "COMPLETED");
  EXPECT_FALSE(*(*db)->GetMpps("received", "9.9"));
  auto all = (*db)->ListMpps({});
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].direction, "received");  // newest change first
  sent.updated_at = m.updated_at;              // the same second: the step we sent first
  ASSERT_TRUE((*db)->PutMpps(sent));
  EXPECT_EQ((*(*db)->ListMpps({}))[0].direction, "sent");
  sent.updated_at = "2026-12-03T10:05:00Z";
  ASSERT_TRUE((*db)->PutMpps(sent));
  MppsFilter f;
  f.direction = "sent";
  EXPECT_EQ((*db)->ListMpps(f)->size(), 1u);
  f = {};
  f.status = "IN PROGRESS";
  ASSERT_EQ((*db)->ListMpps(f)->size(), 1u);
  EXPECT_EQ((*(*db)->ListMpps(f))[0].node, "ris");
  f = {};
  f.accession_number = "A2";
  EXPECT_TRUE((*db)->ListMpps(f)->empty());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pb
