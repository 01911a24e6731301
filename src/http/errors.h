#pragma once
// Maps errors to HTTP answers, in one place.
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "core/result.h"

namespace pb::http {

int HttpStatus(Code code);
void SendError(httplib::Response& res, const Error& e);
void SendError(httplib::Response& res, int status, const std::string& message, const std::string& field = {});
void SendJson(httplib::Response& res, int status, const nlohmann::json& body);

// A query parameter as a whole number within [lo, hi]; false (out untouched) otherwise.
bool ParseInt(const std::string& v, int lo, int hi, int& out);

// ?dry_run=true: the change is checked as if made, nothing stored (the answer is what it would
// be). Sets `dry_run`; false when the value is neither true nor false (then it has answered 400).
bool DryRun(const httplib::Request& req, httplib::Response& res, bool& dry_run);

// ?since= and ?until=: dates (2026-12-01) or UTC times (2026-12-01T10:00:00Z), as ISO UTC
// times; a date as `until` takes its whole day. False when one is invalid (answered 400).
bool ParseTimeRange(const httplib::Request& req, httplib::Response& res, std::string& since, std::string& until);

// Parses a JSON request body; on failure answers 400 and returns nullopt.
std::optional<nlohmann::json> ParseBody(const std::string& body, httplib::Response& res);

// POST/PUT routes whose body is read by us: cpp-httplib 0.11 answers 400 on its own to a POST
// without Content-Length (e.g. `curl -X POST` with no data) unless the route reads the body.
// Closes the connection once the answer (already set) is written: for answers given before the
// request's body was read, or when it was read only in part. cpp-httplib 0.11 does not act on a
// Connection: close the handler sets, and would read what is left of the body as the next
// requests on the connection.
void CloseAfterAnswer(httplib::Response& res);

// A content provider that lets no exception out: cpp-httplib calls providers after the handler,
// outside the try that answers a handler's exception, where one would end the process. It is
// logged (with the request id) and cuts the answer.
void ProviderFailed(const std::exception_ptr& ep);
template <typename F>
auto GuardedProvider(F provider) {
  return [provider = std::move(provider)](auto&&... args) mutable -> bool {
    try {
      return provider(args...);
    } catch (...) {
      ProviderFailed(std::current_exception());
      return false;
    }
  };
}

// Reads and discards a request's body, at most `limit` bytes. True when it was read to its end
// (or there is none); false when it was longer, or could not be read (cut short, an encoding
// that cannot be decoded): then the connection must close after the answer (CloseAfterAnswer).
// The answer's status is kept (a failed read sets its own).
bool DrainBody(const httplib::Request& req, const httplib::ContentReader& reader, size_t limit,
               httplib::Response* res = nullptr);

// The largest body a route that reads it whole takes (413 beyond).
constexpr size_t kMaxBody = 16 * 1024 * 1024;

using BodyHandler = std::function<void(const httplib::Request&, httplib::Response&, const std::string& body)>;
// `gate`, when given, decides before the body is read (false: it has answered).
using Gate = std::function<bool(const httplib::Request&, httplib::Response&)>;
void Post(httplib::Server& srv, const std::string& pattern, BodyHandler handler, Gate gate = {});
void Put(httplib::Server& srv, const std::string& pattern, BodyHandler handler, Gate gate = {});

}  // namespace pb::http
