// The discard path of the one ingest path: an instance a discarding expectation (the C-MOVE
// self-test) awaits is answered success and leaves nothing behind, whatever the origin's
// target; anything else is ingested as always. And which instances a receiver may answer before
// storing them (a retrieve job's C-MOVE), with the wait of the job for those stores.
#include "ingest/origin_sink.h"
#include "archive/testing.h"

#include <fstream>
#include <iterator>
#include <thread>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gtest/gtest.h>

#include "dicom/dataset.h"
#include "dicom/header.h"

namespace pb {
namespace {

constexpr const char* kStudy = "1.2.3";
constexpr const char* kSeries = "1.2.3.4";

class DiscardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pb-discard-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    blobs_ = std::make_unique<BlobStore>(dir_);
    ASSERT_TRUE(blobs_->Prepare());
    db_ = std::move(*OpenTestDatabase(dir_));
    pipeline_ = std::make_unique<IngestPipeline>(*blobs_, *db_, IngestOptions{});
    staging_ = std::make_unique<StagingArea>(*pipeline_, *db_, *blobs_, [](const std::string&) { return 60; });
    site_ = std::make_unique<IngestSite>(
        IngestSite{*pipeline_, *staging_, expectations_, {}, "0123456789abcdef0123", {}, [] { return false; }});
    subscription_ =
        std::make_unique<ArrivalSubscription>(pipeline_->arrivals(), [this](const Arrival&) { ++announced_; });
  }
  void TearDown() override {
    subscription_.reset();
    site_.reset();
    staging_.reset();
    pipeline_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::filesystem::path Write(const std::string& sop) {
    DcmFileFormat ff;
    DcmDataset* ds = ff.getDataset();
    ds->putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
    ds->putAndInsertString(DCM_SOPInstanceUID, sop.c_str());
    ds->putAndInsertString(DCM_StudyInstanceUID, kStudy);
    ds->putAndInsertString(DCM_SeriesInstanceUID, kSeries);
    ds->putAndInsertString(DCM_PatientName, "DOE^JANE");
    ds->putAndInsertString(DCM_PatientID, "P1");
    auto path = blobs_->NewTempPath();
    EXPECT_TRUE(ff.saveFile(path.c_str(), EXS_LittleEndianExplicit).good());
    return path;
  }
  dicom::IncomingInstance Incoming(const std::string& sop, const std::string& originator_ae = "",
                                   int originator_id = -1) {
    dicom::IncomingInstance in;
    in.temp_file = Write(sop);
    in.sop_class_uid = UID_SecondaryCaptureImageStorage;
    in.sop_instance_uid = sop;
    in.calling_ae = "ORTHANC";
    in.called_ae = "PACSBRIDGE";
    in.peer_address = "127.0.0.1";
    in.file_size = static_cast<int64_t>(std::filesystem::file_size(in.temp_file));
    in.move_originator_ae = originator_ae;
    in.move_originator_id = originator_id;
    return in;
  }
  // The self-test's expectation: one SOP Instance, our calling AE title.
  std::shared_ptr<Expectation> Discarding(const std::string& sop) {
    auto e = std::make_shared<Expectation>();
    e->discard = true;
    e->discarded = counter_;
    e->calling_ae = "PB";
    e->sop_uids = {sop};
    return e;
  }
  std::shared_ptr<const IngestPolicy> Policy(bool staging = false, bool anonymize = false) {
    auto p = std::make_shared<IngestPolicy>();
    p->name = "receiver PACSBRIDGE";
    p->default_project = std::string(1, 'P');  // GCC 12 -Wrestrict false positive on a literal
    p->anonymize = anonymize;
    if (staging) p->staging_receiver = "r1";
    return p;
  }
  size_t FilesUnder(const std::filesystem::path& d) const {
    size_t n = 0;
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(d, ec); !ec && it != decltype(it){}; ++it) {
      if (it->is_regular_file()) ++n;
    }
    return n;
  }
  bool JournalNames(const std::string& sop) const {
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator(blobs_->journal_dir(), ec); !ec && it != decltype(it){}; ++it) {
      std::ifstream f(it->path());
      std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      if (text.find(sop) != std::string::npos) return true;
    }
    return false;
  }
  // Nothing of `sop` anywhere: no temp file, archive file, staged file, journal line, index row
  // or announcement.
  void ExpectNothingKept(const std::string& sop) {
    ASSERT_TRUE(pipeline_->Flush());
    EXPECT_EQ(FilesUnder(blobs_->tmp_dir()), 0u);
    EXPECT_EQ(FilesUnder(blobs_->archive_dir()), 0u);
    EXPECT_EQ(FilesUnder(blobs_->staging_dir()), 0u);
    EXPECT_FALSE(JournalNames(sop));
    auto row = db_->GetInstance(sop);
    ASSERT_TRUE(row);
    EXPECT_FALSE(row->has_value());
    EXPECT_EQ(announced_, 0);
  }

  std::filesystem::path dir_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<IngestPipeline> pipeline_;
  std::unique_ptr<StagingArea> staging_;
  ExpectationRegistry expectations_;
  std::unique_ptr<IngestSite> site_;
  std::unique_ptr<ArrivalSubscription> subscription_;
  int announced_ = 0;
  std::shared_ptr<DiscardCounter> counter_ = std::make_shared<DiscardCounter>();
};

