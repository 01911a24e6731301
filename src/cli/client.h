#pragma once
// A small REST client for the CLI: base URL, optional basic auth, JSON in and out.
#include <string>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace pb::cli {

struct ServerOptions {
  std::string url = "http://127.0.0.1:8080";
  std::string password;  // admin password, if the server has [auth]; or $PACSBRIDGE_PASSWORD
};

struct Reply {
  int status = 0;
  nlohmann::json body;
};

// Sends a request; a connection failure is an Error naming the server URL. HTTP error statuses
// come back as replies (the caller turns them into messages with ErrorText).
Result<Reply> Call(const ServerOptions& server, const std::string& method, const std::string& path,
                   const nlohmann::json* body = nullptr);
std::string ErrorText(const Reply& reply);

// Prints rows as an aligned text table.
void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows);

}  // namespace pb::cli
