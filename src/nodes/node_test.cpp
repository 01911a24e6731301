#include "nodes/node.h"

#include <gtest/gtest.h>

namespace pb {
namespace {

nlohmann::json Dimse() { return {{"name", "pacs"}, {"ae_title", "ORTHANC"}, {"host", "127.0.0.1"}, {"port", 4242}}; }

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

TEST(NodeJson, UtilizationIsAPercentOfEachMinute) {
  auto n = NodeFromJson(Dimse());
  ASSERT_TRUE(n);
  EXPECT_EQ(n->utilization_percent, 100);  // no limit
  auto j = Dimse();
  j["utilization_percent"] = 40;
  n = NodeFromJson(j);
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(n->utilization_percent, 40);
  for (int bad : {0, 101, -5}) {
    j["utilization_percent"] = bad;
    n = NodeFromJson(j);
    ASSERT_FALSE(n) << bad;
    EXPECT_EQ(n.error().field, "utilization_percent");
  }
  j["utilization_percent"] = "half";
  n = NodeFromJson(j);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().field, "utilization_percent");
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
  nlohmann::json j{{"name", "web"},
                   {"type", "dicomweb"},
                   {"url", "https://pacs/dicom-web"},
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
TEST(NodeJson, WorklistSettings) {
  nlohmann::json j{{"name", "ris"}, {"ae_title", "RIS"}, {"host", "h"}, {"port", 104}, {"mwl", true}};
  for (const char* ok : {"", "none", "ISO_IR 100", "ISO 2022 IR 87", "ISO 2022 IR 6\\ISO 2022 IR 87"}) {
    j["mwl_charset"] = ok;
    auto n = NodeFromJson(j);
    ASSERT_TRUE(n) << ok << ": " << n.error().message;
    EXPECT_TRUE(n->mwl);
    EXPECT_EQ(n->mwl_charset, ok);
  }
  for (const char* bad : {"latin1", "ISO_IR 87", "UTF-8"}) {
    j["mwl_charset"] = bad;
    auto n = NodeFromJson(j);
    ASSERT_FALSE(n) << bad;
    EXPECT_EQ(n.error().field, "mwl_charset");
  }
  // Worklist and MPPS are DIMSE services.
  nlohmann::json web{{"name", "web"}, {"type", "dicomweb"}, {"url", "http://pacs/dicom-web/"}, {"mwl", true}};
  auto w = NodeFromJson(web);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().field, "mwl");
  web["mwl"] = false;
  web["mpps"] = true;
  EXPECT_EQ(NodeFromJson(web).error().field, "mpps");
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
  j["retrieve_method_learned"] = "c-move";                          // read-only: accepted in a round trip, ignored
  j["last_test"] = {{"ok", true}, {"at", "2026-12-03T07:00:00Z"}};  // likewise (the API adds it)
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

namespace pb {
namespace {

nlohmann::json Web() { return {{"name", "web"}, {"type", "dicomweb"}, {"url", "http://orthanc:8042/dicom-web/"}}; }

// Every DICOMweb setting, none at its default.
nlohmann::json FullWeb() {
  return {{"name", "web"},
          {"type", "dicomweb"},
          {"url", "https://pacs.example/dicomweb/"},
          {"qido_root", "https://qido.example/rs/"},
          {"wado_root", "https://wado.example/rs/"},
          {"stow_root", "https://stow.example/rs/"},
          {"qido", false},
          {"wado", false},
          {"stow", false},
          {"stow_multipart", false},
          {"queryable", true},
          {"storable", true},
          {"description", "cloud"},
          {"ae_title", "CLOUD"},
          {"calling_ae_title", "BRIDGE"},
          {"calling_ae_header", "X-Calling-AE"},
          {"called_ae_header", "X-Called-AE"},
          {"auth",
           {{"type", "oauth2"},
            {"username", "u"},
            {"password", "pw-1"},
            {"token", "tok-2"},
            {"token_url", "https://login.example/oauth2/token"},
            {"client_id", "bridge"},
            {"client_secret", "cs-3"},
            {"scope", "dicom.read dicom.write"}}},
          {"headers", {{{"name", "X-Api-Key"}, {"value", "k"}}, {{"name", "X-Tenant"}, {"value", "t"}}}},
          {"tls",
           {{"enabled", true},
            {"verify_peer", false},
            {"verify_hostname", false},
            {"ca_file", "/ca.pem"},
            {"cert_file", ""},
            {"key_file", ""}}},
          {"stow_batch_instances", 7},
          {"stow_batch_mb", 9},
          {"timeout_seconds", 11},
          {"query_timeout_seconds", 12},
          {"retrieve_timeout_seconds", 13},
          {"max_associations", 4},
          {"max_results", 50},
          {"preferred_transfer_syntax", "1.2.840.10008.1.2.4.80"},
          {"proxy", "socks5h://proxy.example:1080"},
          {"allow_redirects", true}};
}

// The field of the error for `j` with `key` set to `value`, or "" when it is accepted.
std::string FieldOf(nlohmann::json j, const nlohmann::json::json_pointer& key, const nlohmann::json& value) {
  j[key] = value;
  auto n = NodeFromJson(j);
  return n ? "" : n.error().field;
}

TEST(DicomWebNode, DefaultsOfANewNode) {
  auto n = NodeFromJson(Web());
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_TRUE(n->qido && n->wado && n->stow && n->stow_multipart);
  EXPECT_EQ(n->qido_root, "");
  EXPECT_EQ(n->stow_batch_instances, 100);
  EXPECT_EQ(n->stow_batch_mb, 64);
  EXPECT_EQ(n->query_timeout_seconds, 30);
  EXPECT_EQ(n->retrieve_timeout_seconds, 120);
  EXPECT_EQ(n->max_results, 1000);
  EXPECT_EQ(n->max_associations, 2);
  EXPECT_EQ(n->proxy, "");
  EXPECT_FALSE(n->allow_redirects);
  EXPECT_EQ(n->auth.type, "none");
  auto j = NodeToJson(*n);
  EXPECT_EQ(j["stow_batch_instances"], 100);
  EXPECT_EQ(j["calling_ae_header"], "");
  EXPECT_EQ(j["preferred_transfer_syntax"], "");
  EXPECT_EQ(j["auth"]["scope"], "");
}

TEST(DicomWebNode, EveryFieldRoundTripsThroughStorageForm) {
  auto n = NodeFromJson(FullWeb());
  ASSERT_TRUE(n) << n.error().field << ": " << n.error().message;
  nlohmann::json stored = NodeToJson(*n, true);
  const nlohmann::json given = FullWeb();
  for (auto it = given.begin(); it != given.end(); ++it) {
    EXPECT_EQ(stored[it.key()], it.value()) << it.key();
  }
  auto again = NodeFromJson(stored);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(NodeToJson(*again, true), stored);
}

TEST(DicomWebNode, DimseOutputHasNoDicomWebFields) {
  auto n = NodeFromJson(Dimse());
  ASSERT_TRUE(n);
  auto j = NodeToJson(*n, true);
  for (const char* key : {"url", "qido_root", "stow_batch_mb", "proxy", "auth", "headers", "calling_ae_header",
                          "allow_redirects", "query_timeout_seconds"}) {
    EXPECT_FALSE(j.contains(key)) << key;
  }
}

TEST(DicomWebNode, SecretsAreNeverReturnedByTheApiForm) {
  auto n = NodeFromJson(FullWeb());
  ASSERT_TRUE(n);
  const auto api = NodeToApiJson(*n, "PACSBRIDGE");
  for (const char* secret : {"pw-1", "tok-2", "cs-3"}) EXPECT_EQ(api.dump().find(secret), std::string::npos) << secret;
  for (const char* key : {"password", "token", "client_secret"}) EXPECT_FALSE(api["auth"].contains(key)) << key;
  EXPECT_TRUE(api["auth"]["has_password"].get<bool>());
  EXPECT_TRUE(api["auth"]["has_token"].get<bool>());
  EXPECT_TRUE(api["auth"]["has_client_secret"].get<bool>());
  EXPECT_EQ(api["auth"]["scope"], "dicom.read dicom.write");
  // On its own the API form lacks the secrets (a PUT merges it into the stored node, which has
  // them: registry_test); its read-only fields (offers_*, available, has_*, ...) are accepted.
  auto back = NodeFromJson(api);
  ASSERT_FALSE(back);
  EXPECT_EQ(back.error().field, "auth.client_secret");
  auto plain = NodeFromJson(NodeToApiJson(*NodeFromJson(Web()), "PACSBRIDGE"));
  ASSERT_TRUE(plain) << plain.error().field << ": " << plain.error().message;
}

TEST(DicomWebNode, ValidationNamesTheField) {
  using P = nlohmann::json::json_pointer;
  const auto web = Web();
  EXPECT_EQ(FieldOf(web, P("/qido_root"), "qido.example/rs"), "qido_root");
  EXPECT_EQ(FieldOf(web, P("/wado_root"), "https://u:p@wado.example/rs"), "wado_root");
  EXPECT_EQ(FieldOf(web, P("/stow_root"), "https://stow.example/rs?x=1"), "stow_root");
  EXPECT_EQ(FieldOf(web, P("/ae_title"), "WAY_TOO_LONG_AE_TITLE"), "ae_title");
  EXPECT_EQ(FieldOf(web, P("/calling_ae_title"), "A\\B"), "calling_ae_title");
  EXPECT_EQ(FieldOf(web, P("/proxy"), "ftp://proxy:21"), "proxy");
  EXPECT_EQ(FieldOf(web, P("/proxy"), "proxy:3128"), "proxy");
  EXPECT_EQ(FieldOf(web, P("/proxy"), "http://u:p@proxy:3128"), "proxy");
  EXPECT_EQ(FieldOf(web, P("/proxy"), "http://proxy:3128/path"), "proxy");
  EXPECT_EQ(FieldOf(web, P("/proxy"), "https://proxy:3128"), "");
  EXPECT_EQ(FieldOf(web, P("/proxy"), "socks5://127.0.0.1:1080"), "");
  for (const char* key : {"stow_batch_instances", "stow_batch_mb", "query_timeout_seconds", "retrieve_timeout_seconds",
                          "max_results", "max_associations"}) {
    EXPECT_EQ(FieldOf(web, P(std::string("/") + key), 0), key);
    EXPECT_EQ(FieldOf(web, P(std::string("/") + key), 1), "") << key;
  }
  EXPECT_EQ(FieldOf(web, P("/stow_batch_instances"), 10001), "stow_batch_instances");
  EXPECT_EQ(FieldOf(web, P("/stow_batch_mb"), 4097), "stow_batch_mb");
  EXPECT_EQ(FieldOf(web, P("/stow_batch_mb"), 4096), "");
  EXPECT_EQ(FieldOf(web, P("/query_timeout_seconds"), 3601), "query_timeout_seconds");
  EXPECT_EQ(FieldOf(web, P("/retrieve_timeout_seconds"), 1LL << 40), "retrieve_timeout_seconds");
  EXPECT_EQ(FieldOf(web, P("/stow_batch_mb"), "64"), "stow_batch_mb");
  EXPECT_EQ(FieldOf(web, P("/allow_redirects"), "yes"), "allow_redirects");
  EXPECT_EQ(FieldOf(web, P("/auth/scope"), 3), "auth.scope");
  EXPECT_EQ(FieldOf(web, P("/auth/bogus"), 3), "auth.bogus");
}

TEST(DicomWebNode, RangeErrorsSayTheRange) {
  auto j = Web();
  j["stow_batch_mb"] = 0;
  EXPECT_EQ(NodeFromJson(j).error().message, "stow_batch_mb must be between 1 and 4096 (default 64)");
}

TEST(DicomWebNode, EachAuthTypeNeedsItsFields) {
  auto with = [](nlohmann::json auth) {
    auto j = Web();
    j["auth"] = std::move(auth);
    auto n = NodeFromJson(j);
    return n ? std::string() : n.error().field;
  };
  EXPECT_EQ(with({{"type", "digest"}}), "auth.type");
  EXPECT_EQ(with({{"type", "basic"}}), "auth.username");
  EXPECT_EQ(with({{"type", "basic"}, {"username", "u"}}), "");  // the password may be empty
  EXPECT_EQ(with({{"type", "basic"}, {"username", "a:b"}}), "auth.username");
  EXPECT_EQ(with({{"type", "bearer"}}), "auth.token");
  EXPECT_EQ(with({{"type", "bearer"}, {"token", "abc\r\nX-Evil: 1"}}), "auth.token");
  EXPECT_EQ(with({{"type", "bearer"}, {"token", "abc.def"}}), "");
  nlohmann::json oauth{
      {"type", "oauth2"}, {"token_url", "https://login/token"}, {"client_id", "c"}, {"client_secret", "s"}};
  EXPECT_EQ(with(oauth), "");  // scope is optional
  for (const char* key : {"token_url", "client_id", "client_secret"}) {
    auto missing = oauth;
    missing.erase(key);
    EXPECT_EQ(with(missing), std::string("auth.") + key);
  }
  auto bad = oauth;
  bad["token_url"] = "https://id:secret@login/token";
  EXPECT_EQ(with(bad), "auth.token_url");
  bad["token_url"] = "login/token";
  EXPECT_EQ(with(bad), "auth.token_url");
  bad["token_url"] = "https://login.example/realms/x/protocol/openid-connect/token?api-version=2";
  EXPECT_EQ(with(bad), "");  // a path without trailing slash, and a query, are fine here
}

TEST(DicomWebNode, MissingSecretMessageSaysWhatToGive) {
  auto j = Web();
  j["auth"] = {{"type", "bearer"}};
  auto n = NodeFromJson(j);
  ASSERT_FALSE(n);
  EXPECT_NE(n.error().message.find("auth.token is required when auth.type is bearer"), std::string::npos)
      << n.error().message;
}

TEST(DicomWebNode, HeaderNamesAreTokensWeDoNotSetOurselves) {
  auto with = [](nlohmann::json headers, nlohmann::json auth = nullptr) {
    auto j = Web();
    j["headers"] = std::move(headers);
    if (!auth.is_null()) j["auth"] = std::move(auth);
    auto n = NodeFromJson(j);
    return n ? std::string() : n.error().field;
  };
  auto h = [](const char* name, const char* value) { return nlohmann::json{{"name", name}, {"value", value}}; };
  EXPECT_EQ(with({h("X-Api-Key", "1"), h("X Bad", "2")}), "headers[1].name");
  EXPECT_EQ(with({h("X-A:", "1")}), "headers[0].name");
  EXPECT_EQ(with({h("", "1")}), "headers[0].name");
  EXPECT_EQ(with({h("x-a", "1"), h("X-A", "2")}), "headers[1].name");
  for (const char* own : {"Content-Type", "content-length", "ACCEPT", "Host", "Transfer-Encoding", "Expect"}) {
    EXPECT_EQ(with({h(own, "x")}), "headers[0].name") << own;
  }
  EXPECT_EQ(with({h("Authorization", "Token 1")}), "");  // auth.type none: the node's own
  EXPECT_EQ(with({h("authorization", "Token 1")}, {{"type", "bearer"}, {"token", "t"}}), "headers[0].name");
  EXPECT_EQ(with({h("X-A", "1\r\nHost: evil")}), "headers[0].value");
  auto j = Web();
  j["headers"] = {{{"name", "X-A"}, {"value", std::string("a\0b", 3)}}};
  EXPECT_EQ(NodeFromJson(j).error().field, "headers[0].value");
  EXPECT_EQ(with({{{"name", "X-A"}, {"value", "1"}, {"secret", true}}}), "headers[0].secret");
  EXPECT_EQ(with({{{"value", "1"}}}), "headers[0]");
  auto ok = Web();
  ok["headers"] = {h("  X-Trimmed ", "v")};
  EXPECT_EQ(NodeFromJson(ok)->headers[0].first, "X-Trimmed");
}

TEST(DicomWebNode, AeTitleHeaders) {
  using P = nlohmann::json::json_pointer;
  auto web = Web();
  EXPECT_EQ(FieldOf(web, P("/calling_ae_header"), "X Calling"), "calling_ae_header");
  EXPECT_EQ(FieldOf(web, P("/calling_ae_header"), "Host"), "calling_ae_header");
  EXPECT_EQ(FieldOf(web, P("/calling_ae_header"), "X-Calling-AE"), "");
  EXPECT_EQ(FieldOf(web, P("/called_ae_header"), "X-Called-AE"), "called_ae_header");  // needs ae_title
  web["ae_title"] = "CLOUD";
  EXPECT_EQ(FieldOf(web, P("/called_ae_header"), "X-Called-AE"), "");
  web["calling_ae_header"] = "x-called-ae";
  EXPECT_EQ(FieldOf(web, P("/called_ae_header"), "X-Called-AE"), "called_ae_header");
  web["calling_ae_header"] = "X-Api-Key";
  web["headers"] = {{{"name", "x-api-key"}, {"value", "1"}}};
  EXPECT_EQ(FieldOf(web, P("/description"), ""), "calling_ae_header");
}

TEST(DicomWebNode, ApiShowsWhatTheNodeOffers) {
  auto j = Web();
  j["queryable"] = true;
  j["storable"] = true;
  auto n = NodeFromJson(j);
  ASSERT_TRUE(n);
  auto api = NodeToApiJson(*n, "PACSBRIDGE");
  EXPECT_TRUE(api["offers_import"].get<bool>());
  EXPECT_TRUE(api["offers_export"].get<bool>());
  EXPECT_FALSE(api.contains("effective_calling_ae_title"));  // no header carries it
  n->wado = false;
  n->stow = false;
  api = NodeToApiJson(*n, "PACSBRIDGE");
  EXPECT_FALSE(api["offers_import"].get<bool>());
  EXPECT_FALSE(api["offers_export"].get<bool>());
  n->wado = true;
  n->qido = false;
  EXPECT_FALSE(NodeToApiJson(*n, "PACSBRIDGE")["offers_import"].get<bool>());
  n->calling_ae_header = "X-Calling-AE";
  EXPECT_EQ(NodeToApiJson(*n, "PACSBRIDGE")["effective_calling_ae_title"], "PACSBRIDGE");
  n->calling_ae_title = "MINE";
  EXPECT_EQ(NodeToApiJson(*n, "PACSBRIDGE")["effective_calling_ae_title"], "MINE");
}

TEST(DicomWebNode, DimseNodesOfferWhatTheirFlagsSay) {
  auto j = Dimse();
  j["queryable"] = true;
  auto n = NodeFromJson(j);
  ASSERT_TRUE(n);
  n->qido = false;  // ignored by DIMSE nodes
  auto api = NodeToApiJson(*n, "PACSBRIDGE");
  EXPECT_TRUE(api["offers_import"].get<bool>());
  EXPECT_FALSE(api["offers_export"].get<bool>());
  EXPECT_EQ(api["effective_calling_ae_title"], "PACSBRIDGE");
}

}  // namespace
}  // namespace pb
