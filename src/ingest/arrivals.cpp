#include "ingest/arrivals.h"

#include "core/thread_annotations.h"

namespace pb {

ArrivalHub::Token ArrivalHub::Subscribe(Callback callback) {
  MutexLock lock(mu_);
  Token t = next_++;
  subscribers_.emplace(t, std::move(callback));
  count_ = subscribers_.size();
  return t;
}

void ArrivalHub::Unsubscribe(Token token) {
  MutexLock lock(mu_);  // waits for a Publish in progress
  subscribers_.erase(token);
  count_ = subscribers_.size();
}

void ArrivalHub::Publish(const Arrival& arrival) {
  // Held while calling: subscribers are few and quick, and Unsubscribe must not return while a
  // callback into a job that is ending still runs.
  MutexLock lock(mu_);
  for (auto& [token, callback] : subscribers_) callback(arrival);
}

}  // namespace pb
