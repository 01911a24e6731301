#include "nodes/connection_check.h"

#include <chrono>
#include <random>

#include <fmt/format.h>

#include "dicom/echo.h"
#include "dicom/find.h"

namespace pb {
namespace {

constexpr std::string_view kFailedPrefix = "Connection failed: ";

ConnectionCheck EchoCheck(const dicom::PeerRequest& peer) {
  dicom::EchoResult r = dicom::Echo(peer);
  std::string message = r.message;
  if (message.rfind(kFailedPrefix, 0) == 0) message = message.substr(kFailedPrefix.size());
  if (r.ok) message = fmt::format("C-ECHO answered in {} ms", r.latency_ms);
  return ConnectionCheck{"echo", r.ok ? "ok" : "failed", message, r.latency_ms};
}

ConnectionCheck FindCheck(const Node& node, const dicom::PeerRequest& peer) {
  dicom::FindRequest rq;
  rq.peer = peer;
  rq.level = "STUDY";
  rq.patient_root = node.patient_root;
  rq.charset = node.query_charset;
  rq.max_results = 1;
  rq.keys = {{"StudyInstanceUID", UidThatCannotExist()}};
  auto start = std::chrono::steady_clock::now();
  auto found = dicom::Find(rq);
  int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  if (!found && found.error().code == Code::kPermissionDenied) {
    return ConnectionCheck{"find", "failed",
                           fmt::format("queries are refused for calling AE title '{}': {}", peer.calling_ae,
                                       found.error().message),
                           ms};
  }
  if (!found) return ConnectionCheck{"find", "failed", "the C-FIND failed: " + found.error().message, ms};
  return ConnectionCheck{"find", "ok",
                         fmt::format("C-FIND answered in {} ms: calling AE title '{}' may query", ms, peer.calling_ae),
                         ms};
}

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
  bool echo_ok = !checks.empty() && checks[0].outcome == "ok";
  for (const auto& c : checks) {
    if (c.outcome != "failed") continue;
    if (c.name == "find" && echo_ok) return std::string(kFailedPrefix) + "C-ECHO works, but " + c.message;
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

ConnectionTest TestConnection(const Node& node, const std::string& our_ae_title, bool echo_only) {
  dicom::PeerRequest peer = ToPeerRequest(node, our_ae_title);
  ConnectionTest t;
  t.checks.push_back(EchoCheck(peer));
  if (echo_only) return t;
  if (!node.queryable) {
    t.checks.push_back({"find", "skipped", "the node is not queryable", 0});
  } else if (t.checks[0].outcome != "ok") {
    t.checks.push_back({"find", "skipped", "the echo failed", 0});
  } else {
    t.checks.push_back(FindCheck(node, peer));
  }
  return t;
}

}  // namespace pb
