#include "auth/accounts.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "auth/crypto.h"
#include "core/thread_annotations.h"

namespace pb::auth {

namespace {

constexpr int64_t kPasswordCacheSeconds = 300;
constexpr size_t kMaxPasswordCache = 1024;
constexpr size_t kMaxThrottled = 10000;
constexpr int64_t kSessionTouchSeconds = 60;  // last use is written at most this often
constexpr const char* kTokenPrefix = "pbt_";

std::string Key(std::string_view name) {
  std::string k(name);
  for (char& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return k;
}

Refusal Wrong() { return {Refusal::Why::kCredentials, "wrong user name or password", 0}; }

}  // namespace

int ThrottleDelaySeconds(int failures) {
  if (failures < kFreeFailures) return 0;
  const int shift = std::min(failures - kFreeFailures + 1, 16);
  return std::min(1 << shift, kMaxDelaySeconds);
}

std::string UsernameProblem(const std::string& name) {
  if (name.empty() || name.size() > 64) return "a user name has 1 to 64 characters";
  if (!std::isalnum(static_cast<unsigned char>(name[0]))) return "a user name starts with a letter or a digit";
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '@' && c != '-') {
      return fmt::format("a user name has only letters, digits and . _ @ - (not '{}')", c);
    }
  }
  return {};
}

Accounts::Accounts(Database& db, const Clock& clock, AccountSettings settings)
    : db_(db), clock_(clock), settings_(std::move(settings)), cache_secret_(RandomToken(32)) {}

int64_t Accounts::NowS() const {
  return std::chrono::duration_cast<std::chrono::seconds>(clock_.Now().time_since_epoch()).count();
}

Result<void> Accounts::Load() {
  if (dummy_hash_.empty()) {
    auto dummy = HashPassword(RandomToken(16), settings_.cost);
    if (!dummy) return tl::unexpected(dummy.error());
    dummy_hash_ = *dummy;
  }
  auto users = db_.LoadUsers();
  if (!users) return tl::unexpected(users.error());
  auto sessions = db_.LoadSessions();
  if (!sessions) return tl::unexpected(sessions.error());
  auto tokens = db_.LoadTokens();
  if (!tokens) return tl::unexpected(tokens.error());
  const int64_t now = NowS();
  const int64_t idle = std::chrono::duration_cast<std::chrono::seconds>(settings_.session_idle).count();
  if (auto swept = db_.DeleteSessionsBefore(now); !swept) return swept;
  MutexLock lock(mu_);
  users_.clear();
  for (auto& u : *users) users_[Key(u.username)] = std::move(u);
  sessions_.clear();
  session_saved_.clear();
  for (auto& s : *sessions) {
    if (s.expires_s <= now || now - s.last_seen_s > idle) continue;  // left for the next sweep
    session_saved_[s.id_hash] = s.last_seen_s;
    sessions_[s.id_hash] = std::move(s);
  }
  tokens_.clear();
  for (auto& t : *tokens) tokens_[t.token_hash] = std::move(t);
  return {};
}

Result<std::optional<std::string>> Accounts::Bootstrap(const std::optional<std::string>& initial, bool* initial_opens) {
  {
    MutexLock lock(mu_);
    if (!users_.empty()) {
      if (initial_opens) {
        auto admin = users_.find("admin");
        *initial_opens = initial && admin != users_.end() && VerifyPassword(*initial, admin->second.password_hash);
      }
      return std::optional<std::string>();
    }
  }
  const std::string password = initial ? *initial : RandomPassword(20);
  auto hash = HashPassword(password, settings_.cost);
  if (!hash) return tl::unexpected(hash.error());
  const std::string now = UtcNowIso();
  UserRecord admin{"admin", RoleName(Role::kAdmin), *hash, now, now, "", {}};
  auto inserted = db_.InsertUser(admin);
  if (!inserted) return tl::unexpected(inserted.error());
  {
    MutexLock lock(mu_);
    users_["admin"] = admin;
  }
  Audit({0, now, "(server)", "start", "", "", "user.create", "user", "admin", "null",
         nlohmann::json{{"username", "admin"}, {"role", "admin"}}.dump()});
  if (initial) return std::optional<std::string>();
  if (!settings_.initial_password_file.empty()) {
    // Readable by the service's user only, from its creation on; one left by an earlier index
    // is replaced.
    const std::string path = settings_.initial_password_file.string();
    ::unlink(path.c_str());
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    const std::string line = password + "\n";
    const bool written = fd >= 0 && ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    if (fd >= 0) ::close(fd);
    if (!written) {
      ::unlink(path.c_str());
      spdlog::warn("cannot keep the first admin password in {}: note it from the console now", path);
    }
  }
  return std::optional<std::string>(password);
}

