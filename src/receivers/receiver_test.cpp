#include "receivers/receiver.h"

#include <gtest/gtest.h>

namespace pb {
namespace {

TEST(ReceiverJson, ParsesTheContractExample) {
  auto r = ReceiverFromJson({{"ae_title", "PACSBRIDGE"}, {"port", 8104}, {"bind", "0.0.0.0"}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->id, "PACSBRIDGE@8104");
  EXPECT_TRUE(r->enabled);
}

TEST(ReceiverJson, AcceptsIpv6BindWithBrackets) {
  auto r = ReceiverFromJson({{"ae_title", "PB"}, {"port", 104}, {"bind", "[::]"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bind, "::");
}

TEST(ReceiverJson, RefusesHostNameAsBindAddress) {
  auto r = ReceiverFromJson({{"ae_title", "PB"}, {"port", 104}, {"bind", "pacs.local"}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "bind");
}

TEST(ReceiverJson, RefusesBadPortAndAeTitle) {
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "PB"}, {"port", 0}}).error().field, "port");
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "PB"}, {"port", "104"}}).error().field, "port");
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "A\\B"}, {"port", 104}}).error().field, "ae_title");
}

TEST(ReceiverJson, RefusesFeaturesThatWouldBeSilentlyIgnored) {
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "PB"}, {"port", 104}, {"whitelist_enabled", true}})
                .error()
                .field,
            "whitelist_enabled");
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "PB"}, {"port", 104}, {"anonymize", true}}).error().field,
            "anonymize");
  EXPECT_TRUE(ReceiverFromJson({{"ae_title", "PB"}, {"port", 104}, {"whitelist_enabled", false},
                                {"whitelist", ""}, {"tls", {{"enabled", false}}}}));
}

TEST(ReceiverJson, RefusesUnknownField) {
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "PB"}, {"port", 104}, {"colour", 1}}).error().field, "colour");
}

}  // namespace
}  // namespace pb
