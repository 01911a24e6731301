#pragma once
// Internals of Database shared by its implementation files (database.cpp: index and nodes;
// job_table.cpp: jobs and node state). Not for use outside src/archive.
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

struct Database::Impl {
  std::string conn;
  soci::connection_pool pool{kReadPool};
  Mutex writer_mu;  // one writer user at a time: index batches, nodes, jobs
  soci::session writer GUARDED_BY(writer_mu);
  std::unique_ptr<IndexWriter> index_writer;
  ~Impl();
};

namespace db {

std::string NowIso();
// `log_statement`: false where bound values are secrets (hashes, tokens): not even at debug.
Error DbError(const std::exception& e, std::string_view what, bool log_statement = true);
std::string Str(const soci::row& r, std::size_t i);
int64_t Int(const soci::row& r, std::size_t i);

}  // namespace db
}  // namespace pb
