#include "transport/retrieve_plan.h"

#include <gtest/gtest.h>

namespace pb {
namespace {

RetrievePlan TwoSeries() {
  RetrievePlan plan;
  plan.listed = true;
  plan.series_study = {{"1.1", "1"}, {"1.2", "1"}};
  for (const char* sop : {"1.1.1", "1.1.2", "1.1.3"}) plan.instances[sop] = {"1", "1.1", "1.2.840.10008.5.1.4.1.1.2"};
  for (const char* sop : {"1.2.1", "1.2.2"}) plan.instances[sop] = {"1", "1.2", "1.2.840.10008.5.1.4.1.1.4"};
  plan.expected_count = 5;
  return plan;
}

TEST(RetrieveTargets, NothingHereAsksForWhatWasAsked) {
  RetrieveParams p{"n", "STUDY", "auto", {"1"}, "", "", "", "", ""};
  auto t = TargetsFor(p, TwoSeries(), {});
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].level, "STUDY");
  EXPECT_EQ(t[0].uids, std::vector<std::string>{"1"});
}

TEST(RetrieveTargets, SomethingHereAsksOnlyForWhatIsMissing) {
  RetrieveParams p{"n", "STUDY", "auto", {"1"}, "", "", "", "", ""};
  // Series 1.1 has one instance here; series 1.2 has none: the whole series is asked for.
  auto t = TargetsFor(p, TwoSeries(), {"1.1.2"});
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].level, "IMAGE");
  EXPECT_EQ(t[0].study_uid, "1");
  EXPECT_EQ(t[0].series_uid, "1.1");
  EXPECT_EQ(t[0].uids, (std::vector<std::string>{"1.1.1", "1.1.3"}));
  EXPECT_EQ(t[1].level, "SERIES");
  EXPECT_EQ(t[1].uids, std::vector<std::string>{"1.2"});
  EXPECT_EQ(t[1].study_uid, "1");
}

TEST(RetrieveTargets, SeriesAreGroupedByTheirStudy) {
  RetrievePlan plan;
  plan.series_study = {{"1.1", "1"}, {"2.1", "2"}, {"1.2", "1"}};
  RetrieveParams p{"n", "SERIES", "auto", {"1.1", "2.1", "1.2"}, "", "", "", "", ""};
  auto t = TargetsFor(p, plan, {});
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].study_uid, "1");
  EXPECT_EQ(t[0].uids, (std::vector<std::string>{"1.1", "1.2"}));
  EXPECT_EQ(t[1].study_uid, "2");
}

TEST(RetrieveTargets, LongInstanceListsAreSplit) {
  RetrievePlan plan;
  plan.listed = true;
  plan.series_study = {{"1.1", "1"}};
  for (int i = 0; i < 450; ++i) plan.instances["1.1." + std::to_string(i + 1)] = {"1", "1.1", ""};
  RetrieveParams p{"n", "SERIES", "auto", {"1.1"}, "1", "", "", "", ""};
  auto t = TargetsFor(p, plan, {"1.1.1"});
  ASSERT_EQ(t.size(), 3u);  // 449 missing, 200 per request
  size_t total = 0;
  for (const auto& x : t) {
    EXPECT_EQ(x.level, "IMAGE");
    EXPECT_LE(x.uids.size(), 200u);
    total += x.uids.size();
  }
  EXPECT_EQ(total, 449u);
}

}  // namespace
}  // namespace pb
