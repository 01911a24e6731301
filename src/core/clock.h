#pragma once
// Wall-clock time as the API and the database show it, and the clock the job engine, schedules
// and the staging timer read: injected, so that tests control time.
#include <chrono>
#include <mutex>
#include <optional>
#include <string>

#include "core/thread_annotations.h"

namespace pb {

using TimePoint = std::chrono::system_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
};

// The system's clock.
const Clock& SystemClock();

// A clock that moves only when told to (tests). Thread-safe.
class ManualClock : public Clock {
 public:
  explicit ManualClock(TimePoint start) : now_(start) {}
  TimePoint Now() const override {
    MutexLock lock(mu_);
    return now_;
  }
  void Set(TimePoint t) {
    MutexLock lock(mu_);
    now_ = t;
  }
  void Advance(std::chrono::system_clock::duration d) {
    MutexLock lock(mu_);
    now_ += d;
  }

 private:
  mutable Mutex mu_;
  TimePoint now_ GUARDED_BY(mu_);
};

// Now, UTC, ISO 8601 to the second: "2026-11-22T21:40:00Z".
std::string UtcNowIso();
std::string UtcIso(TimePoint t);
// "2026-11-22T21:40:00Z" (the seconds and the Z optional) or a date "2026-11-22" (its start);
// nullopt when it is neither.
std::optional<TimePoint> ParseUtcIso(const std::string& text);

}  // namespace pb