AuthResult<Principal> Accounts::CheckPassword(const std::string& username, const std::string& password,
                                              const Caller& caller, const char* via, bool* remembered) {
  const std::string key = Key(username);
  const int64_t now = NowS();
  const std::string cache_key = Sha256Hex(cache_secret_ + '\0' + key + '\0' + password);
  std::string stored_hash;
  {
    MutexLock lock(mu_);
    auto u = users_.find(key);
    // A password verified lately opens without a hash, whatever the throttle says: only who
    // knows it gets here, so an attacker's failures cannot lock out a script that does.
    if (u != users_.end()) {
      stored_hash = u->second.password_hash;
      auto c = password_cache_.find(cache_key);
      if (c != password_cache_.end() && c->second.until_s > now && c->second.username_key == key &&
          ConstantTimeEquals(c->second.hash, stored_hash)) {
        if (remembered) *remembered = true;
        return Principal{u->second.username, ParseRole(u->second.role).value_or(Role::kReadOnly), via, "", "", "",
                         u->second.projects};
      }
    }
    Throttle& t = throttle_[key];
    const int64_t wait = t.last_failure_s + ThrottleDelaySeconds(t.failures) - now;
    // Past the free failures, one attempt at a time per name: parallel guesses wait their turn.
    const bool busy = t.in_flight > 0 && t.failures + t.in_flight >= kFreeFailures;
    if (wait > 0 || busy) {
      const int64_t after = std::max<int64_t>(wait, 1);
      if (t.failures == 0 && t.in_flight == 0) throttle_.erase(key);
      return tl::unexpected(Refusal{Refusal::Why::kThrottled,
                                    fmt::format("too many failed log-ins for '{}'; try again in {} s", username, after),
                                    static_cast<int>(after)});
    }
    ++t.in_flight;
  }
  // The slow part, outside the lock. An unknown name costs the same as a known one.
  const bool ok = VerifyPassword(password, stored_hash.empty() ? dummy_hash_ : stored_hash) && !stored_hash.empty();
  MutexLock lock(mu_);
  Throttle& t = throttle_[key];
  --t.in_flight;
  auto u = users_.find(key);
  if (!ok || u == users_.end() || u->second.password_hash != stored_hash) {
    ++t.failures;
    t.last_failure_s = now;
    const int failures = t.failures;
    if (throttle_.size() > kMaxThrottled) {
      // Names whose wait is over, or that are under the free failures, go first; a name still
      // waiting is never forgotten (that would lift its throttle).
      std::erase_if(throttle_, [&](const auto& e) {
        return e.second.in_flight == 0 && (e.second.failures < kFreeFailures ||
                                           now - e.second.last_failure_s > ThrottleDelaySeconds(e.second.failures));
      });
    }
    lock.Unlock();
    Audit({0, UtcNowIso(), username, via, caller.address, caller.request_id, "auth.login_failed", "user", username,
           "null", nlohmann::json{{"failures_in_a_row", failures}}.dump()});
    return tl::unexpected(Wrong());
  }
  if (t.in_flight == 0)
    throttle_.erase(key);
  else
    t.failures = 0;
  if (password_cache_.size() >= kMaxPasswordCache) password_cache_.clear();
  password_cache_[cache_key] = {key, stored_hash, now + kPasswordCacheSeconds};
  UserRecord& user = u->second;
  user.last_login_at = UtcNowIso();
  const Principal p{user.username, ParseRole(user.role).value_or(Role::kReadOnly), via, "", "", "", user.projects};
  const std::string at = user.last_login_at;
  lock.Unlock();
  if (auto saved = db_.SetUserLastLogin(p.username, at); !saved) spdlog::warn("accounts: {}", saved.error().message);
  Audit({0, at, p.username, via, caller.address, caller.request_id, "auth.login", "user", p.username, "null", "null"});
  return p;
}