TEST_F(DiscardTest, AnInstanceTheSelfTestAwaitsIsAnsweredSuccessAndLeavesNothing) {
  ExpectationScope scope(expectations_, Discarding("1.2.3.4.5"));
  expectations_.AddMessageId(scope.token(), 42);
  OriginSink sink(Policy(), *site_);
  dicom::StoreAnswer a = sink.Store(Incoming("1.2.3.4.5", "PB", 42));
  EXPECT_EQ(a.status, 0x0000);
  EXPECT_EQ(counter_->count(), 1u);
  ExpectNothingKept("1.2.3.4.5");
}

TEST_F(DiscardTest, WithoutAMoveOriginatorTheSopInstanceUidDecides) {
  ExpectationScope scope(expectations_, Discarding("1.2.3.4.5"));
  OriginSink sink(Policy(), *site_);
  EXPECT_EQ(sink.Store(Incoming("1.2.3.4.5")).status, 0x0000);
  // The C-MOVE's message ID is not known yet, but the Move Originator AE title is ours.
  EXPECT_EQ(sink.Store(Incoming("1.2.3.4.5", "PB", 7)).status, 0x0000);
  EXPECT_EQ(counter_->count(), 2u);
  ExpectNothingKept("1.2.3.4.5");
}

TEST_F(DiscardTest, AStagingReceiverStagesNothing) {
  ExpectationScope scope(expectations_, Discarding("1.2.3.4.5"));
  OriginSink sink(Policy(/*staging=*/true), *site_);
  EXPECT_EQ(sink.Store(Incoming("1.2.3.4.5")).status, 0x0000);
  EXPECT_EQ(counter_->count(), 1u);
  ExpectNothingKept("1.2.3.4.5");
}

TEST_F(DiscardTest, AnAnonymizingReceiverDiscardsTheDataSetInMemory) {
  ExpectationScope scope(expectations_, Discarding("1.2.3.4.5"));
  OriginSink sink(Policy(false, /*anonymize=*/true), *site_);
  ASSERT_TRUE(sink.WantsDataset());
  dicom::IncomingInstance in = Incoming("1.2.3.4.5");
  auto data = dicom::Dataset::Read(in.temp_file);
  ASSERT_TRUE(data);
  std::filesystem::remove(in.temp_file);
  in.temp_file.clear();
  EXPECT_EQ(sink.StoreDataset(in, **data).status, 0x0000);
  EXPECT_EQ(counter_->count(), 1u);
  ExpectNothingKept("1.2.3.4.5");
}

TEST_F(DiscardTest, OtherInstancesAndOthersMovesAreStoredAsAlways) {
  ExpectationScope scope(expectations_, Discarding("1.2.3.4.5"));
  expectations_.AddMessageId(scope.token(), 42);
  OriginSink sink(Policy(), *site_);
  EXPECT_EQ(sink.Store(Incoming("1.2.3.4.6")).status, 0x0000);  // another instance
  // The same instance for someone else's C-MOVE (another Move Originator): theirs, kept.
  EXPECT_EQ(sink.Store(Incoming("1.2.3.4.5", "VIEWER", 3)).status, 0x0000);
  EXPECT_EQ(counter_->count(), 0u);
  ASSERT_TRUE(pipeline_->Flush());
  for (const char* sop : {"1.2.3.4.5", "1.2.3.4.6"}) {
    auto row = db_->GetInstance(sop);
    ASSERT_TRUE(row);
    EXPECT_TRUE(row->has_value()) << sop;
  }
  EXPECT_EQ(announced_, 2);
}

TEST_F(DiscardTest, ARetrieveJobAwaitingTheSameInstanceIsServedFirst) {
  auto job = std::make_shared<Expectation>();
  job->job_id = 9;
  job->study_uids = {kStudy};
  ExpectationScope self_test(expectations_, Discarding("1.2.3.4.5"));  // registered first
  ExpectationScope retrieve(expectations_, job);
  OriginSink sink(Policy(), *site_);
  EXPECT_EQ(sink.Store(Incoming("1.2.3.4.5")).status, 0x0000);
  EXPECT_EQ(counter_->count(), 0u);  // the self-test sees nothing; the job gets its instance
  ASSERT_TRUE(pipeline_->Flush());
  auto row = db_->GetInstance("1.2.3.4.5");
  ASSERT_TRUE(row);
  EXPECT_TRUE(row->has_value());
}

