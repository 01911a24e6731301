#pragma once
// Runs a function every `period` on a thread of its own until destroyed (or Stop()), which waits
// for a run in progress. For upkeep such as retrying receivers whose port was taken.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "core/thread_annotations.h"

namespace pb {

class PeriodicTask {
 public:
  PeriodicTask(std::chrono::milliseconds period, std::function<void()> run)
      : thread_([this, period, run = std::move(run)] {
          MutexLock lock(mu_);
          while (!cv_.wait_for(lock, period, [this]() REQUIRES(mu_) { return stopping_; })) {
            lock.Unlock();
            run();
            lock.Lock();
          }
        }) {}
  ~PeriodicTask() { Stop(); }
  PeriodicTask(const PeriodicTask&) = delete;
  PeriodicTask& operator=(const PeriodicTask&) = delete;

  void Stop() {
    {
      MutexLock lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  Mutex mu_;
  std::condition_variable cv_;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts once the rest exists
};

}  // namespace pb
