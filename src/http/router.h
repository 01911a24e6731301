#pragma once
// Registers the API's routes on the HTTP server by their OpenAPI path templates
// ("/api/nodes/{name}/echo") and keeps the list, so that the server can check its routes
// against the OpenAPI document it serves (CheckRoutes) and refuse to start when they differ.
#include <string>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "core/result.h"
#include "http/errors.h"

namespace pb::http {

struct Route {
  std::string method;  // lower case, as OpenAPI writes it: "get", "post", ...
  std::string path;    // the template: "/api/jobs/{id}"
  bool operator==(const Route&) const = default;
};

class Router {
 public:
  explicit Router(httplib::Server& srv) : srv_(srv) {}
  // Each {parameter} of the template matches one path segment, given to the handler as
  // req.matches[1], [2], ... in order.
  void Get(const std::string& path, httplib::Server::Handler handler);
  void Delete(const std::string& path, httplib::Server::Handler handler);
  // POST and PUT read the body themselves (see BodyHandler in errors.h).
  void Post(const std::string& path, BodyHandler handler);
  void Put(const std::string& path, BodyHandler handler);

  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::string Add(const char* method, const std::string& path);

  httplib::Server& srv_;
  std::vector<Route> routes_;
};

// The regular expression cpp-httplib matches for a path template.
std::string PathPattern(const std::string& path);

// Fails, naming each difference, unless every route is an operation of the document's
// `paths` and every operation there is a route.
Result<void> CheckRoutes(const std::vector<Route>& routes, const nlohmann::json& openapi);

}  // namespace pb::http
