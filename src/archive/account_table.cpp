// Accounts, sessions, API tokens and the audit log (migration 007). The account service
// (src/auth) keeps users, sessions and tokens in memory and writes through to these tables.
#include <fmt/format.h>
#include <soci/soci.h>

#include "archive/database_impl.h"
#include "core/thread_annotations.h"

namespace pb {

using db::Int;

namespace {
// Bound values here are hashes and tokens: never logged, not even at debug.
Error DbError(const std::exception& e, std::string_view what) { return db::DbError(e, what, false); }

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    if (nl > pos) out.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

std::string JoinLines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) {
    if (!out.empty()) out += '\n';
    out += l;
  }
  return out;
}
}  // namespace
using db::Str;

Result<std::vector<UserRecord>> Database::LoadUsers() {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::vector<UserRecord> out;
    soci::rowset<soci::row> rs = (s.prepare << "SELECT username, role, password_hash, created_at, "
                                               "password_changed_at, last_login_at, projects FROM users ORDER BY "
                                               "username");
    for (const auto& r : rs) {
      out.push_back({Str(r, 0), Str(r, 1), Str(r, 2), Str(r, 3), Str(r, 4), Str(r, 5), SplitLines(Str(r, 6))});
    }
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "reading the accounts"));
  }
}

Result<bool> Database::InsertUser(const UserRecord& u) {
  db::WriterLock lock(*impl_);
  try {
    const std::string projects = JoinLines(u.projects);
    soci::statement st =
        (impl_->writer.prepare << "INSERT INTO users(username, role, password_hash, created_at, password_changed_at, "
                                  "last_login_at, projects) VALUES(:u, :r, :h, :c, :p, :l, :j) "
                                  "ON CONFLICT(username) DO NOTHING",
         soci::use(u.username), soci::use(u.role), soci::use(u.password_hash), soci::use(u.created_at),
         soci::use(u.password_changed_at), soci::use(u.last_login_at), soci::use(projects));
    st.execute(true);
    return st.get_affected_rows() > 0;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("creating the account '{}'", u.username)));
  }
}

Result<void> Database::UpdateUser(const UserRecord& u, const std::string* end_sessions_but) {
  db::WriterLock lock(*impl_);
  try {
    soci::transaction tx(impl_->writer);
    const std::string projects = JoinLines(u.projects);
    impl_->writer << "UPDATE users SET role = :r, password_hash = :h, password_changed_at = :p, projects = :j WHERE "
                     "username = :u",
        soci::use(u.role), soci::use(u.password_hash), soci::use(u.password_changed_at), soci::use(projects),
        soci::use(u.username);
    if (end_sessions_but) {
      impl_->writer << "DELETE FROM sessions WHERE username = :u AND id_hash <> :k", soci::use(u.username),
          soci::use(*end_sessions_but);
    }
    tx.commit();
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("saving the account '{}'", u.username)));
  }
}

Result<void> Database::SetUserLastLogin(const std::string& username, const std::string& at) {
  db::WriterLock lock(*impl_);
  try {
    impl_->writer << "UPDATE users SET last_login_at = :l WHERE username = :u", soci::use(at), soci::use(username);
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("saving the last log-in of '{}'", username)));
  }
}

Result<void> Database::DeleteUser(const std::string& username) {
  db::WriterLock lock(*impl_);
  try {
    soci::transaction tx(impl_->writer);
    impl_->writer << "DELETE FROM sessions WHERE username = :u", soci::use(username);
    impl_->writer << "DELETE FROM api_tokens WHERE username = :u", soci::use(username);
    impl_->writer << "DELETE FROM users WHERE username = :u", soci::use(username);
    tx.commit();
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("deleting the account '{}'", username)));
  }
}

Result<std::vector<SessionRecord>> Database::LoadSessions() {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::vector<SessionRecord> out;
    soci::rowset<soci::row> rs = (s.prepare << "SELECT id_hash, username, csrf_token, client, created_s, "
                                               "last_seen_s, expires_s FROM sessions");
    for (const auto& r : rs) {
      out.push_back({Str(r, 0), Str(r, 1), Str(r, 2), Str(r, 3), Int(r, 4), Int(r, 5), Int(r, 6)});
    }
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "reading the sessions"));
  }
}

Result<void> Database::InsertSession(const SessionRecord& x) {
  db::WriterLock lock(*impl_);
  try {
    const long long created = x.created_s, seen = x.last_seen_s, expires = x.expires_s;
    impl_->writer << "INSERT INTO sessions(id_hash, username, csrf_token, client, created_s, last_seen_s, "
                     "expires_s) VALUES(:i, :u, :c, :a, :cr, :s, :e)",
        soci::use(x.id_hash), soci::use(x.username), soci::use(x.csrf_token), soci::use(x.client), soci::use(created),
        soci::use(seen), soci::use(expires);
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "saving a session"));
  }
}

