#pragma once
// A node's utilization share (XNAT DQR's duty cycle, for PACS that count connection time rather
// than bytes): within each minute of the clock, the node is busy with our jobs (at least one job
// holds a connection to it) for at most `percent` of the minute. A busy stretch that starts with
// R of its minute's share left ends R later; when the minute ends first, it goes on into the next
// minute for that minute's whole share. Then no job starts before the next minute. Pure (the
// caller passes the time); not thread-safe (the job service guards it). Several instances on one
// database keep a node's cycle in the database (Save/Load around each change, under the node's
// lock), so that the share holds for all of them together.
#include <chrono>
#include <cstdint>

#include "core/clock.h"

namespace pb {

class DutyCycle {
 public:
  explicit DutyCycle(int percent);  // 1..99
  int percent() const { return percent_; }
  // A new share from now on; the current stretch and what this minute used stay counted.
  void SetPercent(int percent);
  // When a job may start: `now`, or the start of the next minute when this one's share is spent.
  TimePoint NextStart(TimePoint now) const;
  // A job starts using the node; returns when the busy stretch it joins must end.
  TimePoint Begin(TimePoint now);
  // A job stopped using the node (the stretch ends with the last one).
  void End(TimePoint now);

  // What several instances keep of a node's cycle (µs since 1970 on the instances' clocks).
  struct Saved {
    int64_t stretch_start_us = 0, stretch_end_us = 0, minute_us = 0, used_us = 0;
    bool in_stretch = false;  // a stretch goes on (some job of some instance uses the node)
  };
  Saved Save() const;
  // The cycle as saved, with `running` jobs of the node running now on any instance (their
  // leases not ended), the one being started or ended not counted. A stretch with none left
  // ends: at `now`, or at its own end when that came first (its instance stopped without
  // ending it), and what it used is counted.
  void Load(const Saved& saved, int running, TimePoint now);

 private:
  std::chrono::system_clock::duration UsedIn(TimePoint minute) const;

  int percent_;
  std::chrono::system_clock::duration share_;  // per minute
  int busy_ = 0;
  TimePoint stretch_start_{}, stretch_end_{};
  TimePoint minute_{};                          // the minute `used_` is about
  std::chrono::system_clock::duration used_{};  // of that minute, by stretches that ended
};

}  // namespace pb
