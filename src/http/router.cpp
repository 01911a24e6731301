#include "http/router.h"

#include <set>

#include <fmt/format.h>

namespace pb::http {

std::string PathPattern(const std::string& path) {
  std::string out;
  for (size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    const size_t end = c == '{' ? path.find('}', i) : std::string::npos;
    if (end != std::string::npos) {
      out += "([^/]+)";
      i = end;
    } else if (c == '.' || c == '(' || c == ')' || c == '[' || c == ']' || c == '{' || c == '}' || c == '+' ||
               c == '*' || c == '?' || c == '^' || c == '$' || c == '|' || c == '\\') {
      out += '\\';
      out += c;
    } else {
      out += c;
    }
  }
  return out;
}

std::string Router::Add(const char* method, const std::string& path) {
  routes_.push_back({method, path});
  return PathPattern(path);
}

void Router::Get(const std::string& path, httplib::Server::Handler handler) {
  srv_.Get(Add("get", path), std::move(handler));
}

void Router::Delete(const std::string& path, httplib::Server::Handler handler) {
  srv_.Delete(Add("delete", path), std::move(handler));
}

void Router::Post(const std::string& path, BodyHandler handler) {
  http::Post(srv_, Add("post", path), std::move(handler));
}

void Router::Put(const std::string& path, BodyHandler handler) {
  http::Put(srv_, Add("put", path), std::move(handler));
}

Result<void> CheckRoutes(const std::vector<Route>& routes, const nlohmann::json& openapi) {
  static const std::set<std::string> kMethods = {"get", "put", "post", "delete", "patch", "head", "options"};
  std::set<std::pair<std::string, std::string>> documented, served;
  auto paths = openapi.find("paths");
  if (paths == openapi.end() || !paths->is_object()) {
    return Fail(Code::kInternal, "the OpenAPI document has no paths");
  }
  for (const auto& [path, item] : paths->items()) {
    if (!item.is_object()) continue;
    for (const auto& [method, op] : item.items()) {
      if (kMethods.count(method)) documented.insert({method, path});
    }
  }
  std::vector<std::string> problems;
  for (const Route& r : routes) {
    if (!served.insert({r.method, r.path}).second) {
      problems.push_back(fmt::format("{} {} is routed twice", r.method, r.path));
    }
  }
  for (const auto& [method, path] : served) {
    if (!documented.count({method, path})) problems.push_back(fmt::format("{} {} is served but not documented", method, path));
  }
  for (const auto& [method, path] : documented) {
    if (!served.count({method, path})) problems.push_back(fmt::format("{} {} is documented but not served", method, path));
  }
  if (problems.empty()) return {};
  std::string all;
  for (const std::string& p : problems) all += (all.empty() ? "" : "; ") + p;
  return Fail(Code::kInternal, "the API's routes and its OpenAPI document differ: " + all);
}

}  // namespace pb::http