AuthResult<Principal> Accounts::Basic(const std::string& username, const std::string& password, const Caller& caller) {
  return CheckPassword(username, password, caller, "basic");
}

AuthResult<NewSession> Accounts::Login(const std::string& username, const std::string& password, const Caller& caller) {
  bool remembered = false;
  auto p = CheckPassword(username, password, caller, "session", &remembered);
  if (!p) return tl::unexpected(p.error());
  // Every UI log-in is audited (CheckPassword does it when it verified the password).
  if (remembered) {
    Audit({0, UtcNowIso(), p->username, "session", caller.address, caller.request_id, "auth.login", "user", p->username,
           "null", "null"});
  }
  const std::string key = Key(p->username);
  std::string hash_then;
  {
    MutexLock lock(mu_);
    if (auto u = users_.find(key); u != users_.end()) hash_then = u->second.password_hash;
  }
  const int64_t now = NowS();
  NewSession out;
  out.cookie = RandomToken(32);
  SessionRecord s;
  s.id_hash = Sha256Hex(out.cookie);
  s.username = p->username;
  s.csrf_token = RandomToken(32);
  s.client = caller.address;
  s.created_s = now;
  s.last_seen_s = now;
  s.expires_s = now + std::chrono::duration_cast<std::chrono::seconds>(settings_.session_max).count();
  if (auto saved = db_.InsertSession(s); !saved) {
    spdlog::error("accounts: {}", saved.error().message);
    return tl::unexpected(Refusal{Refusal::Why::kUnavailable, "the session could not be saved; see the server log", 0});
  }
  {
    MutexLock lock(mu_);
    // Deleted, or given a new password, while the session was being saved: that ended it.
    auto u = users_.find(key);
    if (hash_then.empty() || u == users_.end() || u->second.password_hash != hash_then) {
      lock.Unlock();
      (void)db_.DeleteSession(s.id_hash);
      return tl::unexpected(
          Refusal{Refusal::Why::kCredentials, "the account changed during the log-in; log in again", 0});
    }
    // Sessions that ended (idle or past their end) go when a new one starts.
    const int64_t idle = std::chrono::duration_cast<std::chrono::seconds>(settings_.session_idle).count();
    std::erase_if(session_saved_, [&](const auto& e) REQUIRES(mu_) {
      auto it = sessions_.find(e.first);
      return it == sessions_.end() || it->second.expires_s <= now || now - it->second.last_seen_s > idle;
    });
    std::erase_if(sessions_, [&](const auto& e) REQUIRES(mu_) { return !session_saved_.count(e.first); });
    sessions_[s.id_hash] = s;
    session_saved_[s.id_hash] = now;
  }
  if (auto swept = db_.DeleteSessionsBefore(now); !swept) spdlog::warn("accounts: {}", swept.error().message);
  out.principal = *p;
  out.principal.session_hash = s.id_hash;
  out.principal.csrf_token = s.csrf_token;
  out.expires_s = s.expires_s;
  return out;
}

