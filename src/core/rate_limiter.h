#pragma once
// A token bucket on bytes: every transfer to a node takes its bytes from the node's bucket, so
// that all of them together stay at the node's max_bytes_per_second. A caller that takes more
// than the bucket holds goes into debt and waits it off, so large reads and writes are paced as
// exactly as small ones; the bucket holds at most a quarter second of bytes (a burst). Waits are
// cut into short sleeps so that a cancel is seen. Thread-safe.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/thread_annotations.h"

namespace pb {

class RateLimiter {
 public:
  using Duration = std::chrono::steady_clock::duration;
  using Now = std::function<std::chrono::steady_clock::time_point()>;
  using Sleep = std::function<void(Duration)>;

  // `now` and `sleep` default to the steady clock and the thread's sleep (tests inject both).
  explicit RateLimiter(int64_t bytes_per_second, Now now = {}, Sleep sleep = {});

  // Takes `bytes` from the bucket, waiting as long as the rate asks. Returns false when
  // `stop` said so during the wait (the bytes stay taken).
  bool Acquire(int64_t bytes, const std::function<bool()>& stop = {});

  void SetRate(int64_t bytes_per_second);
  int64_t rate() const;
  // When bytes were last taken (a transfer paced by this limiter ran then); the epoch if never.
  std::chrono::steady_clock::time_point last_taken() const;

 private:
  mutable Mutex mu_;
  int64_t rate_ GUARDED_BY(mu_);
  double tokens_ GUARDED_BY(mu_);  // may be negative (debt)
  std::chrono::steady_clock::time_point last_ GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point taken_ GUARDED_BY(mu_);  // the last Acquire
  Now now_;
  Sleep sleep_;
};

// The limiter of a node, shared by every job and connection to it; null when `bytes_per_second`
// is 0 (unlimited). A changed rate applies to the existing limiter. Its rate is this process's
// share of `bytes_per_second` (see ShareNodeRate).
std::shared_ptr<RateLimiter> NodeRateLimiter(const std::string& node, int64_t bytes_per_second);

// Several processes on one database transfer to `node` at once (`processes`, this one included):
// this process's limiter of the node paces at 1/`processes` of the node's rate from now on, so
// that all of them together keep to it. 1 (or less): the whole rate again.
void ShareNodeRate(const std::string& node, int processes);

// The nodes whose limiter paced a transfer at or after `since` (by any path: jobs, a C-MOVE's
// C-STOREs, DICOMweb), in name order.
std::vector<std::string> NodesTransferringSince(std::chrono::steady_clock::time_point since);

}  // namespace pb
