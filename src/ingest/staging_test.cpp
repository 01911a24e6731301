#include "ingest/staging.h"

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
    db_ = std::move(*Database::Open(dir_ / "index.db", false));
    pipeline_ = std::make_unique<IngestPipeline>(*blobs_, *db_, IngestOptions{});
  }
  void TearDown() override {
    pipeline_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<StagingArea> Area(int idle = 60) {
    return std::make_unique<StagingArea>(*pipeline_, *db_, *blobs_, [idle](const std::string&) { return idle; },
                                         clock_.fn());
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
};

TEST_F(StagingTest, SessionIsArchivedOnlyAfterTheIdleTime) {
  auto area = Area(60);
  auto src = Labelled("P1", "S1", "E1");
  EXPECT_EQ(area->Stage(Write("1.2.3.1"), src, "r1").status, IngestStatus::kStored);
  clock_.now += std::chrono::seconds(30);
  EXPECT_EQ(area->Stage(Write("1.2.3.2"), src, "r1").status, IngestStatus::kStored);
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

TEST_F(StagingTest, SessionsAreKeptApartByLabelsAndReceiver) {
  auto area = Area(10);
  area->Stage(Write("1.1", "1.1"), Labelled("P1", "S1", "E1"), "r1");
  area->Stage(Write("2.1", "2.1"), Labelled("P1", "S1", "E2"), "r1");
  area->Stage(Write("3.1", "3.1"), Labelled("P1", "S1", "E1"), "r2");
  EXPECT_EQ(area->List()->size(), 3u);
}

TEST_F(StagingTest, ArchiveByHandAndDiscard) {
  auto area = Area(3600);
  area->Stage(Write("1.1", "1.1"), Labelled("P1", "S1", "E1"), "r1");
  area->Stage(Write("2.1", "2.1"), Labelled("P1", "S1", "E2"), "r1");
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
  area->Stage(Write("1.1"), Labelled("P1", "S1", "E1"), "r1");
  clock_.now += std::chrono::seconds(5);
  ASSERT_EQ(area->ArchiveIdle().size(), 1u);
  area->Stage(Write("1.2"), Labelled("P1", "S1", "E1"), "r1");
  auto list = *area->List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].instance_count, 1);
}

TEST_F(StagingTest, ArchivesTheSessionsAJobCompleted) {
  auto area = Area(3600);
  IngestSource src = Labelled("P1", "S1", "E1");
  src.original_sop_uid = "9.9.1";  // as sent, before anonymization
  area->Stage(Write("1.1"), src, "r1");
  area->Stage(Write("2.1", "2.1"), Labelled("P2", "S2", "E2"), "r1");
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
    area->Stage(Write("1.1"), Labelled("P1", "S1", "E1"), "r1");
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
  EXPECT_EQ(area->Stage(Write("1.2.3.1"), src, "r1").status, IngestStatus::kInvalid);
  EXPECT_TRUE(area->List()->empty());
  size_t temp = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(blobs_->tmp_dir())) ++temp;
  EXPECT_EQ(temp, 0u);
}

}  // namespace
}  // namespace pb
