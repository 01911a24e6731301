#include "ingest/pipeline.h"
#include "archive/testing.h"

#include <fstream>
#include <map>
#include <thread>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gtest/gtest.h>

namespace pb {
namespace {

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pb-ingest-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    blobs_ = std::make_unique<BlobStore>(dir_);
    ASSERT_TRUE(blobs_->Prepare());
    db_ = std::move(*OpenTestDatabase(dir_));
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::filesystem::path Write(const std::string& sop, const std::string& name = "DOE^JANE") {
    DcmFileFormat ff;
    DcmDataset* ds = ff.getDataset();
    ds->putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
    ds->putAndInsertString(DCM_SOPInstanceUID, sop.c_str());
    ds->putAndInsertString(DCM_StudyInstanceUID, "1.2.3");
    ds->putAndInsertString(DCM_SeriesInstanceUID, "1.2.3.4");
    ds->putAndInsertString(DCM_PatientName, name.c_str());
    ds->putAndInsertString(DCM_PatientID, "P1");
    auto path = blobs_->NewTempPath();
    EXPECT_TRUE(ff.saveFile(path.c_str(), EXS_LittleEndianExplicit).good());
    return path;
  }
  size_t TempFiles() const {
    size_t n = 0;
    for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(blobs_->tmp_dir())) ++n;
    return n;
  }
  std::filesystem::path dir_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<Database> db_;
};

IngestSource Source(std::string calling, std::string called, std::string peer, std::string expected) {
  IngestSource s;
  s.calling_ae = std::move(calling);
  s.called_ae = std::move(called);
  s.peer = std::move(peer);
  s.expected_sop_uid = std::move(expected);
  return s;
}

TEST_F(PipelineTest, StoresAndIndexes) {
  IngestPipeline p(*blobs_, *db_, {});
  auto out = p.Ingest(Write("1.2.3.4.5"), Source("SCU", "US", "127.0.0.1", "1.2.3.4.5"));
  EXPECT_EQ(out.status, IngestStatus::kStored) << out.message;
  ASSERT_TRUE(p.Flush());
  auto row = db_->GetInstance("1.2.3.4.5");
  ASSERT_TRUE(row && *row);
  EXPECT_TRUE(std::filesystem::exists(blobs_->Absolute((*row)->file_path)));
  EXPECT_EQ((*row)->source_ae, "SCU");
  EXPECT_EQ(TempFiles(), 0u);
}

TEST_F(PipelineTest, RefusesAUidWhoseBytesAreNotTextAndIndexesANameWhoseBytesAreNot) {
  IngestPipeline p(*blobs_, *db_, {});
  // A UID is an identifier: never altered, so refused (nothing indexed, nothing left behind).
  auto bad = p.Ingest(Write("1.2.3.\xff"), {});
  EXPECT_EQ(bad.status, IngestStatus::kInvalid);
  EXPECT_NE(bad.message.find("SOP Instance UID has bytes that are not characters"), std::string::npos) << bad.message;
  EXPECT_EQ(TempFiles(), 0u);
  // A name is for people: indexed with U+FFFD for the byte (its file is kept as sent).
  auto named = p.Ingest(Write("1.2.3.4.6", "M\xfcLLER^HANS"), {});
  ASSERT_TRUE(named.ok()) << named.message;
  ASSERT_TRUE(p.Flush());
  auto studies = db_->FindStudies({});
  ASSERT_TRUE(studies && studies->size() == 1u);
  EXPECT_EQ((*studies)[0].instance_count, 1);
}

TEST_F(PipelineTest, StoresWithFsync) {
  IngestPipeline p(*blobs_, *db_, {DuplicatePolicy::kKeep, true, 256});
  EXPECT_EQ(p.Ingest(Write("1.2.3.4.5"), {}).status, IngestStatus::kStored);
  ASSERT_TRUE(p.Flush());
  EXPECT_EQ(p.syncs().files, 1u);
  EXPECT_EQ(p.syncs().journal, 1u);
  EXPECT_EQ(p.syncs().folders, 1u);
  EXPECT_EQ((*db_->FindStudies({}))[0].instance_count, 1);
  EXPECT_EQ(TempFiles(), 0u);
}

