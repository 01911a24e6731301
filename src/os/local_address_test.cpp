#include "os/local_address.h"

#include <gtest/gtest.h>

namespace pb {
namespace {

TEST(LocalAddressToward, LoopbackIsReachedFromLoopback) {
  auto a = LocalAddressToward("127.0.0.1", 104);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(*a, "127.0.0.1");
  auto other = LocalAddressToward("127.0.0.2", 11112);
  ASSERT_TRUE(other) << other.error().message;
  EXPECT_EQ(other->rfind("127.", 0), 0u) << *other;
}

TEST(LocalAddressToward, AcceptsBracketedIpv6) {
  auto a = LocalAddressToward("[::1]", 104);
  if (!a) GTEST_SKIP() << "no IPv6 loopback here: " << a.error().message;
  EXPECT_EQ(*a, "::1");
}

}  // namespace
}  // namespace pb
