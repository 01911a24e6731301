#pragma once
// The numbered SQL scripts of migrations/ (SQLite) and migrations/postgresql/, embedded at build
// time, in order.
#include <vector>

namespace pb {

struct Migration {
  int version;
  const char* sql;
};

const std::vector<Migration>& Migrations();
const std::vector<Migration>& PostgresMigrations();

}  // namespace pb
