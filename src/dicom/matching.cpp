#include "dicom/matching.h"

#include <fmt/format.h>

#include "core/validate.h"

namespace pb::dicom {
namespace {

bool Digits(std::string_view s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos; }

int Number(std::string_view s) {
  int n = 0;
  for (char c : s) n = n * 10 + (c - '0');
  return n;
}

bool InRange(std::string_view s, size_t pos, int low, int high) {
  int n = Number(s.substr(pos, 2));
  return n >= low && n <= high;
}

// YYYYMMDD (DA); a real month and a day 01..31.
bool IsDate(std::string_view s) { return s.size() == 8 && Digits(s) && InRange(s, 4, 1, 12) && InRange(s, 6, 1, 31); }

// HH[MM[SS[.F{1,6}]]] (TM); SS may be 60 (leap second).
bool IsTime(std::string_view s) {
  std::string_view main = s, fraction;
  if (auto dot = s.find('.'); dot != std::string_view::npos) {
    main = s.substr(0, dot);
    fraction = s.substr(dot + 1);
    if (main.size() != 6 || fraction.size() > 6 || !Digits(fraction)) return false;
  }
  if (!Digits(main) || (main.size() != 2 && main.size() != 4 && main.size() != 6)) return false;
  return InRange(main, 0, 0, 23) && (main.size() < 4 || InRange(main, 2, 0, 59)) &&
         (main.size() < 6 || InRange(main, 4, 0, 60));
}

// YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&ZZXX] (DT).
bool IsDateTime(std::string_view s) {
  if (s.size() > 5 && (s[s.size() - 5] == '+' || s[s.size() - 5] == '-')) {
    std::string_view offset = s.substr(s.size() - 4);
    if (!Digits(offset) || !InRange(offset, 0, 0, 14) || !InRange(offset, 2, 0, 59)) return false;
    s = s.substr(0, s.size() - 5);
  }
  std::string_view date = s.substr(0, std::min<size_t>(s.size(), 8));
  if (!Digits(date) || (date.size() != 4 && date.size() != 6 && date.size() != 8)) return false;
  if (date.size() >= 6 && !InRange(date, 4, 1, 12)) return false;
  if (date.size() == 8 && !InRange(date, 6, 1, 31)) return false;
  return s.size() == date.size() || (date.size() == 8 && IsTime(s.substr(8)));
}

// A value or a range of values (A-B, -B, A-), each accepted by `one`; for DT the hyphen may
// also be an offset's sign, so every hyphen is tried as the range separator.
// `ordered`: a range whose end comes before its start is refused (dates; date-times without
// offsets). A time range may end before it starts: it spans midnight (PS3.4 C.2.2.2.5.1).
template <typename Check>
bool IsRangeOf(std::string_view s, Check one, bool ordered, bool& reversed) {
  if (one(s)) return true;
  for (size_t dash = s.find('-'); dash != std::string_view::npos; dash = s.find('-', dash + 1)) {
    std::string_view from = s.substr(0, dash), to = s.substr(dash + 1);
    if ((from.empty() && to.empty()) || (!from.empty() && !one(from)) || (!to.empty() && !one(to))) continue;
    // Same-form bounds compare as text; a range that ends before it starts matches nothing.
    // Bounds with UTC offsets are different clocks: not compared.
    reversed = ordered && !from.empty() && !to.empty() && from.size() == to.size() && to < from &&
               from.find_first_of("+-") == std::string_view::npos && to.find_first_of("+-") == std::string_view::npos;
    return true;
  }
  return false;
}

bool IsUidList(std::string_view s) {
  while (true) {
    size_t end = s.find('\\');
    if (!IsValidUid(s.substr(0, end))) return false;
    if (end == std::string_view::npos) return true;
    s.remove_prefix(end + 1);
  }
}

struct Form {
  const char* what;      // "a date"
  const char* expected;  // "use YYYYMMDD or ..."
};

Form FormOf(std::string_view vr) {
  if (vr == "DA") return {"a date", "use YYYYMMDD or a range YYYYMMDD-YYYYMMDD (or -YYYYMMDD, YYYYMMDD-)"};
  if (vr == "TM") return {"a time", "use HHMMSS (or HH, HHMM, HHMMSS.FFFFFF) or a range HHMMSS-HHMMSS"};
  if (vr == "DT") {
    return {"a date and time",
            "use YYYYMMDDHHMMSS (or a shorter form such as YYYYMMDD, optionally with an offset "
            "+HHMM) or a range of those separated by -"};
  }
  return {"a UID", "use digits and dots, e.g. 1.2.840.10008.1.1, several separated by backslashes"};
}

}  // namespace

[[nodiscard]] Result<void> CheckMatchingValue(std::string_view keyword, std::string_view vr, std::string_view value) {
  if (vr != "DA" && vr != "TM" && vr != "DT" && vr != "UI") return {};
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (value.empty()) return {};
  const Form form = FormOf(vr);
  const std::string field = fmt::format("query.{}", keyword);
  if (value.find_first_of("*?") != std::string_view::npos) {
    return Fail(Code::kInvalidArgument,
                fmt::format("{}: '{}' is not {}: wildcards (* ?) do not apply to {} values; {}", keyword, value,
                            form.what, vr, form.expected),
                field);
  }
  bool valid = false, reversed = false;
  if (vr == "DA")
    valid = IsRangeOf(value, IsDate, true, reversed);
  else if (vr == "TM")
    valid = IsRangeOf(value, IsTime, false, reversed);
  else if (vr == "DT")
    valid = IsRangeOf(value, IsDateTime, true, reversed);
  else
    valid = IsUidList(value);
  if (!valid) {
    return Fail(Code::kInvalidArgument, fmt::format("{}: '{}' is not {}; {}", keyword, value, form.what, form.expected),
                field);
  }
  if (reversed) {
    return Fail(Code::kInvalidArgument, fmt::format("{}: the range '{}' ends before it starts", keyword, value), field);
  }
  return {};
}

}  // namespace pb::dicom
