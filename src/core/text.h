// Small ASCII text helpers for protocol tokens (HTTP header names, media types, parameters).
#pragma once

#include <algorithm>
#include <string>
#include <string_view>

namespace pb {

// ASCII lower case; other bytes unchanged (tokens are ASCII, values may be UTF-8).
inline std::string AsciiLower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c); });
  return out;
}

// Without leading and trailing spaces and tabs (HTTP's optional white space, RFC 9110 5.6.3).
inline std::string_view TrimBlanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace pb