// An origin limited to some projects (a STOW-RS sender's account): what its rules file
// elsewhere is refused with 0x0124 (PS3.7 C.4.1 Refused: Not Authorized) and nothing is kept;
// what they file in one of its projects is stored.
TEST_F(DiscardTest, AnInstanceFiledOutsideTheWritableProjectsIsRefusedAndLeavesNothing) {
  auto limited = std::make_shared<IngestPolicy>(*Policy());  // files everything in project "P"
  limited->writable_projects = {"LAB-A", "LAB-B"};
  OriginSink sink(limited, *site_);
  const dicom::StoreAnswer a = sink.Store(Incoming("1.2.3.4.5"));
  EXPECT_EQ(a.status, 0x0124);
  EXPECT_NE(a.error_comment.find("'P'"), std::string::npos) << a.error_comment;
  ExpectNothingKept("1.2.3.4.5");
}

TEST_F(DiscardTest, AnInMemoryInstanceFiledOutsideTheWritableProjectsIsRefused) {
  auto limited = std::make_shared<IngestPolicy>(*Policy(false, /*anonymize=*/true));
  limited->writable_projects = {"LAB-A"};
  OriginSink sink(limited, *site_);
  dicom::IncomingInstance in = Incoming("1.2.3.4.5");
  auto data = dicom::Dataset::Read(in.temp_file);
  ASSERT_TRUE(data);
  std::filesystem::remove(in.temp_file);
  in.temp_file.clear();
  EXPECT_EQ(sink.StoreDataset(in, **data).status, 0x0124);
  ExpectNothingKept("1.2.3.4.5");
}

TEST_F(DiscardTest, AnInstanceFiledInAWritableProjectIsStored) {
  auto limited = std::make_shared<IngestPolicy>(*Policy());
  limited->writable_projects = {"P"};
  OriginSink sink(limited, *site_);
  EXPECT_EQ(sink.Store(Incoming("1.2.3.4.5")).status, 0x0000);
  ASSERT_TRUE(pipeline_->Flush());
  auto row = db_->GetInstance("1.2.3.4.5");
  ASSERT_TRUE(row);
  EXPECT_TRUE(row->has_value());
  auto outside = db_->GetInstance("1.2.3.4.5", {"LAB-A"});
  ASSERT_TRUE(outside);
  EXPECT_FALSE(outside->has_value());
}

// A retrieve job's C-MOVE: what the PACS sends naming the job's request may be answered before
// it is stored, and the job can wait until every such store is done.
class AnswerFirstTest : public DiscardTest {
 protected:
  std::shared_ptr<Expectation> Retrieving() {
    auto e = std::make_shared<Expectation>();
    e->job_id = 9;
    e->study_uids = {kStudy};
    e->calling_ae = "PB";
    e->pending_stores = std::make_shared<PendingStores>();
    return e;
  }
  dicom::IncomingInstance WithHeader(dicom::IncomingInstance in) {
    auto h = dicom::ReadHeader(in.temp_file);
    EXPECT_TRUE(h);
    if (h) in.header = *h;
    return in;
  }
};

TEST_F(AnswerFirstTest, TheJobWaitsUntilWhatWasAnsweredFirstIsStored) {
  auto job = Retrieving();
  ExpectationScope scope(expectations_, job);
  expectations_.AddMessageId(scope.token(), 42);
  OriginSink sink(Policy(), *site_);
  dicom::IncomingInstance in = WithHeader(Incoming("1.2.3.4.5", "PB", 42));
  auto pending = sink.AnswerBeforeStore(in);
  ASSERT_NE(pending, nullptr);
  EXPECT_FALSE(job->pending_stores->WaitIdle(std::chrono::steady_clock::now() + std::chrono::milliseconds(20)));
  std::thread store([&] {
    pending->Finished(sink.Store(in).status == 0x0000);
    pending.reset();
  });
  EXPECT_TRUE(job->pending_stores->WaitIdle(std::chrono::steady_clock::now() + std::chrono::seconds(30)));
  EXPECT_EQ(announced_, 1);  // idle only once the store announced its arrival
  store.join();
  EXPECT_EQ(job->pending_stores->failed(), 0u);
}

