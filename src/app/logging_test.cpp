#include "app/logging.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include <spdlog/details/log_msg.h>
#include <nlohmann/json.hpp>

namespace pb {
namespace {

nlohmann::json Format(const spdlog::details::log_msg& msg) {
  spdlog::memory_buf_t out;
  JsonLogFormatter()->format(msg, out);
  std::string line(out.data(), out.size());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line per event";
  return nlohmann::json::parse(line);
}

TEST(JsonLog, OneObjectPerLineWithUtcTimeLevelLoggerAndMessage) {
  const std::string text = "say \"hi\"\nand\ttab \\ done";
  spdlog::details::log_msg msg("pacsbridge", spdlog::level::warn, text);
  // 2026-12-05 01:02:03.004005 UTC
  msg.time = std::chrono::system_clock::time_point(std::chrono::microseconds(1796432523004005LL));
  msg.thread_id = 4242;
  auto j = Format(msg);
  EXPECT_EQ(j["time"], "2026-12-05T01:02:03.004005Z");
  EXPECT_EQ(j["level"], "warning");
  EXPECT_EQ(j["logger"], "pacsbridge");
  EXPECT_EQ(j["thread"], 4242);
  EXPECT_EQ(j["message"], text);
  EXPECT_EQ(j.size(), 5u);
}

TEST(JsonLog, NamesTheInstanceAfterTheLoggerWhenOneIsSet) {
  spdlog::details::log_msg msg("pacsbridge", spdlog::level::info, "ready");
  spdlog::memory_buf_t out;
  JsonLogFormatter("gateway-2")->format(msg, out);
  auto j = nlohmann::ordered_json::parse(std::string(out.data(), out.size()));
  std::vector<std::string> keys;
  for (const auto& [k, v] : j.items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"time", "level", "logger", "instance", "thread", "message"}));
  EXPECT_EQ(j["instance"], "gateway-2");
}

TEST(JsonLog, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  // A calling AE title as a hostile peer may send it: Latin-1 é and a lone continuation byte.
  const std::string text = std::string("from \xE9VIL\x80 AE");
  spdlog::details::log_msg msg("dcmtk", spdlog::level::info, text);
  auto j = Format(msg);
  EXPECT_EQ(j["message"], "from \xEF\xBF\xBDVIL\xEF\xBF\xBD AE");
  EXPECT_EQ(j["logger"], "dcmtk");
}

}  // namespace
}  // namespace pb
