// The web UI: its embedded files at / (index.html) and /assets/..., with a content security
// policy that lets the page load nothing but what this server serves.
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "http/api.h"
#include "http/router.h"
#include "http/ui_assets.h"

namespace pb::http {

namespace {

constexpr const char* kPolicy =
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const char* TypeOf(const std::string& name) {
  auto ends = [&](const char* e) { return name.size() >= std::strlen(e) && name.ends_with(e); };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  return "application/octet-stream";
}

// For working on the UI: PACSBRIDGE_UI_DIR=ui/dist serves the files Vite builds there, read at
// each request, so a rebuilt UI shows without rebuilding the server. Names are one path segment
// of [A-Za-z0-9._-] (no "..": the pattern has no '/' and a name must not start with '.').
void AddUiDirRoutes(httplib::Server& srv, const std::filesystem::path& dir) {
  spdlog::warn("the web UI is served from {} (PACSBRIDGE_UI_DIR), not the one built in", dir.string());
  auto serve = [dir](const std::string& rel, httplib::Response& res) {
    std::ifstream in(dir / rel, std::ios::binary);
    if (rel.empty() || rel.find("/.") != std::string::npos || rel[0] == '.' || !in) {
      res.status = 404;
      return;
    }
    std::ostringstream data;
    data << in.rdbuf();
    res.set_content(data.str(), TypeOf(rel));
    // As the built-in UI: Vite names assets by content, the rest is asked again each time.
    res.set_header("Cache-Control", rel.rfind("assets/", 0) == 0 ? "public, max-age=31536000, immutable" : "no-cache");
    if (rel == "index.html") res.set_header("Content-Security-Policy", kPolicy);
  };
  srv.Get("/", [serve](const httplib::Request&, httplib::Response& res) { serve("index.html", res); });
  srv.Get(R"(/([A-Za-z0-9_-][A-Za-z0-9._-]*))",
          [serve](const httplib::Request& req, httplib::Response& res) { serve(req.matches[1], res); });
  srv.Get(R"(/assets/([A-Za-z0-9_-][A-Za-z0-9._-]*))", [serve](const httplib::Request& req, httplib::Response& res) {
    serve("assets/" + std::string(req.matches[1]), res);
  });
}

}  // namespace

void AddUiRoutes(httplib::Server& srv) {
  if (const char* dir = std::getenv("PACSBRIDGE_UI_DIR"); dir && *dir) return AddUiDirRoutes(srv, dir);
  for (const UiAsset& a : UiAssets()) {
    const std::string path = a.path;
    const bool page = path == "/index.html";
    // Vite names assets by content hash: one may be kept for ever; the page is always asked again.
    const bool immutable = path.rfind("/assets/", 0) == 0;
    httplib::Server::Handler serve = [a, page, immutable](const httplib::Request&, httplib::Response& res) {
      res.set_content(reinterpret_cast<const char*>(a.data), a.size, a.type);
      res.set_header("Cache-Control", immutable ? "public, max-age=31536000, immutable" : "no-cache");
      if (page) res.set_header("Content-Security-Policy", kPolicy);
    };
    srv.Get(PathPattern(path), serve);
    if (page) srv.Get("/", serve);
  }
}

}  // namespace pb::http
