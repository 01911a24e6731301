#include "receivers/association_log.h"

#include "core/thread_annotations.h"

namespace pb {

void AssociationLog::Record(AssociationAttempt attempt) {
  MutexLock lock(mu_);
  attempts_.push_back(std::move(attempt));
  if (attempts_.size() > kCapacity) attempts_.pop_front();
}

std::vector<AssociationAttempt> AssociationLog::Since(std::chrono::steady_clock::time_point since) const {
  MutexLock lock(mu_);
  std::vector<AssociationAttempt> out;
  for (const auto& a : attempts_)
    if (a.at >= since) out.push_back(a);
  return out;
}

}  // namespace pb
