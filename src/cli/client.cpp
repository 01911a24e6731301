#include "cli/client.h"

#include <httplib.h>

#include <cstdlib>
#include <iostream>

#include <fmt/format.h>

#include "cli/table.h"

namespace pb::cli {

ServerUrl ResolveServerUrl(const ServerOptions& server, const char* env_url) {
  if (!server.url.empty()) return {server.url, "--server"};
  if (env_url && *env_url) return {env_url, "$PACSBRIDGE_SERVER"};
  return {kDefaultServerUrl, "default"};
}

void AddServerOptions(CLI::App* cmd, ServerOptions& server) {
  cmd->add_option("--server", server.url,
                  fmt::format("server URL (or $PACSBRIDGE_SERVER; default {})", kDefaultServerUrl));
  cmd->add_option("--user", server.user, "account name (or $PACSBRIDGE_USER; default admin)");
  cmd->add_option("--password", server.password, "the account's password (or $PACSBRIDGE_PASSWORD)");
  cmd->add_option("--token", server.token, "an API token instead of a password (or $PACSBRIDGE_TOKEN)");
}

std::string FollowCommand(const ServerOptions& server, const std::string& id) {
  std::string command = fmt::format("pacsbridge jobs show {} --follow", id);
  if (!server.url.empty()) command += " --server " + server.url;
  return command;
}

[[nodiscard]] Result<Reply> Call(const ServerOptions& server, const std::string& method, const std::string& path,
                                 const nlohmann::json* body) {
  const ServerUrl where = ResolveServerUrl(server, std::getenv("PACSBRIDGE_SERVER"));
  httplib::Client client(where.url);
  client.set_connection_timeout(5);
  client.set_read_timeout(120);
  auto pick = [](const std::string& flag, const char* env) {
    if (!flag.empty()) return flag;
    const char* v = std::getenv(env);
    return std::string(v ? v : "");
  };
  // What the command line says wins over the environment: --token, then --password (with
  // --user), then $PACSBRIDGE_TOKEN, then $PACSBRIDGE_PASSWORD (with $PACSBRIDGE_USER).
  std::string user = pick(server.user, "PACSBRIDGE_USER");
  if (user.empty()) user = "admin";
  if (!server.token.empty()) {
    client.set_bearer_token_auth(server.token.c_str());
  } else if (!server.password.empty()) {
    client.set_basic_auth(user.c_str(), server.password.c_str());
  } else if (const std::string token = pick("", "PACSBRIDGE_TOKEN"); !token.empty()) {
    client.set_bearer_token_auth(token.c_str());
  } else if (const std::string password = pick("", "PACSBRIDGE_PASSWORD"); !password.empty()) {
    client.set_basic_auth(user.c_str(), password.c_str());
  }
  std::string payload = body ? body->dump() : std::string();
  auto send = [&]() -> httplib::Result {
    if (method == "POST") return client.Post(path.c_str(), payload, "application/json");
    if (method == "PUT") return client.Put(path.c_str(), payload, "application/json");
    if (method == "DELETE") return client.Delete(path.c_str());
    return client.Get(path.c_str());
  };
  httplib::Result r = send();
  if (!r) {
    const std::string hint = where.source == "$PACSBRIDGE_SERVER"
                                 ? "the URL comes from $PACSBRIDGE_SERVER; --server URL overrides it"
                                 : "--server URL or $PACSBRIDGE_SERVER";
    return Fail(Code::kUnavailable,
                fmt::format("cannot reach the server at {} ({}); is `pacsbridge serve` running? ({})", where.url,
                            httplib::to_string(r.error()), hint));
  }
  Reply reply;
  reply.status = r->status;
  if (!r->body.empty()) {
    reply.body = nlohmann::json::parse(r->body, nullptr, false);
    if (reply.body.is_discarded()) reply.body = r->body;
  }
  return reply;
}

std::string ErrorText(const Reply& reply) {
  if (reply.body.is_object() && reply.body.contains("error")) {
    std::string msg = reply.body["error"].get<std::string>();
    if (reply.body.contains("field")) msg += fmt::format(" (field: {})", reply.body["field"].get<std::string>());
    if (reply.status == 401) {
      msg +=
          " [the CLI sends --token or $PACSBRIDGE_TOKEN, else --user/$PACSBRIDGE_USER (default admin) with "
          "--password/$PACSBRIDGE_PASSWORD]";
    }
    return msg;
  }
  return fmt::format("the server answered HTTP {}", reply.status);
}

int CallAndReport(const ServerOptions& server, const std::string& method, const std::string& path,
                  const nlohmann::json* body, int ok_status, nlohmann::json& out) {
  auto reply = Call(server, method, path, body);
  if (!reply) {
    std::cerr << reply.error().message << "\n";
    return 3;
  }
  if (reply->status != ok_status) {
    std::cerr << ErrorText(*reply) << "\n";
    return 1;
  }
  if (reply->body.is_object() && reply->body.contains("warnings")) {
    for (const auto& w : reply->body["warnings"]) std::cerr << "warning: " << w.get<std::string>() << "\n";
  }
  out = std::move(reply->body);
  return 0;
}

[[nodiscard]] Result<std::vector<std::pair<std::string, std::string>>> ParseKeyValues(
    const std::vector<std::string>& args) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& a : args) {
    auto eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Fail(Code::kInvalidArgument, fmt::format("'{}' must be KEYWORD=VALUE", a), a);
    }
    out.emplace_back(a.substr(0, eq), a.substr(eq + 1));
  }
  return out;
}

void PrintTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                const std::string& indent) {
  std::vector<TableColumn> columns;
  for (const auto& h : header) columns.push_back({h});
  for (const auto& line : LayoutTable(columns, rows, 0)) std::cout << indent << line << "\n";
}

void AddServerFlags(CLI::App* cmd, CommandOptions& options) {
  AddServerOptions(cmd, options.server);
  cmd->add_flag("--json", options.json, "print JSON instead of a table");
}

int RunAndPrint(const CommandOptions& options, const std::string& method, const std::string& path,
                const nlohmann::json* body, int ok_status, void (*print)(const nlohmann::json&)) {
  nlohmann::json answer;
  if (int code = CallAndReport(options.server, method, path, body, ok_status, answer)) return code;
  if (options.json)
    std::cout << answer.dump(2) << "\n";
  else if (print)
    print(answer);
  return 0;
}

}  // namespace pb::cli
