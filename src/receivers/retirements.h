#pragma once
// Work that ends on a thread of its own, such as a listener that stopped accepting and now
// finishes its running associations. A thread that is done is joined at the next Add or Reap,
// so changes made over months do not pile up finished threads (and their stacks) until
// shutdown.
#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <thread>

namespace pb {

class Retirements {
 public:
  Retirements() = default;
  Retirements(const Retirements&) = delete;
  Retirements& operator=(const Retirements&) = delete;
  ~Retirements() { JoinAll(); }

  // Reaps, then runs `work` on a new thread.
  void Add(std::function<void()> work);
  // Joins the threads that are done; returns how many still run.
  size_t Reap();
  // Waits for every thread.
  void JoinAll();

 private:
  struct Running {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::list<Running> running_;  // not thread-safe: the owner serializes its calls
};

}  // namespace pb
