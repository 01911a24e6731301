#include "http/api.h"

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include <gtest/gtest.h>

namespace pb::http {
namespace {

TEST(HttpErrors, AnExceptionReachesTheClientAsARequestIdNeverAsItsText) {
  httplib::Request req;
  req.method = "GET";
  req.path = "/api/studies";
  httplib::Response res;
  AnswerException(req, res,
                  std::make_exception_ptr(std::runtime_error("no such table: studies (/var/pb/index.db) DOE^JOHN")));
  EXPECT_EQ(res.status, 500);
  auto body = nlohmann::json::parse(res.body);
  const std::string message = body.at("error").get<std::string>();
  EXPECT_EQ(message.find("no such table"), std::string::npos) << message;
  EXPECT_EQ(message.find("DOE"), std::string::npos) << message;
  EXPECT_NE(message.find("internal error (request "), std::string::npos) << message;
}

TEST(HttpErrors, RequestIdsDiffer) {
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) ids.insert(NewRequestId());
  EXPECT_EQ(ids.size(), 1000u);
}

}  // namespace
}  // namespace pb::http
