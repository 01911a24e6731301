#pragma once
// The last associations our receivers were asked for, accepted or refused, so that a job can
// explain a C-MOVE that brought nothing from evidence rather than guesswork: "the PACS tried to
// send to AE title 'pacsbridge' at our port 8104" or "no connection from the PACS arrived".
// Bounded (the newest kCapacity attempts); thread-safe.
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "core/thread_annotations.h"

namespace pb {

struct AssociationAttempt {
  enum class Outcome { kAccepted, kUnknownCalledAe, kCallingAeNotAllowed };
  std::chrono::steady_clock::time_point at;
  uint16_t port = 0;
  std::string called_ae, calling_ae, peer_address;
  Outcome outcome = Outcome::kAccepted;
};

class AssociationLog {
 public:
  static constexpr size_t kCapacity = 256;
  void Record(AssociationAttempt attempt);
  // Attempts at or after `since`, oldest first.
  std::vector<AssociationAttempt> Since(std::chrono::steady_clock::time_point since) const;

 private:
  mutable Mutex mu_;
  std::deque<AssociationAttempt> attempts_ GUARDED_BY(mu_);
};

}  // namespace pb
