#include "auth/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace pb::auth {

namespace {

void Random(unsigned char* out, int n) {
  if (RAND_bytes(out, n) != 1) {
    std::fputs("pacsbridge: the random number generator failed; stopping\n", stderr);
    std::abort();
  }
}

}  // namespace

std::string RandomBytes(int bytes) {
  std::string out(static_cast<size_t>(bytes), '\0');
  Random(reinterpret_cast<unsigned char*>(out.data()), bytes);
  return out;
}

std::string RandomToken(int bytes) {
  std::vector<unsigned char> raw(static_cast<size_t>(bytes));
  Random(raw.data(), bytes);
  std::string b64(static_cast<size_t>(4 * ((bytes + 2) / 3)), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), raw.data(), bytes);
  b64.resize(static_cast<size_t>(n));
  while (!b64.empty() && b64.back() == '=') b64.pop_back();
  for (char& c : b64) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return b64;
}

std::string RandomPassword(int length) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  constexpr unsigned kSize = sizeof(kAlphabet) - 1;  // 62
  constexpr unsigned kLimit = 256 - 256 % kSize;     // 248: larger bytes are redrawn (no bias)
  std::string out;
  while (static_cast<int>(out.size()) < length) {
    unsigned char buf[64];
    Random(buf, sizeof buf);
    for (unsigned char b : buf) {
      if (b < kLimit && static_cast<int>(out.size()) < length) out += kAlphabet[b % kSize];
    }
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * sizeof digest);
  for (unsigned char b : digest) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  for (char c : text) {  // EVP_DecodeBlock skips white space; we do not accept it
    const bool ok =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=';
    if (!ok) return std::nullopt;
  }
  const size_t first_pad = text.find('=');
  if (first_pad != std::string_view::npos &&
      (text.size() - first_pad > 2 || text.find_first_not_of('=', first_pad) != std::string_view::npos)) {
    return std::nullopt;
  }
  std::string out(text.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts the bytes the padding stands for; drop them.
  const size_t pad = first_pad == std::string_view::npos ? 0 : text.size() - first_pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;  // lengths are not secret here (hashes, fixed-size tokens)
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace pb::auth
