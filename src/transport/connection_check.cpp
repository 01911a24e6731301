#include "transport/connection_check.h"

#include "dicom/mpps.h"

#include <random>

namespace pb {
namespace {

constexpr std::string_view kFailedPrefix = "Connection failed: ";

}  // namespace

std::string UidThatCannotExist() { return dicom::NewUid(); }

bool ConnectionTest::ok() const {
  for (const auto& c : checks)
    if (c.outcome == "failed") return false;
  return true;
}

std::string ConnectionTest::Summary() const {
  bool first_ok = !checks.empty() && checks[0].outcome == "ok";
  for (const auto& c : checks) {
    if (c.outcome != "failed") continue;
    if (c.name == "find" && first_ok) return std::string(kFailedPrefix) + "C-ECHO works, but " + c.message;
    return std::string(kFailedPrefix) + c.message;
  }
  return "Connection established";
}

nlohmann::json ConnectionTest::ToJson() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& c : checks) {
    list.push_back({{"name", c.name}, {"outcome", c.outcome}, {"message", c.message}, {"latency_ms", c.latency_ms}});
  }
  return {{"ok", ok()},
          {"message", Summary()},
          {"latency_ms", checks.empty() ? 0 : checks[0].latency_ms},
          {"checks", list}};
}

}  // namespace pb
