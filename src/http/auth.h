#pragma once
// Who is calling: the access gate of every route (credentials, role, CSRF, Origin), the request's
// id and principal for the handler, and the audit of changes.
#include <optional>
#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "auth/accounts.h"
#include "http/router.h"

namespace pb::http {

struct Services;

inline constexpr const char* kSessionCookie = "pacsbridge_session";

// Called first for every request (pre-routing): a fresh request id, sent back as X-Request-Id,
// and no principal yet.
void BeginRequest(httplib::Response& res);
const std::string& CurrentRequestId();
// The request's address and id, for the audit log.
auth::Caller CallerOf(const httplib::Request& req);
// The account the gate admitted for the request this thread serves; null on open routes.
const auth::Principal* CurrentPrincipal();

// The gate of Router: answers 401 (no or refused credentials), 429 (throttled), 403 (role,
// CSRF token, another site's Origin) and returns false, or records the principal and returns
// true.
bool CheckAccess(Services& s, const httplib::Request& req, httplib::Response& res, Access access);
// The request's credentials, if any are given and valid, without answering (open routes that
// show more to accounts).
std::optional<auth::Principal> TryAuthenticate(Services& s, const httplib::Request& req);

// The value of a cookie of the request ("" when absent).
std::string CookieValue(const httplib::Request& req, const std::string& name);

// Writes an audit entry for a change made by the current principal. before/after: the resource
// as the API shows it (null when it did not or no longer exists); secrets must already be
// masked, as the API's own views do.
void AuditChange(Services& s, const httplib::Request& req, const std::string& action, const std::string& target_type,
                 const std::string& target, const nlohmann::json& before, const nlohmann::json& after);

}  // namespace pb::http
