#include "ingest/staging_plan.h"

#include <gtest/gtest.h>

namespace pb {
namespace {

const FilingLabels kRouted{"QUICKP", "SMITH_JANE", "SM1"};

TEST(PlanFiling, NewSeriesGoWhereRoutingSaid) {
  FilingPlan p = PlanFiling(kRouted, {{"1.1", 3}, {"1.2", 2}}, {});
  ASSERT_EQ(p.destinations.size(), 1u);
  EXPECT_EQ(p.effective(), kRouted);
  EXPECT_EQ(p.destinations[0].staged_instances, 5);
  EXPECT_FALSE(p.split());
  EXPECT_EQ(p.Note(), "");
}

TEST(PlanFiling, ASeriesFiledElsewhereKeepsItsLabels) {
  // The first-hour case: the series had been filed under ACC1 through the default receiver.
  FilingPlan p = PlanFiling(kRouted, {{"1.1", 1}}, {{"1.1", FiledSeries{"ACC1", "SMITH_JANE", "ACC1", 4}}});
  ASSERT_EQ(p.destinations.size(), 1u);
  EXPECT_EQ(p.effective(), (FilingLabels{"ACC1", "SMITH_JANE", "ACC1"}));
  EXPECT_EQ(p.Note(),
            "filed under ACC1/SMITH_JANE/ACC1, where its series are already filed (not QUICKP/SMITH_JANE/SM1 as "
            "routed); merged with 4 instance(s) there");
}

TEST(PlanFiling, SomeSeriesElsewhereSplitsTheSession) {
  FilingPlan p = PlanFiling(kRouted, {{"1.1", 1}, {"1.2", 2}}, {{"1.1", FiledSeries{"ACC1", "S", "E", 4}}});
  ASSERT_TRUE(p.split());
  EXPECT_EQ(p.effective(), kRouted);
  EXPECT_EQ(p.destinations[0].labels, kRouted);  // the routed labels come first
  EXPECT_EQ(p.destinations[0].series_uids, std::vector<std::string>{"1.2"});
  EXPECT_EQ(p.destinations[1].series_uids, std::vector<std::string>{"1.1"});
  EXPECT_EQ(p.Note(),
            "split: 1 series (2 instance(s)) to QUICKP/SMITH_JANE/SM1; 1 series (1 instance(s)) to ACC1/S/E, where "
            "they are already filed, merged with 4 instance(s) there");
}

TEST(PlanFiling, ASplitWhereNoSeriesGetsTheRoutedLabelsShowsTheLargestDestination) {
  FilingPlan p = PlanFiling(kRouted, {{"1.1", 1}, {"1.2", 3}},
                            {{"1.1", FiledSeries{"ACC1", "S", "E", 1}}, {"1.2", FiledSeries{"ACC2", "S", "E", 1}}});
  ASSERT_TRUE(p.split());
  EXPECT_EQ(p.effective(), (FilingLabels{"ACC2", "S", "E"}));
}

TEST(PlanFiling, ASeriesFiledUnderTheSameLabelsMerges) {
  FilingPlan p = PlanFiling(kRouted, {{"1.1", 2}}, {{"1.1", FiledSeries{"QUICKP", "SMITH_JANE", "SM1", 3}}});
  EXPECT_FALSE(p.split());
  EXPECT_EQ(p.effective(), kRouted);
  EXPECT_EQ(p.Note(), "merged with 3 instance(s) already filed there");
}

TEST(PlanFiling, ASeriesInTheArchiveWithoutLabelsTakesTheSessions) {
  FilingPlan p = PlanFiling(kRouted, {{"1.1", 1}}, {{"1.1", FiledSeries{"", "", "", 2}}});
  EXPECT_EQ(p.effective(), kRouted);
  EXPECT_FALSE(p.destinations[0].already_filed);
}

}  // namespace
}  // namespace pb
