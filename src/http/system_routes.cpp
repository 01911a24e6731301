#include <httplib.h>
#include <sys/statvfs.h>

#include <fmt/format.h>

#include "core/metrics.h"
#include "http/api.h"
#include "http/auth.h"
#include "http/errors.h"
#include "http/router.h"

namespace pb::http {

const std::string& OpenApiYaml();  // docs/openapi.yaml, embedded at build time
const std::string& OpenApiJson();  // the same document as JSON (scripts/openapi_json.py)

const nlohmann::json& OpenApiDocument() {
  // Unreadable (it cannot be, built by scripts/openapi_json.py): CheckRoutes then finds no
  // paths and the server does not start, rather than throwing.
  static const nlohmann::json doc = nlohmann::json::parse(OpenApiJson(), nullptr, false);
  return doc;
}

namespace {

// Receivers that should listen and do not, as JSON: what health shows and ready fails on.
nlohmann::json NotListening(const ReceiverService& receivers) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : receivers.NotListening()) {
    out.push_back(
        {{"id", p.receiver.id}, {"ae_title", p.receiver.ae_title}, {"port", p.receiver.port}, {"error", p.error}});
  }
  return out;
}

// Why the server is not ready to take work, one line each; empty when it is.
std::vector<std::string> ReadinessProblems(Services& s) {
  std::vector<std::string> problems;
  for (const auto& p : s.receivers.NotListening()) {
    problems.push_back(fmt::format("receiver {}@{} (id {}) is not listening: {}", p.receiver.ae_title, p.receiver.port,
                                   p.receiver.id, p.error));
  }
  if (auto ping = s.db.Ping(); !ping) {
    problems.push_back("the index database cannot be read: " + ping.error().message);
  } else if (auto failing = s.pipeline.IndexWriteError(); !failing.empty()) {
    // Read, but not written (a full disk under it): every arrival is refused meanwhile.
    problems.push_back("the index database cannot be written, and arrivals are refused: " + failing);
  }
  struct statvfs fs {};
  if (statvfs(s.settings.data_dir.c_str(), &fs) != 0) {
    problems.push_back(fmt::format("cannot read the free space of {}", s.settings.data_dir.string()));
  } else {
    const uint64_t free_mb = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize / (1024 * 1024);
    if (free_mb < static_cast<uint64_t>(s.settings.min_free_disk_mb)) {
      problems.push_back(fmt::format("only {} MB free in {} (server.min_free_disk_mb = {})", free_mb,
                                     s.settings.data_dir.string(), s.settings.min_free_disk_mb));
    }
  }
  return problems;
}

}  // namespace

void AddSystemRoutes(Router& r, Services& s) {
  // Liveness: 200 while the process serves HTTP. It also says whether every receiver listens,
  // so a server that started without some of them is never silently "ok".
  // Without an account's credentials, only whether, not which or why.
  r.Get("/api/health", Access::kOpen, [&s](const httplib::Request& req, httplib::Response& res) {
    nlohmann::json failed = NotListening(s.receivers);
    nlohmann::json body{{"status", "ok"}, {"receivers_ok", failed.empty()}};
    // Which of several servers answered: an id the administrator chose is shown to anyone (a
    // load balancer's probe); the host name it defaults to, to accounts only.
    const bool authenticated = static_cast<bool>(TryAuthenticate(s, req));
    if (!s.settings.instance_id.empty() || authenticated) body["instance"] = s.settings.InstanceId();
    if (authenticated) body["receivers_not_listening"] = failed;
    SendJson(res, 200, body);
  });
  // Readiness: 503 naming each reason when it should not be given work.
  r.Get("/api/ready", Access::kOpen, [&s](const httplib::Request& req, httplib::Response& res) {
    auto problems = ReadinessProblems(s);
    if (problems.empty()) {
      SendJson(res, 200, {{"status", "ready"}});
      return;
    }
    if (!TryAuthenticate(s, req)) {
      SendJson(
          res, 503,
          {{"error", fmt::format("not ready: {} problem(s); details with an account's credentials", problems.size())}});
      return;
    }
    std::string all;
    for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
    SendJson(res, 503, {{"error", "not ready: " + all}, {"problems", problems}});
  });
  r.Get("/api/openapi.yaml", Access::kOpen,
        [](const httplib::Request&, httplib::Response& res) { res.set_content(OpenApiYaml(), "application/yaml"); });
  r.Get("/api/openapi.json", Access::kOpen,
        [](const httplib::Request&, httplib::Response& res) { res.set_content(OpenApiJson(), "application/json"); });
  // Prometheus scrapes with an account's credentials (basic or bearer), as any read.
  r.Get("/metrics", Access::kReadOnly, [](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics::Default().Text(), "text/plain; version=0.0.4; charset=utf-8");
  });
  r.Get("/api/system", Access::kReadOnly, [&s](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200,
             {{"ae_title", s.settings.ae_title},
              {"version", "0.1.0"},
              {"auth_enabled", true},
              {"https", !s.settings.https_cert_file.empty()}});
  });
}

}  // namespace pb::http
