#pragma once
// Password hashes: Argon2id (libargon2), in the encoded form that carries its own parameters
// and salt ("$argon2id$v=19$m=19456,t=2,p=1$salt$hash"), so stronger parameters later still
// verify the hashes made before.
#include <string>
#include <string_view>

#include "core/result.h"

namespace pb::auth {

struct HashCost {
  uint32_t memory_kib = 19 * 1024;  // 19 MiB, 2 passes, 1 lane: the OWASP minimum for Argon2id
  uint32_t passes = 2;
};

// At most two hashes or verifications run at once (each takes memory_kib); more wait.
[[nodiscard]] Result<std::string> HashPassword(std::string_view password, HashCost cost = {});
// Constant-time (libargon2 compares the hashes so); false for a malformed stored hash.
bool VerifyPassword(std::string_view password, const std::string& encoded);

// Why a new password is refused ("" when it is acceptable): 8 to 1024 characters, not the user
// name.
std::string PasswordProblem(std::string_view password, std::string_view username);

}  // namespace pb::auth
