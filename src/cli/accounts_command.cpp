// `pacsbridge users`, `tokens` and `audit`: clients of /api/users, /api/tokens and /api/audit.
#include <httplib.h>

#include <iostream>
#include <optional>

#include "cli/client.h"
#include "cli/commands.h"

namespace pb::cli {
namespace {

std::string Text(const nlohmann::json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

void PrintUsers(const nlohmann::json& users) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& u : users) {
    rows.push_back({Text(u["username"]), Text(u["role"]), Text(u["created_at"]), Text(u["last_login_at"])});
  }
  PrintTable({"USER", "ROLE", "CREATED", "LAST LOG-IN"}, rows);
}

void PrintUser(const nlohmann::json& u) { PrintUsers(nlohmann::json::array({u})); }

void PrintTokens(const nlohmann::json& tokens) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : tokens) {
    rows.push_back({Text(t["id"]), Text(t["name"]), Text(t["username"]), Text(t["role"]), Text(t["created_at"]),
                    Text(t["expires_at"]), Text(t["last_used_at"])});
  }
  PrintTable({"ID", "NAME", "USER", "ROLE", "CREATED", "EXPIRES", "LAST USED"}, rows);
}

void PrintAudit(const nlohmann::json& entries) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& a : entries) {
    rows.push_back({Text(a["at"]), Text(a["actor"]), Text(a["via"]), Text(a["client"]), Text(a["action"]),
                    Text(a["target_type"]) + " " + Text(a["target"])});
  }
  PrintTable({"AT", "ACTOR", "VIA", "CLIENT", "ACTION", "TARGET"}, rows);
}

