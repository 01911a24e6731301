#include "nodes/schedule.h"

#include <gtest/gtest.h>

namespace pb {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

// UTC instants, written out: the expected values below come from the rules of the zone
// (Europe/Paris: UTC+1 in winter, UTC+2 in summer; in 2026 summer time starts on Sunday
// 29 March at 01:00 UTC and ends on Sunday 25 October at 01:00 UTC), not from the code.
TimePoint Utc(const char* iso) { return *ParseUtcIso(iso); }

Schedule Paris(json windows) {
  auto s = Schedule::Parse({{"timezone", "Europe/Paris"}, {"windows", windows}});
  EXPECT_TRUE(s) << s.error().field << ": " << s.error().message;
  return *s;
}

const json kOfficeHours =
    json::array({{{"days", {"mon", "tue", "wed", "thu", "fri"}}, {"start", "08:00"}, {"end", "18:00"}}});

TEST(ScheduleTest, NoScheduleIsAlwaysAvailable) {
  auto s = Schedule::Parse(nullptr);
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->always());
  auto a = s->At(Utc("2026-12-02T03:00:00Z"));
  EXPECT_TRUE(a.open);
  EXPECT_FALSE(a.next_change);
}

TEST(ScheduleTest, OfficeHoursOnAWinterWeekday) {
  Schedule s = Paris(kOfficeHours);
  // Wednesday 2 December 2026, 07:00 in Paris (06:00 UTC): closed until 08:00 local = 07:00 UTC.
  auto before = s.At(Utc("2026-12-02T06:00:00Z"));
  EXPECT_FALSE(before.open);
  EXPECT_EQ(before.next_change, Utc("2026-12-02T07:00:00Z"));
  auto during = s.At(Utc("2026-12-02T12:00:00Z"));
  EXPECT_TRUE(during.open);
  EXPECT_EQ(during.next_change, Utc("2026-12-02T17:00:00Z"));
  // Friday 4 December, 18:30 local: next is Monday 7 December, 08:00 local.
  auto weekend = s.At(Utc("2026-12-04T17:30:00Z"));
  EXPECT_FALSE(weekend.open);
  EXPECT_EQ(weekend.next_change, Utc("2026-12-07T07:00:00Z"));
}

TEST(ScheduleTest, AWindowAcrossMidnightRunsIntoTheNextDay) {
  Schedule s = Paris(json::array({{{"days", {"fri"}}, {"start", "22:00"}, {"end", "06:00"}}}));
  // Saturday 5 December, 03:00 local: inside Friday's window, which ends at 06:00 local.
  auto a = s.At(Utc("2026-12-05T02:00:00Z"));
  EXPECT_TRUE(a.open);
  EXPECT_EQ(a.next_change, Utc("2026-12-05T05:00:00Z"));
  // Friday 20:00 local: opens at 22:00 local.
  auto b = s.At(Utc("2026-12-04T19:00:00Z"));
  EXPECT_FALSE(b.open);
  EXPECT_EQ(b.next_change, Utc("2026-12-04T21:00:00Z"));
}

TEST(ScheduleTest, DaylightSavingChangesMoveTheWindowsInUtc) {
  Schedule daily = Paris(json::array(
      {{{"days", {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}}, {"start", "08:00"}, {"end", "18:00"}}}));
  // Saturday 28 March 2026 (winter time): closes at 18:00 local = 17:00 UTC.
  EXPECT_EQ(daily.At(Utc("2026-03-28T12:00:00Z")).next_change, Utc("2026-03-28T17:00:00Z"));
  // Sunday 29 March (summer time from 01:00 UTC): opens at 08:00 local = 06:00 UTC.
  EXPECT_EQ(daily.At(Utc("2026-03-28T20:00:00Z")).next_change, Utc("2026-03-29T06:00:00Z"));
  // Sunday 25 October (back to winter time at 01:00 UTC): opens at 08:00 local = 07:00 UTC.
  EXPECT_EQ(daily.At(Utc("2026-10-24T20:00:00Z")).next_change, Utc("2026-10-25T07:00:00Z"));
  // A window starting in the hour the clocks skip (02:30 on 29 March) opens at the change.
  Schedule skipped = Paris(json::array({{{"days", {"sun"}}, {"start", "02:30"}, {"end", "04:00"}}}));
  auto s = skipped.At(Utc("2026-03-28T23:00:00Z"));
  EXPECT_FALSE(s.open);
  EXPECT_EQ(s.next_change, Utc("2026-03-29T01:00:00Z"));
  EXPECT_EQ(skipped.At(Utc("2026-03-29T01:30:00Z")).next_change, Utc("2026-03-29T02:00:00Z"));  // 04:00 CEST
}

TEST(ScheduleTest, AWholeWeekIsAlwaysOpenAndNoWindowIsNeverOpen) {
  Schedule all =
      Paris(json::array({{{"days", {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}},
                          {"start", "00:00"},
                          {"end", "24:00"}}}));
  auto a = all.At(Utc("2026-12-02T12:00:00Z"));
  EXPECT_TRUE(a.open);
  EXPECT_FALSE(a.next_change);
  Schedule none = Paris(json::array());
  auto n = none.At(Utc("2026-12-02T12:00:00Z"));
  EXPECT_FALSE(n.open);
  EXPECT_FALSE(n.next_change);
}

TEST(ScheduleTest, BadSchedulesNameTheField) {
  struct Case {
    json j;
    const char* field;
  };
  const Case cases[] = {
      {json::array(), "schedule"},
      {{{"timezone", "Mars/Olympus"}, {"windows", json::array()}}, "schedule.timezone"},
      {{{"timezone", "UTC"}}, "schedule.windows"},
      {{{"timezone", "UTC"}, {"windows", json::array()}, {"tz", 1}}, "schedule.tz"},
      {{{"windows", json::array({{{"days", {"mon"}}, {"start", "8:00"}, {"end", "18:00"}}})}},
       "schedule.windows[0].start"},
      {{{"windows", json::array({{{"days", {"mon"}}, {"start", "08:00"}, {"end", "24:30"}}})}},
       "schedule.windows[0].end"},
      {{{"windows", json::array({{{"days", {"mon"}}, {"start", "24:00"}, {"end", "23:00"}}})}},
       "schedule.windows[0].start"},
      {{{"windows", json::array({kOfficeHours[0], {{"days", {"funday"}}, {"start", "08:00"}, {"end", "09:00"}}})}},
       "schedule.windows[1].days"},
      {{{"windows", json::array({{{"days", json::array()}, {"start", "08:00"}, {"end", "09:00"}}})}},
       "schedule.windows[0].days"},
      {{{"windows", json::array({{{"days", {"mon"}}, {"start", "08:00"}, {"end", "08:00"}}})}},
       "schedule.windows[0].end"},
      {{{"windows", json::array({{{"days", {"mon"}}, {"start", "08:00"}, {"end", "09:00"}, {"every", 2}}})}},
       "schedule.windows[0].every"},
  };
  for (const auto& c : cases) {
    auto s = Schedule::Parse(c.j);
    ASSERT_FALSE(s) << c.j.dump();
    EXPECT_EQ(s.error().field, c.field) << c.j.dump() << ": " << s.error().message;
    EXPECT_EQ(s.error().code, Code::kInvalidArgument);
  }
}

TEST(ScheduleTest, DescribesItself) {
  EXPECT_EQ(Paris(kOfficeHours).Describe(), "mon,tue,wed,thu,fri 08:00-18:00 Europe/Paris");
}

}  // namespace
}  // namespace pb
