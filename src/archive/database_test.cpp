#include "archive/database.h"

#include <gtest/gtest.h>

#include "archive/blob_store.h"

namespace pb {
namespace {

class DatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pb-db-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto db = Database::Open(dir_ / "index.db", false);
    ASSERT_TRUE(db) << db.error().message;
    db_ = std::move(*db);
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
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

TEST(BlobStorePaths, HostileUidsStayInsideTheArchive) {
  std::string rel = BlobStore::RelativePathFor("../../etc", "1.2", "passwd/../x");
  EXPECT_EQ(rel.find(".."), std::string::npos);
  EXPECT_EQ(BlobStore::RelativePathFor("1.2", "1.2.3", "1.2.3.4"), "1.2/1.2.3/1.2.3.4.dcm");
}

}  // namespace
}  // namespace pb
