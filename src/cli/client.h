#pragma once
// A small REST client for the CLI: base URL, optional basic auth, JSON in and out.
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/result.h"

namespace pb::cli {

inline constexpr const char* kDefaultServerUrl = "http://127.0.0.1:8080";

// Where a client command finds the server: --server, else $PACSBRIDGE_SERVER, else the default;
// who it is: --token or $PACSBRIDGE_TOKEN (an API token), else --user / $PACSBRIDGE_USER (default
// admin) with --password / $PACSBRIDGE_PASSWORD (HTTP basic). Empty means "not given on the
// command line"; the environment is read when the call is made.
struct ServerOptions {
  std::string url;
  std::string user;
  std::string password;
  std::string token;
};

// The URL a command uses and where it came from ("--server", "$PACSBRIDGE_SERVER" or
// "default"); `env_url` is the variable's value, or null when it is not set.
struct ServerUrl {
  std::string url;
  std::string source;
};
ServerUrl ResolveServerUrl(const ServerOptions& server, const char* env_url);

// Declares --server, --user, --password and --token on a client command; every command that talks to the
// server declares them through this function, so they read and document the same variables.
void AddServerOptions(CLI::App* cmd, ServerOptions& server);

// clang-tidy 14 on the implicit members of a struct holding nlohmann::json: they do not throw.
struct Reply {  // NOLINT(bugprone-exception-escape)
  int status = 0;
  nlohmann::json body;
};

// Sends a request; a connection failure is an Error naming the server URL. HTTP error statuses
// come back as replies (the caller turns them into messages with ErrorText).
[[nodiscard]] Result<Reply> Call(const ServerOptions& server, const std::string& method, const std::string& path,
                                 const nlohmann::json* body = nullptr);
std::string ErrorText(const Reply& reply);

// Makes a call expecting `ok_status`; on failure prints one line to stderr and returns the exit
// code (3: server unreachable, 1: refused); on success stores the body in `out` and returns 0.
// Warnings in the answer go to stderr.
int CallAndReport(const ServerOptions& server, const std::string& method, const std::string& path,
                  const nlohmann::json* body, int ok_status, nlohmann::json& out);

// The command that follows job `id` again, with --server when the URL came from that flag
// (so that it works as printed).
std::string FollowCommand(const ServerOptions& server, const std::string& id);

// Polls a job until it ends, showing progress on stderr (a bar on a terminal, a line every 2 s
// otherwise), then prints it; 0 if it succeeded, else 1 with the reason on stderr. Ctrl-C
// exits 130 with a line saying the job goes on and how to follow it again.
int FollowJob(const ServerOptions& server, const std::string& id, bool json);

// Splits KEYWORD=VALUE arguments (filters, matching keys); the error names the bad argument.
[[nodiscard]] Result<std::vector<std::pair<std::string, std::string>>> ParseKeyValues(
    const std::vector<std::string>& args);

// What most client subcommands take: --server, --password, --json.
struct CommandOptions {
  ServerOptions server;
  bool json = false;
};
void AddServerFlags(CLI::App* cmd, CommandOptions& options);
// Makes one call expecting `ok_status` and prints the answer (as JSON with --json, else with
// `print`, when given); returns the exit code.
int RunAndPrint(const CommandOptions& options, const std::string& method, const std::string& path,
                const nlohmann::json* body, int ok_status, void (*print)(const nlohmann::json&));

// Prints rows as an aligned text table.
void PrintTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                const std::string& indent = "");

}  // namespace pb::cli
