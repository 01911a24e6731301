#include "auth/role.h"

namespace pb::auth {

const char* RoleName(Role role) {
  switch (role) {
    case Role::kAdmin:
      return "admin";
    case Role::kUser:
      return "user";
    case Role::kReadOnly:
      return "read-only";
  }
  return "read-only";
}

std::optional<Role> ParseRole(std::string_view name) {
  if (name == "admin") return Role::kAdmin;
  if (name == "user") return Role::kUser;
  if (name == "read-only") return Role::kReadOnly;
  return std::nullopt;
}

}  // namespace pb::auth
