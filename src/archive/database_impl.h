#pragma once
// Internals of Database shared by its implementation files (database.cpp: index and nodes;
// job_table.cpp: jobs and node state). Not for use outside src/archive.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <soci/soci.h>

#include "archive/database.h"
#include "core/thread_annotations.h"

namespace pb {

constexpr int kReadPool = 4;

struct IndexWriter;  // database.cpp

// The use of one kind of connection (read pool or writer), counted by ReadSession and WriterLock.
struct ConnectionCounters {
  std::atomic<int> waiting{0};
  std::atomic<int> in_use{0};
  std::atomic<uint64_t> acquisitions{0};
  std::atomic<uint64_t> wait_ns{0};
  // Called once the connection is held, with when it was asked for.
  void Acquired(std::chrono::steady_clock::time_point asked) {
    const auto waited = std::chrono::steady_clock::now() - asked;
    wait_ns.fetch_add(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(waited).count()),
                      std::memory_order_relaxed);
    acquisitions.fetch_add(1, std::memory_order_relaxed);
    in_use.fetch_add(1, std::memory_order_relaxed);
    waiting.fetch_sub(1, std::memory_order_relaxed);
  }
  void Released() { in_use.fetch_sub(1, std::memory_order_relaxed); }
};

struct Database::Impl {
  std::string conn;
  soci::connection_pool pool{kReadPool};
  Mutex writer_mu;  // one writer user at a time: index batches, nodes, jobs
  soci::session writer GUARDED_BY(writer_mu);
  std::unique_ptr<IndexWriter> index_writer;
  ConnectionCounters read_use, write_use;
  ~Impl();
};

namespace db {

// A connection asked for (counted as waiting until ConnectionCounters::Acquired), and when: the
// first base of ReadSession, so it is taken before the session's own construction waits.
struct AskedAt {
  explicit AskedAt(ConnectionCounters& c) { c.waiting.fetch_add(1, std::memory_order_relaxed); }
  std::chrono::steady_clock::time_point asked = std::chrono::steady_clock::now();
};

// A session leased from the read pool (waiting while every one is leased), counted.
class ReadSession : private AskedAt, public soci::session {
 public:
  ReadSession(soci::connection_pool& pool, ConnectionCounters& use) : AskedAt(use), soci::session(pool), use_(use) {
    use_.Acquired(asked);
  }
  ~ReadSession() { use_.Released(); }
  ReadSession(const ReadSession&) = delete;
  ReadSession& operator=(const ReadSession&) = delete;

 private:
  ConnectionCounters& use_;
};

// Holds the writer connection for its scope, counted.
class SCOPED_CAPABILITY WriterLock {
 public:
  WriterLock(Mutex& mu, ConnectionCounters& use) ACQUIRE(mu) : asked_(use), lock_(mu), use_(use) {
    use_.Acquired(asked_.asked);
  }
  ~WriterLock() RELEASE() { use_.Released(); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  AskedAt asked_;  // declared first: taken before lock_ waits
  MutexLock lock_;
  ConnectionCounters& use_;
};

std::string NowIso();
// `log_statement`: false where bound values are secrets (hashes, tokens): not even at debug.
Error DbError(const std::exception& e, std::string_view what, bool log_statement = true);
std::string Str(const soci::row& r, std::size_t i);
int64_t Int(const soci::row& r, std::size_t i);

}  // namespace db
}  // namespace pb
