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
  EXPECT_EQ(PathPattern("/api/a{b"), "/api/a\\{b");                    // an unclosed brace is a brace
}

TEST(Router, RecordsWhatItRoutes) {
  httplib::Server srv;
  Router r(srv);
  r.Get("/api/jobs/{id}", Access::kReadOnly, [](const httplib::Request&, httplib::Response&) {});
  r.Post("/api/jobs/{id}/cancel", Access::kUser,
         [](const httplib::Request&, httplib::Response&, const std::string&) {});
  r.Delete("/api/nodes/{name}", Access::kAdmin, [](const httplib::Request&, httplib::Response&) {});
  EXPECT_EQ(r.routes(), (std::vector<Route>{{"get", "/api/jobs/{id}", Access::kReadOnly},
                                            {"post", "/api/jobs/{id}/cancel", Access::kUser},
                                            {"delete", "/api/nodes/{name}", Access::kAdmin}}));
}

TEST(Router, CheckNamesEveryDifferenceWithTheDocument) {
  const nlohmann::json ro = {{"x-role", "read-only"}}, admin = {{"x-role", "admin"}};
  const nlohmann::json doc = {{"paths",
                               {{"/api/jobs/{id}", {{"parameters", nlohmann::json::array()}, {"get", ro}}},
                                {"/api/nodes", {{"get", ro}, {"post", admin}}}}}};
  const Access R = Access::kReadOnly, A = Access::kAdmin;
  EXPECT_TRUE(CheckRoutes({{"get", "/api/jobs/{id}", R}, {"get", "/api/nodes", R}, {"post", "/api/nodes", A}}, doc));

  auto r = CheckRoutes(
      {{"get", "/api/jobs/{id}", R}, {"get", "/api/nodes", R}, {"get", "/api/nodes", R}, {"delete", "/api/nodes", A}},
      doc);
  ASSERT_FALSE(r);
  const std::string& m = r.error().message;
  EXPECT_NE(m.find("get /api/nodes is routed twice"), std::string::npos) << m;
  EXPECT_NE(m.find("delete /api/nodes is served but not documented"), std::string::npos) << m;
  EXPECT_NE(m.find("post /api/nodes is documented but not served"), std::string::npos) << m;
  EXPECT_EQ(m.find("parameters"), std::string::npos) << m;  // not an operation

  EXPECT_FALSE(CheckRoutes({}, nlohmann::json::object()));  // no paths at all
}

TEST(Router, CheckComparesWhoMayCallEachOperation) {
  const nlohmann::json doc = {{"paths",
                               {{"/api/health", {{"get", {{"security", nlohmann::json::array()}}}}},
                                {"/api/nodes", {{"get", {{"x-role", "read-only"}}}, {"post", {{"x-role", "boss"}}}}},
                                {"/api/users", {{"get", nlohmann::json::object()}}}}}};
  auto r = CheckRoutes({{"get", "/api/health", Access::kOpen},
                        {"get", "/api/nodes", Access::kAdmin},
                        {"post", "/api/nodes", Access::kAdmin},
                        {"get", "/api/users", Access::kAdmin}},
                       doc);
  ASSERT_FALSE(r);
  const std::string& m = r.error().message;
  EXPECT_NE(m.find("get /api/nodes is served as admin but documented as read-only"), std::string::npos) << m;
  EXPECT_NE(m.find("post /api/nodes states no access"), std::string::npos) << m;  // unknown role
  EXPECT_NE(m.find("get /api/users states no access"), std::string::npos) << m;   // none at all
  EXPECT_EQ(m.find("/api/health"), std::string::npos) << m;                       // open, as documented
}

TEST(Router, TheServedDocumentIsTheBuiltOne) {
  const nlohmann::json& doc = OpenApiDocument();
  EXPECT_EQ(doc.value("openapi", ""), "3.0.3");
  EXPECT_TRUE(doc.at("paths").contains("/api/nodes/{name}/echo"));
}

}  // namespace
}  // namespace pb::http