AuthResult<Principal> Accounts::Session(const std::string& cookie) {
  const std::string hash = Sha256Hex(cookie);
  const int64_t now = NowS();
  const int64_t idle = std::chrono::duration_cast<std::chrono::seconds>(settings_.session_idle).count();
  MutexLock lock(mu_);
  auto it = sessions_.find(hash);
  const Refusal ended{Refusal::Why::kCredentials, "the session has ended; log in again", 0};
  if (it == sessions_.end()) return tl::unexpected(ended);
  SessionRecord& s = it->second;
  auto u = users_.find(Key(s.username));
  if (s.expires_s <= now || now - s.last_seen_s > idle || u == users_.end()) {
    sessions_.erase(it);
    session_saved_.erase(hash);
    lock.Unlock();
    if (auto gone = db_.DeleteSession(hash); !gone) spdlog::warn("accounts: {}", gone.error().message);
    return tl::unexpected(ended);
  }
  s.last_seen_s = now;
  Principal p{
      u->second.username, ParseRole(u->second.role).value_or(Role::kReadOnly), "session", hash, s.csrf_token, "",
      u->second.projects};
  int64_t& saved = session_saved_[hash];
  const bool touch = now - saved >= kSessionTouchSeconds;
  if (touch) saved = now;
  lock.Unlock();
  if (touch) {
    if (auto t = db_.TouchSession(hash, now); !t) spdlog::warn("accounts: {}", t.error().message);
  }
  return p;
}

AuthResult<Principal> Accounts::Token(const std::string& secret) {
  const Refusal bad{Refusal::Why::kCredentials, "the API token is not valid (revoked, expired or mistyped)", 0};
  if (secret.rfind(kTokenPrefix, 0) != 0) return tl::unexpected(bad);
  const std::string hash = Sha256Hex(secret);
  const int64_t now = NowS();
  MutexLock lock(mu_);
  auto it = tokens_.find(hash);
  if (it == tokens_.end()) return tl::unexpected(bad);
  TokenRecord& t = it->second;
  auto u = users_.find(Key(t.username));
  if ((t.expires_s != 0 && t.expires_s <= now) || u == users_.end()) return tl::unexpected(bad);
  const Role role =
      std::min(ParseRole(t.role).value_or(Role::kReadOnly), ParseRole(u->second.role).value_or(Role::kReadOnly));
  Principal p{u->second.username, role, "token", "", "", t.id, u->second.projects};
  const bool touch = now - t.last_used_s >= kSessionTouchSeconds;
  if (touch) t.last_used_s = now;
  const std::string id = t.id;
  lock.Unlock();
  if (touch) {
    if (auto saved = db_.TouchToken(id, now); !saved) spdlog::warn("accounts: {}", saved.error().message);
  }
  return p;
}

void Accounts::Logout(const Principal& p) {
  if (p.session_hash.empty()) return;
  {
    MutexLock lock(mu_);
    sessions_.erase(p.session_hash);
    session_saved_.erase(p.session_hash);
  }
  if (auto gone = db_.DeleteSession(p.session_hash); !gone) spdlog::warn("accounts: {}", gone.error().message);
}

std::vector<UserRecord> Accounts::Users() const {
  MutexLock lock(mu_);
  std::vector<UserRecord> out;
  for (const auto& [k, u] : users_) {
    out.push_back(u);
    out.back().password_hash.clear();
  }
  return out;
}

std::optional<UserRecord> Accounts::User(const std::string& username) const {
  MutexLock lock(mu_);
  auto it = users_.find(Key(username));
  if (it == users_.end()) return std::nullopt;
  UserRecord u = it->second;
  u.password_hash.clear();
  return u;
}

int Accounts::AdminCountLocked() const {
  return static_cast<int>(std::count_if(users_.begin(), users_.end(),
                                        [](const auto& e) { return e.second.role == RoleName(Role::kAdmin); }));
}

