#include "nodes/node.h"

#include <gtest/gtest.h>

namespace pb {
namespace {

nlohmann::json Dimse() {
  return {{"name", "pacs"}, {"ae_title", "ORTHANC"}, {"host", "127.0.0.1"}, {"port", 4242}};
}

TEST(NodeJson, FlagsAreOffUnlessSet) {
  auto n = NodeFromJson(Dimse());
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_FALSE(n->queryable);
  EXPECT_FALSE(n->storable);
  EXPECT_FALSE(n->default_query_retrieve);
  EXPECT_FALSE(n->default_storage);
  EXPECT_EQ(n->timeout_seconds, 10);
  EXPECT_EQ(n->retrieve_method, RetrieveMethod::kAuto);
}

TEST(NodeJson, TrimsAeTitleAndKeepsCase) {
  auto j = Dimse();
  j["ae_title"] = "  Orthanc ";
  auto n = NodeFromJson(j);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->ae_title, "Orthanc");
}

TEST(NodeJson, RefusesUnknownFieldNamingIt) {
  auto j = Dimse();
  j["bogus"] = 1;
  auto n = NodeFromJson(j);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().field, "bogus");
}

TEST(NodeJson, RefusesUnknownNestedField) {
  auto j = Dimse();
  j["tls"] = {{"enabled", true}, {"verify", true}};
  auto n = NodeFromJson(j);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().field, "tls.verify");
}

TEST(NodeJson, RefusesWrongTypes) {
  auto j = Dimse();
  j["port"] = "4242";
  EXPECT_EQ(NodeFromJson(j).error().field, "port");
  j = Dimse();
  j["queryable"] = "yes";
  EXPECT_EQ(NodeFromJson(j).error().field, "queryable");
}

TEST(NodeJson, DefaultQueryRetrieveNeedsQueryable) {
  auto j = Dimse();
  j["default_query_retrieve"] = true;
  auto n = NodeFromJson(j);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().field, "default_query_retrieve");
  j["queryable"] = true;
  EXPECT_TRUE(NodeFromJson(j));
}

TEST(NodeJson, DefaultStorageNeedsStorable) {
  auto j = Dimse();
  j["default_storage"] = true;
  EXPECT_EQ(NodeFromJson(j).error().field, "default_storage");
  j["storable"] = true;
  EXPECT_TRUE(NodeFromJson(j));
}

TEST(NodeJson, PortBoundsForRemoteNodes) {
  auto j = Dimse();
  for (int bad : {0, 65536, -5}) {
    j["port"] = bad;
    EXPECT_EQ(NodeFromJson(j).error().field, "port") << bad;
  }
  j["port"] = 65535;
  EXPECT_TRUE(NodeFromJson(j));
}

TEST(NodeJson, RefusesUrlAsHost) {
  auto j = Dimse();
  j["host"] = "http://host";
  auto n = NodeFromJson(j);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().field, "host");
}

TEST(NodeJson, AcceptsIpv6WithAndWithoutBrackets) {
  auto j = Dimse();
  j["host"] = "[2001:db8::1]";
  EXPECT_EQ(NodeFromJson(j)->host, "2001:db8::1");
  j["host"] = "2001:db8::1";
  EXPECT_EQ(NodeFromJson(j)->host, "2001:db8::1");
}

TEST(NodeJson, ValidatesCallingAeTitle) {
  auto j = Dimse();
  j["calling_ae_title"] = "TOO_LONG_CALLING_AE";
  EXPECT_EQ(NodeFromJson(j).error().field, "calling_ae_title");
}

TEST(NodeJson, DicomWebNeedsHttpUrl) {
  nlohmann::json j{{"name", "web"}, {"type", "dicomweb"}, {"url", "pacs/dicom-web"}};
  EXPECT_EQ(NodeFromJson(j).error().field, "url");
  j["url"] = "https://pacs.example/dicom-web";
  auto n = NodeFromJson(j);
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(n->type, NodeType::kDicomWeb);
}

TEST(NodeJson, SecretsAreWriteOnly) {
  nlohmann::json j{{"name", "web"}, {"type", "dicomweb"}, {"url", "https://pacs/dicom-web"},
                   {"auth", {{"type", "basic"}, {"username", "u"}, {"password", "s3cret"}}}};
  auto n = NodeFromJson(j);
  ASSERT_TRUE(n);
  std::string api = NodeToJson(*n).dump();
  EXPECT_EQ(api.find("s3cret"), std::string::npos);
  EXPECT_TRUE(NodeToJson(*n)["auth"]["has_password"].get<bool>());
  EXPECT_NE(NodeToJson(*n, true).dump().find("s3cret"), std::string::npos);
}

TEST(NodeJson, RoundTripsThroughStorageForm) {
  auto j = Dimse();
  j["queryable"] = true;
  j["retrieve_method"] = "c-move";
  j["move_destination"] = "PACSBRIDGE";
  auto n = NodeFromJson(j);
  ASSERT_TRUE(n);
  auto again = NodeFromJson(NodeToJson(*n, true));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(NodeToJson(*again, true), NodeToJson(*n, true));
}

TEST(NodeJson, RefusesEmptyName) {
  auto j = Dimse();
  j["name"] = "  ";
  EXPECT_EQ(NodeFromJson(j).error().field, "name");
}

}  // namespace
}  // namespace pb

namespace pb {
namespace {
TEST(NodeJson, QuerySettings) {
  nlohmann::json j{{"name", "p"}, {"ae_title", "P"}, {"host", "h"}, {"port", 104}};
  auto n = NodeFromJson(j);
  ASSERT_TRUE(n);
  EXPECT_FALSE(n->patient_root);
  EXPECT_EQ(n->max_results, 1000);
  j["query_charset"] = "latin1";
  EXPECT_EQ(NodeFromJson(j).error().field, "query_charset");
  j["query_charset"] = "ISO_IR 100";
  j["max_results"] = 0;
  EXPECT_EQ(NodeFromJson(j).error().field, "max_results");
  j["max_results"] = 5;
  j["patient_root"] = true;
  auto m = NodeFromJson(j);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->query_charset, "ISO_IR 100");
  EXPECT_TRUE(m->patient_root);
}
TEST(NodeJson, PreferredTransferSyntaxByUidKeywordOrDcmtkName) {
  for (const char* ts : {"1.2.840.10008.1.2.4.80", "JPEGLSLossless", "JPEG-LS Lossless"}) {
    auto j = Dimse();
    j["preferred_transfer_syntax"] = ts;
    auto n = NodeFromJson(j);
    ASSERT_TRUE(n) << ts << ": " << n.error().message;
  }
  auto j = Dimse();
  j["preferred_transfer_syntax"] = "JPEG-ish";
  auto n = NodeFromJson(j);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().field, "preferred_transfer_syntax");
  EXPECT_NE(n.error().message.find("JPEG-ish"), std::string::npos);
}

TEST(NodeJson, LearnedRetrieveMethodIsShownButNeverTakenFromInput) {
  auto j = Dimse();
  j["retrieve_method_learned"] = "c-move";  // read-only: accepted in a round trip, ignored
  auto n = NodeFromJson(j);
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(n->retrieve_method_learned, "");
  EXPECT_TRUE(NodeToJson(*n)["retrieve_method_learned"].is_null());
  n->retrieve_method_learned = "c-get";
  EXPECT_EQ(NodeToJson(*n)["retrieve_method_learned"], "c-get");
  EXPECT_FALSE(NodeToJson(*n, true).contains("retrieve_method_learned"));  // not stored as a setting
}

}  // namespace
}  // namespace pb
