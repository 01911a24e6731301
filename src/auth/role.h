#pragma once
// The three roles of accounts, ordered: each may do what the ones below it may.
#include <optional>
#include <string>
#include <string_view>

namespace pb::auth {

enum class Role { kReadOnly = 0, kUser = 1, kAdmin = 2 };

// "admin", "user", "read-only".
const char* RoleName(Role role);
std::optional<Role> ParseRole(std::string_view name);
// Whether `have` includes what `need` may do.
inline bool Includes(Role have, Role need) { return static_cast<int>(have) >= static_cast<int>(need); }

}  // namespace pb::auth
