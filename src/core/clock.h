#pragma once
// Wall-clock time as the API and the database show it.
#include <string>

namespace pb {

// Now, UTC, ISO 8601 to the second: "2026-11-22T21:40:00Z".
std::string UtcNowIso();

}  // namespace pb
