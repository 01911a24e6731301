#include "archive/testing.h"

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

#include <fmt/format.h>
#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>
#include <unistd.h>

#include "archive/database_impl.h"

namespace pb {

const char* TestDatabaseEngine() {
  const char* url = std::getenv("PACSBRIDGE_TEST_POSTGRES");
  return url && *url ? "postgresql" : "sqlite";
}

namespace {
std::mutex made_mu;
std::map<std::filesystem::path, std::string> made;  // dir → URL of the database made for it
}  // namespace

Result<std::unique_ptr<Database>> ReopenTestDatabase(const std::filesystem::path& dir, bool full_sync) {
  std::string url;
  {
    std::lock_guard<std::mutex> lock(made_mu);
    if (auto it = made.find(dir); it != made.end()) url = it->second;
  }
  return url.empty() ? Database::Open(dir / "index.db", full_sync) : Database::OpenPostgres(url);
}

Result<std::unique_ptr<Database>> OpenTestDatabase(const std::filesystem::path& dir, bool full_sync) {
  const char* server = std::getenv("PACSBRIDGE_TEST_POSTGRES");
  if (!server || !*server) return Database::Open(dir / "index.db", full_sync);
  static std::atomic<int> count{0};
  const std::string name = fmt::format("pbtest_{}_{}", getpid(), ++count);
  try {
    soci::session admin(soci::postgresql, server);
    admin << "CREATE DATABASE " + name;
  } catch (const std::exception& e) {
    return tl::unexpected(db::DbError(e, "creating a test database"));
  }
  // The URL's own query parameters come after its path: a dbname among them wins.
  const std::string base = server;
  const std::string url = fmt::format("{}{}dbname={}", base, base.find('?') == std::string::npos ? '?' : '&', name);
  {
    std::lock_guard<std::mutex> lock(made_mu);
    made[dir] = url;
  }
  return Database::OpenPostgres(url);
}

}  // namespace pb
