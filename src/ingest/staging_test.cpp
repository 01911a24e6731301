#include "ingest/staging.h"
#include "archive/testing.h"

#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gtest/gtest.h>

namespace pb {
namespace {

// A clock the test moves by hand: the idle rule is checked without sleeping.
struct FakeClock {
  std::chrono::steady_clock::time_point now{};
  StagingArea::Clock fn() {
    return [this] { return now; };
  }
};

class StagingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pb-staging-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    blobs_ = std::make_unique<BlobStore>(dir_);
    ASSERT_TRUE(blobs_->Prepare());
    db_ = std::move(*OpenTestDatabase(dir_));
    pipeline_ = std::make_unique<IngestPipeline>(*blobs_, *db_, IngestOptions{});
  }
  void TearDown() override {
    area_.reset();
    pipeline_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<StagingArea> Area(int idle = 60) {
    return std::make_unique<StagingArea>(
        *pipeline_, *db_, *blobs_, [idle](const std::string&) { return idle; }, clock_.fn());
  }
  std::filesystem::path Write(const std::string& sop, const std::string& study = "1.2.3") {
    DcmFileFormat ff;
    DcmDataset* ds = ff.getDataset();
    ds->putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
    ds->putAndInsertString(DCM_SOPInstanceUID, sop.c_str());
    ds->putAndInsertString(DCM_StudyInstanceUID, study.c_str());
    ds->putAndInsertString(DCM_SeriesInstanceUID, (study + ".1").c_str());
    ds->putAndInsertString(DCM_PatientID, "P1");
    auto path = blobs_->NewTempPath();
    EXPECT_TRUE(ff.saveFile(path.c_str(), EXS_LittleEndianExplicit).good());
    return path;
  }
  IngestSource Labelled(const std::string& project, const std::string& subject, const std::string& session) {
    IngestSource s;
    s.calling_ae = "SCANNER";
    s.called_ae = "PB";
    s.project = project;
    s.subject = subject;
    s.session = session;
    return s;
  }
  // What a staging receiver's association does: the pipeline's one commit, with staging as the target.
  IngestOutcome Stage(StagingArea& area, const std::filesystem::path& temp, const IngestSource& src,
                      const std::string& receiver) {
    return pipeline_->Ingest(temp, src, area.Target(receiver));
  }
  // A pipeline whose indexer waits for Flush() (or its end): staged rows stay in its batch.
  void SlowIndexer(bool fsync = false) {
    area_.reset();
    pipeline_.reset();
    pipeline_ = std::make_unique<IngestPipeline>(
        *blobs_, *db_, IngestOptions{DuplicatePolicy::kKeep, fsync, 512, std::chrono::hours(1)});
  }
  std::vector<StagedInstance> Rows(int64_t session) {  // straight from the index: no Flush()
    auto rows = db_->ListStagedInstances(session);
    EXPECT_TRUE(rows);
    return rows ? *rows : std::vector<StagedInstance>{};
  }
  std::string Journals() const {
    std::string all;
    for (const auto& e : std::filesystem::directory_iterator(blobs_->journal_dir())) {
      std::ostringstream text;
      text << std::ifstream(e.path()).rdbuf();
      all += text.str();
    }
    return all;
  }
  bool Indexed(const std::string& sop) {
    EXPECT_TRUE(pipeline_->Flush());
    auto row = db_->GetInstance(sop);
    return row && *row;
  }

  FakeClock clock_;
  std::filesystem::path dir_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<IngestPipeline> pipeline_;
  std::unique_ptr<StagingArea> area_;  // for tests that replace the pipeline under it
};

TEST_F(StagingTest, SessionIsArchivedOnlyAfterTheIdleTime) {
  auto area = Area(60);
  auto src = Labelled("P1", "S1", "E1");
  EXPECT_EQ(Stage(*area, Write("1.2.3.1"), src, "r1").status, IngestStatus::kStored);
  clock_.now += std::chrono::seconds(30);
  EXPECT_EQ(Stage(*area, Write("1.2.3.2"), src, "r1").status, IngestStatus::kStored);
  auto staged = area->List();
  ASSERT_TRUE(staged);
  ASSERT_EQ(staged->size(), 1u);
  EXPECT_EQ((*staged)[0].instance_count, 2);
  EXPECT_FALSE(Indexed("1.2.3.1"));  // staged, not archived

  clock_.now += std::chrono::seconds(59);  // 59 s after the last arrival
  EXPECT_TRUE(area->ArchiveIdle().empty());
  clock_.now += std::chrono::seconds(1);
  auto archived = area->ArchiveIdle();
  ASSERT_EQ(archived.size(), 1u);
  EXPECT_EQ(archived[0].archived, 2);
  EXPECT_TRUE(Indexed("1.2.3.1"));
  EXPECT_TRUE(Indexed("1.2.3.2"));
  EXPECT_TRUE(area->List()->empty());
  EXPECT_FALSE(std::filesystem::exists(blobs_->staging_dir() / std::to_string(archived[0].session.id)));
  auto sessions = db_->ListSessions("P1", "S1");
  ASSERT_TRUE(sessions);
  ASSERT_EQ(sessions->size(), 1u);
  EXPECT_EQ((*sessions)[0].name, "E1");
  EXPECT_EQ((*sessions)[0].instances, 2);
}

TEST_F(StagingTest, ASharedDirectorysSessionsAreArchivedByTheirInstanceAndTakenOverOnceItStops) {
  std::set<std::string> running{"a", "b"};
  int claims = 0;  // made while the stopped instance was held
  auto take_over = [&](const std::string& id, const std::function<void()>& claim) {
    if (running.count(id)) return false;
    ++claims;
    claim();
    return true;
  };
  auto a = Area(60);
  a->ShareWith("a", take_over);
  auto b = Area(60);
  b->ShareWith("b", take_over);
  auto src = Labelled("P1", "S1", "E1");
  EXPECT_EQ(Stage(*a, Write("1.2.3.1"), src, "r1").status, IngestStatus::kStored);
  EXPECT_EQ(Stage(*a, Write("1.2.3.2"), src, "r1").status, IngestStatus::kStored);
  EXPECT_EQ(Stage(*b, Write("1.2.3.3"), src, "r1").status, IngestStatus::kStored);  // a session of b's own
  auto staged = a->List();
  ASSERT_TRUE(staged);
  ASSERT_EQ(staged->size(), 2u);
  const StagedSession& of_a = (*staged)[0].owner == "a" ? (*staged)[0] : (*staged)[1];
  const StagedSession& of_b = (*staged)[0].owner == "b" ? (*staged)[0] : (*staged)[1];
  ASSERT_EQ(of_a.owner, "a");
  ASSERT_EQ(of_b.owner, "b");
  EXPECT_EQ(of_a.instance_count, 2);

  // While a runs, its session is its own: b neither archives it when idle nor on request.
  clock_.now += std::chrono::seconds(61);
  auto by_b = b->ArchiveIdle();
  ASSERT_EQ(by_b.size(), 1u);
  EXPECT_EQ(by_b[0].session.id, of_b.id);
  auto refused = b->Archive(of_a.id);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kConflict);
  EXPECT_NE(refused.error().message.find("instance 'a'"), std::string::npos) << refused.error().message;
  auto not_discarded = b->Discard(of_a.id);
  ASSERT_FALSE(not_discarded);
  EXPECT_EQ(not_discarded.error().code, Code::kConflict);
  EXPECT_FALSE(Indexed("1.2.3.1"));
  EXPECT_TRUE(Indexed("1.2.3.3"));

