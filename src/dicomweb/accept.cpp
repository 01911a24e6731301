#include "dicomweb/accept.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "core/text.h"

namespace pb::dicomweb {
namespace {

std::string Trim(const std::string& s) { return std::string(TrimBlanks(s)); }

// Splits on `sep` outside double quotes.
std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (char c : s) {
    if (c == '"') quoted = !quoted;
    if (c == sep && !quoted) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

std::string Unquote(std::string v) {
  v = Trim(v);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  return v;
}

}  // namespace

[[nodiscard]] Result<std::vector<std::string>> AcceptedSyntaxes(const std::string& accept) {
  if (Trim(accept).empty()) return std::vector<std::string>{kExplicitVrLittleEndian};
  std::vector<std::string> syntaxes;
  bool acceptable = false;
  for (const std::string& range : Split(accept, ',')) {
    auto parts = Split(range, ';');
    const std::string media = AsciiLower(Trim(parts[0]));
    std::string type;
    std::vector<std::string> named;
    bool refused = false;  // q=0: "not acceptable" (RFC 7231 5.3.1)
    for (size_t i = 1; i < parts.size(); ++i) {
      auto eq = parts[i].find('=');
      if (eq == std::string::npos) continue;
      const std::string key = AsciiLower(Trim(parts[i].substr(0, eq)));
      const std::string value = Unquote(parts[i].substr(eq + 1));
      if (key == "type") type = AsciiLower(value);
      if (key == "transfer-syntax") named.push_back(value);
      if (key == "q") refused = value.find_first_not_of("0.") == std::string::npos;
    }
    if (refused) continue;
    const bool dicom =
        (media == "multipart/related" && (type.empty() || type == "application/dicom")) || media == "application/dicom";
    if (!dicom && media != "*/*" && media != "multipart/*") continue;
    acceptable = true;
    if (!dicom || named.empty()) named = {kExplicitVrLittleEndian};
    for (auto& t : named) {
      if (std::find(syntaxes.begin(), syntaxes.end(), t) == syntaxes.end()) syntaxes.push_back(t);
    }
  }
  if (!acceptable) {
    return Fail(Code::kUnsupported,
                fmt::format("Accept '{}' names no DICOM instances: use multipart/related; "
                            "type=\"application/dicom\" (with transfer-syntax=* for the stored syntax)",
                            accept));
  }
  return syntaxes;
}

[[nodiscard]] Result<std::vector<PartRange>> AcceptedParts(const std::string& accept) {
  if (Trim(accept).empty()) return std::vector<PartRange>{{"*", {}, true}};
  std::vector<PartRange> out;
  for (const std::string& range : Split(accept, ',')) {
    auto parts = Split(range, ';');
    const std::string media = AsciiLower(Trim(parts[0]));
    PartRange r;
    bool refused = false;
    for (size_t i = 1; i < parts.size(); ++i) {
      auto eq = parts[i].find('=');
      if (eq == std::string::npos) continue;
      const std::string key = AsciiLower(Trim(parts[i].substr(0, eq)));
      const std::string value = Unquote(parts[i].substr(eq + 1));
      if (key == "type") r.type = AsciiLower(value);
      if (key == "transfer-syntax") r.syntaxes.push_back(value);
      if (key == "q") refused = value.find_first_not_of("0.") == std::string::npos;
    }
    if (refused) continue;
    static const std::string kAny = "*";  // (assigned from a std::string: GCC 12 misreads a literal here)
    if (media == "multipart/related" || media == "multipart/*") {
      if (r.type.empty() || r.type == "*/*") r.type = kAny;
    } else if (media == "*/*") {
      r.type = kAny;
    } else {
      r.type = media;
      r.multipart = false;
    }
    if (r.type == "application/dicom" || r.type == "application/dicom+json" || r.type == "application/json") continue;
    out.push_back(std::move(r));
  }
  if (out.empty()) {
    return Fail(Code::kUnsupported,
                fmt::format("Accept '{}' names no media type for frames or bulk data: use multipart/related; "
                            "type=\"application/octet-stream\" (or the compressed type, such as image/jls)",
                            accept));
  }
  return out;
}

}  // namespace pb::dicomweb
