// Log-in, sessions, one's own password, users, API tokens and the audit log.
#include <httplib.h>

#include <algorithm>

#include <fmt/format.h>

#include "http/api.h"
#include "http/auth.h"
#include "http/errors.h"
#include "http/router.h"
#include "ingest/routing.h"

namespace pb::http {

namespace {

nlohmann::json OrNull(const std::string& v) { return v.empty() ? nlohmann::json() : nlohmann::json(v); }

nlohmann::json IsoOrNull(int64_t seconds) {
  if (seconds == 0) return nullptr;
  return UtcIso(TimePoint{} + std::chrono::seconds(seconds));
}

nlohmann::json UserJson(const UserRecord& u) {
  return {{"username", u.username},
          {"role", u.role},
          {"projects", u.projects},
          {"created_at", u.created_at},
          {"password_changed_at", u.password_changed_at},
          {"last_login_at", OrNull(u.last_login_at)}};
}

// "projects" of a user body: a list of project labels (as a receiver's query_retrieve_projects);
// absent → nullopt; false when it answered 400.
bool ProjectsField(const nlohmann::json& body, std::optional<std::vector<std::string>>& out, httplib::Response& res) {
  auto it = body.find("projects");
  if (it == body.end() || it->is_null()) return true;
  const char* what = "projects must be a list of project labels (letters, digits, _ and -); empty: all projects";
  if (!it->is_array()) {
    SendError(res, 400, what, "projects");
    return false;
  }
  std::vector<std::string> list;
  for (const auto& p : *it) {
    if (!p.is_string() || p.get<std::string>().empty() || CleanLabel(p.get<std::string>()) != p.get<std::string>()) {
      SendError(res, 400, what, "projects");
      return false;
    }
    if (std::find(list.begin(), list.end(), p.get<std::string>()) == list.end()) list.push_back(p.get<std::string>());
  }
  out = std::move(list);
  return true;
}

nlohmann::json TokenJson(const TokenRecord& t) {
  return {{"id", t.id},
          {"name", t.name},
          {"username", t.username},
          {"role", t.role},
          {"created_at", IsoOrNull(t.created_s)},
          {"expires_at", IsoOrNull(t.expires_s)},
          {"last_used_at", IsoOrNull(t.last_used_s)}};
}

nlohmann::json AuditJson(const AuditRecord& a) {
  auto parse = [](const std::string& text) {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    return j.is_discarded() ? nlohmann::json() : j;
  };
  return {{"id", a.id},
          {"at", a.at},
          {"actor", a.actor},
          {"via", a.via},
          {"client", a.client},
          {"request_id", a.request_id},
          {"action", a.action},
          {"target_type", a.target_type},
          {"target", a.target},
          {"before", parse(a.before_json)},
          {"after", parse(a.after_json)}};
}

// A string member of a JSON body: absent → nullopt; present but not a string → 400 answered.
bool StringField(const nlohmann::json& body, const char* key, std::optional<std::string>& out, httplib::Response& res) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_string()) {
    SendError(res, 400, fmt::format("{} must be a string", key), key);
    return false;
  }
  out = it->get<std::string>();
  return true;
}

// Refuses keys a body does not take (a misspelt "passwrd" must not pass unnoticed).
bool OnlyKeys(const nlohmann::json& body, std::initializer_list<const char*> keys, httplib::Response& res) {
  if (!body.is_object()) {
    SendError(res, 400, "the body must be a JSON object");
    return false;
  }
  for (const auto& item : body.items()) {
    const std::string& k = item.key();
    if (std::none_of(keys.begin(), keys.end(), [&k](const char* allowed) { return k == allowed; })) {
      std::string list;
      for (const char* a : keys) list += (list.empty() ? "" : ", ") + std::string(a);
      SendError(res, 400, fmt::format("unknown field '{}' (this request takes {})", k, list), k);
      return false;
    }
  }
  return true;
}

void SendAuthError(httplib::Response& res, const auth::Refusal& r) {
  if (r.why == auth::Refusal::Why::kThrottled) {
    res.set_header("Retry-After", std::to_string(r.retry_after_s));
    SendError(res, 429, r.message);
  } else if (r.why == auth::Refusal::Why::kUnavailable) {
    SendError(res, 503, r.message);
  } else {
    SendError(res, 401, r.message);  // no challenge: this is the UI's form, not a browser dialog
  }
}

std::string SessionCookieHeader(const std::string& value, int64_t max_age, bool secure) {
  return fmt::format("{}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}", kSessionCookie, value, max_age,
                     secure ? "; Secure" : "");
}

}  // namespace