  // a stops: b takes its session over, and archives it after an idle time of its own.
  running.erase("a");
  EXPECT_TRUE(b->ArchiveIdle().empty());
  auto taken = db_->GetStagedSession(of_a.id);
  ASSERT_TRUE(taken && *taken);
  EXPECT_EQ((*taken)->owner, "b");
  EXPECT_EQ(claims, 1);
  clock_.now += std::chrono::seconds(60);
  auto archived = b->ArchiveIdle();
  ASSERT_EQ(archived.size(), 1u);
  EXPECT_EQ(archived[0].archived, 2);
  EXPECT_TRUE(Indexed("1.2.3.1"));
  EXPECT_TRUE(Indexed("1.2.3.2"));
}

TEST_F(StagingTest, SessionsAreKeptApartByLabelsAndReceiver) {
  auto area = Area(10);
  Stage(*area, Write("1.1", "1.1"), Labelled("P1", "S1", "E1"), "r1");
  Stage(*area, Write("2.1", "2.1"), Labelled("P1", "S1", "E2"), "r1");
  Stage(*area, Write("3.1", "3.1"), Labelled("P1", "S1", "E1"), "r2");
  EXPECT_EQ(area->List()->size(), 3u);
}

TEST_F(StagingTest, ArchiveByHandAndDiscard) {
  auto area = Area(3600);
  Stage(*area, Write("1.1", "1.1"), Labelled("P1", "S1", "E1"), "r1");
  Stage(*area, Write("2.1", "2.1"), Labelled("P1", "S1", "E2"), "r1");
  auto list = *area->List();
  ASSERT_EQ(list.size(), 2u);
  auto a = area->Archive(list[0].id);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->archived, 1);
  EXPECT_TRUE(Indexed("1.1"));
  ASSERT_TRUE(area->Discard(list[1].id));
  EXPECT_FALSE(Indexed("2.1"));
  EXPECT_TRUE(area->List()->empty());
  EXPECT_FALSE(std::filesystem::exists(blobs_->staging_dir() / std::to_string(list[1].id)));
  EXPECT_EQ(area->Archive(list[1].id).error().code, Code::kNotFound);
  EXPECT_EQ(area->Discard(12345).error().code, Code::kNotFound);
}

