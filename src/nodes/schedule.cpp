#include "nodes/schedule.h"

#include <algorithm>

#include <date/tz.h>
#include <fmt/format.h>

namespace pb {
namespace {

using json = nlohmann::json;
using std::chrono::minutes;

constexpr const char* kDayNames[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

// "08:00" → 480; "24:00" allowed as an end. -1 when malformed.
int ParseMinute(const std::string& text, bool end) {
  if (text.size() != 5 || text[2] != ':' || !std::isdigit(static_cast<unsigned char>(text[0])) ||
      !std::isdigit(static_cast<unsigned char>(text[1])) || !std::isdigit(static_cast<unsigned char>(text[3])) ||
      !std::isdigit(static_cast<unsigned char>(text[4]))) {
    return -1;
  }
  const int h = (text[0] - '0') * 10 + (text[1] - '0'), m = (text[3] - '0') * 10 + (text[4] - '0');
  if (m > 59) return -1;
  if (h == 24 && m == 0 && end) return 24 * 60;
  if (h > 23) return -1;
  return h * 60 + m;
}

std::string HourMinute(int minute) { return fmt::format("{:02}:{:02}", minute / 60, minute % 60); }

// A local time of a zone as UTC: in a gap (clocks jump forward) the change itself, in a
// repeated hour the first occurrence.
TimePoint ToUtc(const date::time_zone* zone, date::local_seconds local) {
  auto info = zone->get_info(local);
  if (info.result == date::local_info::nonexistent) {
    return TimePoint(info.first.end);
  }
  return TimePoint(date::sys_seconds{local.time_since_epoch()} - info.first.offset);
}

}  // namespace

Result<Schedule> Schedule::Parse(const json& j, const std::string& server_zone) {
  Schedule s;
  if (j.is_null()) return s;
  if (!j.is_object()) {
    return Fail(Code::kInvalidArgument,
                "schedule must be an object {\"timezone\", \"windows\": [{\"days\", \"start\", \"end\"}]} or null",
                "schedule");
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() != "timezone" && it.key() != "windows") {
      return Fail(Code::kInvalidArgument,
                  fmt::format("unknown field '{}': a schedule has timezone and windows", it.key()),
                  "schedule." + it.key());
    }
  }
  std::string zone = server_zone;
  if (j.contains("timezone") && !j["timezone"].is_null()) {
    if (!j["timezone"].is_string())
      return Fail(Code::kInvalidArgument, "timezone must be a string", "schedule.timezone");
    zone = j["timezone"].get<std::string>();
  }
  try {
    s.zone_ = zone.empty() ? date::current_zone() : date::locate_zone(zone);
  } catch (const std::exception&) {
    if (zone.empty()) {
      return Fail(Code::kInvalidArgument,
                  "the server's own time zone cannot be read (no /etc/localtime?): name one, e.g. \"timezone\": "
                  "\"Europe/Paris\"",
                  "schedule.timezone");
    }
    return Fail(Code::kInvalidArgument,
                fmt::format("unknown time zone '{}': give a tz database name such as Europe/Paris or America/New_York",
                            zone.substr(0, 64)),
                "schedule.timezone");
  }
  s.zone_name_ = std::string(s.zone_->name());
  if (!j.contains("windows") || !j["windows"].is_array()) {
    return Fail(Code::kInvalidArgument, "windows must be a list of {\"days\", \"start\", \"end\"}", "schedule.windows");
  }
  const json& windows = j["windows"];
  if (windows.size() > 100) return Fail(Code::kInvalidArgument, "at most 100 windows", "schedule.windows");
  for (size_t i = 0; i < windows.size(); ++i) {
    const std::string at = fmt::format("schedule.windows[{}]", i);
    const json& w = windows[i];
    if (!w.is_object()) return Fail(Code::kInvalidArgument, "a window is {\"days\", \"start\", \"end\"}", at);
    for (auto it = w.begin(); it != w.end(); ++it) {
      if (it.key() != "days" && it.key() != "start" && it.key() != "end") {
        return Fail(Code::kInvalidArgument,
                    fmt::format("unknown field '{}': a window has days, start and end", it.key()), at + "." + it.key());
      }
    }
    Window win;
    if (!w.contains("days") || !w["days"].is_array() || w["days"].empty()) {
      return Fail(Code::kInvalidArgument, "days must list days: mon, tue, wed, thu, fri, sat, sun", at + ".days");
    }
    for (const auto& d : w["days"]) {
      std::string name = d.is_string() ? d.get<std::string>() : "";
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      static const char* const kFull[] = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"};
      auto full = std::find(std::begin(kFull), std::end(kFull), name);
      if (full != std::end(kFull)) name = kDayNames[full - std::begin(kFull)];
      auto found = std::find(std::begin(kDayNames), std::end(kDayNames), name);
      if (found == std::end(kDayNames)) {
        return Fail(Code::kInvalidArgument,
                    fmt::format("'{}' is not a day: use mon, tue, wed, thu, fri, sat, sun",
                                d.is_string() ? d.get<std::string>().substr(0, 20) : d.dump()),
                    at + ".days");
      }
      win.days[found - std::begin(kDayNames)] = true;
    }
    for (const char* key : {"start", "end"}) {
      const bool end = std::string(key) == "end";
      int minute = w.contains(key) && w[key].is_string() ? ParseMinute(w[key].get<std::string>(), end) : -1;
      if (minute < 0) {
        return Fail(Code::kInvalidArgument,
                    fmt::format("{} must be a local time HH:MM (00:00 to {})", key, end ? "24:00" : "23:59"),
                    at + "." + key);
      }
      (end ? win.end_minute : win.start_minute) = minute;
    }
    if (win.start_minute == win.end_minute) {
      return Fail(Code::kInvalidArgument, "start and end are the same time: say 00:00 to 24:00 for a whole day",
                  at + ".end");
    }
    s.windows_.push_back(win);
  }
  s.closed_ = s.windows_.empty();
  return s;
}

Schedule::Availability Schedule::At(TimePoint now) const {
  if (always()) return {true, std::nullopt};
  if (closed_) return {false, std::nullopt};
  // The windows from the day before today (one may still run past midnight) to a week and a
  // day ahead, as UTC intervals, merged where they touch.
  const auto local_now = zone_->to_local(date::floor<std::chrono::seconds>(now));
  const date::local_days today = date::floor<date::days>(local_now);
  std::vector<std::pair<TimePoint, TimePoint>> spans;
  for (int d = -1; d <= 8; ++d) {
    const date::local_days day = today + date::days{d};
    const unsigned weekday = date::weekday{day}.iso_encoding() - 1;  // Monday 0
    for (const Window& w : windows_) {
      if (!w.days[weekday]) continue;
      const auto start = day + minutes{w.start_minute};
      const auto end =
          w.end_minute > w.start_minute ? day + minutes{w.end_minute} : day + date::days{1} + minutes{w.end_minute};
      spans.emplace_back(ToUtc(zone_, start), ToUtc(zone_, end));
    }
  }
  std::sort(spans.begin(), spans.end());
  std::vector<std::pair<TimePoint, TimePoint>> merged;
  for (const auto& s : spans) {
    if (!merged.empty() && s.first <= merged.back().second) {
      merged.back().second = std::max(merged.back().second, s.second);
    } else {
      merged.push_back(s);
    }
  }
  const TimePoint horizon = ToUtc(zone_, today + date::days{8});
  for (const auto& [from, to] : merged) {
    if (now < from) return {false, from};
    if (now < to) return {true, to >= horizon ? std::optional<TimePoint>() : std::optional<TimePoint>(to)};
  }
  return {false, std::nullopt};
}

std::string Schedule::Describe() const {
  if (always()) return "always";
  if (closed_) return "never (no window)";
  std::string out;
  for (const Window& w : windows_) {
    std::string days;
    for (int d = 0; d < 7; ++d) {
      if (!w.days[d]) continue;
      if (!days.empty()) days += ',';
      days += kDayNames[d];
    }
    out +=
        fmt::format("{}{} {}-{}", out.empty() ? "" : "; ", days, HourMinute(w.start_minute), HourMinute(w.end_minute));
  }
  return out + " " + zone_name_;
}

}  // namespace pb
