#include "ingest/expectations.h"

#include "core/thread_annotations.h"

namespace pb {

void DiscardCounter::Add() {
  {
    MutexLock lock(mu_);
    ++count_;
  }
  cv_.notify_all();
}

size_t DiscardCounter::count() const {
  MutexLock lock(mu_);
  return count_;
}

size_t DiscardCounter::WaitFor(size_t n, std::chrono::steady_clock::time_point deadline) const {
  MutexLock lock(mu_);
  cv_.wait_until(lock, deadline, [&]() REQUIRES(mu_) { return count_ >= n; });
  return count_;
}

void PendingStores::Add() {
  MutexLock lock(mu_);
  ++pending_;
}

void PendingStores::Done(bool stored) {
  {
    MutexLock lock(mu_);
    --pending_;
    if (!stored) ++failed_;
  }
  cv_.notify_all();
}

size_t PendingStores::failed() const {
  MutexLock lock(mu_);
  return failed_;
}

bool PendingStores::WaitIdle(std::chrono::steady_clock::time_point deadline) const {
  MutexLock lock(mu_);
  return cv_.wait_until(lock, deadline, [&]() REQUIRES(mu_) { return pending_ == 0; });
}

ExpectationRegistry::Token ExpectationRegistry::Add(std::shared_ptr<Expectation> e) {
  MutexLock lock(mu_);
  Token t = next_++;
  entries_.emplace(t, std::move(e));
  return t;
}

void ExpectationRegistry::Remove(Token t) {
  MutexLock lock(mu_);
  entries_.erase(t);
}

void ExpectationRegistry::AddMessageId(Token t, int id) {
  MutexLock lock(mu_);
  if (auto it = entries_.find(t); it != entries_.end()) {
    // Copy on write: receivers may hold the previous version.
    auto copy = std::make_shared<Expectation>(*it->second);
    copy->message_ids.insert(id);
    it->second = std::move(copy);
  }
}

void ExpectationRegistry::AddSopUids(Token t, const std::set<std::string>& uids) {
  MutexLock lock(mu_);
  if (auto it = entries_.find(t); it != entries_.end()) {
    auto copy = std::make_shared<Expectation>(*it->second);
    copy->sop_uids.insert(uids.begin(), uids.end());
    it->second = std::move(copy);
  }
}

std::shared_ptr<const Expectation> ExpectationRegistry::Match(const std::string& sop_uid, const std::string& series_uid,
                                                              const std::string& study_uid,
                                                              const std::string& move_originator_ae,
                                                              int move_originator_id, bool* by_originator) const {
  MutexLock lock(mu_);
  if (by_originator) *by_originator = false;
  for (const auto& [_, e] : entries_) {
    if (!move_originator_ae.empty() && move_originator_ae == e->calling_ae &&
        e->message_ids.count(move_originator_id)) {
      if (by_originator) *by_originator = true;
      return e;
    }
  }
  for (const auto& [_, e] : entries_) {
    if (e->discard) continue;
    if (e->sop_uids.count(sop_uid) || e->series_uids.count(series_uid) || e->study_uids.count(study_uid)) return e;
  }
  for (const auto& [_, e] : entries_) {
    // Another's C-MOVE (a Move Originator that is not ours) is never discarded.
    if (e->discard && e->sop_uids.count(sop_uid) &&
        (move_originator_ae.empty() || move_originator_ae == e->calling_ae)) {
      return e;
    }
  }
  return nullptr;
}

}  // namespace pb
