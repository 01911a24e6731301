// The web UI: its embedded files at / (index.html) and /assets/..., with a content security
// policy that lets the page load nothing but what this server serves.
#include <httplib.h>

#include <string>

#include "http/api.h"
#include "http/router.h"
#include "http/ui_assets.h"

namespace pb::http {

namespace {

constexpr const char* kPolicy =
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

}  // namespace

void AddUiRoutes(httplib::Server& srv) {
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
