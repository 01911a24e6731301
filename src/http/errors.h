#pragma once
// Maps errors to HTTP answers, in one place.
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "core/result.h"

namespace pb::http {

int HttpStatus(Code code);
void SendError(httplib::Response& res, const Error& e);
void SendError(httplib::Response& res, int status, const std::string& message,
               const std::string& field = {});
void SendJson(httplib::Response& res, int status, const nlohmann::json& body);

// Parses a JSON request body; on failure answers 400 and returns nullopt.
std::optional<nlohmann::json> ParseBody(const httplib::Request& req, httplib::Response& res);

}  // namespace pb::http
