#include "http/auth.h"

#include <algorithm>

#include <fmt/format.h>

#include "auth/crypto.h"
#include "core/text.h"
#include "http/api.h"
#include "http/errors.h"

namespace pb::http {

namespace {

thread_local std::string t_request_id;
thread_local std::optional<auth::Principal> t_principal;

bool Changes(const httplib::Request& req) {
  return req.method != "GET" && req.method != "HEAD" && req.method != "OPTIONS";
}

// "https://host:port" → "host:port" ("" when it is not an origin).
std::string OriginAuthority(const std::string& origin) {
  const size_t scheme = origin.find("://");
  if (scheme == std::string::npos) return {};
  std::string rest = origin.substr(scheme + 3);
  if (rest.empty() || rest.find('/') != std::string::npos) return {};
  return rest;
}

void Unauthenticated(const httplib::Request& req, httplib::Response& res, const std::string& message) {
  // A browser shows its own password dialog on this challenge; the web UI says
  // X-Requested-With and shows its form instead. An event stream (EventSource cannot set
  // headers) is not a place for a dialog either, nor an image of the page (the viewer's and the
  // archive's, which cannot set headers; Sec-Fetch-Dest says what loads it).
  const bool stream = req.get_header_value("Accept").find("text/event-stream") != std::string::npos;
  const bool image = req.get_header_value("Sec-Fetch-Dest") == "image";
  if (!req.has_header("X-Requested-With") && !stream && !image) {
    res.set_header("WWW-Authenticate", "Basic realm=\"PACS Bridge\", charset=\"UTF-8\"");
  }
  SendError(res, 401, message);
}

void Refused(const httplib::Request& req, httplib::Response& res, const auth::Refusal& r) {
  if (r.why == auth::Refusal::Why::kThrottled) {
    res.set_header("Retry-After", std::to_string(r.retry_after_s));
    SendError(res, 429, r.message);
    return;
  }
  if (r.why == auth::Refusal::Why::kUnavailable) return SendError(res, 503, r.message);
  Unauthenticated(req, res, r.message);
}

// The credentials of the request: nullopt when it carries none; else the principal or why not.
std::optional<auth::AuthResult<auth::Principal>> Credentials(Services& s, const httplib::Request& req) {
  const std::string authz = req.get_header_value("Authorization");
  if (!authz.empty()) {
    const size_t sp = authz.find(' ');
    const std::string scheme = AsciiLower(authz.substr(0, sp));
    const std::string value = sp == std::string::npos ? std::string() : authz.substr(authz.find_first_not_of(' ', sp));
    if (scheme == "bearer") return s.accounts.Token(value);
    if (scheme == "basic") {
      auto decoded = auth::Base64Decode(value);
      const size_t colon = decoded ? decoded->find(':') : std::string::npos;
      if (colon == std::string::npos) {
        return tl::unexpected(auth::Refusal{auth::Refusal::Why::kCredentials,
                                            "the Authorization header is not HTTP basic (base64 of user:password)", 0});
      }
      return s.accounts.Basic(decoded->substr(0, colon), decoded->substr(colon + 1), CallerOf(req));
    }
    return tl::unexpected(auth::Refusal{auth::Refusal::Why::kCredentials,
                                        "unsupported Authorization scheme: use Basic or Bearer (an API token)", 0});
  }
  const std::string cookie = CookieValue(req, kSessionCookie);
  if (!cookie.empty()) return s.accounts.Session(cookie);
  return std::nullopt;
}

}  // namespace

void BeginRequest(httplib::Response& res) {
  t_request_id = NewRequestId();
  t_principal.reset();
  res.set_header("X-Request-Id", t_request_id);
}

const std::string& CurrentRequestId() { return t_request_id; }

auth::Caller CallerOf(const httplib::Request& req) { return {req.remote_addr, t_request_id}; }

const auth::Principal* CurrentPrincipal() { return t_principal ? &*t_principal : nullptr; }

std::string CookieValue(const httplib::Request& req, const std::string& name) {
  const std::string header = req.get_header_value("Cookie");
  size_t pos = 0;
  while (pos < header.size()) {
    size_t end = header.find(';', pos);
    if (end == std::string::npos) end = header.size();
    size_t b = header.find_first_not_of(' ', pos);
    if (b < end) {
      const std::string_view pair(header.data() + b, end - b);
      if (pair.size() > name.size() && pair.compare(0, name.size(), name) == 0 && pair[name.size()] == '=') {
        std::string_view v = pair.substr(name.size() + 1);
        while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
        return std::string(v);
      }
    }
    pos = end + 1;
  }
  return {};
}

std::optional<auth::Principal> TryAuthenticate(Services& s, const httplib::Request& req) {
  auto c = Credentials(s, req);
  if (!c || !*c) return std::nullopt;
  return **c;
}

// A browser viewer of an origin `[dicomweb] cors_origins` lets in, calling the DICOMweb server
// with its own credentials in the Authorization header (never with our session cookie, which
// is SameSite=Strict and not what it authenticates with): its STOW-RS is not a forged request.
namespace {
// With "*" (any origin), only a request a browser must have preflighted: one whose Content-Type
// no HTML form can send. A browser also sends a cached basic password with a form of any site.
bool CorsAllowed(const Services& s, const httplib::Request& req, const std::string& origin) {
  if (req.path.rfind("/dicom-web/", 0) != 0 || !req.has_header("Authorization")) return false;
  const auto& allowed = s.settings.dicomweb_cors_origins;
  if (std::find(allowed.begin(), allowed.end(), origin) != allowed.end()) return true;
  if (std::find(allowed.begin(), allowed.end(), "*") == allowed.end()) return false;
  std::string type = req.get_header_value("Content-Type");
  for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  type = type.substr(0, type.find(';'));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  return !type.empty() && type != "application/x-www-form-urlencoded" && type != "multipart/form-data" &&
         type != "text/plain";
}
}  // namespace

bool CheckAccess(Services& s, const httplib::Request& req, httplib::Response& res, Access access) {
  // A page of another site cannot make a browser change anything here, whatever credentials
  // the browser holds (a cached basic password included).
  if (Changes(req) && req.has_header("Origin")) {
    const std::string origin = req.get_header_value("Origin");
    const std::string host = req.get_header_value("Host");
    if ((host.empty() || AsciiLower(OriginAuthority(origin)) != AsciiLower(host)) && !CorsAllowed(s, req, origin)) {
      SendError(res, 403, fmt::format("cross-origin request refused: Origin {} is not this server", origin));
      return false;
    }
  }
  if (access == Access::kOpen) return true;
  auto c = Credentials(s, req);
  if (!c) {
    Unauthenticated(req, res,
                    "authentication required: log in, or use HTTP basic (user and password) or an API token "
                    "(Authorization: Bearer ...)");
    return false;
  }
  if (!*c) {
    Refused(req, res, c->error());
    return false;
  }
  const auth::Principal& p = **c;
  const auth::Role need = access == Access::kAdmin  ? auth::Role::kAdmin
                          : access == Access::kUser ? auth::Role::kUser
                                                    : auth::Role::kReadOnly;
  if (!auth::Includes(p.role, need)) {
    SendError(res, 403,
              fmt::format("this needs the {} role; you are signed in as '{}' ({}{})", auth::RoleName(need), p.username,
                          auth::RoleName(p.role), p.via == "token" ? ", by an API token" : ""));
    return false;
  }
  if (Changes(req) && p.via == "session" &&
      !auth::ConstantTimeEquals(req.get_header_value("X-CSRF-Token"), p.csrf_token)) {
    SendError(res, 403,
              "missing or wrong X-CSRF-Token header (a session needs it on every change; the value comes "
              "with the log-in and GET /api/auth/me)");
    return false;
  }
  t_principal = p;
  return true;
}

void AuditChange(Services& s, const httplib::Request& req, const std::string& action, const std::string& target_type,
                 const std::string& target, const nlohmann::json& before, const nlohmann::json& after) {
  const auth::Principal* p = CurrentPrincipal();
  AuditRecord a;
  a.actor = p ? p->username : "(anonymous)";
  a.via = p ? p->via : "";
  a.client = req.remote_addr;
  a.request_id = t_request_id;
  a.action = action;
  a.target_type = target_type;
  a.target = target;
  a.before_json = before.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  a.after_json = after.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  s.accounts.Audit(std::move(a));
}

}  // namespace pb::http