void AddAuthRoutes(Router& r, Services& s) {
  const bool secure = !s.settings.https_cert_file.empty();
  r.Post(
      "/api/auth/login", Access::kOpen,
      [&s, secure](const httplib::Request& req, httplib::Response& res, const std::string& raw) {
        auto body = ParseBody(raw, res);
        if (!body || !OnlyKeys(*body, {"username", "password"}, res)) return;
        std::optional<std::string> user, password;
        if (!StringField(*body, "username", user, res) || !StringField(*body, "password", password, res)) return;
        if (!user || user->empty()) return SendError(res, 400, "username is required", "username");
        if (!password) return SendError(res, 400, "password is required", "password");
        auto session = s.accounts.Login(*user, *password, CallerOf(req));
        if (!session) return SendAuthError(res, session.error());
        const int64_t max_age =
            std::chrono::duration_cast<std::chrono::seconds>(std::chrono::hours(s.settings.session_max_hours)).count();
        res.set_header("Set-Cookie", SessionCookieHeader(session->cookie, max_age, secure));
        res.set_header("Cache-Control", "no-store");
        SendJson(res, 200,
                 {{"username", session->principal.username},
                  {"role", auth::RoleName(session->principal.role)},
                  {"csrf_token", session->principal.csrf_token},
                  {"expires_at", IsoOrNull(session->expires_s)}});
      });
  r.Post("/api/auth/logout", Access::kReadOnly,
         [&s, secure](const httplib::Request&, httplib::Response& res, const std::string&) {
           s.accounts.Logout(*CurrentPrincipal());
           res.set_header("Set-Cookie", SessionCookieHeader("", 0, secure));
           res.status = 204;
         });
  r.Get("/api/auth/me", Access::kReadOnly, [](const httplib::Request&, httplib::Response& res) {
    const auth::Principal& p = *CurrentPrincipal();
    nlohmann::json j{{"username", p.username}, {"role", auth::RoleName(p.role)}, {"via", p.via}};
    if (p.via == "session") j["csrf_token"] = p.csrf_token;
    res.set_header("Cache-Control", "no-store");
    SendJson(res, 200, j);
  });
  r.Put("/api/auth/password", Access::kReadOnly,
        [&s](const httplib::Request& req, httplib::Response& res, const std::string& raw) {
          const auth::Principal& p = *CurrentPrincipal();
          if (p.via == "token") {
            return SendError(res, 403, "an API token cannot change a password: log in, or use HTTP basic");
          }
          auto body = ParseBody(raw, res);
          if (!body || !OnlyKeys(*body, {"current_password", "new_password"}, res)) return;
          std::optional<std::string> current, next;
          if (!StringField(*body, "current_password", current, res) || !StringField(*body, "new_password", next, res))
            return;
          if (!current) return SendError(res, 400, "current_password is required", "current_password");
          if (!next) return SendError(res, 400, "new_password is required", "new_password");
          if (auto why = auth::PasswordProblem(*next, p.username); !why.empty())
            return SendError(res, 400, why, "new_password");
          // Checked like a log-in: failures count toward the account's throttle.
          auto checked = s.accounts.Basic(p.username, *current, CallerOf(req));
          if (!checked) {
            if (checked.error().why == auth::Refusal::Why::kThrottled) return SendAuthError(res, checked.error());
            return SendError(res, 400, "the current password is wrong", "current_password");
          }
          auto updated = s.accounts.UpdateUser(p.username, std::nullopt, *next, p.session_hash);
          if (!updated) {
            Error e = updated.error();
            if (e.field == "password") e.field = "new_password";
            return SendError(res, e);
          }
          AuditChange(s, req, "user.password", "user", p.username, nullptr, nullptr);
          res.status = 204;
        });

  r.Get("/api/users", Access::kAdmin, [&s](const httplib::Request&, httplib::Response& res) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& u : s.accounts.Users()) out.push_back(UserJson(u));
    SendJson(res, 200, out);
  });
  r.Post("/api/users", Access::kAdmin,
         [&s](const httplib::Request& req, httplib::Response& res, const std::string& raw) {
           auto body = ParseBody(raw, res);
           if (!body || !OnlyKeys(*body, {"username", "role", "password", "projects"}, res)) return;
           std::optional<std::string> user, role, password;
           std::optional<std::vector<std::string>> projects;
           if (!StringField(*body, "username", user, res) || !StringField(*body, "role", role, res) ||
               !StringField(*body, "password", password, res) || !ProjectsField(*body, projects, res)) {
             return;
           }
           if (!user) return SendError(res, 400, "username is required", "username");
           if (!role) return SendError(res, 400, "role is required: admin, user or read-only", "role");
           if (!password) return SendError(res, 400, "password is required", "password");
           auto made = s.accounts.CreateUser(*user, *role, *password, projects.value_or(std::vector<std::string>{}));
           if (!made) return SendError(res, made.error());
           AuditChange(s, req, "user.create", "user", made->username, nullptr, UserJson(*made));
           SendJson(res, 201, UserJson(*made));
         });
  r.Get("/api/users/{username}", Access::kAdmin, [&s](const httplib::Request& req, httplib::Response& res) {
    auto u = s.accounts.User(req.matches[1]);
    if (!u) return SendError(res, 404, fmt::format("no account named '{}'", std::string(req.matches[1])));
    SendJson(res, 200, UserJson(*u));
  });
  r.Put("/api/users/{username}", Access::kAdmin,
        [&s](const httplib::Request& req, httplib::Response& res, const std::string& raw) {
          auto body = ParseBody(raw, res);
          if (!body || !OnlyKeys(*body, {"role", "password", "projects"}, res)) return;
          std::optional<std::string> role, password;
          std::optional<std::vector<std::string>> projects;
          if (!StringField(*body, "role", role, res) || !StringField(*body, "password", password, res) ||
              !ProjectsField(*body, projects, res)) {
            return;
          }
          auto before = s.accounts.User(req.matches[1]);
          if (!before) return SendError(res, 404, fmt::format("no account named '{}'", std::string(req.matches[1])));
          // An admin changing their own password here keeps the session they do it from.
          const auth::Principal& p = *CurrentPrincipal();
          const std::string keep = p.username == before->username ? p.session_hash : std::string();
          auto updated = s.accounts.UpdateUser(before->username, role, password, keep, projects);
          if (!updated) return SendError(res, updated.error());
          // A role change and a password set by an admin are told apart (both when both).
          if (role || projects) {
            AuditChange(s, req, "user.update", "user", updated->username, UserJson(*before), UserJson(*updated));
          }
          if (password) AuditChange(s, req, "user.password", "user", updated->username, nullptr, nullptr);
          SendJson(res, 200, UserJson(*updated));
        });
  r.Delete("/api/users/{username}", Access::kAdmin, [&s](const httplib::Request& req, httplib::Response& res) {
    auto before = s.accounts.User(req.matches[1]);
    if (!before) return SendError(res, 404, fmt::format("no account named '{}'", std::string(req.matches[1])));
    if (auto gone = s.accounts.DeleteUser(before->username); !gone) return SendError(res, gone.error());
    AuditChange(s, req, "user.delete", "user", before->username, UserJson(*before), nullptr);
    res.status = 204;
  });

  r.Get("/api/tokens", Access::kReadOnly, [&s](const httplib::Request& req, httplib::Response& res) {
    const auth::Principal& p = *CurrentPrincipal();
    const std::string all = req.get_param_value("all");
    if (!all.empty() && all != "true" && all != "false") return SendError(res, 400, "all is true or false", "all");
    if (all == "true" && p.role != auth::Role::kAdmin) {
      return SendError(res, 403, "only admins list everyone's tokens (all=true)");
    }
    nlohmann::json out = nlohmann::json::array();
    for (const auto& t : s.accounts.Tokens(p, all == "true")) out.push_back(TokenJson(t));
    SendJson(res, 200, out);
  });
  r.Post("/api/tokens", Access::kReadOnly,
         [&s](const httplib::Request& req, httplib::Response& res, const std::string& raw) {
           const auth::Principal& p = *CurrentPrincipal();
           if (p.via == "token")
             return SendError(res, 403, "an API token cannot create tokens: log in, or use HTTP basic");
           auto body = ParseBody(raw, res);
           if (!body || !OnlyKeys(*body, {"name", "role", "expires_days"}, res)) return;
           std::optional<std::string> name, role;
           if (!StringField(*body, "name", name, res) || !StringField(*body, "role", role, res)) return;
           if (!name) return SendError(res, 400, "name is required (what the token is for)", "name");
           std::optional<int> days;
           if (auto d = body->find("expires_days"); d != body->end() && !d->is_null()) {
             if (!d->is_number_integer())
               return SendError(res, 400, "expires_days is a whole number of days", "expires_days");
             const int64_t n = d->get<int64_t>();
             days = static_cast<int>(std::clamp<int64_t>(n, -1, 100000));
           }
           auto made = s.accounts.CreateToken(p, *name, role, days);
           if (!made) return SendError(res, made.error());
           nlohmann::json view = TokenJson(made->record);
           AuditChange(s, req, "token.create", "token", made->record.id, nullptr, view);
           view["token"] = made->secret;
           res.set_header("Cache-Control", "no-store");
           SendJson(res, 201, view);
         });
  r.Delete("/api/tokens/{id}", Access::kReadOnly, [&s](const httplib::Request& req, httplib::Response& res) {
    auto gone = s.accounts.RevokeToken(*CurrentPrincipal(), req.matches[1]);
    if (!gone) return SendError(res, gone.error());
    AuditChange(s, req, "token.revoke", "token", gone->id, TokenJson(*gone), nullptr);
    res.status = 204;
  });

  r.Get("/api/audit", Access::kAdmin, [&s](const httplib::Request& req, httplib::Response& res) {
    AuditFilter f;
    if (req.has_param("limit") && !ParseInt(req.get_param_value("limit"), 1, 1000, f.limit)) {
      return SendError(res, 400, "limit is a whole number from 1 to 1000", "limit");
    }
    f.actor = req.get_param_value("actor");
    f.target_type = req.get_param_value("target_type");
    f.action = req.get_param_value("action");
    if (!ParseTimeRange(req, res, f.since, f.until)) return;
    auto log = s.accounts.AuditLog(f);
    if (!log) return SendError(res, log.error());
    nlohmann::json out = nlohmann::json::array();
    for (const auto& a : *log) out.push_back(AuditJson(a));
    SendJson(res, 200, out);
  });
}

}  // namespace pb::http
