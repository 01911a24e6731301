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

namespace {

int64_t Micros(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}
TimePoint FromMicros(int64_t us) {
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(std::chrono::microseconds(us)));
}

}  // namespace

DutyCycle::Saved DutyCycle::Save() const {
  return {Micros(stretch_start_), Micros(stretch_end_), Micros(minute_),
          std::chrono::duration_cast<std::chrono::microseconds>(used_).count(), busy_ > 0};
}

void DutyCycle::Load(const Saved& saved, int running, TimePoint now) {
  stretch_start_ = FromMicros(saved.stretch_start_us);
  stretch_end_ = FromMicros(saved.stretch_end_us);
  minute_ = FromMicros(saved.minute_us);
  used_ = std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::microseconds(saved.used_us));
  // Jobs running outside any stretch (started while the node had no share) do not hold one.
  busy_ = saved.in_stretch ? std::max(running, 0) : 0;
  if (saved.in_stretch && busy_ == 0) {
    busy_ = 1;
    End(std::min(now, stretch_end_));
  }
}

}  // namespace pb
