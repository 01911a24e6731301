#pragma once
// A node's weekly availability schedule (XNAT DQR's "PACS utilization schedule"): windows of
// local time on days of the week, in the server's time zone or one the administrator names.
// Outside its windows a node is not used: jobs wait for the next window, a running transfer
// stops between instances when its window ends, queries are refused unless overridden.
//
//   {"timezone": "Europe/Paris",
//    "windows": [{"days": ["mon", "tue"], "start": "08:00", "end": "18:00"},
//                {"days": ["fri"], "start": "22:00", "end": "06:00"}]}   // across midnight
//
// Time zones and daylight-saving changes come from the tz database (howardhinnant date on the
// system's zoneinfo); a window's local times that a change skips or repeats are taken as the
// change itself and the first occurrence. JSON null or absent: always available.
#include <array>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/result.h"

namespace date {
class time_zone;
}

namespace pb {

class Schedule {
 public:
  struct Window {
    std::array<bool, 7> days{};  // Monday first
    int start_minute = 0;        // of the day, local
    int end_minute = 0;          // of the day, local; <= start: the window ends the next day
  };

  // Validates and parses; errors name the field ("schedule.windows[1].start"). `server_zone`:
  // the zone used when the schedule names none ("" = the system's).
  [[nodiscard]] static Result<Schedule> Parse(const nlohmann::json& j, const std::string& server_zone = "");

  bool always() const { return windows_.empty() && !closed_; }

  struct Availability {
    bool open = true;
    // When that changes next: the end of the current window when open, the start of the next
    // one when closed; nullopt when it never changes (always available, or no window at all).
    std::optional<TimePoint> next_change;
  };
  Availability At(TimePoint now) const;

  // "Mon–Fri 08:00–18:00 Europe/Paris"-like summary for messages.
  std::string Describe() const;

 private:
  const date::time_zone* zone_ = nullptr;
  std::string zone_name_;
  std::vector<Window> windows_;
  bool closed_ = false;  // a schedule with an empty window list: never available
};

}  // namespace pb
