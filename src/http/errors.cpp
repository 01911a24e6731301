#include "http/errors.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/clock.h"

namespace pb::http {

int HttpStatus(Code code) {
  switch (code) {
    case Code::kInvalidArgument:
      return 400;
    case Code::kNotFound:
      return 404;
    case Code::kAlreadyExists:
      return 409;
    case Code::kLocked:
      return 403;
    case Code::kUnavailable:
    case Code::kAborted:
      return 503;
    case Code::kTimeout:
      return 504;
    case Code::kOutOfSpace:
      return 507;
    case Code::kUnsupported:
      return 501;
    case Code::kConflict:
      return 409;
    case Code::kPermissionDenied:
      return 502;  // the peer behind us refused, not our caller
    case Code::kCanceled:
      return 409;
    case Code::kIoError:
    case Code::kInternal:
      return 500;
  }
  return 500;
}

void SendJson(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

void SendError(httplib::Response& res, int status, const std::string& message, const std::string& field) {
  nlohmann::json j{{"error", message}};
  if (!field.empty()) j["field"] = field;
  SendJson(res, status, j);
}

void SendError(httplib::Response& res, const Error& e) { SendError(res, HttpStatus(e.code), e.message, e.field); }

std::optional<nlohmann::json> ParseBody(const std::string& body, httplib::Response& res) {
  if (body.empty()) {
    SendError(res, 400, "the request needs a JSON body");
    return std::nullopt;
  }
  try {
    return nlohmann::json::parse(body);
  } catch (const nlohmann::json::parse_error& e) {
    SendError(res, 400,
              fmt::format("invalid JSON at byte {}: {}", e.byte,
                          std::string(e.what()).substr(std::string(e.what()).rfind(':') + 2)));
    return std::nullopt;
  }
}

void ProviderFailed(const std::exception_ptr& ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const std::exception& e) {
    spdlog::error("an answer was cut: {}", e.what());
  } catch (...) {
    spdlog::error("an answer was cut by an unknown exception");
  }
}

bool DrainBody(const httplib::Request& req, const httplib::ContentReader& reader, size_t limit,
               httplib::Response* res) {
  if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) return true;
  const int status = res ? res->status : 0;
  size_t seen = 0;
  const bool read = reader([&](const char*, size_t n) { return (seen += n) <= limit; });
  if (res) res->status = status;
  return read && seen <= limit;
}

void CloseAfterAnswer(httplib::Response& res) {
  auto body = std::make_shared<std::string>(std::move(res.body));
  res.body.clear();
  const std::string type = res.get_header_value("Content-Type");
  res.headers.erase("Content-Type");
  res.set_header("Connection", "close");
  // The answer is written whole, then the provider reports a failure: the server then closes
  // the connection instead of reading the next request from it.
  res.set_content_provider(body->size(), type.empty() ? "application/json" : type,
                           [body](size_t offset, size_t length, httplib::DataSink& sink) {
                             // A Range header makes cpp-httplib ask for any offset and length.
                             if (offset < body->size()) {
                               sink.write(body->data() + offset, std::min(length, body->size() - offset));
                             }
                             return false;
                           });
}

namespace {

httplib::Server::HandlerWithContentReader Reading(BodyHandler handler, Gate gate) {
  return [handler = std::move(handler), gate = std::move(gate)](const httplib::Request& req, httplib::Response& res,
                                                                const httplib::ContentReader& reader) {
    std::string body;
    bool too_big = false;
    const bool has_body = req.has_header("Content-Length") || req.has_header("Transfer-Encoding");
    if (gate && !gate(req, res)) {
      // Refused before the body is read. A small body is drained so that the connection stays
      // in step; a larger one is not read for a caller we do not know (the reading stops, and
      // the connection is closed after the answer).
      constexpr size_t kDrain = 64 * 1024;
      if (!DrainBody(req, reader, kDrain, &res)) CloseAfterAnswer(res);
      return;
    }
    bool whole = true;
    if (has_body) {
      whole = reader([&](const char* data, size_t n) {
        body.append(data, n);
        too_big = body.size() > kMaxBody;
        return !too_big;
      });
    }
    if (too_big) {
      SendError(res, 413, "the request body is larger than 16 MB");
      return CloseAfterAnswer(res);
    }
    if (!whole) {
      SendError(res, 400, "the request body cannot be read (cut short, or in an encoding that cannot be decoded)");
      return CloseAfterAnswer(res);
    }
    handler(req, res, body);
  };
}
}  // namespace

bool ParseInt(const std::string& v, int lo, int hi, int& out) {
  int n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || n < lo || n > hi) return false;
  out = n;
  return true;
}

void Post(httplib::Server& srv, const std::string& pattern, BodyHandler handler, Gate gate) {
  srv.Post(pattern, Reading(std::move(handler), std::move(gate)));
}

void Put(httplib::Server& srv, const std::string& pattern, BodyHandler handler, Gate gate) {
  srv.Put(pattern, Reading(std::move(handler), std::move(gate)));
}

bool DryRun(const httplib::Request& req, httplib::Response& res, bool& dry_run) {
  const std::string v = req.get_param_value("dry_run");
  if (v.empty() || v == "false") return true;
  if (v != "true") {
    SendError(res, 400, "dry_run is true or false", "dry_run");
    return false;
  }
  dry_run = true;
  return true;
}

bool ParseTimeRange(const httplib::Request& req, httplib::Response& res, std::string& since, std::string& until) {
  for (const char* key : {"since", "until"}) {
    if (!req.has_param(key)) continue;
    const std::string value = req.get_param_value(key);
    auto t = ParseUtcIso(value);
    if (!t) {
      SendError(res, 400,
                fmt::format("{} must be a date (2026-12-01) or a UTC time (2026-12-01T10:00:00Z), not '{}'", key,
                            value.substr(0, 40)),
                key);
      return false;
    }
    if (std::string(key) == "until" && value.size() == 10) *t += std::chrono::hours(24) - std::chrono::seconds(1);
    (std::string(key) == "since" ? since : until) = UtcIso(*t);
  }
  return true;
}

}  // namespace pb::http
