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
  // What accrued until now at the old rate is kept; from now on the new one applies.
  const auto now = now_();
  const double old_rate = static_cast<double>(rate_);
  tokens_ = std::min(old_rate * kBurstSeconds, tokens_ + std::chrono::duration<double>(now - last_).count() * old_rate);
  last_ = now;
  rate_ = std::max<int64_t>(1, bytes_per_second);
  tokens_ = std::min(tokens_, static_cast<double>(rate_) * kBurstSeconds);
}

int64_t RateLimiter::rate() const {
  MutexLock lock(mu_);
  return rate_;
}

std::chrono::steady_clock::time_point RateLimiter::last_taken() const {
  MutexLock lock(mu_);
  return taken_;
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
    taken_ = now;
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

namespace {

// The limiters of the nodes, and the share of each node's rate that is this process's.
struct NodeLimiters {
  Mutex mu;
  std::map<std::string, std::shared_ptr<RateLimiter>> limiters GUARDED_BY(mu);
  std::map<std::string, int64_t> rates GUARDED_BY(mu);  // as configured
  std::map<std::string, int> sharers GUARDED_BY(mu);    // > 1 only
};

NodeLimiters& Limiters() {
  static NodeLimiters l;
  return l;
}

int64_t ShareOf(int64_t rate, int sharers) { return std::max<int64_t>(1, rate / std::max(1, sharers)); }

}  // namespace

std::shared_ptr<RateLimiter> NodeRateLimiter(const std::string& node, int64_t bytes_per_second) {
  NodeLimiters& all = Limiters();
  MutexLock lock(all.mu);
  if (bytes_per_second <= 0) {
    all.limiters.erase(node);
    all.rates.erase(node);
    return nullptr;
  }
  all.rates[node] = bytes_per_second;
  const auto sharers = all.sharers.find(node);
  const int64_t rate = ShareOf(bytes_per_second, sharers == all.sharers.end() ? 1 : sharers->second);
  auto& l = all.limiters[node];
  if (!l) {
    l = std::make_shared<RateLimiter>(rate);
  } else if (l->rate() != rate) {
    l->SetRate(rate);
  }
  return l;
}

void ShareNodeRate(const std::string& node, int processes) {
  NodeLimiters& all = Limiters();
  MutexLock lock(all.mu);
  if (processes > 1) {
    all.sharers[node] = processes;
  } else {
    all.sharers.erase(node);
  }
  const auto l = all.limiters.find(node);
  if (l == all.limiters.end()) return;
  const int64_t rate = ShareOf(all.rates[node], processes);
  if (l->second->rate() != rate) l->second->SetRate(rate);
}

std::vector<std::string> NodesTransferringSince(std::chrono::steady_clock::time_point since) {
  NodeLimiters& all = Limiters();
  MutexLock lock(all.mu);
  std::vector<std::string> out;
  for (const auto& [node, limiter] : all.limiters) {
    if (limiter->last_taken() >= since) out.push_back(node);
  }
  return out;
}

}  // namespace pb
