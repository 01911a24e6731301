#include "receivers/retirements.h"

#include <chrono>
#include <future>

#include <gtest/gtest.h>

namespace pb {
namespace {

bool ReapedTo(Retirements& r, size_t left) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (r.Reap() != left) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

TEST(Retirements, FinishedWorkIsJoinedAtTheNextReapAndRunningWorkIsKept) {
  Retirements r;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  r.Add([released] { released.wait(); });  // a listener still finishing an association
  for (int i = 0; i < 20; ++i) r.Add([] {});
  ASSERT_TRUE(ReapedTo(r, 1));  // twenty done and joined, one still running
  release.set_value();
  ASSERT_TRUE(ReapedTo(r, 0));
}

TEST(Retirements, JoinAllWaitsForEveryThread) {
  std::atomic<int> ran{0};
  {
    Retirements r;
    for (int i = 0; i < 5; ++i) {
      r.Add([&ran] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        ran++;
      });
    }
    r.JoinAll();
    EXPECT_EQ(ran.load(), 5);
    EXPECT_EQ(r.Reap(), 0u);
  }
}

}  // namespace
}  // namespace pb
