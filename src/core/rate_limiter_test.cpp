#include "core/rate_limiter.h"

#include <gtest/gtest.h>

namespace pb {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

// A limiter on a clock that only sleeping moves: the time it makes its callers wait is exact.
struct FakeTime {
  Steady::time_point now{};
  Steady::duration slept{};
  RateLimiter Make(int64_t rate) {
    return RateLimiter(
        rate, [this] { return now; },
        [this](Steady::duration d) {
          now += d;
          slept += d;
        });
  }
};

double Seconds(Steady::duration d) { return std::chrono::duration<double>(d).count(); }

TEST(RateLimiterTest, TakesSizeOverRateLessTheBurst) {
  FakeTime t;
  RateLimiter l = t.Make(1'000'000);  // 1 MB/s, a burst of 250 kB
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(l.Acquire(1'000'000));
  EXPECT_NEAR(Seconds(t.slept), 10.0 - 0.25, 1e-3);
}

TEST(RateLimiterTest, SmallPiecesArePacedAsExactlyAsLargeOnes) {
  FakeTime t;
  RateLimiter l = t.Make(500'000);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(l.Acquire(5'000));  // 5 MB in 5 kB pieces
  EXPECT_NEAR(Seconds(t.slept), 5'000'000 / 500'000.0 - 0.25, 1e-2);
}

TEST(RateLimiterTest, TimeSpentElsewhereRefillsTheBucketUpToTheBurstOnly) {
  FakeTime t;
  RateLimiter l = t.Make(1'000'000);
  ASSERT_TRUE(l.Acquire(250'000));  // the burst: no wait
  EXPECT_EQ(t.slept, Steady::duration::zero());
  t.now += 10s;  // idle: the bucket refills to the burst, not to 10 MB
  ASSERT_TRUE(l.Acquire(1'250'000));
  EXPECT_NEAR(Seconds(t.slept), 1.0, 1e-3);
}

TEST(RateLimiterTest, AStopEndsTheWaitAndARateChangeApplies) {
  FakeTime t;
  RateLimiter l = t.Make(1'000);
  int asked = 0;
  EXPECT_FALSE(l.Acquire(1'000'000, [&] { return ++asked > 3; }));
  EXPECT_LT(Seconds(t.slept), 1.0);  // gave up after a few short sleeps, not 1000 s
  FakeTime u;
  RateLimiter m = u.Make(1'000);
  m.SetRate(2'000'000);
  ASSERT_TRUE(m.Acquire(2'000'250));  // the old burst (250 B) plus 1 s at the new rate
  EXPECT_NEAR(Seconds(u.slept), 1.0, 1e-3);
}

TEST(RateLimiterTest, NodesShareOneLimiterAndZeroMeansNone) {
  auto a = NodeRateLimiter("rate-test-node", 5'000'000);
  auto b = NodeRateLimiter("rate-test-node", 5'000'000);
  ASSERT_TRUE(a);
  EXPECT_EQ(a.get(), b.get());
  auto c = NodeRateLimiter("rate-test-node", 1'000'000);
  EXPECT_EQ(c.get(), a.get());
  EXPECT_EQ(a->rate(), 1'000'000);
  EXPECT_FALSE(NodeRateLimiter("rate-test-node", 0));
}

// Several servers transferring to one node at once each pace at their share of its rate.
TEST(RateLimiterTest, AProcessSharingANodesRateWithOthersPacesAtItsShare) {
  auto l = NodeRateLimiter("share-test-node", 900'000);
  ASSERT_TRUE(l);
  ShareNodeRate("share-test-node", 3);
  EXPECT_EQ(l->rate(), 300'000);
  // A rate changed meanwhile is shared the same way, and so is one asked for anew.
  EXPECT_EQ(NodeRateLimiter("share-test-node", 600'000)->rate(), 200'000);
  ShareNodeRate("share-test-node", 1);
  EXPECT_EQ(l->rate(), 600'000);
  // A share set before the node's limiter exists applies when it is made.
  ShareNodeRate("share-test-node-2", 2);
  EXPECT_EQ(NodeRateLimiter("share-test-node-2", 1'000)->rate(), 500);
  ShareNodeRate("share-test-node-2", 0);
  EXPECT_EQ(NodeRateLimiter("share-test-node-2", 1'000)->rate(), 1'000);
  (void)NodeRateLimiter("share-test-node", 0);
  (void)NodeRateLimiter("share-test-node-2", 0);
}

// A new rate applies from the change on: what accrued before it accrued at the old rate, and a
// lower rate keeps no more than its own burst.
TEST(RateLimiterTest, ANewRateAppliesFromTheChangeOn) {
  FakeTime t;
  RateLimiter l = t.Make(1'000);            // burst 250 B
  ASSERT_TRUE(l.Acquire(250));              // the bucket empty
  t.now += std::chrono::milliseconds(200);  // 200 B accrue at 1,000 B/s
  l.SetRate(1'000'000);
  ASSERT_TRUE(l.Acquire(200'200));  // 200 B accrued, then 0.2 s at the new rate
  EXPECT_NEAR(Seconds(t.slept), 0.2, 1e-3);
  FakeTime u;
  RateLimiter m = u.Make(4'000);  // burst 1,000 B
  m.SetRate(1'000);               // burst 250 B
  ASSERT_TRUE(m.Acquire(1'250));  // 250 B of burst, then 1 s
  EXPECT_NEAR(Seconds(u.slept), 1.0, 1e-3);
}

}  // namespace
}  // namespace pb
