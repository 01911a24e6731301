#include "receivers/receiver.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace pb {
namespace {

TEST(ReceiverJson, ParsesTheContractExample) {
  auto r = ReceiverFromJson({{"ae_title", "PACSBRIDGE"}, {"port", 8104}, {"bind", "0.0.0.0"}}, ReceiverOrigin::kConfig);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->id, "PACSBRIDGE@8104");
  EXPECT_TRUE(r->enabled);
}

TEST(ReceiverJson, MppsAndItsForwardingNode) {
  nlohmann::json j{{"ae_title", "MPPS"}, {"port", 11112}};
  auto plain = ReceiverFromJson(j);
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->mpps);  // off unless asked for
  j["mpps_forward"] = "ris";
  auto refused = ReceiverFromJson(j);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().field, "mpps_forward");  // only what is accepted can be forwarded
  j["mpps"] = true;
  auto r = ReceiverFromJson(j);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->mpps);
  EXPECT_EQ(r->mpps_forward, "ris");
  EXPECT_EQ(ReceiverToJson(*r)["mpps_forward"], "ris");
  j["mpps_forward"] = 3;
  EXPECT_EQ(ReceiverFromJson(j).error().field, "mpps_forward");
}

TEST(ReceiverJson, QueryRetrieveAndTheProjectsItShows) {
  nlohmann::json j{{"ae_title", "QR"}, {"port", 11112}};
  auto plain = ReceiverFromJson(j);
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->query_retrieve);  // off unless asked for
  EXPECT_FALSE(plain->query_names_ignore_case);
  j["query_retrieve_projects"] = {"LAB1"};
  auto refused = ReceiverFromJson(j);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().field, "query_retrieve_projects");  // limits nothing while off
  j["query_retrieve"] = true;
  j["query_names_ignore_case"] = true;
  auto r = ReceiverFromJson(j);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->query_retrieve);
  EXPECT_TRUE(r->query_names_ignore_case);
  EXPECT_EQ(r->query_retrieve_projects, std::vector<std::string>{"LAB1"});
  auto back = ReceiverToJson(*r);
  EXPECT_EQ(back["query_retrieve_projects"], nlohmann::json::array({"LAB1"}));
  EXPECT_EQ(back["query_retrieve"], true);
  // Switching it off by a patch takes the window with it.
  auto off = PatchReceiver(*r, {{"query_retrieve", false}});
  ASSERT_TRUE(off) << off.error().message;
  EXPECT_FALSE(off->query_retrieve);
  EXPECT_TRUE(off->query_retrieve_projects.empty());
  for (const nlohmann::json& bad : {nlohmann::json("LAB1"), nlohmann::json::array({"a b"}), nlohmann::json::array({""}),
                                    nlohmann::json::array({3})}) {
    j["query_retrieve_projects"] = bad;
    EXPECT_EQ(ReceiverFromJson(j).error().field, "query_retrieve_projects") << bad.dump();
  }
}

TEST(ReceiverJson, AcceptsIpv6BindWithBrackets) {
  auto r = ReceiverFromJson({{"ae_title", "PB"}, {"port", 11104}, {"bind", "[::]"}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->bind, "::");
}

TEST(ReceiverJson, RefusesHostNameAsBindAddress) {
  auto r = ReceiverFromJson({{"ae_title", "PB"}, {"port", 11104}, {"bind", "pacs.local"}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "bind");
}

TEST(ReceiverJson, RefusesBadPortAndAeTitle) {
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "PB"}, {"port", 0}}).error().field, "port");
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "PB"}, {"port", "104"}}).error().field, "port");
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "A\\B"}, {"port", 11104}}).error().field, "ae_title");
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "ABCDEFGHIJKLMNOPQ"}, {"port", 11104}}).error().field, "ae_title");
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "   "}, {"port", 11104}}).error().field, "ae_title");
}

TEST(ReceiverJson, ApiPortsAre1024To49151AndDefaultTo8104) {
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "PB"}, {"port", 1023}}).error().field, "port");
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "PB"}, {"port", 49152}}).error().field, "port");
  EXPECT_TRUE(ReceiverFromJson({{"ae_title", "PB"}, {"port", 1024}}));
  EXPECT_TRUE(ReceiverFromJson({{"ae_title", "PB"}, {"port", 49151}}));
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "PB"}})->port, 8104);
  // The administrator's file may name any port (a warning is logged at start).
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "PB"}, {"port", 104}}, ReceiverOrigin::kConfig)->port, 104);
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "PB"}, {"port", 60000}}, ReceiverOrigin::kConfig)->port, 60000);
}

TEST(ReceiverJson, AnonymizesByDefaultThroughTheApiButNotFromTheConfigFile) {
  EXPECT_TRUE(ReceiverFromJson({{"ae_title", "PB"}})->anonymize);
  EXPECT_FALSE(ReceiverFromJson({{"ae_title", "PB"}, {"port", 104}}, ReceiverOrigin::kConfig)->anonymize);
  EXPECT_TRUE(
      ReceiverFromJson({{"ae_title", "PB"}, {"port", 104}, {"anonymize", true}}, ReceiverOrigin::kConfig)->anonymize);
  EXPECT_FALSE(ReceiverFromJson({{"ae_title", "PB"}, {"anonymize", false}})->anonymize);
  EXPECT_TRUE(ReceiverFromJson({{"ae_title", "PB"}})->ChangesData());
  EXPECT_FALSE(ReceiverFromJson({{"ae_title", "PB"}, {"anonymize", false}})->ChangesData());
}

