#pragma once
// Who is waiting for which instances: the ingest pipeline publishes every instance it has put in
// the archive (stored, replaced or already there); retrieve jobs subscribe to learn, from what
// really arrived, which of their expected instances are here. Callbacks run on the ingesting
// thread (a receiver worker or a C-GET) and must be quick. Thread-safe.
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "core/thread_annotations.h"

namespace pb {

struct Arrival {
  std::string sop_uid, sop_class_uid, study_uid, series_uid;
  int64_t bytes = 0;
  std::string calling_ae, called_ae;
  std::string move_originator_ae;  // set by a PACS sending for a C-MOVE
  int move_originator_id = -1;
  bool was_present = false;  // the archive already had it (a duplicate)
};

class ArrivalHub {
 public:
  using Callback = std::function<void(const Arrival&)>;
  using Token = uint64_t;

  Token Subscribe(Callback callback);
  // After it returns, the callback is not running and will not be called again.
  void Unsubscribe(Token token);
  void Publish(const Arrival& arrival);
  // Cheap check for the ingest path: most instances are awaited by nobody. A subscriber that
  // races with this only misses instances that arrived before it subscribed.
  bool HasSubscribers() const { return count_.load(std::memory_order_relaxed) > 0; }

 private:
  Mutex mu_;
  Token next_ GUARDED_BY(mu_) = 1;
  std::map<Token, Callback> subscribers_ GUARDED_BY(mu_);
  std::atomic<size_t> count_{0};  // subscribers_.size(), readable without mu_
};

// Subscribes for the lifetime of the object.
class ArrivalSubscription {
 public:
  ArrivalSubscription(ArrivalHub& hub, ArrivalHub::Callback callback)
      : hub_(hub), token_(hub.Subscribe(std::move(callback))) {}
  ~ArrivalSubscription() { hub_.Unsubscribe(token_); }
  ArrivalSubscription(const ArrivalSubscription&) = delete;
  ArrivalSubscription& operator=(const ArrivalSubscription&) = delete;

 private:
  ArrivalHub& hub_;
  ArrivalHub::Token token_;
};

}  // namespace pb
