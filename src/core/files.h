// File helpers every module uses.
#pragma once

#include <filesystem>
#include <system_error>

namespace pb {

// Removes a file if it is there; a failure is no error (a temp file already gone).
inline void RemoveQuietly(const std::filesystem::path& p) {
  std::error_code ec;
  std::filesystem::remove(p, ec);
}

}  // namespace pb