TEST_F(PipelineTest, KeepsTheFirstCopyOfADuplicate) {
  IngestPipeline p(*blobs_, *db_, {});
  ASSERT_TRUE(p.Ingest(Write("1.2.3.4.5", "FIRST"), {}).ok());
  auto again = p.Ingest(Write("1.2.3.4.5", "SECOND"), {});
  EXPECT_EQ(again.status, IngestStatus::kDuplicate);
  ASSERT_TRUE(p.Flush());
  EXPECT_EQ((*db_->FindStudies({}))[0].patient_name, "FIRST");
  EXPECT_EQ(TempFiles(), 0u);
}

TEST_F(PipelineTest, OverwritesWhenConfigured) {
  IngestPipeline p(*blobs_, *db_, {DuplicatePolicy::kOverwrite, false, 256});
  ASSERT_TRUE(p.Ingest(Write("1.2.3.4.5"), {}).ok());
  auto again = p.Ingest(Write("1.2.3.4.5"), {});
  EXPECT_EQ(again.status, IngestStatus::kReplaced);
  ASSERT_TRUE(p.Flush());
  EXPECT_EQ((*db_->FindStudies({}))[0].instance_count, 1);
}

TEST_F(PipelineTest, AnnouncesWhatReachedTheArchiveButNotWhatWasRefused) {
  IngestPipeline p(*blobs_, *db_, {});
  std::vector<Arrival> seen;
  EXPECT_FALSE(p.arrivals().HasSubscribers());
  {
    ArrivalSubscription sub(p.arrivals(), [&](const Arrival& a) { seen.push_back(a); });
    EXPECT_TRUE(p.arrivals().HasSubscribers());
    IngestSource moved = Source("PACS", "US", "127.0.0.1", "");
    moved.move_originator_ae = "US";
    moved.move_originator_id = 7;
    ASSERT_TRUE(p.Ingest(Write("1.2.3.4.5"), moved).ok());
    ASSERT_TRUE(p.Ingest(Write("1.2.3.4.5"), {}).ok());  // a duplicate: announced as present
    EXPECT_EQ(p.Ingest(Write("1.2.3.4.6"), Source("", "", "", "1.2.3.4.9")).status, IngestStatus::kInvalid);
  }
  EXPECT_FALSE(p.arrivals().HasSubscribers());
  ASSERT_TRUE(p.Ingest(Write("1.2.3.4.7"), {}).ok());  // after unsubscribing: not seen
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].sop_uid, "1.2.3.4.5");
  EXPECT_EQ(seen[0].calling_ae, "PACS");
  EXPECT_EQ(seen[0].move_originator_ae, "US");
  EXPECT_EQ(seen[0].move_originator_id, 7);
  EXPECT_FALSE(seen[0].was_present);
  EXPECT_GT(seen[0].bytes, 0);
  EXPECT_TRUE(seen[1].was_present);
}

TEST_F(PipelineTest, RefusesTruncatedFileAndCleansUp) {
  IngestPipeline p(*blobs_, *db_, {});
  auto path = blobs_->NewTempPath();
  std::ofstream(path) << "DICM but not really";
  auto out = p.Ingest(path, {});
  EXPECT_EQ(out.status, IngestStatus::kInvalid);
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(db_->FindStudies({})->empty());
}

TEST_F(PipelineTest, RefusesSopInstanceUidMismatch) {
  IngestPipeline p(*blobs_, *db_, {});
  auto out = p.Ingest(Write("1.2.3.4.5"), Source("SCU", "US", "", "1.2.3.4.6"));
  EXPECT_EQ(out.status, IngestStatus::kInvalid);
  EXPECT_NE(out.message.find("1.2.3.4.6"), std::string::npos);
  EXPECT_EQ(TempFiles(), 0u);
  EXPECT_TRUE(db_->FindStudies({})->empty());
}

TEST_F(PipelineTest, ManyThreadsAreGroupCommittedWithoutLoss) {
  IngestPipeline p(*blobs_, *db_, {});
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        if (p.Ingest(Write("1.2.3.4." + std::to_string(t * 100 + i + 1)), {}).ok()) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok, 200);
  ASSERT_TRUE(p.Flush());
  EXPECT_EQ((*db_->FindStudies({}))[0].instance_count, 200);
}

