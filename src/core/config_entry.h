#pragma once
// One [[nodes]] or [[receivers]] table of the configuration file, as JSON, with where it came
// from: what config reads and the node registry and the receivers validate.
#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace pb {

// clang-tidy 14 on the implicit members of a struct holding nlohmann::json: they do not throw.
struct ConfigEntry {  // NOLINT(bugprone-exception-escape)
  nlohmann::json json;
  std::string source;  // "file.toml:12"
  std::map<std::string, int> key_lines;
};

}  // namespace pb