TEST(ReceiverJson, ParsesWhitelistRoutingAndProcessors) {
  auto r = ReceiverFromJson(
      {{"ae_title", "PB"},
       {"whitelist_enabled", true},
       {"whitelist", "CT1\n10.0.0.0/8\nMR1@192.168.1.7"},
       {"routing", {{"project", "(0008,1030):^(\\w+)"}, {"subject", ""}}},
       {"identification", "jobs"},
       {"default_project", "Lab-1"},
       {"processors", nlohmann::json::array({{{"type", "map_ae_to_project"}, {"map", {{"CT1", "P_CT"}}}},
                                             {{"type", "set_attributes"}, {"attributes", {{"InstitutionName", "X"}}}},
                                             {{"type", "clear_attributes"}, {"attributes", {"(0008,0090)"}}}})},
       {"anonymize", false},
       {"direct_archive", false},
       {"staging_idle_seconds", 5}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->whitelist->Allows("CT1", "127.0.0.1"));
  EXPECT_TRUE(r->whitelist->Allows("ANY", "10.1.2.3"));
  EXPECT_FALSE(r->whitelist->Allows("MR1", "192.168.1.8"));
  ASSERT_EQ(r->routing->project.size(), 1u);
  EXPECT_EQ(r->routing->project[0].tag, 0x00081030u);
  ASSERT_EQ(r->processors.size(), 3u);
  EXPECT_EQ(r->processors[0].ae_to_project.at("CT1"), "P_CT");
  ASSERT_EQ(r->processors[1].set.size(), 1u);
  EXPECT_EQ(r->processors[1].set[0].first, 0x00080080u);
  EXPECT_EQ(r->processors[2].clear, std::vector<uint32_t>{0x00080090u});
  EXPECT_TRUE(r->ChangesData());  // set/clear need the data in memory even without anonymization
  EXPECT_FALSE(r->direct_archive);
  EXPECT_EQ(r->staging_idle_seconds, 5);
  // The JSON form reads back to the same receiver.
  auto again = ReceiverFromJson(ReceiverToJson(*r));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(ReceiverToJson(*again), ReceiverToJson(*r));
}

TEST(ReceiverJson, ErrorsNameTheFieldAndTheLine) {
  auto wl = ReceiverFromJson({{"ae_title", "PB"}, {"whitelist", "CT1\n300.1.1.1"}});
  ASSERT_FALSE(wl);
  EXPECT_EQ(wl.error().field, "whitelist");
  EXPECT_NE(wl.error().message.find("line 2"), std::string::npos) << wl.error().message;
  auto rule = ReceiverFromJson({{"ae_title", "PB"}, {"routing", {{"subject", "(0010,0010):(unclosed"}}}});
  ASSERT_FALSE(rule);
  EXPECT_EQ(rule.error().field, "routing.subject");
  EXPECT_NE(rule.error().message.find("line 1"), std::string::npos) << rule.error().message;
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "PB"}, {"identification", "magic"}}).error().field, "identification");
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "PB"}, {"default_project", "a b"}}).error().field, "default_project");
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "PB"}, {"processors", nlohmann::json::array({{{"type", "teleport"}}})}})
                .error()
                .field,
            "processors[0].type");
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "PB"},
                              {"processors", nlohmann::json::array({{{"type", "set_attributes"},
                                                                     {"attributes", {{"NoSuchKeyword", "x"}}}}})}})
                .error()
                .field,
            "processors[0].attributes");
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "PB"}, {"anonymization", {{"retain_everything", true}}}}).error().field,
            "anonymization.retain_everything");
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "PB"}, {"staging_idle_seconds", 0}}).error().field, "staging_idle_seconds");
}

TEST(ReceiverJson, PatchKeepsWhatIsNotGiven) {
  auto base = ReceiverFromJson({{"ae_title", "PB"},
                                {"port", 11112},
                                {"routing", {{"project", "(0008,1030):(.+)"}}},
                                {"anonymization", {{"retain_uids", true}}}});
  ASSERT_TRUE(base);
  base->id = "7";
  auto p = PatchReceiver(*base, {{"enabled", false},
                                 {"anonymization", {{"retain_dates", true}}},
                                 {"routing", {{"subject", "(0010,0020):(.+)"}}}});
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->id, "7");
  EXPECT_FALSE(p->enabled);
  EXPECT_EQ(p->port, 11112);
  EXPECT_TRUE(p->anonymization.retain_uids);
  EXPECT_TRUE(p->anonymization.retain_dates);
  EXPECT_EQ(p->routing->project.size(), 1u);
  EXPECT_EQ(p->routing->subject.size(), 1u);
}

TEST(ReceiverJson, RefusesUnknownField) {
  EXPECT_EQ(ReceiverFromJson({{"ae_title", "PB"}, {"port", 11104}, {"colour", 1}}).error().field, "colour");
}

class ReceiverTlsJson : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pb-rtls-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::create_directories(dir_);
    for (const char* f : {"cert.pem", "key.pem", "ca.pem"}) std::ofstream(dir_ / f) << "x";
    std::filesystem::permissions(dir_ / "key.pem",
                                 std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  nlohmann::json With(nlohmann::json tls) { return {{"ae_title", "SECURE"}, {"port", 2762}, {"tls", std::move(tls)}}; }
  std::string P(const char* f) { return (dir_ / f).string(); }
  std::filesystem::path dir_;
};

TEST_F(ReceiverTlsJson, TakesCertificateKeyAndCa) {
  auto r = ReceiverFromJson(With({{"enabled", true},
                                  {"cert_file", P("cert.pem")},
                                  {"key_file", P("key.pem")},
                                  {"ca_file", P("ca.pem")},
                                  {"require_client_cert", true}}));
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
  EXPECT_EQ(ReceiverFromJson(With({{"enabled", true},
                                   {"cert_file", P("cert.pem")},
                                   {"key_file", P("key.pem")},
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