Result<UserRecord> Accounts::CreateUser(const std::string& username, const std::string& role,
                                        const std::string& password, const std::vector<std::string>& projects) {
  if (auto why = UsernameProblem(username); !why.empty()) return Fail(Code::kInvalidArgument, why, "username");
  if (!ParseRole(role)) {
    return Fail(Code::kInvalidArgument, fmt::format("unknown role '{}': admin, user or read-only", role), "role");
  }
  if (auto why = PasswordProblem(password, username); !why.empty())
    return Fail(Code::kInvalidArgument, why, "password");
  {
    MutexLock lock(mu_);
    if (users_.count(Key(username))) {
      return Fail(Code::kAlreadyExists, fmt::format("an account named '{}' exists", username), "username");
    }
  }
  auto hash = HashPassword(password, settings_.cost);
  if (!hash) return tl::unexpected(hash.error());
  const std::string now = UtcNowIso();
  UserRecord u{username, role, *hash, now, now, "", projects};
  auto inserted = db_.InsertUser(u);
  if (!inserted) return tl::unexpected(inserted.error());
  if (!*inserted) return Fail(Code::kAlreadyExists, fmt::format("an account named '{}' exists", username), "username");
  MutexLock lock(mu_);
  users_[Key(username)] = u;
  u.password_hash.clear();
  return u;
}

void Accounts::RemoveSessionsLocked(const std::string& username_key, const std::string& keep) {
  std::erase_if(sessions_, [&](const auto& e) { return Key(e.second.username) == username_key && e.first != keep; });
  std::erase_if(session_saved_, [&](const auto& e) REQUIRES(mu_) { return !sessions_.count(e.first); });
}

Result<UserRecord> Accounts::UpdateUser(const std::string& username, const std::optional<std::string>& role,
                                        const std::optional<std::string>& password, const std::string& keep_session,
                                        const std::optional<std::vector<std::string>>& projects) {
  const std::string key = Key(username);
  if (role && !ParseRole(*role)) {
    return Fail(Code::kInvalidArgument, fmt::format("unknown role '{}': admin, user or read-only", *role), "role");
  }
  auto last_admin = [&](const UserRecord& u) REQUIRES(mu_) {
    return role && *role != RoleName(Role::kAdmin) && u.role == RoleName(Role::kAdmin) && AdminCountLocked() == 1;
  };
  const auto kLastAdmin = [] {
    return Fail(Code::kConflict, "at least one admin account must remain: make another account admin first", "role");
  };
  {
    MutexLock lock(mu_);
    auto it = users_.find(key);
    if (it == users_.end()) return Fail(Code::kNotFound, fmt::format("no account named '{}'", username));
    if (last_admin(it->second)) return kLastAdmin();
    if (password) {
      if (auto why = PasswordProblem(*password, it->second.username); !why.empty()) {
        return Fail(Code::kInvalidArgument, why, "password");
      }
    }
  }
  std::optional<std::string> hash;
  if (password) {  // slow: outside the lock, then everything is checked again
    auto h = HashPassword(*password, settings_.cost);
    if (!h) return tl::unexpected(h.error());
    hash = *h;
  }
  MutexLock lock(mu_);
  auto it = users_.find(key);
  if (it == users_.end()) return Fail(Code::kNotFound, fmt::format("no account named '{}'", username));
  if (last_admin(it->second)) return kLastAdmin();
  UserRecord updated = it->second;
  if (role) updated.role = *role;
  if (projects) updated.projects = *projects;
  if (hash) {
    updated.password_hash = *hash;
    updated.password_changed_at = UtcNowIso();
  }
  // The password and the end of the other sessions in one transaction: none outlives it.
  if (auto saved = db_.UpdateUser(updated, hash ? &keep_session : nullptr); !saved)
    return tl::unexpected(saved.error());
  it->second = updated;
  if (hash) RemoveSessionsLocked(key, keep_session);
  lock.Unlock();
  if (hash && key == "admin" && !settings_.initial_password_file.empty()) {
    std::error_code ec;
    std::filesystem::remove(settings_.initial_password_file, ec);
  }
  updated.password_hash.clear();
  return updated;
}

void Accounts::EraseUserLocked(const std::string& key) {
  users_.erase(key);
  RemoveSessionsLocked(key, "");
  std::erase_if(tokens_, [&](const auto& e) { return Key(e.second.username) == key; });
}

