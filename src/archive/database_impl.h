#pragma once
// Internals of Database shared by its implementation files (database.cpp: index and nodes;
// job_table.cpp: jobs and node state). Not for use outside src/archive.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
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

// The engine behind the seam; SQL that differs between them goes through the db:: helpers below.
enum class Engine { kSqlite, kPostgres };

struct Database::Impl {
  Engine engine = Engine::kSqlite;
  std::string conn;
  soci::connection_pool pool{kReadPool};
  Mutex writer_mu;  // one writer user at a time: index batches, nodes, jobs
  soci::session writer GUARDED_BY(writer_mu);
  std::unique_ptr<IndexWriter> index_writer GUARDED_BY(writer_mu);  // null while not connected
  ConnectionCounters read_use, write_use;
  // A lost PostgreSQL connection (a server restart, a network cut) is opened again before the
  // writer's next use; SQLite's never is. Never throws: when it fails, the next statement does.
  void EnsureWriter() REQUIRES(writer_mu);
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
    // A connection lost since its last use (PostgreSQL restarted) is opened again; when that
    // fails, the statement that follows fails with the reason.
    if (!is_connected()) {
      try {
        reconnect();
      } catch (const std::exception&) {
        // The pooled connection's backend is gone (reconnect closed it, then failed): this
        // lease must not keep pointing at it. Statements now fail with "not connected".
        close();
      }
    }
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
  explicit WriterLock(Database::Impl& impl) ACQUIRE(impl.writer_mu)
      : asked_(impl.write_use), lock_(impl.writer_mu), use_(impl.write_use) {
    use_.Acquired(asked_.asked);
    impl.EnsureWriter();
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

// Values from the outside (a header that declared no character set or a wrong one, a hostile
// AE title) made well-formed UTF-8, bytes that are not as U+FFFD: PostgreSQL refuses such text
// (and would fail the whole batch with it), and the index answers JSON, which needs UTF-8.
void MakeValidUtf8(std::initializer_list<std::string*> values);

// `sql` with each `?` outside quotes numbered `:p1`, `:p2`, ... (SOCI's PostgreSQL backend binds
// named placeholders only; SQLite reads either).
std::string NumberPlaceholders(std::string_view sql);
// The distinct non-null values of `expr` in a group, joined with ','.
std::string GroupConcatDistinct(Engine e, std::string_view expr);
// The leading integer of a text column, 0 when it has none (ordering by InstanceNumber, which
// is text: SQLite's CAST reads the digits it can; PostgreSQL's would fail on the rest).
std::string AsInteger(Engine e, std::string_view expr);
// The operator of a DICOM wildcard match that ignores case the way the REST filters always
// have (SQLite's LIKE: ASCII letters).
std::string_view LikeNoCase(Engine e);
// `expr` with ASCII capitals made small, nothing else (as the value side is: SQLite's lower();
// PostgreSQL's would fold every script's).
std::string LowerAscii(Engine e, std::string_view expr);
// `log_statement`: false where bound values are secrets (hashes, tokens): not even at debug.
Error DbError(const std::exception& e, std::string_view what, bool log_statement = true);
std::string Str(const soci::row& r, std::size_t i);
int64_t Int(const soci::row& r, std::size_t i);

}  // namespace db
}  // namespace pb
