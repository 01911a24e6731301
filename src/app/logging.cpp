#include "app/logging.h"

#include <time.h>

#include <atomic>
#include <chrono>
#include <string_view>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

namespace pb {
namespace {

std::atomic<bool> json_logging{false};

class JsonFormatter final : public spdlog::formatter {
 public:
  explicit JsonFormatter(std::string instance) : instance_(std::move(instance)) {}
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    using namespace std::chrono;
    const auto since_epoch = msg.time.time_since_epoch();
    const time_t secs = static_cast<time_t>(duration_cast<seconds>(since_epoch).count());
    const auto micros = duration_cast<microseconds>(since_epoch).count() % 1000000;
    tm utc{};
    gmtime_r(&secs, &utc);
    const spdlog::string_view_t level = spdlog::level::to_string_view(msg.level);
    nlohmann::ordered_json line = {
        {"time", fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", utc.tm_year + 1900, utc.tm_mon + 1,
                             utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, micros)},
        {"level", std::string(level.data(), level.size())},
        {"logger", std::string(msg.logger_name.data(), msg.logger_name.size())},
    };
    if (!instance_.empty()) line["instance"] = instance_;
    line["thread"] = msg.thread_id;
    line["message"] = std::string(msg.payload.data(), msg.payload.size());
    const std::string text = line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    dest.append(text.data(), text.data() + text.size());
    dest.push_back('\n');
  }

  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(instance_); }

 private:
  std::string instance_;
};

}  // namespace

std::unique_ptr<spdlog::formatter> JsonLogFormatter(const std::string& instance) {
  return std::make_unique<JsonFormatter>(instance);
}

bool JsonLogging() { return json_logging.load(); }

void ConfigureLogging(const std::string& level, const std::string& format, const std::string& instance) {
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  if (format == "json") {
    sink->set_formatter(JsonLogFormatter(instance));
  } else if (!instance.empty()) {
    sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%n] [" + instance + "] [%^%l%$] %v");
  }
  auto logger = std::make_shared<spdlog::logger>("pacsbridge", sink);
  auto dcmtk = std::make_shared<spdlog::logger>("dcmtk", sink);
  spdlog::drop("dcmtk");
  spdlog::register_logger(dcmtk);
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
  json_logging = format == "json";
}

}  // namespace pb
