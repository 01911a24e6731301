#include "auth/password.h"

#include <argon2.h>

#include <condition_variable>
#include <mutex>

#include <fmt/format.h>

#include "auth/crypto.h"
#include "core/thread_annotations.h"

namespace pb::auth {

namespace {

// Each Argon2 run takes its memory for ~50 ms: a flood of log-ins must queue, not allocate.
class HashSlots {
 public:
  class Held {
   public:
    explicit Held(HashSlots& s) : s_(s) {
      MutexLock lock(s_.mu_);
      s_.cv_.wait(lock, [&]() REQUIRES(s_.mu_) { return s_.free_ > 0; });
      --s_.free_;
    }
    ~Held() {
      {
        MutexLock lock(s_.mu_);
        ++s_.free_;
      }
      s_.cv_.notify_one();
    }
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;

   private:
    HashSlots& s_;
  };

 private:
  Mutex mu_;
  std::condition_variable cv_;
  int free_ GUARDED_BY(mu_) = 2;
};

HashSlots& Slots() {
  static HashSlots slots;
  return slots;
}

constexpr uint32_t kSaltBytes = 16;
constexpr uint32_t kHashBytes = 32;
constexpr size_t kMaxPassword = 1024;

}  // namespace

[[nodiscard]] Result<std::string> HashPassword(std::string_view password, HashCost cost) {
  if (password.size() > kMaxPassword) return Fail(Code::kInvalidArgument, "the password is too long", "password");
  const std::string salt = RandomBytes(kSaltBytes);
  const size_t len =
      argon2_encodedlen(cost.passes, cost.memory_kib, 1, static_cast<uint32_t>(salt.size()), kHashBytes, Argon2_id);
  std::string encoded(len, '\0');
  int rc;
  {
    HashSlots::Held slot(Slots());
    rc = argon2id_hash_encoded(cost.passes, cost.memory_kib, 1, password.data(), password.size(), salt.data(),
                               salt.size(), kHashBytes, encoded.data(), encoded.size());
  }
  if (rc != ARGON2_OK)
    return Fail(Code::kInternal, fmt::format("hashing a password failed: {}", argon2_error_message(rc)));
  encoded.resize(encoded.find('\0') == std::string::npos ? encoded.size() : encoded.find('\0'));
  return encoded;
}

bool VerifyPassword(std::string_view password, const std::string& encoded) {
  if (password.size() > kMaxPassword || encoded.rfind("$argon2id$", 0) != 0) return false;
  HashSlots::Held slot(Slots());
  return argon2id_verify(encoded.c_str(), password.data(), password.size()) == ARGON2_OK;
}

std::string PasswordProblem(std::string_view password, std::string_view username) {
  // Characters, not bytes: a UTF-8 lead byte starts one.
  size_t chars = 0;
  for (unsigned char c : password) chars += (c & 0xC0) != 0x80;
  if (chars < 8) return "a password needs at least 8 characters";
  if (password.size() > kMaxPassword) return "a password has at most 1024 bytes";
  if (password == username) return "the password must not be the user name";
  return {};
}

}  // namespace pb::auth
