#pragma once
// Internal to src/nodes: reads typed fields out of one JSON object and remembers the first
// error, naming the field with its prefix ("auth.", "tls."). Not thread-safe; lives as long as
// the object it reads.
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/result.h"

namespace pb {

class JsonReader {
 public:
  JsonReader(const nlohmann::json& j, std::string prefix) : j_(j), prefix_(std::move(prefix)) {}

  [[nodiscard]] Result<void> CheckKnown(const std::set<std::string>& known) const {
    for (auto it = j_.begin(); it != j_.end(); ++it) {
      if (!known.count(it.key())) {
        return Fail(Code::kInvalidArgument, fmt::format("unknown field '{}{}'", prefix_, it.key()), prefix_ + it.key());
      }
    }
    return {};
  }
  void Str(const char* key, std::string& out) {
    if (auto* v = Find(key)) {
      if (v->is_string())
        out = v->get<std::string>();
      else if (!v->is_null())
        Bad(key, "must be a string");
    }
  }
  void Bool(const char* key, bool& out) {
    if (auto* v = Find(key)) {
      if (v->is_boolean())
        out = v->get<bool>();
      else
        Bad(key, "must be true or false");
    }
  }
  void Int(const char* key, int64_t& out) {
    if (auto* v = Find(key)) {
      if (v->is_number_integer())
        out = v->get<int64_t>();
      else
        Bad(key, "must be an integer");
    }
  }
  // An int field of the model: values beyond int's range are kept out of range (saturated), so
  // that the range check names the field instead of a wrapped-around value passing.
  void Int(const char* key, int& out) {
    int64_t v = out;
    Int(key, v);
    constexpr int64_t kMin = std::numeric_limits<int>::min(), kMax = std::numeric_limits<int>::max();
    out = static_cast<int>(v < kMin ? kMin : v > kMax ? kMax : v);
  }
  const nlohmann::json* Find(const char* key) const {
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  void Bad(const char* key, const std::string& why) {
    if (!error_) {
      error_ = Error{Code::kInvalidArgument, fmt::format("{}{} {}", prefix_, key, why), prefix_ + key};
    }
  }
  const std::optional<Error>& error() const { return error_; }

 private:
  const nlohmann::json& j_;
  std::string prefix_;
  std::optional<Error> error_;
};

}  // namespace pb
