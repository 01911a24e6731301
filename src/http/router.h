#pragma once
// Registers the API's routes on the HTTP server by their OpenAPI path templates
// ("/api/nodes/{name}/echo") and keeps the list, so that the server can check its routes
// against the OpenAPI document it serves (CheckRoutes) and refuse to start when they differ.
#include <functional>
#include <string>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "core/result.h"
#include "http/errors.h"

namespace pb::http {

// Who may call a route: anyone, or an account with at least this role. The OpenAPI document
// says the same per operation ("security: []" for open ones, else "x-role").
enum class Access { kOpen, kReadOnly, kUser, kAdmin };
const char* AccessName(Access access);  // "open", "read-only", "user", "admin"

struct Route {
  std::string method;  // lower case, as OpenAPI writes it: "get", "post", ...
  std::string path;    // the template: "/api/jobs/{id}"
  Access access = Access::kAdmin;
  bool operator==(const Route&) const = default;
};

// Decides, before the handler runs (and before a body is read), whether the request may go on;
// when not, it has answered (401, 403, 429).
using AccessGate = std::function<bool(const httplib::Request&, httplib::Response&, Access)>;

class Router {
 public:
  explicit Router(httplib::Server& srv, AccessGate gate = {}) : srv_(srv), gate_(std::move(gate)) {}
  // Each {parameter} of the template matches one path segment, given to the handler as
  // req.matches[1], [2], ... in order.
  void Get(const std::string& path, Access access, httplib::Server::Handler handler);
  void Delete(const std::string& path, Access access, httplib::Server::Handler handler);
  // POST and PUT read the body themselves (see BodyHandler in errors.h).
  void Post(const std::string& path, Access access, BodyHandler handler);
  void Put(const std::string& path, Access access, BodyHandler handler);
  // A POST whose handler reads the body itself as it arrives, of any size (STOW-RS): the only
  // routes the server lets past its 16 MB body limit (api.cpp, StreamsBody). Refused callers'
  // bodies are not read beyond 64 KB.
  void PostStream(const std::string& path, Access access, httplib::Server::HandlerWithContentReader handler);

  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::string Add(const char* method, const std::string& path, Access access);
  httplib::Server::Handler Gated(Access access, httplib::Server::Handler handler) const;
  Gate GateFor(Access access) const;

  httplib::Server& srv_;
  AccessGate gate_;
  std::vector<Route> routes_;
};

// The regular expression cpp-httplib matches for a path template.
std::string PathPattern(const std::string& path);

// Fails, naming each difference, unless every route is an operation of the document's
// `paths` with the same access, and every operation there is a route.
[[nodiscard]] Result<void> CheckRoutes(const std::vector<Route>& routes, const nlohmann::json& openapi);

}  // namespace pb::http
