#include "http/errors.h"

#include <fmt/format.h>

namespace pb::http {

int HttpStatus(Code code) {
  switch (code) {
    case Code::kInvalidArgument: return 400;
    case Code::kNotFound: return 404;
    case Code::kAlreadyExists: return 409;
    case Code::kLocked: return 403;
    case Code::kUnavailable: return 503;
    case Code::kTimeout: return 504;
    case Code::kOutOfSpace: return 507;
    case Code::kIoError:
    case Code::kInternal: return 500;
  }
  return 500;
}

void SendJson(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  "application/json");
}

void SendError(httplib::Response& res, int status, const std::string& message,
               const std::string& field) {
  nlohmann::json j{{"error", message}};
  if (!field.empty()) j["field"] = field;
  SendJson(res, status, j);
}

void SendError(httplib::Response& res, const Error& e) {
  SendError(res, HttpStatus(e.code), e.message, e.field);
}

std::optional<nlohmann::json> ParseBody(const httplib::Request& req, httplib::Response& res) {
  if (req.body.empty()) {
    SendError(res, 400, "the request needs a JSON body");
    return std::nullopt;
  }
  try {
    return nlohmann::json::parse(req.body);
  } catch (const nlohmann::json::parse_error& e) {
    SendError(res, 400, fmt::format("invalid JSON at byte {}: {}", e.byte,
                                    std::string(e.what()).substr(std::string(e.what()).rfind(':') + 2)));
    return std::nullopt;
  }
}

}  // namespace pb::http
