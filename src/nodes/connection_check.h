#pragma once
// "Test connection" of a node: checks what the node is used for, not only that it answers.
//   1. C-ECHO: reachable, and accepts our association (called and calling AE titles, TLS).
//   2. For a queryable node, a C-FIND that cannot match (a Study Instance UID made from a random
//      UUID, PS3.5 B.2): an answer with no match means we may query; a refused association or
//      an abort after the request means the PACS does not let our calling AE title query.
// A PACS that answers the echo yet refuses queries is the common first-hour trap: the result
// says so and what to register. Thread-safe; each check opens its own association.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nodes/node.h"

namespace pb {

struct ConnectionCheck {
  std::string name;     // "echo", "find"
  std::string outcome;  // "ok", "failed", "skipped"
  std::string message;  // what happened, or why it was skipped
  int64_t latency_ms = 0;
};

struct ConnectionTest {
  std::vector<ConnectionCheck> checks;
  bool ok() const;            // no check failed
  std::string Summary() const;  // "Connection established" or "Connection failed: <reason>"
  nlohmann::json ToJson() const;  // {"ok", "message", "latency_ms" (of the echo), "checks": [...]}
};

// `echo_only`: the plain C-ECHO, nothing else.
ConnectionTest TestConnection(const Node& node, const std::string& our_ae_title, bool echo_only);

// A Study Instance UID no archive holds: "2.25." + a random 128-bit number (PS3.5 B.2).
std::string UidThatCannotExist();

}  // namespace pb
