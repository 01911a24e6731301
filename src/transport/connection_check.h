#pragma once
// The outcome of "test connection": each check a transport ran (a DIMSE node: C-ECHO, then a
// C-FIND that cannot match for queryable nodes), and one line for people. Plain values.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace pb {

struct ConnectionCheck {
  std::string name;     // "echo", "find"
  std::string outcome;  // "ok", "failed", "skipped"
  std::string message;  // what happened, or why it was skipped
  int64_t latency_ms = 0;
};

struct ConnectionTest {
  std::vector<ConnectionCheck> checks;
  bool ok() const;                // no check failed
  std::string Summary() const;    // "Connection established" or "Connection failed: <reason>"
  nlohmann::json ToJson() const;  // {"ok", "message", "latency_ms" (of the first check), "checks": [...]}
};

// A Study Instance UID no archive holds: "2.25." + a random 128-bit number (PS3.5 B.2).
std::string UidThatCannotExist();

}  // namespace pb
