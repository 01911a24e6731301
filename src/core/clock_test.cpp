#include "core/clock.h"

#include <gtest/gtest.h>

namespace pb {
namespace {

TEST(ParseUtcIso, DatesAndTimesRoundTrip) {
  auto t = ParseUtcIso("2026-12-01T10:00:00Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(UtcIso(*t), "2026-12-01T10:00:00Z");
  auto d = ParseUtcIso("2026-12-01");
  ASSERT_TRUE(d);
  EXPECT_EQ(UtcIso(*d), "2026-12-01T00:00:00Z");
}

TEST(ParseUtcIso, RefusesWhatATimePointCannotHold) {
  // Nanoseconds since 1970 in 64 bits end in 2262: a later year would wrap around.
  EXPECT_FALSE(ParseUtcIso("2999-01-01"));
  EXPECT_FALSE(ParseUtcIso("1800-01-01"));
  EXPECT_TRUE(ParseUtcIso("2199-12-31"));
  EXPECT_FALSE(ParseUtcIso("2026-02-31"));
  EXPECT_FALSE(ParseUtcIso("yesterday"));
}

}  // namespace
}  // namespace pb
