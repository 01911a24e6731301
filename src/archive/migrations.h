#pragma once
// The numbered SQL scripts of migrations/, embedded at build time, in order.
#include <vector>

namespace pb {

struct Migration {
  int version;
  const char* sql;
};

const std::vector<Migration>& Migrations();

}  // namespace pb
