#include <httplib.h>

#include "http/api.h"
#include "http/errors.h"

namespace pb::http {

extern const char* const kOpenApiYaml;  // docs/openapi.yaml, embedded at build time

void AddSystemRoutes(httplib::Server& srv, Services& s) {
  srv.Get("/api/health", [](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, {{"status", "ok"}});
  });
  srv.Get("/api/openapi.yaml", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kOpenApiYaml, "application/yaml");
  });
  srv.Get("/api/system", [&s](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, {{"ae_title", s.settings.ae_title}, {"version", "0.1.0"},
                        {"auth_enabled", s.settings.admin_password.has_value()}});
  });
}

}  // namespace pb::http
