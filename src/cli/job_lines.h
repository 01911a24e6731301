#pragma once
// What `pacsbridge jobs` and `show` say about a job that waits, from its JSON (GET /api/jobs).
#include <string>

#include <nlohmann/json.hpp>

namespace pb::cli {

// The line for a job in state "waiting": paused, its next attempt, its node's availability
// window or utilization share, an import's confirmation or its rows' retrieves.
std::string WaitingLine(const nlohmann::json& job);

}  // namespace pb::cli