Result<void> Database::TouchSession(const std::string& id_hash, int64_t last_seen_s) {
  db::WriterLock lock(*impl_);
  try {
    const long long seen = last_seen_s;
    impl_->writer << "UPDATE sessions SET last_seen_s = :s WHERE id_hash = :i", soci::use(seen), soci::use(id_hash);
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "saving a session"));
  }
}

Result<void> Database::DeleteSession(const std::string& id_hash) {
  db::WriterLock lock(*impl_);
  try {
    impl_->writer << "DELETE FROM sessions WHERE id_hash = :i", soci::use(id_hash);
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "ending a session"));
  }
}

Result<void> Database::DeleteSessionsBefore(int64_t expires_s) {
  db::WriterLock lock(*impl_);
  try {
    const long long t = expires_s;
    impl_->writer << "DELETE FROM sessions WHERE expires_s <= :t", soci::use(t);
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "removing ended sessions"));
  }
}

Result<std::vector<TokenRecord>> Database::LoadTokens() {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::vector<TokenRecord> out;
    soci::rowset<soci::row> rs = (s.prepare << "SELECT id, username, name, role, token_hash, created_s, expires_s, "
                                               "last_used_s FROM api_tokens ORDER BY created_s, id");
    for (const auto& r : rs) {
      out.push_back({Str(r, 0), Str(r, 1), Str(r, 2), Str(r, 3), Str(r, 4), Int(r, 5), Int(r, 6), Int(r, 7)});
    }
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "reading the API tokens"));
  }
}

Result<void> Database::InsertToken(const TokenRecord& t) {
  db::WriterLock lock(*impl_);
  try {
    const long long created = t.created_s, expires = t.expires_s, used = t.last_used_s;
    impl_->writer << "INSERT INTO api_tokens(id, username, name, role, token_hash, created_s, expires_s, "
                     "last_used_s) VALUES(:i, :u, :n, :r, :h, :c, :e, :l)",
        soci::use(t.id), soci::use(t.username), soci::use(t.name), soci::use(t.role), soci::use(t.token_hash),
        soci::use(created), soci::use(expires), soci::use(used);
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("saving the API token '{}'", t.name)));
  }
}

Result<void> Database::TouchToken(const std::string& id, int64_t last_used_s) {
  db::WriterLock lock(*impl_);
  try {
    const long long used = last_used_s;
    impl_->writer << "UPDATE api_tokens SET last_used_s = :l WHERE id = :i", soci::use(used), soci::use(id);
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "saving an API token's last use"));
  }
}

Result<void> Database::DeleteToken(const std::string& id) {
  db::WriterLock lock(*impl_);
  try {
    impl_->writer << "DELETE FROM api_tokens WHERE id = :i", soci::use(id);
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "revoking an API token"));
  }
}

Result<void> Database::AddAudit(const AuditRecord& a) {
  db::WriterLock lock(*impl_);
  try {
    impl_->writer << "INSERT INTO audit_log(at, actor, via, client, request_id, action, target_type, target, "
                     "before, after) VALUES(:at, :ac, :v, :c, :r, :a, :tt, :t, :b, :af)",
        soci::use(a.at), soci::use(a.actor), soci::use(a.via), soci::use(a.client), soci::use(a.request_id),
        soci::use(a.action), soci::use(a.target_type), soci::use(a.target), soci::use(a.before_json),
        soci::use(a.after_json);
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "writing the audit log"));
  }
}

Result<std::vector<AuditRecord>> Database::ListAudit(const AuditFilter& f) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::vector<AuditRecord> out;
    // An empty filter value matches every row (one statement, no SQL built from input).
    soci::rowset<soci::row> rs =
        (s.prepare << "SELECT id, at, actor, via, client, request_id, action, target_type, target, before, after "
                      "FROM audit_log WHERE (:a1 = '' OR actor = :a2) AND (:t1 = '' OR target_type = :t2) "
                      "AND (:c1 = '' OR action = :c2) AND (:s1 = '' OR at >= :s2) AND (:u1 = '' OR at <= :u2) "
                      "ORDER BY id DESC LIMIT :l",
         soci::use(f.actor), soci::use(f.actor), soci::use(f.target_type), soci::use(f.target_type),
         soci::use(f.action), soci::use(f.action), soci::use(f.since), soci::use(f.since), soci::use(f.until),
         soci::use(f.until), soci::use(f.limit));
    for (const auto& r : rs) {
      AuditRecord a;
      a.id = Int(r, 0);
      a.at = Str(r, 1);
      a.actor = Str(r, 2);
      a.via = Str(r, 3);
      a.client = Str(r, 4);
      a.request_id = Str(r, 5);
      a.action = Str(r, 6);
      a.target_type = Str(r, 7);
      a.target = Str(r, 8);
      a.before_json = Str(r, 9);
      a.after_json = Str(r, 10);
      out.push_back(std::move(a));
    }
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "reading the audit log"));
  }
}

}  // namespace pb