Result<void> Accounts::DeleteUser(const std::string& username) {
  const std::string key = Key(username);
  MutexLock lock(mu_);
  auto it = users_.find(key);
  if (it == users_.end()) return Fail(Code::kNotFound, fmt::format("no account named '{}'", username));
  if (it->second.role == RoleName(Role::kAdmin) && AdminCountLocked() == 1) {
    return Fail(Code::kConflict, "at least one admin account must remain: make another account admin first");
  }
  if (auto gone = db_.DeleteUser(it->second.username); !gone) return gone;
  EraseUserLocked(key);
  return {};
}

Result<NewToken> Accounts::CreateToken(const Principal& p, const std::string& name,
                                       const std::optional<std::string>& role, std::optional<int> expires_days) {
  const bool blank = std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isspace(c); });
  if (blank || name.size() > 100)
    return Fail(Code::kInvalidArgument, "a token needs a name of 1 to 100 characters", "name");
  Role r = p.role;
  if (role) {
    auto parsed = ParseRole(*role);
    if (!parsed)
      return Fail(Code::kInvalidArgument, fmt::format("unknown role '{}': admin, user or read-only", *role), "role");
    if (!Includes(p.role, *parsed)) {
      return Fail(Code::kInvalidArgument, fmt::format("a token's role cannot be above yours ({})", RoleName(p.role)),
                  "role");
    }
    r = *parsed;
  }
  if (expires_days && (*expires_days < 1 || *expires_days > 3650)) {
    return Fail(Code::kInvalidArgument, "expires_days is a whole number of days from 1 to 3650", "expires_days");
  }
  const int64_t now = NowS();
  NewToken out;
  out.secret = kTokenPrefix + RandomToken(32);
  TokenRecord& t = out.record;
  t.id = RandomToken(9);
  t.username = p.username;
  t.name = name;
  t.role = RoleName(r);
  t.token_hash = Sha256Hex(out.secret);
  t.created_s = now;
  t.expires_s = expires_days ? now + int64_t{*expires_days} * 86400 : 0;
  if (auto saved = db_.InsertToken(t); !saved) return tl::unexpected(saved.error());
  MutexLock lock(mu_);
  if (!users_.count(Key(p.username))) {  // deleted meanwhile: so is its token
    lock.Unlock();
    (void)db_.DeleteToken(t.id);
    return Fail(Code::kNotFound, fmt::format("no account named '{}'", p.username));
  }
  tokens_[t.token_hash] = t;
  return out;
}

std::vector<TokenRecord> Accounts::Tokens(const Principal& p, bool all) const {
  MutexLock lock(mu_);
  std::vector<TokenRecord> out;
  const std::string me = Key(p.username);
  for (const auto& [h, t] : tokens_) {
    if ((all && p.role == Role::kAdmin) || Key(t.username) == me) out.push_back(t);
  }
  std::sort(out.begin(), out.end(), [](const TokenRecord& a, const TokenRecord& b) {
    return std::tie(a.created_s, a.id) < std::tie(b.created_s, b.id);
  });
  return out;
}

Result<TokenRecord> Accounts::RevokeToken(const Principal& p, const std::string& id) {
  MutexLock lock(mu_);
  auto it = std::find_if(tokens_.begin(), tokens_.end(), [&](const auto& e) { return e.second.id == id; });
  // Someone else's token is "not found" to a non-admin: ids of others are not disclosed.
  if (it == tokens_.end() || (p.role != Role::kAdmin && Key(it->second.username) != Key(p.username))) {
    return Fail(Code::kNotFound, fmt::format("no API token with id '{}'", id));
  }
  if (auto gone = db_.DeleteToken(id); !gone) return tl::unexpected(gone.error());
  TokenRecord t = it->second;
  tokens_.erase(it);
  return t;
}

void Accounts::Audit(AuditRecord entry) {
  if (entry.at.empty()) entry.at = UtcNowIso();
  if (auto w = db_.AddAudit(entry); !w) spdlog::warn("audit log: {} (the change itself was made)", w.error().message);
}

Result<std::vector<AuditRecord>> Accounts::AuditLog(const AuditFilter& filter) { return db_.ListAudit(filter); }

}  // namespace pb::auth
