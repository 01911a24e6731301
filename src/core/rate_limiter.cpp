#include "core/rate_limiter.h"

#include <algorithm>
#include <map>
#include <thread>

#include "core/thread_annotations.h"

namespace pb {
namespace {

constexpr double kBurstSeconds = 0.25;
constexpr auto kLongestSleep = std::chrono::milliseconds(100);  // a stop is seen this often

}  // namespace

RateLimiter::RateLimiter(int64_t bytes_per_second, Now now, Sleep sleep)
    : rate_(std::max<int64_t>(1, bytes_per_second)),
      now_(now ? std::move(now) : Now([] { return std::chrono::steady_clock::now(); })),
      sleep_(sleep ? std::move(sleep) : Sleep([](Duration d) { std::this_thread::sleep_for(d); })) {
  tokens_ = static_cast<double>(rate_) * kBurstSeconds;
  last_ = now_();
}

void RateLimiter::SetRate(int64_t bytes_per_second) {
  MutexLock lock(mu_);
  rate_ = std::max<int64_t>(1, bytes_per_second);
}

int64_t RateLimiter::rate() const {
  MutexLock lock(mu_);
  return rate_;
}

bool RateLimiter::Acquire(int64_t bytes, const std::function<bool()>& stop) {
  Duration wait{};
  {
    MutexLock lock(mu_);
    const auto now = now_();
    const double burst = static_cast<double>(rate_) * kBurstSeconds;
    tokens_ =
        std::min(burst, tokens_ + std::chrono::duration<double>(now - last_).count() * static_cast<double>(rate_));
    last_ = now;
    tokens_ -= static_cast<double>(bytes);
    if (tokens_ < 0) {
      wait = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(-tokens_ / static_cast<double>(rate_)));
    }
  }
  // The debt is ours to wait off; later callers see the bucket empty and wait behind us.
  while (wait > Duration::zero()) {
    if (stop && stop()) return false;
    const Duration step = std::min<Duration>(wait, kLongestSleep);
    sleep_(step);
    wait -= step;
  }
  return true;
}

std::shared_ptr<RateLimiter> NodeRateLimiter(const std::string& node, int64_t bytes_per_second) {
  static Mutex mu;
  static std::map<std::string, std::shared_ptr<RateLimiter>> limiters GUARDED_BY(mu);
  MutexLock lock(mu);
  if (bytes_per_second <= 0) {
    limiters.erase(node);
    return nullptr;
  }
  auto& l = limiters[node];
  if (!l) {
    l = std::make_shared<RateLimiter>(bytes_per_second);
  } else if (l->rate() != bytes_per_second) {
    l->SetRate(bytes_per_second);
  }
  return l;
}

}  // namespace pb