TEST_F(StagingTest, ArrivalAfterArchivingStartsANewSession) {
  auto area = Area(5);
  Stage(*area, Write("1.1"), Labelled("P1", "S1", "E1"), "r1");
  clock_.now += std::chrono::seconds(5);
  ASSERT_EQ(area->ArchiveIdle().size(), 1u);
  Stage(*area, Write("1.2"), Labelled("P1", "S1", "E1"), "r1");
  auto list = *area->List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].instance_count, 1);
}

TEST_F(StagingTest, ArchivesTheSessionsAJobCompleted) {
  auto area = Area(3600);
  IngestSource src = Labelled("P1", "S1", "E1");
  src.original_sop_uid = "9.9.1";  // as sent, before anonymization
  Stage(*area, Write("1.1"), src, "r1");
  Stage(*area, Write("2.1", "2.1"), Labelled("P2", "S2", "E2"), "r1");
  auto done = area->ArchiveHolding({"9.9.1"});
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].session.project, "P1");
  EXPECT_TRUE(Indexed("1.1"));
  EXPECT_EQ(area->List()->size(), 1u);
}

TEST_F(StagingTest, RecoveryRecordsFilesWhoseRowIsMissingAndDropsDiscardedFolders) {
  int64_t id = 0;
  {
    auto area = Area(60);
    Stage(*area, Write("1.1"), Labelled("P1", "S1", "E1"), "r1");
    id = (*area->List())[0].id;
  }
  // A crash between the rename into the session's folder and its row; and a folder of a
  // session that was being discarded.
  auto extra = blobs_->staging_dir() / std::to_string(id) / "extra.dcm";
  std::filesystem::rename(Write("1.2"), extra);
  std::filesystem::create_directories(blobs_->staging_dir() / "999");
  auto area = Area(60);
  auto waiting = area->Recover();
  ASSERT_TRUE(waiting) << waiting.error().message;
  EXPECT_EQ(*waiting, 1);
  EXPECT_EQ((*area->List())[0].instance_count, 2);
  EXPECT_FALSE(std::filesystem::exists(blobs_->staging_dir() / "999"));
  // The idle time starts again after a restart.
  clock_.now += std::chrono::seconds(60);
  ASSERT_EQ(area->ArchiveIdle().size(), 1u);
  EXPECT_TRUE(Indexed("1.1"));
  EXPECT_TRUE(Indexed("1.2"));
}

TEST_F(StagingTest, RefusesAMismatchedSopUidAndLeavesNoFile) {
  auto area = Area(60);
  IngestSource src = Labelled("P1", "S1", "E1");
  src.expected_sop_uid = "1.2.3.999";
  EXPECT_EQ(Stage(*area, Write("1.2.3.1"), src, "r1").status, IngestStatus::kInvalid);
  EXPECT_TRUE(area->List()->empty());
  size_t temp = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(blobs_->tmp_dir())) ++temp;
  EXPECT_EQ(temp, 0u);
}

TEST_F(StagingTest, StagedInstanceIsJournaledAndInItsFolderBeforeItsRow) {
  SlowIndexer();
  auto area = Area(60);
  ASSERT_EQ(Stage(*area, Write("1.2.3.1"), Labelled("P1", "S1", "E1"), "r1").status, IngestStatus::kStored);
  // The sender has its answer: the session exists, the file is in its folder and the journal
  // names it, but its row is still in the indexer's batch.
  auto sessions = db_->ListStagedSessions();
  ASSERT_TRUE(sessions && sessions->size() == 1u);
  const int64_t id = (*sessions)[0].id;
  const std::string rel = std::to_string(id) + "/" + BlobStore::RelativePathFor("1.2.3", "1.2.3.1", "1.2.3.1");
  EXPECT_TRUE(std::filesystem::exists(blobs_->staging_dir() / rel));
  EXPECT_NE(Journals().find(rel + "\tP1\tS1\tE1\t" + std::to_string(id)), std::string::npos) << Journals();
  EXPECT_TRUE(Rows(id).empty());
  // The batch writes the row and the session's counts.
  ASSERT_TRUE(pipeline_->Flush());
  auto rows = Rows(id);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].file, rel);
  EXPECT_EQ(rows[0].source_ae, "SCANNER");
  EXPECT_EQ(rows[0].receiver_ae, "PB");
  EXPECT_EQ((*area->Get(id))->instance_count, 1);
  EXPECT_GT((*area->Get(id))->bytes, 0);
}