TEST_F(AnswerFirstTest, NothingElseIsAnsweredFirst) {
  auto job = Retrieving();
  ExpectationScope scope(expectations_, job);
  expectations_.AddMessageId(scope.token(), 42);
  OriginSink sink(Policy(), *site_);
  // No Move Originator (a modality's store of the same study), someone else's C-MOVE, no header.
  EXPECT_EQ(sink.AnswerBeforeStore(WithHeader(Incoming("1.2.3.4.6"))), nullptr);
  EXPECT_EQ(sink.AnswerBeforeStore(WithHeader(Incoming("1.2.3.4.7", "VIEWER", 42))), nullptr);
  EXPECT_EQ(sink.AnswerBeforeStore(Incoming("1.2.3.4.8", "PB", 42)), nullptr);
  // The C-MOVE self-test.
  ExpectationScope self_test(expectations_, Discarding("1.2.3.4.10"));
  expectations_.AddMessageId(self_test.token(), 44);
  EXPECT_EQ(sink.AnswerBeforeStore(WithHeader(Incoming("1.2.3.4.10", "PB", 44))), nullptr);
  EXPECT_TRUE(job->pending_stores->WaitIdle(std::chrono::steady_clock::now()));
}

TEST_F(AnswerFirstTest, AJobThatDoesNotWaitForStoresIsNotAnsweredFirst) {
  auto job = Retrieving();
  job->pending_stores = nullptr;
  ExpectationScope scope(expectations_, job);
  expectations_.AddMessageId(scope.token(), 43);
  OriginSink sink(Policy(), *site_);
  EXPECT_EQ(sink.AnswerBeforeStore(WithHeader(Incoming("1.2.3.4.9", "PB", 43))), nullptr);
}

// A retrieve job's C-GET: its own policy says so, for whatever it brings; a store that fails
// after the answer is counted, so the job does not take the PACS's count for it.
TEST_F(AnswerFirstTest, AJobsOwnSinkAnswersFirstAndCountsWhatFailsToStore) {
  auto stores = std::make_shared<PendingStores>();
  auto policy = std::make_shared<IngestPolicy>();
  policy->name = "retrieve job 9";
  policy->answer_first = stores;
  OriginSink sink(policy, *site_);
  dicom::IncomingInstance good = WithHeader(Incoming("1.2.3.4.11"));
  auto first = sink.AnswerBeforeStore(good);
  ASSERT_NE(first, nullptr);
  first->Finished(sink.Store(good).status == 0x0000);
  first.reset();
  // Unreadable after the answer: the temp file is gone when the sink reads it.
  dicom::IncomingInstance lost = WithHeader(Incoming("1.2.3.4.12"));
  auto second = sink.AnswerBeforeStore(lost);
  ASSERT_NE(second, nullptr);
  lost.header.reset();
  std::filesystem::remove(lost.temp_file);
  second->Finished(sink.Store(lost).status == 0x0000);
  second.reset();
  // Dropped without a word (an exception on the way): counted as not stored.
  auto third = sink.AnswerBeforeStore(WithHeader(Incoming("1.2.3.4.13")));
  ASSERT_NE(third, nullptr);
  third.reset();
  EXPECT_TRUE(stores->WaitIdle(std::chrono::steady_clock::now()));
  EXPECT_EQ(stores->failed(), 2u);
  EXPECT_EQ(announced_, 1);
}

TEST(DiscardCounter, WaitsForTheCountOrTheDeadline) {
  DiscardCounter c;
  const auto soon = std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
  EXPECT_EQ(c.WaitFor(1, soon), 0u);
  EXPECT_GE(std::chrono::steady_clock::now(), soon);
  std::thread t([&] { c.Add(); });
  EXPECT_EQ(c.WaitFor(1, std::chrono::steady_clock::now() + std::chrono::seconds(30)), 1u);
  t.join();
}

TEST(Expectations, ADiscardingOneMatchesOnlyItsInstanceAndItsOwnMove) {
  ExpectationRegistry reg;
  auto d = std::make_shared<Expectation>();
  d->discard = true;
  d->discarded = std::make_shared<DiscardCounter>();
  d->calling_ae = "PB";
  d->sop_uids = {"5.5"};
  d->study_uids = {"1.1"};  // never used to match a discarding expectation
  ExpectationScope s(reg, d);
  reg.AddMessageId(s.token(), 11);
  EXPECT_TRUE(reg.Match("5.5", "x", "y", "PB", 11)->discard);
  EXPECT_TRUE(reg.Match("5.5", "x", "y", "", -1)->discard);
  EXPECT_TRUE(reg.Match("5.5", "x", "y", "PB", 12)->discard);  // ours, ID not registered yet
  EXPECT_EQ(reg.Match("5.5", "x", "y", "OTHER", 11), nullptr);
  EXPECT_EQ(reg.Match("5.6", "x", "1.1", "", -1), nullptr);
}

}  // namespace
}  // namespace pb
