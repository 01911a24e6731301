#include "dicomweb/qido.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>
#include <cstring>
#include <nlohmann/json.hpp>

#include "dicom/find.h"
#include "dicom/matching.h"

namespace pb::dicomweb {
namespace {

using nlohmann::json;

constexpr uint32_t kStudyUid = 0x0020000D, kSeriesUid = 0x0020000E;

std::string Upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

// QIDO names an attribute by keyword, or by its tag as 8 hex digits. The keyword only when it
// names this one tag: the dictionary calls every private creator "PrivateCreator" and gives a
// repeating group (60xx overlays) the keyword of its first group.
std::string AttributeId(const dicom::KeyInfo& k) {
  const bool private_tag = ((k.tag >> 16) & 1) != 0;
  if (!private_tag && !k.keyword.empty() && k.keyword.front() != '(') {
    auto named = dicom::LookupKey(k.keyword);
    if (named && named->tag == k.tag) return k.keyword;
  }
  return fmt::format("{:08X}", k.tag);
}

// One UID, usable in a path (no list, no wildcard, no padding).
bool SingleUid(const std::string& v) { return !v.empty() && v.find_first_not_of("0123456789.") == std::string::npos; }

// Percent-encodes what would break the query string (RFC 3986), and nothing else: servers
// that do not decode query values (Orthanc's) must still see `*`, `?`, `^` and `,` as such.
std::string Escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    const bool plain = std::isalnum(c) || std::strchr("-._~*?^,:/@!$'()", c) != nullptr;
    if (plain && c != 0) {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

// The string member `name` of an object, "" when absent or not a string (json::value throws
// on a wrong type, and the answer is network input).
std::string StringMember(const json& object, const char* name) {
  auto it = object.find(name);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string ValueText(const json& v, const std::string& vr) {
  if (v.is_null()) return {};
  if (vr == "PN" && v.is_object()) return StringMember(v, "Alphabetic");
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  if (v.is_number_float()) return fmt::format("{}", v.get<double>());
  if (v.is_boolean()) return v.get<bool>() ? "1" : "0";
  return {};
}

std::string Snippet(std::string_view body) {
  std::string out;
  for (char c : body.substr(0, 60)) out += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
  return out;
}

}  // namespace

[[nodiscard]] Result<QidoSearch> BuildSearch(const std::string& level_in,
                                             const std::vector<std::pair<std::string, std::string>>& keys,
                                             bool minimal) {
  const std::string level = Upper(level_in);
  if (level != "PATIENT" && level != "STUDY" && level != "SERIES" && level != "IMAGE") {
    return Fail(Code::kInvalidArgument, "level must be PATIENT, STUDY, SERIES or IMAGE", "level");
  }
  std::vector<uint32_t> returns;
  if (!minimal) returns = dicom::DefaultReturnKeys(level);
  if (level == "PATIENT") returns.push_back(kStudyUid);
  std::string study, series;
  QidoSearch out;
  std::vector<std::pair<std::string, std::string>> matching;
  for (const auto& [name, value] : keys) {
    auto k = dicom::LookupKey(name);
    if (!k) {
      return Fail(Code::kInvalidArgument, fmt::format("'{}' is not a DICOM keyword or (gggg,eeee) tag", name),
                  "query." + name);
    }
    if (auto checked = dicom::CheckMatchingValue(name, k->vr, value); !checked) return tl::unexpected(checked.error());
    std::string v = value;
    while (!v.empty() && v.back() == ' ') v.pop_back();
    if (v.empty()) {
      returns.push_back(k->tag);
      continue;
    }
    if (k->tag == kStudyUid && SingleUid(v) && level != "PATIENT" && level != "STUDY") {
      study = v;
      continue;
    }
    if (k->tag == kSeriesUid && SingleUid(v) && level == "IMAGE") {
      series = v;
      continue;
    }
    if (k->vr == "UI") std::replace(v.begin(), v.end(), '\\', ',');  // UID list matching
    matching.emplace_back(AttributeId(*k), v);
  }
  if (level == "PATIENT" || level == "STUDY") {
    out.path = "studies";
  } else if (level == "SERIES") {
    out.path = study.empty() ? "series" : "studies/" + study + "/series";
  } else if (!study.empty() && !series.empty()) {
    out.path = "studies/" + study + "/series/" + series + "/instances";
  } else if (!study.empty()) {
    out.path = "studies/" + study + "/instances";
  } else {
    out.path = "instances";
    if (!series.empty()) matching.emplace_back("SeriesInstanceUID", series);
  }
  matching.erase(std::remove_if(matching.begin(), matching.end(), [](const auto& m) { return m.second.empty(); }),
                 matching.end());
  out.params = std::move(matching);
  std::vector<std::string> seen;
  for (uint32_t tag : returns) {
    std::string id = AttributeId(dicom::LookupTag(tag));
    if (std::find(seen.begin(), seen.end(), id) != seen.end()) continue;
    seen.push_back(id);
    out.params.emplace_back("includefield", id);
  }
  return out;
}

std::string SearchUrl(const std::string& root, const QidoSearch& search, size_t limit, size_t offset) {
  std::string url = root;
  if (!url.empty() && url.back() != '/') url += '/';
  url += search.path;
  char sep = '?';
  auto add = [&](const std::string& name, const std::string& value) {
    url += sep;
    url += Escape(name) + "=" + Escape(value);
    sep = '&';
  };
  for (const auto& [name, value] : search.params) add(name, value);
  if (limit > 0) add("limit", std::to_string(limit));
  if (offset > 0) add("offset", std::to_string(offset));
  return url;
}

[[nodiscard]] Result<std::vector<Row>> RowsFromDicomJson(std::string_view body) {
  std::vector<Row> rows;
  std::string_view trimmed = body;
  while (!trimmed.empty() && std::isspace(static_cast<unsigned char>(trimmed.front()))) trimmed.remove_prefix(1);
  if (trimmed.empty()) return rows;  // some servers answer an empty 200 for "no match"
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) {
    return Fail(Code::kUnavailable, fmt::format("the answer is not DICOM JSON (it begins '{}')", Snippet(trimmed)));
  }
  if (!j.is_array()) {
    return Fail(Code::kUnavailable, "the answer is JSON but not a list of matches (PS3.18 F.2: an array of data sets)");
  }
  for (const json& item : j) {
    if (!item.is_object()) return Fail(Code::kUnavailable, "the answer holds a match that is not a JSON object");
    Row row;
    for (auto it = item.begin(); it != item.end(); ++it) {
      const std::string& id = it.key();
      if (id.size() != 8 || id.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) continue;
      const uint32_t tag = static_cast<uint32_t>(std::stoul(id, nullptr, 16));
      // Not part of a find's answer: the character set (the JSON is UTF-8), the level, and the
      // DICOMweb-only retrieve URL.
      if (tag == 0x00080005 || tag == 0x00080052 || tag == 0x00081190) continue;
      const json& el = it.value();
      if (!el.is_object()) continue;
      const std::string vr = StringMember(el, "vr");
      if (vr == "SQ" || el.contains("InlineBinary") || el.contains("BulkDataURI")) continue;
      std::string text;
      if (auto v = el.find("Value"); v != el.end() && v->is_array()) {
        for (size_t i = 0; i < v->size(); ++i) {
          if (i) text += '\\';
          text += ValueText((*v)[i], vr);
        }
      }
      row[dicom::LookupTag(tag).keyword] = std::move(text);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<Row> GroupByPatient(const std::vector<Row>& studies) {
  std::vector<Row> out;
  std::map<std::string, size_t> index;
  for (const Row& s : studies) {
    auto get = [&](const char* k) {
      auto it = s.find(k);
      return it == s.end() ? std::string() : it->second;
    };
    const std::string key = get("PatientID") + '\x1f' + get("IssuerOfPatientID");
    auto [it, added] = index.emplace(key, out.size());
    if (added) {
      Row p;
      for (const char* k : {"PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex"}) {
        if (s.count(k)) p[k] = get(k);
      }
      p["NumberOfPatientRelatedStudies"] = "0";
      out.push_back(std::move(p));
    }
    Row& p = out[it->second];
    p["NumberOfPatientRelatedStudies"] = std::to_string(std::stoll(p["NumberOfPatientRelatedStudies"]) + 1);
  }
  return out;
}

}  // namespace pb::dicomweb