TEST_F(StagingTest, CrashBeforeStagedRowsAreWrittenIsRepairedFromTheJournalIntoTheirSessions) {
  // A process that answers its senders and dies before the indexer's batch: staged into two
  // sessions, one row written, two left in the batch.
  area_.reset();
  pipeline_.reset();  // no thread of ours is running when we fork
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto db = ReopenTestDatabase(dir_);
    if (!db) ::_exit(2);
    IngestPipeline pipeline(*blobs_, **db, IngestOptions{DuplicatePolicy::kKeep, false, 512, std::chrono::hours(1)});
    StagingArea area(pipeline, **db, *blobs_, [](const std::string&) { return 60; });
    bool ok = pipeline.Ingest(Write("1.1"), Labelled("P1", "S1", "E1"), area.Target("r1")).ok();
    ok = ok && pipeline.Flush().has_value();
    ok = ok && pipeline.Ingest(Write("1.2"), Labelled("P1", "S1", "E1"), area.Target("r1")).ok();
    ok = ok && pipeline.Ingest(Write("2.1", "2.1"), Labelled("P2", "S2", "E2"), area.Target("r2")).ok();
    ::_exit(ok ? 0 : 1);  // no destructor: nothing more is indexed
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  auto sessions = *db_->ListStagedSessions();
  ASSERT_EQ(sessions.size(), 2u);
  const StagedSession e1 = sessions[0].session == "E1" ? sessions[0] : sessions[1];
  const StagedSession e2 = sessions[0].session == "E1" ? sessions[1] : sessions[0];
  EXPECT_EQ(Rows(e1.id).size(), 1u);
  EXPECT_TRUE(Rows(e2.id).empty());

  // The next start: the pipeline replays the journal, then the staging area recovers.
  pipeline_ = std::make_unique<IngestPipeline>(*blobs_, *db_, IngestOptions{});
  auto replayed = pipeline_->Recover();
  ASSERT_TRUE(replayed) << replayed.error().message;
  EXPECT_EQ(*replayed, 2);
  auto rows = Rows(e1.id);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].sop_uid, "1.2");
  EXPECT_EQ(rows[1].source_ae, "SCANNER");  // kept by the journal, for archiving
  ASSERT_EQ(Rows(e2.id).size(), 1u);
  EXPECT_EQ(Rows(e2.id)[0].sop_uid, "2.1");
  EXPECT_EQ((*db_->GetStagedSession(e1.id))->instance_count, 2);
  EXPECT_EQ((*db_->GetStagedSession(e2.id))->instance_count, 1);

  auto area = Area(60);
  auto waiting = area->Recover();
  ASSERT_TRUE(waiting) << waiting.error().message;
  EXPECT_EQ(*waiting, 2);
  auto archived = area->Archive(e1.id);
  ASSERT_TRUE(archived) << archived.error().message;
  EXPECT_EQ(archived->archived, 2);
  EXPECT_TRUE(Indexed("1.1"));
  EXPECT_TRUE(Indexed("1.2"));
  auto filed = *db_->ListSessions("P1", "S1");
  ASSERT_EQ(filed.size(), 1u);
  EXPECT_EQ(filed[0].name, "E1");
}

TEST_F(StagingTest, FsyncOptionReachesStagedFilesTheJournalAndTheirFolder) {
  {
    auto area = Area(60);
    ASSERT_TRUE(Stage(*area, Write("1.1"), Labelled("P1", "S1", "E1"), "r1").ok());
    SyncCounts none = pipeline_->syncs();
    EXPECT_EQ(none.files + none.journal + none.folders, 0u);  // the option is off
  }
  pipeline_ = std::make_unique<IngestPipeline>(*blobs_, *db_, IngestOptions{DuplicatePolicy::kKeep, true, 512});
  auto area = Area(60);
  ASSERT_EQ(Stage(*area, Write("1.2"), Labelled("P1", "S1", "E1"), "r1").status, IngestStatus::kStored);
  SyncCounts staged = pipeline_->syncs();
  EXPECT_EQ(staged.files, 1u);
  EXPECT_EQ(staged.journal, 1u);
  EXPECT_EQ(staged.folders, 1u);
  // Archiving the session is the same commit with the archive as its target.
  auto archived = area->Archive((*area->List())[0].id);
  ASSERT_TRUE(archived) << archived.error().message;
  EXPECT_EQ(archived->archived, 2);
  SyncCounts after = pipeline_->syncs();
  EXPECT_EQ(after.files, 3u);
  EXPECT_EQ(after.folders, 3u);
}

