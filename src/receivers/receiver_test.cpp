#include "receivers/receiver.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

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

class ReceiverTlsJson : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pb-rtls-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::create_directories(dir_);
    for (const char* f : {"cert.pem", "key.pem", "ca.pem"}) std::ofstream(dir_ / f) << "x";
    std::filesystem::permissions(dir_ / "key.pem", std::filesystem::perms::owner_read |
                                                       std::filesystem::perms::owner_write);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  nlohmann::json With(nlohmann::json tls) {
    return {{"ae_title", "SECURE"}, {"port", 2762}, {"tls", std::move(tls)}};
  }
  std::string P(const char* f) { return (dir_ / f).string(); }
  std::filesystem::path dir_;
};

TEST_F(ReceiverTlsJson, TakesCertificateKeyAndCa) {
  auto r = ReceiverFromJson(With({{"enabled", true}, {"cert_file", P("cert.pem")}, {"key_file", P("key.pem")},
                                  {"ca_file", P("ca.pem")}, {"require_client_cert", true}}));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->tls.enabled);
  EXPECT_TRUE(r->tls.require_client_cert);
  EXPECT_EQ(ReceiverToJson(*r)["tls"]["cert_file"], P("cert.pem"));
}

TEST_F(ReceiverTlsJson, NamesWhatIsMissingOrWrong) {
  EXPECT_EQ(ReceiverFromJson(With({{"enabled", true}, {"key_file", P("key.pem")}})).error().field, "tls.cert_file");
  EXPECT_EQ(ReceiverFromJson(With({{"enabled", true}, {"cert_file", P("cert.pem")}, {"key_file", P("nope.pem")}}))
                .error()
                .field,
            "tls.key_file");
  EXPECT_EQ(ReceiverFromJson(With({{"enabled", true}, {"cert_file", P("cert.pem")}, {"key_file", P("key.pem")},
                                   {"require_client_cert", true}}))
                .error()
                .field,
            "tls.ca_file");
  EXPECT_EQ(ReceiverFromJson(With({{"enabled", "yes"}})).error().field, "tls.enabled");
  EXPECT_EQ(ReceiverFromJson(With({{"enabld", true}})).error().field, "tls.enabld");
}

TEST_F(ReceiverTlsJson, RefusesAPrivateKeyOthersCanRead) {
  std::filesystem::permissions(dir_ / "key.pem", std::filesystem::perms::others_read,
                               std::filesystem::perm_options::add);
  auto r = ReceiverFromJson(With({{"enabled", true}, {"cert_file", P("cert.pem")}, {"key_file", P("key.pem")}}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "tls.key_file");
  EXPECT_NE(r.error().message.find("chmod 600"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace pb
