#pragma once
// Accounts of the REST API and the web UI: users and roles, the three ways to authenticate
// (HTTP basic, API tokens, UI sessions), the throttle of failed log-ins, and the audit log.
// Users, sessions and tokens live in memory and are written through to the index (migration
// 007), so a request costs no database read. Thread-safe.
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "archive/database.h"
#include "auth/password.h"
#include "auth/role.h"
#include "core/clock.h"
#include "core/result.h"
#include "core/thread_annotations.h"

namespace pb::auth {

// Who makes a request, and how they proved it.
struct Principal {
  std::string username;
  Role role = Role::kReadOnly;
  std::string via;                    // "session", "token" or "basic"
  std::string session_hash;           // a session's id (SHA-256 of its cookie)
  std::string csrf_token;             // a session's
  std::string token_id;               // a token's
  std::vector<std::string> projects;  // the account's visible projects (empty: all)
};

// Where a request comes from, for the audit log.
struct Caller {
  std::string address;     // the peer's IP address
  std::string request_id;  // the answer's X-Request-Id
};

// Why credentials were not accepted (kUnavailable: they were, but the session could not be kept).
struct Refusal {
  enum class Why { kCredentials, kThrottled, kUnavailable } why = Why::kCredentials;
  std::string message;
  int retry_after_s = 0;  // kThrottled: when to try again
};
template <typename T>
using AuthResult = tl::expected<T, Refusal>;

struct AccountSettings {
  std::chrono::minutes session_idle{480};
  std::chrono::hours session_max{168};
  HashCost cost;
  // Where the first start keeps a generated admin password (deleted when it is changed); empty:
  // nowhere.
  std::filesystem::path initial_password_file;
};

struct NewSession {
  std::string cookie;  // the secret the browser keeps
  Principal principal;
  int64_t expires_s = 0;
};

struct NewToken {
  TokenRecord record;
  std::string secret;  // "pbt_...": shown once
};

// Failed log-ins in a row that are free; from then on each attempt waits 2, 4, 8 ... seconds.
inline constexpr int kFreeFailures = 5;
inline constexpr int kMaxDelaySeconds = 300;
// The wait after `failures` failures in a row (0 while they are free).
int ThrottleDelaySeconds(int failures);

// A user name: 1-64 of [A-Za-z0-9._@-], starting with a letter or digit; "" when it is one,
// else why not.
std::string UsernameProblem(const std::string& name);

class Accounts {
 public:
  Accounts(Database& db, const Clock& clock, AccountSettings settings = {});

  // Reads users, sessions and tokens from the index; ended sessions are dropped.
  [[nodiscard]] Result<void> Load();

  // On a first start (no account at all) creates "admin" with `initial` or, when there is
  // none, a random password, which it returns (and keeps in initial_password_file). When the
  // account exists, returns nullopt and sets *initial_opens (if given) to whether `initial`
  // still opens it.
  [[nodiscard]] Result<std::optional<std::string>> Bootstrap(const std::optional<std::string>& initial,
                                                             bool* initial_opens = nullptr);

  // Authentication. Log-ins, failed ones too, go to the audit log with the caller (a basic
  // password when it is checked, not when it is remembered).
  AuthResult<Principal> Basic(const std::string& username, const std::string& password, const Caller& caller);
  AuthResult<NewSession> Login(const std::string& username, const std::string& password, const Caller& caller);
  AuthResult<Principal> Session(const std::string& cookie);
  AuthResult<Principal> Token(const std::string& secret);
  void Logout(const Principal& p);

  // Users. Views carry no hash.
  std::vector<UserRecord> Users() const;
  std::optional<UserRecord> User(const std::string& username) const;
  // `projects`: what the account may see through the DICOMweb server (empty: all); the caller
  // checks they are project labels.
  [[nodiscard]] Result<UserRecord> CreateUser(const std::string& username, const std::string& role,
                                              const std::string& password,
                                              const std::vector<std::string>& projects = {});
  // Role and/or password; a new password ends the user's sessions but `keep_session` (an id
  // hash). The last admin cannot be demoted.
  [[nodiscard]] Result<UserRecord> UpdateUser(const std::string& username, const std::optional<std::string>& role,
                                              const std::optional<std::string>& password,
                                              const std::string& keep_session = {},
                                              const std::optional<std::vector<std::string>>& projects = std::nullopt);
  [[nodiscard]] Result<void> DeleteUser(const std::string& username);

  // API tokens. A token's role is at most its creator's; `all` (admins) lists everyone's.
  [[nodiscard]] Result<NewToken> CreateToken(const Principal& p, const std::string& name,
                                             const std::optional<std::string>& role, std::optional<int> expires_days);
  std::vector<TokenRecord> Tokens(const Principal& p, bool all) const;
  [[nodiscard]] Result<TokenRecord> RevokeToken(const Principal& p, const std::string& id);

  // The audit log: written by the callers that change things (and by log-ins here). A failed
  // write is logged, never fatal to the change it records.
  void Audit(AuditRecord entry);
  [[nodiscard]] Result<std::vector<AuditRecord>> AuditLog(const AuditFilter& filter);

 private:
  struct Throttle {
    int failures = 0;
    int64_t last_failure_s = 0;
    int in_flight = 0;  // attempts being checked now
  };
  struct CachedPassword {
    std::string username_key, hash;
    int64_t until_s = 0;
  };

  int64_t NowS() const;
  // `remembered`: set when the password cache answered (no hash, no audit entry).
  AuthResult<Principal> CheckPassword(const std::string& username, const std::string& password, const Caller& caller,
                                      const char* via, bool* remembered = nullptr);
  void RemoveSessionsLocked(const std::string& username_key, const std::string& keep) REQUIRES(mu_);
  void EraseUserLocked(const std::string& key) REQUIRES(mu_);
  int AdminCountLocked() const REQUIRES(mu_);

  Database& db_;
  const Clock& clock_;
  AccountSettings settings_;
  const std::string cache_secret_;  // keys the password cache: nothing there is a password
  std::string dummy_hash_;          // verified for unknown names, so they take as long (Load)

  mutable Mutex mu_;
  std::map<std::string, UserRecord> users_ GUARDED_BY(mu_);        // by lower-case name
  std::map<std::string, SessionRecord> sessions_ GUARDED_BY(mu_);  // by id hash
  std::map<std::string, int64_t> session_saved_ GUARDED_BY(mu_);   // id hash → last_seen_s written to the index
  std::map<std::string, TokenRecord> tokens_ GUARDED_BY(mu_);      // by hash of the secret
  std::map<std::string, Throttle> throttle_ GUARDED_BY(mu_);       // by lower-case name, existing or not
  std::map<std::string, CachedPassword> password_cache_ GUARDED_BY(mu_);
};

}  // namespace pb::auth
