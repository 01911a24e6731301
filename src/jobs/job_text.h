// What the job runners and the service share about a job's stored text: its JSON columns and
// its states.
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

namespace pb::jobs_text {

// Text for the table, whatever a peer sent: values a PACS declared in no character set (an
// error comment in Latin-1) may not be UTF-8, and must never throw here.
inline std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A stored JSON column, or `fallback` when it does not parse.
inline nlohmann::json ParseOr(const std::string& text, const nlohmann::json& fallback) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  return j.is_discarded() ? fallback : j;
}

// A state a job never leaves.
inline bool Finished(const std::string& state) {
  return state == "succeeded" || state == "partial" || state == "failed" || state == "canceled";
}

// How often a running transfer saves its progress at most.
constexpr auto kProgressEvery = std::chrono::milliseconds(250);

}  // namespace pb::jobs_text
