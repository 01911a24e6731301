#include "transport/connection_check.h"

#include <random>

namespace pb {
namespace {

constexpr std::string_view kFailedPrefix = "Connection failed: ";

}  // namespace

std::string UidThatCannotExist() {
  __extension__ typedef unsigned __int128 U128;  // a GCC/clang extension; fine under -Wpedantic
  std::random_device rd;
  U128 v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 32) | rd();
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  } while (v != 0);
  return "2.25." + digits;
}

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
  return {{"ok", ok()}, {"message", Summary()}, {"latency_ms", checks.empty() ? 0 : checks[0].latency_ms},
          {"checks", list}};
}

}  // namespace pb
