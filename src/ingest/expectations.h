#pragma once
// Which retrieve job awaits an instance, asked before the instance is stored, so that a
// receiver identifying by jobs files it where the job says (the project chosen at import and
// the job's relabeling). Jobs register what they expect (study, series or instance UIDs, and
// the message IDs of their C-MOVE requests); receivers look instances up. Thread-safe.
//
// A discarding expectation (the C-MOVE self-test, transport/move_check.h) asks the receiving
// path to answer success to the sender and keep nothing: no archive file, no index row, no
// journal line, no staging, no ArrivalHub announcement; it only counts the arrival.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/thread_annotations.h"

namespace pb {

// Instances a discarding expectation dropped, and a wait for them. Shared between the waiter
// and the receiving threads (an Expectation is copied on write; the counter stays one).
class DiscardCounter {
 public:
  void Add();
  size_t count() const;
  // Waits until at least `n` were counted or `deadline` passed; returns the count.
  size_t WaitFor(size_t n, std::chrono::steady_clock::time_point deadline) const;

 private:
  mutable Mutex mu_;
  mutable std::condition_variable cv_;
  size_t count_ GUARDED_BY(mu_) = 0;
};

// Instances a receiver answered before storing them, for a job that checks the archive itself
// (StoreSink::AnswerBeforeStore), whose store has not finished: the job waits for none to be left
// before it looks. Shared like DiscardCounter.
class PendingStores {
 public:
  void Add();
  void Done(bool stored);
  // Waits until none is left or `deadline` passed; true: none is left.
  bool WaitIdle(std::chrono::steady_clock::time_point deadline) const;
  // How many were answered Success and then not stored.
  size_t failed() const;

 private:
  mutable Mutex mu_;
  mutable std::condition_variable cv_;
  size_t pending_ GUARDED_BY(mu_) = 0;
  size_t failed_ GUARDED_BY(mu_) = 0;
};

struct Expectation {
  int64_t job_id = 0;
  std::string project, subject, session;  // empty: the job does not set it
  std::set<std::string> study_uids, series_uids, sop_uids;
  std::string calling_ae;     // ours, as the PACS sees it in Move Originator AE
  std::set<int> message_ids;  // of our C-MOVE requests
  // The job imposes its labels whatever identification the receiver uses (an import's rows), and
  // these attributes are set in what arrives for it (tag → value: Patient Name and ID from the
  // subject).
  bool impose = false;
  std::vector<std::pair<uint32_t, std::string>> set_attributes;
  // Keep nothing of what matches (only `sop_uids` and the Move Originator match it): answer
  // success, delete the data, count it in `discarded` (never null when `discard`).
  bool discard = false;
  std::shared_ptr<DiscardCounter> discarded;
  // Set: what arrives for the job by its Move Originator may be answered before it is stored;
  // the job waits on it before checking the archive.
  std::shared_ptr<PendingStores> pending_stores;
};

class ExpectationRegistry {
 public:
  using Token = uint64_t;
  Token Add(std::shared_ptr<Expectation> e);
  void Remove(Token t);
  // Adds the message ID of a C-MOVE request sent for the job (before the PACS answers).
  void AddMessageId(Token t, int id);
  void AddSopUids(Token t, const std::set<std::string>& uids);
  // The job awaiting an instance: by Move Originator (AE and message ID), then by SOP Instance,
  // series or study UID. nullptr: none.
  // A discarding expectation matches only its SOP Instance UIDs, and only an instance whose
  // Move Originator is its own C-MOVE (or absent, or its AE title before the message ID is
  // known); any other expectation matching by UID comes first, so that a retrieve job never
  // loses an instance it awaits to a self-test (the self-test then sees nothing arrive).
  std::shared_ptr<const Expectation> Match(const std::string& sop_uid, const std::string& series_uid,
                                           const std::string& study_uid, const std::string& move_originator_ae,
                                           int move_originator_id, bool* by_originator = nullptr) const;

 private:
  mutable Mutex mu_;
  Token next_ GUARDED_BY(mu_) = 1;
  std::map<Token, std::shared_ptr<Expectation>> entries_ GUARDED_BY(mu_);
};

// Registers for the lifetime of the object.
class ExpectationScope {
 public:
  ExpectationScope(ExpectationRegistry& r, std::shared_ptr<Expectation> e)
      : registry_(r), token_(r.Add(std::move(e))) {}
  ~ExpectationScope() { registry_.Remove(token_); }
  ExpectationScope(const ExpectationScope&) = delete;
  ExpectationScope& operator=(const ExpectationScope&) = delete;
  ExpectationRegistry::Token token() const { return token_; }

 private:
  ExpectationRegistry& registry_;
  ExpectationRegistry::Token token_;
};

}  // namespace pb