// "-" reads the new password from the first line of standard input (kept out of `ps`).
std::optional<std::string> NewPassword(const std::string& flag) {
  if (flag != "-") return flag;
  std::string line;
  if (!std::getline(std::cin, line)) return std::nullopt;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace

void AddAccountsCommands(CLI::App& app, int& exit_code) {
  auto s = std::make_shared<CommandOptions>();

  auto* users = app.add_subcommand("users", "list, add, change and remove accounts (admins)");
  AddServerFlags(users, *s);
  users->callback([users, s, &exit_code] {
    if (users->get_subcommands().empty()) exit_code = RunAndPrint(*s, "GET", "/api/users", nullptr, 200, PrintUsers);
  });
  auto* ulist = users->add_subcommand("list", "list the accounts");
  AddServerFlags(ulist, *s);
  ulist->callback([s, &exit_code] { exit_code = RunAndPrint(*s, "GET", "/api/users", nullptr, 200, PrintUsers); });

  auto name = std::make_shared<std::string>();
  auto role = std::make_shared<std::optional<std::string>>();
  auto new_password = std::make_shared<std::optional<std::string>>();
  auto* add = users->add_subcommand("add", "create an account");
  add->add_option("username", *name, "1-64 of letters, digits and . _ @ -")->required();
  add->add_option("--role", *role, "admin, user or read-only")->required();
  add->add_option("--new-password", *new_password, "its password (8 characters or more; '-': read from stdin)")
      ->required();
  AddServerFlags(add, *s);
  add->callback([=, &exit_code] {
    auto pw = NewPassword(**new_password);
    if (!pw) {
      std::cerr << "no password on standard input\n";
      exit_code = 1;
      return;
    }
    nlohmann::json body{{"username", *name}, {"role", **role}, {"password", *pw}};
    exit_code = RunAndPrint(*s, "POST", "/api/users", &body, 201, PrintUser);
  });

  auto* set =
      users->add_subcommand("set", "change an account's role and/or password (a new password ends its sessions)");
  set->add_option("username", *name)->required();
  set->add_option("--role", *role, "admin, user or read-only");
  set->add_option("--new-password", *new_password, "a new password ('-': read from stdin)");
  AddServerFlags(set, *s);
  set->callback([=, &exit_code] {
    nlohmann::json body = nlohmann::json::object();
    if (*role) body["role"] = **role;
    if (*new_password) {
      auto pw = NewPassword(**new_password);
      if (!pw) {
        std::cerr << "no password on standard input\n";
        exit_code = 1;
        return;
      }
      body["password"] = *pw;
    }
    if (body.empty()) {
      std::cerr << "nothing to change: give --role and/or --new-password\n";
      exit_code = 1;
      return;
    }
    exit_code = RunAndPrint(*s, "PUT", "/api/users/" + *name, &body, 200, PrintUser);
  });

  auto* remove = users->add_subcommand("remove", "delete an account with its sessions and API tokens");
  remove->add_option("username", *name)->required();
  AddServerFlags(remove, *s);
  remove->callback([=, &exit_code] {
    exit_code = RunAndPrint(*s, "DELETE", "/api/users/" + *name, nullptr, 204, nullptr);
    if (exit_code == 0 && !s->json) std::cout << "account " << *name << " deleted\n";
  });

  auto* tokens = app.add_subcommand("tokens", "API tokens for scripts: list, create, revoke");
  AddServerFlags(tokens, *s);
  auto all = std::make_shared<bool>(false);
  auto list_tokens = [s, all, &exit_code] {
    exit_code = RunAndPrint(*s, "GET", *all ? "/api/tokens?all=true" : "/api/tokens", nullptr, 200, PrintTokens);
  };
  tokens->callback([tokens, list_tokens] {
    if (tokens->get_subcommands().empty()) list_tokens();
  });
  auto* tlist = tokens->add_subcommand("list", "list your tokens (never their secrets)");
  tlist->add_flag("--all", *all, "everyone's tokens (admins)");
  AddServerFlags(tlist, *s);
  tlist->callback(list_tokens);

  auto token_name = std::make_shared<std::string>();
  auto days = std::make_shared<std::optional<int>>();
  auto* create = tokens->add_subcommand(
      "create", "create a token; prints it once, alone on the first line (e.g. TOKEN=$(pacsbridge tokens create ci))");
  create->add_option("name", *token_name, "what it is for")->required();
  create->add_option("--role", *role, "at most your own role (default: yours)");
  create->add_option("--expires-days", *days, "days until it expires (default: never)");
  AddServerFlags(create, *s);
  create->callback([=, &exit_code] {
    nlohmann::json body{{"name", *token_name}};
    if (*role) body["role"] = **role;
    if (*days) body["expires_days"] = **days;
    nlohmann::json answer;
    if (int code = CallAndReport(s->server, "POST", "/api/tokens", &body, 201, answer)) {
      exit_code = code;
      return;
    }
    if (s->json) {
      std::cout << answer.dump(2) << "\n";
    } else {
      std::cout << answer.value("token", "") << "\n";
      std::cerr << "API token " << answer.value("id", "") << " (" << answer.value("role", "")
                << "): shown once, keep it now; use it as --token or $PACSBRIDGE_TOKEN\n";
    }
    exit_code = 0;
  });

  auto token_id = std::make_shared<std::string>();
  auto* revoke = tokens->add_subcommand("revoke", "revoke a token (yours; admins any)");
  revoke->add_option("id", *token_id, "the token's id (tokens list)")->required();
  AddServerFlags(revoke, *s);
  revoke->callback([=, &exit_code] {
    exit_code = RunAndPrint(*s, "DELETE", "/api/tokens/" + *token_id, nullptr, 204, nullptr);
    if (exit_code == 0 && !s->json) std::cout << "token " << *token_id << " revoked\n";
  });

  auto* audit = app.add_subcommand("audit", "the audit log of changes and log-ins, newest first (admins)");
  auto limit = std::make_shared<std::optional<int>>();
  auto actor = std::make_shared<std::optional<std::string>>();
  auto target_type = std::make_shared<std::optional<std::string>>();
  auto action = std::make_shared<std::optional<std::string>>();
  audit->add_option("--limit", *limit, "entries (1 to 1000; default 100)");
  audit->add_option("--actor", *actor, "only this account's");
  audit->add_option("--target-type", *target_type, "node, receiver, routing, project, user or token");
  audit->add_option("--action", *action, "e.g. node.update, auth.login_failed");
  AddServerFlags(audit, *s);
  audit->callback([=, &exit_code] {
    httplib::Params params;
    if (*limit) params.emplace("limit", std::to_string(**limit));
    if (*actor) params.emplace("actor", **actor);
    if (*target_type) params.emplace("target_type", **target_type);
    if (*action) params.emplace("action", **action);
    exit_code = RunAndPrint(*s, "GET", httplib::append_query_params("/api/audit", params), nullptr, 200, PrintAudit);
  });
}

}  // namespace pb::cli
