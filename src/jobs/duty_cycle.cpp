#include "jobs/duty_cycle.h"

#include <algorithm>

namespace pb {
namespace {

TimePoint MinuteOf(TimePoint t) { return std::chrono::floor<std::chrono::minutes>(t); }

}  // namespace

DutyCycle::DutyCycle(int percent)
    : percent_(std::clamp(percent, 1, 99)),
      share_(std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::seconds(60)) * percent_ /
             100) {}

void DutyCycle::SetPercent(int percent) {
  percent_ = std::clamp(percent, 1, 99);
  share_ = std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::seconds(60)) * percent_ / 100;
}

std::chrono::system_clock::duration DutyCycle::UsedIn(TimePoint minute) const {
  return minute == minute_ ? used_ : std::chrono::system_clock::duration::zero();
}

TimePoint DutyCycle::NextStart(TimePoint now) const {
  if (busy_ > 0) return now < stretch_end_ ? now : MinuteOf(now) + std::chrono::minutes(1);
  return UsedIn(MinuteOf(now)) < share_ ? now : MinuteOf(now) + std::chrono::minutes(1);
}

TimePoint DutyCycle::Begin(TimePoint now) {
  if (busy_++ > 0) return stretch_end_;
  const TimePoint minute = MinuteOf(now);
  const auto left = std::max(share_ - UsedIn(minute), std::chrono::system_clock::duration::zero());
  stretch_start_ = now;
  const TimePoint next_minute = minute + std::chrono::minutes(1);
  stretch_end_ = now + left < next_minute ? now + left : next_minute + share_;
  return stretch_end_;
}

void DutyCycle::End(TimePoint now) {
  if (busy_ == 0 || --busy_ > 0) return;
  // What the stretch used, in the minute it ended in (and, if it began in that minute, with
  // what that minute had used before).
  const TimePoint end = std::max(now, stretch_start_);
  const TimePoint minute = MinuteOf(end);
  const auto before = UsedIn(minute);
  minute_ = minute;
  used_ = MinuteOf(stretch_start_) == minute ? before + (end - stretch_start_) : end - minute;
}

}  // namespace pb
