#include "http/router.h"

#include <gtest/gtest.h>

#include "http/api.h"

namespace pb::http {
namespace {

TEST(Router, TemplatesBecomeOneSegmentPerParameter) {
  EXPECT_EQ(PathPattern("/api/nodes/{name}/echo"), "/api/nodes/([^/]+)/echo");
  EXPECT_EQ(PathPattern("/api/projects/{project}/subjects/{subject}/sessions"),
            "/api/projects/([^/]+)/subjects/([^/]+)/sessions");
  EXPECT_EQ(PathPattern("/api/openapi.json"), "/api/openapi\\.json");  // a dot is a dot
  EXPECT_EQ(PathPattern("/api/a{b"), "/api/a\\{b");  // an unclosed brace is a brace
}

TEST(Router, RecordsWhatItRoutes) {
  httplib::Server srv;
  Router r(srv);
  r.Get("/api/jobs/{id}", [](const httplib::Request&, httplib::Response&) {});
  r.Post("/api/jobs/{id}/cancel", [](const httplib::Request&, httplib::Response&, const std::string&) {});
  r.Delete("/api/nodes/{name}", [](const httplib::Request&, httplib::Response&) {});
  EXPECT_EQ(r.routes(), (std::vector<Route>{{"get", "/api/jobs/{id}"},
                                            {"post", "/api/jobs/{id}/cancel"},
                                            {"delete", "/api/nodes/{name}"}}));
}

TEST(Router, CheckNamesEveryDifferenceWithTheDocument) {
  const nlohmann::json doc = {
      {"paths",
       {{"/api/jobs/{id}", {{"parameters", nlohmann::json::array()}, {"get", nlohmann::json::object()}}},
        {"/api/nodes", {{"get", nlohmann::json::object()}, {"post", nlohmann::json::object()}}}}}};
  EXPECT_TRUE(CheckRoutes({{"get", "/api/jobs/{id}"}, {"get", "/api/nodes"}, {"post", "/api/nodes"}}, doc));

  auto r = CheckRoutes({{"get", "/api/jobs/{id}"}, {"get", "/api/nodes"}, {"get", "/api/nodes"},
                        {"delete", "/api/nodes"}},
                       doc);
  ASSERT_FALSE(r);
  const std::string& m = r.error().message;
  EXPECT_NE(m.find("get /api/nodes is routed twice"), std::string::npos) << m;
  EXPECT_NE(m.find("delete /api/nodes is served but not documented"), std::string::npos) << m;
  EXPECT_NE(m.find("post /api/nodes is documented but not served"), std::string::npos) << m;
  EXPECT_EQ(m.find("parameters"), std::string::npos) << m;  // not an operation

  EXPECT_FALSE(CheckRoutes({}, nlohmann::json::object()));  // no paths at all
}

TEST(Router, TheServedDocumentIsTheBuiltOne) {
  const nlohmann::json& doc = OpenApiDocument();
  EXPECT_EQ(doc.value("openapi", ""), "3.0.3");
  EXPECT_TRUE(doc.at("paths").contains("/api/nodes/{name}/echo"));
}

}  // namespace
}  // namespace pb::http
