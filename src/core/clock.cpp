#include "core/clock.h"

#include <ctime>
#include <sstream>

#include <date/date.h>

namespace pb {
namespace {

class System : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::system_clock::now(); }
};

}  // namespace

const Clock& SystemClock() {
  static const System kClock;
  return kClock;
}

std::string UtcIso(TimePoint t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string UtcNowIso() { return UtcIso(std::chrono::system_clock::now()); }

std::optional<TimePoint> ParseUtcIso(const std::string& text) {
  // Whole-string formats, most precise first; date::parse refuses impossible dates (02-31).
  for (const char* format :
       {"%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%MZ", "%Y-%m-%dT%H:%M", "%Y-%m-%d"}) {
    std::istringstream in(text);
    date::sys_seconds t;
    in >> date::parse(format, t);
    if (in.fail() || in.peek() != std::char_traits<char>::eof()) continue;
    // A TimePoint counts nanoseconds: years past 2200 (or before 1900) do not fit; refused.
    if (t < date::sys_days(date::year(1900) / 1 / 1) || t >= date::sys_days(date::year(2200) / 1 / 1)) {
      return std::nullopt;
    }
    return TimePoint(t);
  }
  return std::nullopt;
}

}  // namespace pb
