// Jobs: POST /api/retrieve and /api/send, GET /api/jobs(/id), POST /api/jobs/{id}/cancel and /retry.
#include <httplib.h>

#include <fmt/format.h>

#include "http/api.h"
#include "http/errors.h"

namespace pb::http {
namespace {

// Job ids are positive integers; anything else is an unknown job.
std::optional<int64_t> JobId(const std::string& text) {
  if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  return std::stoll(text);
}

template <typename F>
void WithJob(const httplib::Request& req, httplib::Response& res, F&& f) {
  auto id = JobId(req.matches[1]);
  if (!id) return SendError(res, 404, fmt::format("no job '{}'", req.matches[1].str()), "id");
  f(*id);
}

}  // namespace

void AddJobRoutes(httplib::Server& srv, Services& s) {
  for (const char* type : {"retrieve", "send"}) {
    Post(srv, std::string("/api/") + type,
         [&s, type](const httplib::Request&, httplib::Response& res, const std::string& raw) {
           auto body = ParseBody(raw, res);
           if (!body) return;
           auto job = s.jobs.Submit(type, *body);
           if (!job) return SendError(res, job.error());
           nlohmann::json out = *job;
           out["job_id"] = (*job)["id"];
           SendJson(res, 202, out);
         });
  }
  srv.Get("/api/jobs", [&s](const httplib::Request& req, httplib::Response& res) {
    JobFilter f;
    f.state = req.get_param_value("state");
    f.type = req.get_param_value("type");
    f.node = req.get_param_value("node");
    if (req.has_param("limit")) {
      auto n = JobId(req.get_param_value("limit"));
      if (!n || *n < 1 || *n > 10000) return SendError(res, 400, "limit must be 1 to 10000", "limit");
      f.limit = static_cast<int>(*n);
    }
    auto list = s.jobs.List(f);
    if (!list) return SendError(res, list.error());
    SendJson(res, 200, *list);
  });
  srv.Get(R"(/api/jobs/([^/]+))", [&s](const httplib::Request& req, httplib::Response& res) {
    WithJob(req, res, [&](int64_t id) {
      auto job = s.jobs.Get(id);
      if (!job) return SendError(res, job.error());
      SendJson(res, 200, *job);
    });
  });
  Post(srv, R"(/api/jobs/([^/]+)/cancel)", [&s](const httplib::Request& req, httplib::Response& res, const std::string&) {
    WithJob(req, res, [&](int64_t id) {
      auto job = s.jobs.Cancel(id);
      if (!job) return SendError(res, job.error());
      SendJson(res, 200, *job);
    });
  });
  Post(srv, R"(/api/jobs/([^/]+)/retry)", [&s](const httplib::Request& req, httplib::Response& res, const std::string&) {
    WithJob(req, res, [&](int64_t id) {
      auto job = s.jobs.Retry(id);
      if (!job) return SendError(res, job.error());
      nlohmann::json out = *job;
      out["job_id"] = (*job)["id"];
      SendJson(res, 202, out);
    });
  });
}

}  // namespace pb::http