TEST_F(StagingTest, StagedAndArchivedInstancesAreRefusedByTheSameChecks) {
  auto area = Area(60);
  auto truncated = [&] {
    auto path = blobs_->NewTempPath();
    std::ofstream(path) << "DICM but not really";
    return path;
  };
  IngestSource mismatch = Labelled("P1", "S1", "E1");
  mismatch.expected_sop_uid = "1.2.3.999";
  const IngestSource plain = Labelled("P1", "S1", "E1");
  const std::vector<std::pair<std::function<std::filesystem::path()>, IngestSource>> cases = {
      {[&] { return Write("1.2.3.1"); }, mismatch}, {truncated, plain}};
  for (const auto& [file, src] : cases) {
    IngestOutcome archived = pipeline_->Ingest(file(), src);
    IngestOutcome staged = Stage(*area, file(), src, "r1");
    EXPECT_EQ(staged.status, IngestStatus::kInvalid);
    EXPECT_EQ(staged.status, archived.status);
    EXPECT_EQ(staged.message, archived.message);
    EXPECT_EQ(staged.sop_uid, archived.sop_uid);
  }
  EXPECT_NE(Stage(*area, Write("1.2.3.1"), mismatch, "r1").message.find("differs from the request (1.2.3.999)"),
            std::string::npos);
  // Refused before a session is opened for it, and nothing left behind.
  EXPECT_TRUE(area->List()->empty());
  EXPECT_TRUE(std::filesystem::is_empty(blobs_->tmp_dir()));
  EXPECT_TRUE(std::filesystem::is_empty(blobs_->staging_dir()));
}

TEST_F(StagingTest, ArchivingWaitsForRowsStillInTheIndexersBatch) {
  SlowIndexer();
  auto area = Area(3600);
  ASSERT_TRUE(Stage(*area, Write("1.1"), Labelled("P1", "S1", "E1"), "r1").ok());
  ASSERT_TRUE(Stage(*area, Write("1.2"), Labelled("P1", "S1", "E1"), "r1").ok());
  const int64_t id = (*db_->ListStagedSessions())[0].id;
  ASSERT_TRUE(Rows(id).empty());
  auto archived = area->Archive(id);
  ASSERT_TRUE(archived) << archived.error().message;
  EXPECT_EQ(archived->archived, 2);
  EXPECT_EQ(archived->session.instance_count, 2);
  EXPECT_TRUE(Indexed("1.1"));
  EXPECT_TRUE(Indexed("1.2"));
}

TEST_F(StagingTest, DiscardWhileRowsAreInTheBatchLeavesNeitherRowsNorAStuckIndexer) {
  SlowIndexer();
  auto area = Area(3600);
  ASSERT_TRUE(Stage(*area, Write("1.1"), Labelled("P1", "S1", "E1"), "r1").ok());
  const int64_t id = (*db_->ListStagedSessions())[0].id;
  ASSERT_TRUE(area->Discard(id));
  ASSERT_TRUE(pipeline_->Flush());  // the row of a discarded session is skipped, not retried
  EXPECT_TRUE(Rows(id).empty());
  EXPECT_FALSE(std::filesystem::exists(blobs_->staging_dir() / std::to_string(id)));
  // The next arrival with the same labels opens a new session.
  ASSERT_TRUE(Stage(*area, Write("1.2"), Labelled("P1", "S1", "E1"), "r1").ok());
  auto list = *area->List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_NE(list[0].id, id);
  EXPECT_EQ(list[0].instance_count, 1);
}

TEST_F(StagingTest, StagedArrivalsAreAnnouncedToTheJobsThatWait) {
  auto area = Area(60);
  std::vector<Arrival> seen;
  ArrivalSubscription sub(pipeline_->arrivals(), [&](const Arrival& a) { seen.push_back(a); });
  IngestSource src = Labelled("P1", "S1", "E1");
  src.original_sop_uid = "9.9.1";
  ASSERT_TRUE(Stage(*area, Write("1.1"), src, "r1").ok());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].sop_uid, "9.9.1");
  EXPECT_FALSE(seen[0].was_present);
  EXPECT_EQ(seen[0].calling_ae, "SCANNER");
}

}  // namespace
}  // namespace pb
