#include "http/router.h"

#include <map>
#include <optional>
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

const char* AccessName(Access access) {
  switch (access) {
    case Access::kOpen:
      return "open";
    case Access::kReadOnly:
      return "read-only";
    case Access::kUser:
      return "user";
    case Access::kAdmin:
      return "admin";
  }
  return "admin";
}

std::string Router::Add(const char* method, const std::string& path, Access access) {
  routes_.push_back({method, path, access});
  return PathPattern(path);
}

Gate Router::GateFor(Access access) const {
  if (!gate_) return {};
  return [gate = gate_, access](const httplib::Request& req, httplib::Response& res) { return gate(req, res, access); };
}

httplib::Server::Handler Router::Gated(Access access, httplib::Server::Handler handler) const {
  Gate gate = GateFor(access);
  if (!gate) return handler;
  return [gate = std::move(gate), handler = std::move(handler)](const httplib::Request& req, httplib::Response& res) {
    if (gate(req, res)) handler(req, res);
  };
}

void Router::Get(const std::string& path, Access access, httplib::Server::Handler handler) {
  srv_.Get(Add("get", path, access), Gated(access, std::move(handler)));
}

void Router::Delete(const std::string& path, Access access, httplib::Server::Handler handler) {
  srv_.Delete(Add("delete", path, access), Gated(access, std::move(handler)));
}

void Router::PostStream(const std::string& path, Access access, httplib::Server::HandlerWithContentReader handler) {
  Gate gate = GateFor(access);
  srv_.Post(Add("post", path, access),
            [gate = std::move(gate), handler = std::move(handler)](const httplib::Request& req, httplib::Response& res,
                                                                   const httplib::ContentReader& reader) {
              if (gate && !gate(req, res)) {
                if (!DrainBody(req, reader, 64 * 1024, &res)) CloseAfterAnswer(res);
                return;
              }
              handler(req, res, reader);
            });
}

void Router::Post(const std::string& path, Access access, BodyHandler handler) {
  http::Post(srv_, Add("post", path, access), std::move(handler), GateFor(access));
}

void Router::Put(const std::string& path, Access access, BodyHandler handler) {
  http::Put(srv_, Add("put", path, access), std::move(handler), GateFor(access));
}

namespace {

// The access an operation of the document states; nullopt when it states none or an unknown.
std::optional<Access> DocumentedAccess(const nlohmann::json& op) {
  if (!op.is_object()) return std::nullopt;
  if (auto sec = op.find("security"); sec != op.end() && sec->is_array() && sec->empty()) return Access::kOpen;
  auto role = op.find("x-role");
  if (role == op.end() || !role->is_string()) return std::nullopt;
  for (Access a : {Access::kReadOnly, Access::kUser, Access::kAdmin}) {
    if (*role == AccessName(a)) return a;
  }
  return std::nullopt;
}

}  // namespace

[[nodiscard]] Result<void> CheckRoutes(const std::vector<Route>& routes, const nlohmann::json& openapi) {
  static const std::set<std::string> kMethods = {"get", "put", "post", "delete", "patch", "head", "options"};
  std::set<std::pair<std::string, std::string>> documented, served;
  std::map<std::pair<std::string, std::string>, std::optional<Access>> documented_access;
  auto paths = openapi.find("paths");
  if (paths == openapi.end() || !paths->is_object()) {
    return Fail(Code::kInternal, "the OpenAPI document has no paths");
  }
  for (const auto& [path, item] : paths->items()) {
    if (!item.is_object()) continue;
    for (const auto& [method, op] : item.items()) {
      if (kMethods.count(method)) {
        documented.insert({method, path});
        documented_access[{method, path}] = DocumentedAccess(op);
      }
    }
  }
  std::vector<std::string> problems;
  for (const Route& r : routes) {
    if (!served.insert({r.method, r.path}).second) {
      problems.push_back(fmt::format("{} {} is routed twice", r.method, r.path));
    }
  }
  for (const auto& [method, path] : served) {
    if (!documented.count({method, path}))
      problems.push_back(fmt::format("{} {} is served but not documented", method, path));
  }
  for (const Route& r : routes) {
    auto doc = documented_access.find({r.method, r.path});
    if (doc == documented_access.end()) continue;
    if (!doc->second) {
      problems.push_back(
          fmt::format("{} {} states no access (security: [] or x-role: read-only, user or admin)", r.method, r.path));
    } else if (*doc->second != r.access) {
      problems.push_back(fmt::format("{} {} is served as {} but documented as {}", r.method, r.path,
                                     AccessName(r.access), AccessName(*doc->second)));
    }
  }
  for (const auto& [method, path] : documented) {
    if (!served.count({method, path}))
      problems.push_back(fmt::format("{} {} is documented but not served", method, path));
  }
  if (problems.empty()) return {};
  std::string all;
  for (const std::string& p : problems) all += (all.empty() ? "" : "; ") + p;
  return Fail(Code::kInternal, "the API's routes and its OpenAPI document differ: " + all);
}

}  // namespace pb::http
