// Database::QueryIndex against a small index written here: matching as PS3.4 C.2.2.2 defines
// it, levels, computed attributes, the projects a caller may see, and paging.
#include <algorithm>
#include <filesystem>

#include <gtest/gtest.h>

#include "archive/blob_store.h"
#include "archive/database.h"
#include "archive/testing.h"

namespace pb {
namespace {

struct Row {
  std::string patient_id, patient_name, study_uid, study_date, study_time, series_uid, modality, sop_uid, sop_class,
      project;
};

class IndexQueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pb-iq-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto db = OpenTestDatabase(dir_);
    ASSERT_TRUE(db) << db.error().message;
    db_ = std::move(*db);
    const std::string ct = "1.2.840.10008.5.1.4.1.1.2", mr = "1.2.840.10008.5.1.4.1.1.4",
                      sr = "1.2.840.10008.5.1.4.1.1.88.11";
    const Row rows[] = {
        {"P1", "Müller^Hans", "1", "20240115", "083000", "1.1", "CT", "1.1.1", ct, "LAB1"},
        {"P1", "Müller^Hans", "1", "20240115", "083000", "1.1", "CT", "1.1.2", ct, "LAB1"},
        {"P1", "Müller^Hans", "1", "20240115", "083000", "1.2", "SR", "1.2.1", sr, "LAB1"},
        {"P1", "Müller^Hans", "2", "20240301", "130045", "2.1", "MR", "2.1.1", mr, "LAB2"},
        {"P2", "Yamada^Tarou=山田^太郎=やまだ^たろう", "3", "20231231", "235959", "3.1", "MR", "3.1.1", mr, "LAB1"},
        {"P2", "Yamada^Tarou=山田^太郎=やまだ^たろう", "3", "20231231", "235959", "3.2", "MR", "3.2.1", mr, "LAB2"},
        {"P3", "doe^jane", "4", "", "", "4.1", "CT", "4.1.1", ct, "LAB2"},
        {"P4", "Odd[1]^Name", "5", "20240601", "1200", "5.1", "CT", "5.1.1", ct, "LAB2"},
    };
    auto b = db_->BeginBatch();
    ASSERT_TRUE(b);
    int n = 0;
    for (const Row& r : rows) {
      InstanceRecord rec;
      rec.patient_id = r.patient_id;
      rec.patient_name = r.patient_name;
      rec.study_uid = r.study_uid;
      rec.study_date = r.study_date;
      rec.study_time = r.study_time;
      rec.accession_number = "ACC" + r.study_uid;
      rec.series_uid = r.series_uid;
      rec.series_number = std::to_string(++n);
      rec.modality = r.modality;
      rec.sop_uid = r.sop_uid;
      rec.sop_class_uid = r.sop_class;
      rec.instance_number = std::to_string(n);
      rec.project = r.project;
      rec.file_path = BlobStore::RelativePathFor(r.study_uid, r.series_uid, r.sop_uid);
      rec.file_size = 10;
      ASSERT_TRUE((*b)->Put(rec));
    }
    ASSERT_TRUE((*b)->Commit());
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  // The values of `keyword` in the answers of a query, sorted.
  std::vector<std::string> Values(IndexQuery q, const std::string& keyword) {
    q.returns.push_back(keyword);
    auto answers = db_->QueryIndex(q);
    EXPECT_TRUE(answers) << answers.error().message;
    std::vector<std::string> out;
    if (!answers) return out;
    for (auto& a : *answers) out.push_back(a[keyword]);
    std::sort(out.begin(), out.end());
    return out;
  }
  std::vector<std::string> Studies(std::vector<std::pair<std::string, std::string>> keys, bool ignore_case = false) {
    IndexQuery q;
    q.level = IndexLevel::kStudy;
    q.keys = std::move(keys);
    q.names_ignore_case = ignore_case;
    return Values(q, "StudyInstanceUID");
  }
  using V = std::vector<std::string>;
  std::filesystem::path dir_;
  std::unique_ptr<Database> db_;
};

TEST_F(IndexQueryTest, UniversalAndSingleValueMatching) {
  EXPECT_EQ(Studies({}), (V{"1", "2", "3", "4", "5"}));
  EXPECT_EQ(Studies({{"PatientID", ""}}), (V{"1", "2", "3", "4", "5"}));  // empty: universal
  EXPECT_EQ(Studies({{"PatientID", "P1"}}), (V{"1", "2"}));
  EXPECT_EQ(Studies({{"PatientID", "p1"}}), V{});               // case sensitive
  EXPECT_EQ(Studies({{"PatientID", "  P1 "}}), (V{"1", "2"}));  // padding is not significant
  EXPECT_EQ(Studies({{"AccessionNumber", "ACC3"}}), V{"3"});
}

TEST_F(IndexQueryTest, Wildcards) {
  EXPECT_EQ(Studies({{"PatientName", "Mü*"}}), (V{"1", "2"}));
  EXPECT_EQ(Studies({{"PatientName", "*Tarou*"}}), V{"3"});
  EXPECT_EQ(Studies({{"PatientName", "do?^jane"}}), V{"4"});
  EXPECT_EQ(Studies({{"PatientName", "*"}}), (V{"1", "2", "3", "4", "5"}));
  EXPECT_EQ(Studies({{"AccessionNumber", "ACC?"}}), (V{"1", "2", "3", "4", "5"}));
  // '[' is an ordinary character in DICOM, not a GLOB class.
  EXPECT_EQ(Studies({{"PatientName", "Odd[1]*"}}), V{"5"});
  EXPECT_EQ(Studies({{"PatientName", "Odd[1]^Name"}}), V{"5"});
  EXPECT_EQ(Studies({{"PatientName", "Odd1*"}}), V{});
}

TEST_F(IndexQueryTest, NamesByComponentGroupAndOptionallyIgnoringCase) {
  EXPECT_EQ(Studies({{"PatientName", "Yamada^Tarou"}}), V{"3"});  // the alphabetic group
  EXPECT_EQ(Studies({{"PatientName", "山田^太郎"}}), V{"3"});     // the ideographic group
  EXPECT_EQ(Studies({{"PatientName", "Yamada"}}), V{});           // a group is matched whole
  EXPECT_EQ(Studies({{"PatientName", "DOE^JANE"}}), V{});
  EXPECT_EQ(Studies({{"PatientName", "DOE^JANE"}}, true), V{"4"});
  EXPECT_EQ(Studies({{"PatientName", "D*"}}, true), V{"4"});
}

TEST_F(IndexQueryTest, DateAndTimeRanges) {
  EXPECT_EQ(Studies({{"StudyDate", "20240101-20240331"}}), (V{"1", "2"}));
  EXPECT_EQ(Studies({{"StudyDate", "-20240115"}}), (V{"1", "3"}));  // an empty date never matches a range
  EXPECT_EQ(Studies({{"StudyDate", "20240301-"}}), (V{"2", "5"}));
  EXPECT_EQ(Studies({{"StudyDate", "20231231"}}), V{"3"});
  // The end of a time range covers its whole last unit: 13:00:45 is within "-1300".
  EXPECT_EQ(Studies({{"StudyTime", "1200-1300"}}), (V{"2", "5"}));
  EXPECT_EQ(Studies({{"StudyTime", "0800-0830"}}), V{"1"});
  EXPECT_EQ(Studies({{"StudyTime", "2359-"}}), V{"3"});
  EXPECT_EQ(Studies({{"StudyTime", "2300-0830"}}), (V{"1", "3"}));  // across midnight
}

TEST_F(IndexQueryTest, UidListsAndCodeStringLists) {
  EXPECT_EQ(Studies({{"StudyInstanceUID", "1\\3\\9"}}), (V{"1", "3"}));
  EXPECT_EQ(Studies({{"ModalitiesInStudy", "SR"}}), V{"1"});
  EXPECT_EQ(Studies({{"ModalitiesInStudy", "SR\\MR"}}), (V{"1", "2", "3"}));
  EXPECT_EQ(Studies({{"SOPClassesInStudy", "1.2.840.10008.5.1.4.1.1.88.11"}}), V{"1"});
  // Hostile text is a value like any other.
  EXPECT_EQ(Studies({{"PatientID", "' OR 1=1 --"}}), V{});
}

TEST_F(IndexQueryTest, ComputedAttributes) {
  IndexQuery q;
  q.level = IndexLevel::kStudy;
  q.keys = {{"StudyInstanceUID", "1"}};
  q.returns = {"NumberOfStudyRelatedSeries",
               "NumberOfStudyRelatedInstances",
               "ModalitiesInStudy",
               "SOPClassesInStudy",
               "PatientName",
               "Modality"};
  auto a = db_->QueryIndex(q);
  ASSERT_TRUE(a) << a.error().message;
  ASSERT_EQ(a->size(), 1u);
  EXPECT_EQ((*a)[0]["NumberOfStudyRelatedSeries"], "2");
  EXPECT_EQ((*a)[0]["NumberOfStudyRelatedInstances"], "3");
  std::string mods = (*a)[0]["ModalitiesInStudy"];
  EXPECT_TRUE(mods == "CT\\SR" || mods == "SR\\CT") << mods;
  EXPECT_EQ((*a)[0]["PatientName"], "Müller^Hans");  // upper levels' attributes come along
  EXPECT_EQ((*a)[0].count("Modality"), 0u);          // a series attribute is not a study's

  IndexQuery p;
  p.level = IndexLevel::kPatient;
  p.keys = {{"PatientID", "P1"}};
  p.returns = {"NumberOfPatientRelatedStudies", "NumberOfPatientRelatedSeries", "NumberOfPatientRelatedInstances"};
  auto pa = db_->QueryIndex(p);
  ASSERT_TRUE(pa);
  ASSERT_EQ(pa->size(), 1u);
  EXPECT_EQ((*pa)[0]["NumberOfPatientRelatedStudies"], "2");
  EXPECT_EQ((*pa)[0]["NumberOfPatientRelatedSeries"], "3");
  EXPECT_EQ((*pa)[0]["NumberOfPatientRelatedInstances"], "4");
}

TEST_F(IndexQueryTest, LowerLevelsWithTheKeysOfTheLevelsAbove) {
  IndexQuery s;
  s.level = IndexLevel::kSeries;
  s.keys = {{"StudyInstanceUID", "1"}};
  s.returns = {"Modality", "NumberOfSeriesRelatedInstances"};
  EXPECT_EQ(Values(s, "SeriesInstanceUID"), (V{"1.1", "1.2"}));
  EXPECT_EQ(Values(s, "NumberOfSeriesRelatedInstances"), (V{"1", "2"}));

  IndexQuery i;
  i.level = IndexLevel::kImage;
  i.keys = {{"PatientID", "P2"}, {"Modality", "MR"}};
  EXPECT_EQ(Values(i, "SOPInstanceUID"), (V{"3.1.1", "3.2.1"}));
  EXPECT_EQ(Values(i, "StudyInstanceUID"), (V{"3", "3"}));
  EXPECT_FALSE(IndexKnows(IndexLevel::kStudy, "Modality"));
  EXPECT_TRUE(IndexKnows(IndexLevel::kImage, "PatientName"));
  EXPECT_FALSE(IndexKnows(IndexLevel::kSeries, "NumberOfStudyRelatedInstances"));
  EXPECT_FALSE(IndexKnows(IndexLevel::kStudy, "OtherPatientIDs"));
}

TEST_F(IndexQueryTest, OnlyTheVisibleProjectsAreSeenAndCounted) {
  IndexQuery q;
  q.level = IndexLevel::kStudy;
  q.projects = {"LAB1"};
  q.returns = {"NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"};
  q.returns.push_back("StudyInstanceUID");
  auto a = db_->QueryIndex(q);
  ASSERT_TRUE(a);
  std::map<std::string, std::string> series;
  for (auto& row : *a) series[row["StudyInstanceUID"]] = row["NumberOfStudyRelatedSeries"];
  // Study 3 has a series in LAB1 and one in LAB2: seen, with one series.
  EXPECT_EQ(series, (std::map<std::string, std::string>{{"1", "2"}, {"3", "1"}}));

  IndexQuery i;
  i.level = IndexLevel::kImage;
  i.projects = {"LAB1"};
  i.keys = {{"PatientID", "P2"}};
  EXPECT_EQ(Values(i, "SOPInstanceUID"), V{"3.1.1"});

  IndexQuery p;
  p.level = IndexLevel::kPatient;
  p.projects = {"LAB2"};
  EXPECT_EQ(Values(p, "PatientID"), (V{"P1", "P2", "P3", "P4"}));
  p.projects = {"LAB1"};
  p.returns = {"NumberOfPatientRelatedStudies"};
  EXPECT_EQ(Values(p, "PatientID"), (V{"P1", "P2"}));
  p.keys = {{"PatientID", "P1"}};
  EXPECT_EQ(Values(p, "NumberOfPatientRelatedStudies"), V{"1"});
}

TEST_F(IndexQueryTest, PagesDoNotOverlapOrSkip) {
  IndexQuery q;
  q.level = IndexLevel::kImage;
  q.limit = 3;
  std::vector<std::string> all;
  for (q.offset = 0;; q.offset += q.limit) {
    auto page = Values(q, "SOPInstanceUID");
    all.insert(all.end(), page.begin(), page.end());
    if (page.size() < q.limit) break;
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (V{"1.1.1", "1.1.2", "1.2.1", "2.1.1", "3.1.1", "3.2.1", "4.1.1", "5.1.1"}));
}

TEST_F(IndexQueryTest, InstancesToRetrieveWithTheirFiles) {
  IndexQuery q;
  q.level = IndexLevel::kStudy;
  q.keys = {{"StudyInstanceUID", "3"}};
  auto all = db_->QueryInstances(q);
  ASSERT_TRUE(all) << all.error().message;
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].file_path, BlobStore::RelativePathFor("3", "3.1", "3.1.1"));
  EXPECT_EQ((*all)[0].sop_class_uid, "1.2.840.10008.5.1.4.1.1.4");
  q.projects = {"LAB2"};  // the series filed in LAB1 is not retrieved through a LAB2 window
  auto visible = db_->QueryInstances(q);
  ASSERT_TRUE(visible);
  ASSERT_EQ(visible->size(), 1u);
  EXPECT_EQ((*visible)[0].sop_uid, "3.2.1");
  q.level = IndexLevel::kSeries;
  q.projects.clear();
  q.keys = {{"SeriesInstanceUID", "1.1\\1.2"}};
  auto series = db_->QueryInstances(q);
  ASSERT_TRUE(series);
  EXPECT_EQ(series->size(), 3u);
}

}  // namespace
}  // namespace pb
