#include "jobs/duty_cycle.h"

#include <gtest/gtest.h>

namespace pb {
namespace {

using namespace std::chrono_literals;

const TimePoint kMinute = std::chrono::sys_days{std::chrono::year{2026} / 3 / 2} + 9h;  // 09:00:00

TEST(DutyCycle, AStretchEndsWhenTheMinutesShareIsSpent) {
  DutyCycle d(50);  // 30 s of each minute
  EXPECT_EQ(d.NextStart(kMinute + 5s), kMinute + 5s);
  EXPECT_EQ(d.Begin(kMinute + 5s), kMinute + 35s);
  d.End(kMinute + 35s);
  // The share of 09:00 is spent: nothing starts before 09:01.
  EXPECT_EQ(d.NextStart(kMinute + 36s), kMinute + 60s);
  EXPECT_EQ(d.NextStart(kMinute + 60s), kMinute + 60s);
}

TEST(DutyCycle, ShortStretchesAddUpWithinAMinute) {
  DutyCycle d(25);  // 15 s of each minute
  d.Begin(kMinute + 0s);
  d.End(kMinute + 10s);  // 10 s used
  EXPECT_EQ(d.NextStart(kMinute + 20s), kMinute + 20s);
  EXPECT_EQ(d.Begin(kMinute + 20s), kMinute + 25s);  // 5 s left
  d.End(kMinute + 25s);
  EXPECT_EQ(d.NextStart(kMinute + 26s), kMinute + 60s);
  // A new minute has its whole share.
  EXPECT_EQ(d.Begin(kMinute + 61s), kMinute + 76s);
}

TEST(DutyCycle, JobsRunningTogetherShareOneStretch) {
  DutyCycle d(50);
  EXPECT_EQ(d.Begin(kMinute + 0s), kMinute + 30s);
  EXPECT_EQ(d.NextStart(kMinute + 10s), kMinute + 10s);  // the node is busy anyway
  EXPECT_EQ(d.Begin(kMinute + 10s), kMinute + 30s);      // joins the same stretch
  d.End(kMinute + 20s);                                  // one of two: still busy
  EXPECT_EQ(d.NextStart(kMinute + 25s), kMinute + 25s);
  d.End(kMinute + 30s);
  EXPECT_EQ(d.NextStart(kMinute + 31s), kMinute + 60s);
}

TEST(DutyCycle, AStretchThatReachesTheNextMinuteUsesThatMinutesShare) {
  DutyCycle d(50);
  // Starts at 09:00:50 with 30 s left: the minute ends first, so it goes on until 09:01:30.
  EXPECT_EQ(d.Begin(kMinute + 50s), kMinute + 90s);
  d.End(kMinute + 90s);
  EXPECT_EQ(d.NextStart(kMinute + 95s), kMinute + 120s);
  // Ended early, in the next minute: what it used there counts.
  DutyCycle e(50);
  e.Begin(kMinute + 50s);
  e.End(kMinute + 70s);                               // 10 s of 09:01
  EXPECT_EQ(e.Begin(kMinute + 80s), kMinute + 100s);  // 20 s left in 09:01
}

TEST(DutyCycle, AnOverrunCountsAgainstTheMinute) {
  DutyCycle d(10);  // 6 s of each minute
  EXPECT_EQ(d.Begin(kMinute + 0s), kMinute + 6s);
  d.End(kMinute + 9s);  // the last instance took longer: 9 s used
  EXPECT_EQ(d.NextStart(kMinute + 10s), kMinute + 60s);
  EXPECT_EQ(d.Begin(kMinute + 60s), kMinute + 66s);
}

}  // namespace
}  // namespace pb
