#include "cli/job_lines.h"

namespace pb::cli {

std::string WaitingLine(const nlohmann::json& job) {
  const std::string id = job.value("id", std::string("?"));
  if (job.value("paused", false)) return "paused (pacsbridge jobs resume " + id + ")";
  if (job.contains("next_attempt") && job["next_attempt"].is_string()) {
    return "waiting: next attempt at " + job["next_attempt"].get<std::string>();
  }
  const std::string waiting_for = job.value("waiting_for", "");
  if (job.contains("waiting_until") && job["waiting_until"].is_string()) {
    const std::string until = job["waiting_until"].get<std::string>();
    if (waiting_for == "the node's utilization share") {
      return "waiting for its node's utilization share of the next minute, at " + until;
    }
    return "waiting for its node's availability window, which opens at " + until;
  }
  if (waiting_for == "confirmation") {
    return "waiting for a confirmation of its rows (pacsbridge import show " + id + ", then import confirm " + id + ")";
  }
  if (waiting_for == "children") return "its rows' retrieve jobs are running (pacsbridge import show " + id + ")";
  return "waiting";
}

}  // namespace pb::cli
