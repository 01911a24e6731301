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

// Several instances save the cycle and load it around each change: a job joins the stretch
// another instance's job opened; the last one to leave ends it; a stretch left open by an
// instance that stopped is ended at its own end when nothing runs any more.
TEST(DutyCycle, ASavedCycleIsLoadedWithTheJobsRunningElsewhere) {
  DutyCycle a(50);
  EXPECT_EQ(a.Begin(kMinute + 0s), kMinute + 30s);
  const DutyCycle::Saved open = a.Save();
  EXPECT_TRUE(open.in_stretch);
  DutyCycle b(50);
  b.Load(open, 1, kMinute + 10s);                    // a's job runs: the stretch goes on
  EXPECT_EQ(b.Begin(kMinute + 10s), kMinute + 30s);  // joined, not a new 30 s
  b.Load(b.Save(), 1, kMinute + 20s);                // a's job left: one still runs
  EXPECT_EQ(b.NextStart(kMinute + 20s), kMinute + 20s);
  b.Load(b.Save(), 0, kMinute + 25s);  // the last one left at 09:00:25: 25 s used
  EXPECT_FALSE(b.Save().in_stretch);
  EXPECT_EQ(b.Begin(kMinute + 26s), kMinute + 31s);  // 5 s left
  // Its instance stopped with the stretch open: ended at 09:00:31, its end, not at 09:00:50.
  DutyCycle c(50);
  c.Load(b.Save(), 0, kMinute + 50s);
  EXPECT_FALSE(c.Save().in_stretch);
  EXPECT_EQ(c.NextStart(kMinute + 50s), kMinute + 60s);  // the minute's 30 s are used
  EXPECT_EQ(c.Begin(kMinute + 60s), kMinute + 90s);      // the next minute's are whole
  // Jobs that run without a stretch (started while the node had no share) hold none.
  DutyCycle d(50);
  d.Load({}, 3, kMinute + 5s);
  EXPECT_EQ(d.Begin(kMinute + 5s), kMinute + 35s);
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
