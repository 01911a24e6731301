#pragma once
// The few cryptographic pieces accounts need, all from OpenSSL: random secrets, SHA-256,
// base64 and a comparison that takes the same time wherever the inputs differ.
#include <optional>
#include <string>
#include <string_view>

namespace pb::auth {

// `bytes` random bytes from OpenSSL's CSPRNG (see RandomToken on failure).
std::string RandomBytes(int bytes);
// `bytes` random bytes from OpenSSL's CSPRNG, as unpadded base64url (43 characters for 32).
// Aborts the process when the generator fails: a predictable secret is worse than no server.
std::string RandomToken(int bytes);
// A password of `length` characters from [A-Za-z0-9], uniformly drawn.
std::string RandomPassword(int length);
// Lower-case hex of SHA-256.
std::string Sha256Hex(std::string_view data);
// Standard base64 (RFC 4648 section 4, padded) to bytes; nullopt when it is not that.
std::optional<std::string> Base64Decode(std::string_view text);
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace pb::auth