TEST_F(PipelineTest, JournalOfAnInterruptedRunIsReplayed) {
  // A run that placed files but stopped before indexing them: its journal names them.
  auto placed = Write("1.2.3.4.5");
  std::string rel = BlobStore::RelativePathFor("1.2.3", "1.2.3.4", "1.2.3.4.5");
  ASSERT_TRUE(blobs_->Place(placed, rel, false));
  std::ofstream(blobs_->journal_dir() / "journal-7.log") << rel << "\n"
                                                         << "1.2.3/1.2.3.4/never-placed.dcm\n";
  IngestPipeline p(*blobs_, *db_, {});
  auto n = p.Recover();
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(*n, 1);
  EXPECT_TRUE(db_->GetInstance("1.2.3.4.5")->has_value());
  EXPECT_FALSE(std::filesystem::exists(blobs_->journal_dir() / "journal-7.log"));
}

TEST_F(PipelineTest, ReplayLeavesWhatWasIndexedBeforeTheCrashAsItWas) {
  IngestSource from_modality;
  from_modality.calling_ae = "MODALITY1";
  {
    IngestPipeline p(*blobs_, *db_, {});
    ASSERT_TRUE(p.Ingest(Write("1.2.3.4.9"), from_modality).ok());
    ASSERT_TRUE(p.Flush());
  }
  auto before = db_->GetInstance("1.2.3.4.9");
  ASSERT_TRUE(before && *before);
  ASSERT_EQ((*before)->source_ae, "MODALITY1");
  // A journal still naming it (a crash before it was emptied): nothing to replay for it.
  std::ofstream(blobs_->journal_dir() / "journal-900.log") << (*before)->file_path << "\n";
  IngestPipeline p(*blobs_, *db_, {});
  auto n = p.Recover();
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(*n, 0);
  auto after = db_->GetInstance("1.2.3.4.9");
  ASSERT_TRUE(after && *after);
  EXPECT_EQ((*after)->source_ae, "MODALITY1");
  EXPECT_EQ((*after)->received_at, (*before)->received_at);
}

TEST_F(PipelineTest, JournalsAreRemovedOnceIndexed) {
  {
    IngestPipeline p(*blobs_, *db_, {});
    for (int i = 1; i <= 20; ++i) ASSERT_TRUE(p.Ingest(Write("1.2.3.4." + std::to_string(i)), {}).ok());
    ASSERT_TRUE(p.Flush());
  }
  size_t left = 0;
  for (const auto& e : std::filesystem::directory_iterator(blobs_->journal_dir())) {
    left += std::filesystem::file_size(e.path());
  }
  EXPECT_EQ(left, 0u);  // at most an empty active journal
  EXPECT_EQ((*db_->FindStudies({}))[0].instance_count, 20);
}

TEST_F(PipelineTest, AJournalIsEmptiedInPlaceAndRotatedOnlyWhenFull) {
  auto journals = [&] {
    std::map<std::string, uintmax_t> out;  // name → size
    for (const auto& e : std::filesystem::directory_iterator(blobs_->journal_dir())) {
      out[e.path().filename().string()] = std::filesystem::file_size(e.path());
    }
    return out;
  };
  IngestOptions o;
  o.journal_rotate_entries = 3;
  o.batch_window = std::chrono::seconds(60);  // a batch is what arrived before each Flush()
  IngestPipeline p(*blobs_, *db_, o);
  // Batches of one: the journal is reused (emptied once its entry is indexed), not replaced.
  ASSERT_TRUE(p.Ingest(Write("1.2.3.4.1"), {}).ok());
  ASSERT_TRUE(p.Flush());
  const auto first = journals();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first.begin()->second, 0u);
  ASSERT_TRUE(p.Ingest(Write("1.2.3.4.2"), {}).ok());
  ASSERT_TRUE(p.Flush());
  EXPECT_EQ(journals(), first);
  // A batch that finds the journal holding its limit moves arrivals to a fresh journal, and
  // the full one goes once all it names is indexed.
  for (int i = 3; i <= 5; ++i) ASSERT_TRUE(p.Ingest(Write("1.2.3.4." + std::to_string(i)), {}).ok());
  ASSERT_TRUE(p.Flush());
  ASSERT_TRUE(p.Ingest(Write("1.2.3.4.6"), {}).ok());
  ASSERT_TRUE(p.Flush());
  const auto after = journals();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_NE(after.begin()->first, first.begin()->first);
  EXPECT_EQ(after.begin()->second, 0u);
  EXPECT_EQ((*db_->FindStudies({}))[0].instance_count, 6);
}

}  // namespace
}  // namespace pb
