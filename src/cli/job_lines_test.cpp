#include "cli/job_lines.h"

#include <gtest/gtest.h>

namespace pb::cli {
namespace {

using nlohmann::json;

// The JSON as GET /api/jobs gives it for each kind of wait (docs/api.md).
TEST(WaitingLine, SaysWhatTheJobWaitsFor) {
  EXPECT_EQ(WaitingLine({{"id", "7"}, {"state", "waiting"}, {"paused", true}}), "paused (pacsbridge jobs resume 7)");
  EXPECT_EQ(WaitingLine({{"id", "7"}, {"next_attempt", "2026-12-06T09:00:30Z"}, {"waiting_for", "the next attempt"}}),
            "waiting: next attempt at 2026-12-06T09:00:30Z");
  EXPECT_EQ(
      WaitingLine(
          {{"id", "7"}, {"waiting_until", "2026-12-07T08:00:00Z"}, {"waiting_for", "the node's availability window"}}),
      "waiting for its node's availability window, which opens at 2026-12-07T08:00:00Z");
  // A node's utilization share: the next minute, not a window.
  EXPECT_EQ(
      WaitingLine(
          {{"id", "7"}, {"waiting_until", "2026-12-06T09:01:00Z"}, {"waiting_for", "the node's utilization share"}}),
      "waiting for its node's utilization share of the next minute, at 2026-12-06T09:01:00Z");
  EXPECT_EQ(WaitingLine({{"id", "7"}, {"waiting_for", "confirmation"}}),
            "waiting for a confirmation of its rows (pacsbridge import show 7, then import confirm 7)");
  EXPECT_EQ(WaitingLine({{"id", "7"}, {"waiting_for", "children"}}),
            "its rows' retrieve jobs are running (pacsbridge import show 7)");
  EXPECT_EQ(WaitingLine({{"id", "7"}}), "waiting");
}

}  // namespace
}  // namespace pb::cli
