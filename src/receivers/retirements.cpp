#include "receivers/retirements.h"

namespace pb {

void Retirements::Add(std::function<void()> work) {
  Reap();
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread t([work = std::move(work), done] {
    work();
    done->store(true);
  });
  running_.push_back({std::move(t), std::move(done)});
}

size_t Retirements::Reap() {
  for (auto it = running_.begin(); it != running_.end();) {
    if (it->done->load()) {
      it->thread.join();
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
  return running_.size();
}

void Retirements::JoinAll() {
  for (auto& r : running_) {
    if (r.thread.joinable()) r.thread.join();
  }
  running_.clear();
}

}  // namespace pb
