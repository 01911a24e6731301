#pragma once
// For tests of any module that needs an index database: SQLite in a directory by default, or a
// new PostgreSQL database of its own when PACSBRIDGE_TEST_POSTGRES holds the URL of a server the
// test may create databases on (scripts/pg-test-server.sh starts one; ctest's unit-pg.* runs).
#include <filesystem>
#include <memory>

#include "archive/database.h"
#include "core/result.h"

namespace pb {

// The engine the tests of this process run on: "sqlite" or "postgresql".
const char* TestDatabaseEngine();
// A fresh, empty index: `dir`/index.db, or a new PostgreSQL database.
[[nodiscard]] Result<std::unique_ptr<Database>> OpenTestDatabase(const std::filesystem::path& dir,
                                                                 bool full_sync = false);
// Another connection to the index OpenTestDatabase last made for `dir` (a restart, a child).
[[nodiscard]] Result<std::unique_ptr<Database>> ReopenTestDatabase(const std::filesystem::path& dir,
                                                                   bool full_sync = false);

}  // namespace pb
