// Jobs: POST /api/retrieve and /api/send, GET /api/jobs(/id), POST /api/jobs/{id}/cancel, /retry,
// /pause, /resume and /reorder.
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "core/clock.h"
#include "http/api.h"
#include "http/dicomweb_common.h"
#include "http/errors.h"
#include "http/router.h"

namespace pb::http {
namespace {

// Job ids are positive integers; anything else is an unknown job.
std::optional<int64_t> JobId(const std::string& text) {
  if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  return std::stoll(text);
}

constexpr int kMaxWaitSeconds = 60;

template <typename F>
void WithJob(const httplib::Request& req, httplib::Response& res, F&& f) {
  auto id = JobId(req.matches[1]);
  if (!id) return SendError(res, 404, fmt::format("no job '{}'", req.matches[1].str()), "id");
  f(*id);
}

// The filters of GET /api/jobs (and of its event stream); false when one is invalid (answered).
bool ParseJobFilter(const httplib::Request& req, httplib::Response& res, JobFilter& f) {
  f.state = req.get_param_value("state");
  f.type = req.get_param_value("type");
  f.node = req.get_param_value("node");
  if (!ParseTimeRange(req, res, f.since, f.until)) return false;  // compared with created_at
  if (req.has_param("limit")) {
    auto n = JobId(req.get_param_value("limit"));
    if (!n || *n < 1 || *n > 10000) {
      SendError(res, 400, "limit must be 1 to 10000", "limit");
      return false;
    }
    f.limit = static_cast<int>(*n);
  }
  return true;
}

// One live view of the jobs list (GET /api/jobs/events, Server-Sent Events): first the list
// ("jobs"), then each job whose JSON changed ("job") and each that left the list ("removed"),
// at most four times a second, with a comment line every 2 s when nothing happens: a write is
// how a closed connection is noticed (and its place freed within seconds), and proxies keep the
// connection open.
struct JobStream {
  JobFilter filter;
  bool started = false;
  uint64_t seen = 0;                        // the change count `first` was listed after
  nlohmann::json first;                     // the list, sent as the first event
  std::map<std::string, std::string> sent;  // id -> the job's JSON as last sent
  std::chrono::steady_clock::time_point last_sent;
};

constexpr auto kStreamPace = std::chrono::milliseconds(250);
constexpr auto kStreamKeepAlive = std::chrono::seconds(2);

std::string Event(const char* name, const std::string& data) {
  return fmt::format("event: {}\ndata: {}\n\n", name, data);
}

// One step of the provider: blocks until there is something to say (or the keep-alive is due),
// writes it. False ends the response as failed (the client is gone).
bool StreamStep(Services& s, JobStream& st, httplib::DataSink& sink) {
  std::string out;
  if (!st.started) {
    st.started = true;
    for (const auto& j : st.first) st.sent[j.value("id", "")] = j.dump();
    out = "retry: 3000\n\n" + Event("jobs", st.first.dump());
    st.first = nullptr;
  } else {
    // Bursts of progress become one update.
    const auto since = std::chrono::steady_clock::now() - st.last_sent;
    if (since < kStreamPace) std::this_thread::sleep_for(kStreamPace - since);
    const uint64_t now = s.jobs.AwaitChange(st.seen, kStreamKeepAlive);
    if (s.jobs.FeedClosed()) {
      sink.done();  // the server is stopping
      return true;
    }
    if (now == st.seen && !s.jobs.shared()) {
      out = ": keep-alive\n\n";
    } else {
      // Changed here, or with other instances on the database: read the jobs again (what
      // changed on another instance is sent at the next keep-alive).
      st.seen = now;
      auto list = s.jobs.List(st.filter);
      if (!list) return true;  // looked at again on the next change
      std::set<std::string> present;
      for (const auto& j : *list) {
        const std::string id = j.value("id", "");
        present.insert(id);
        std::string dump = j.dump();
        auto& last = st.sent[id];
        if (last != dump) {
          out += Event("job", dump);
          last = std::move(dump);
        }
      }
      for (auto it = st.sent.begin(); it != st.sent.end();) {
        if (present.count(it->first)) {
          ++it;
          continue;
        }
        out += Event("removed", nlohmann::json{{"id", it->first}}.dump());
        it = st.sent.erase(it);
      }
      if (out.empty() && s.jobs.shared()) out = ": keep-alive\n\n";
      if (out.empty()) return true;
    }
  }
  st.last_sent = std::chrono::steady_clock::now();
  return sink.write(out.data(), out.size());
}

// An account limited to some projects sends only what it sees: the send's "projects" become
// the account's (or those of them the request names). False: answered (none of them visible).
bool LimitToVisibleProjects(nlohmann::json& body, httplib::Response& res) {
  const std::vector<std::string> visible = VisibleProjects();
  if (visible.empty() || !body.is_object()) return true;
  auto asked = body.find("projects");
  if (asked == body.end() || asked->is_null()) {
    body["projects"] = visible;
    return true;
  }
  if (!asked->is_array()) return true;  // the job's own check names the field
  nlohmann::json kept = nlohmann::json::array();
  for (const auto& p : *asked) {
    if (p.is_string() && std::find(visible.begin(), visible.end(), p.get<std::string>()) != visible.end()) {
      kept.push_back(p);
    }
  }
  if (kept.empty()) {
    SendError(res, 404, "none of the projects named is one of the account's", "projects");
    return false;
  }
  *asked = kept;
  return true;
}

}  // namespace

void AddJobRoutes(Router& r, Services& s) {
  for (const char* type : {"retrieve", "send"}) {
    r.Post(std::string("/api/") + type, Access::kUser,
           [&s, type](const httplib::Request&, httplib::Response& res, const std::string& raw) {
             auto body = ParseBody(raw, res);
             if (!body) return;
             if (std::string(type) == "send" && !LimitToVisibleProjects(*body, res)) return;
             auto job = s.jobs.Submit(type, *body);
             if (!job) return SendError(res, job.error());
             nlohmann::json out = *job;
             out["job_id"] = (*job)["id"];
             SendJson(res, 202, out);
           });
  }
  r.Get("/api/jobs", Access::kReadOnly, [&s](const httplib::Request& req, httplib::Response& res) {
    JobFilter f;
    if (!ParseJobFilter(req, res, f)) return;
    auto list = s.jobs.List(f);
    if (!list) return SendError(res, list.error());
    SendJson(res, 200, *list);
  });
  r.Get("/api/jobs/events", Access::kReadOnly, [&s](const httplib::Request& req, httplib::Response& res) {
    JobFilter f;
    if (!ParseJobFilter(req, res, f)) return;
    // The first list is taken now: a bad filter is answered 400 before the stream begins.
    const uint64_t seen = s.jobs.ChangeCount();
    auto first = s.jobs.List(f);
    if (!first) return SendError(res, first.error());
    if (!s.jobs.OpenStream()) {
      res.set_header("Retry-After", "5");
      return SendError(
          res, 503, fmt::format("{} live job views are open already; try again in a moment", JobService::kMaxStreams));
    }
    auto stream = std::make_shared<JobStream>();
    stream->filter = f;
    stream->seen = seen;
    stream->first = std::move(*first);
    res.set_header("Cache-Control", "no-store");
    res.set_chunked_content_provider(
        "text/event-stream", [&s, stream](size_t, httplib::DataSink& sink) { return StreamStep(s, *stream, sink); },
        [&s](bool) { s.jobs.CloseStream(); });
  });
  r.Get("/api/jobs/{id}", Access::kReadOnly, [&s](const httplib::Request& req, httplib::Response& res) {
    WithJob(req, res, [&](int64_t id) {
      // ?wait=S: answer once the job has ended, or after S seconds with the job as it is.
      int wait = 0;
      if (req.has_param("wait")) {
        auto n = JobId(req.get_param_value("wait"));
        if ((!n && req.get_param_value("wait") != "0") || (n && *n > kMaxWaitSeconds)) {
          return SendError(res, 400, fmt::format("wait must be 0 to {} seconds", kMaxWaitSeconds), "wait");
        }
        wait = n ? static_cast<int>(*n) : 0;
      }
      auto job = wait > 0 ? s.jobs.AwaitEnd(id, std::chrono::seconds(wait)) : s.jobs.Get(id);
      if (!job) return SendError(res, job.error());
      SendJson(res, 200, *job);
    });
  });
  r.Post("/api/jobs/{id}/cancel", Access::kUser,
         [&s](const httplib::Request& req, httplib::Response& res, const std::string&) {
           WithJob(req, res, [&](int64_t id) {
             auto job = s.jobs.Cancel(id);
             if (!job) return SendError(res, job.error());
             SendJson(res, 200, *job);
           });
         });
  r.Post("/api/jobs/{id}/pause", Access::kUser,
         [&s](const httplib::Request& req, httplib::Response& res, const std::string&) {
           WithJob(req, res, [&](int64_t id) {
             auto job = s.jobs.Pause(id);
             if (!job) return SendError(res, job.error());
             SendJson(res, 200, *job);
           });
         });
  r.Post("/api/jobs/{id}/resume", Access::kUser,
         [&s](const httplib::Request& req, httplib::Response& res, const std::string&) {
           WithJob(req, res, [&](int64_t id) {
             auto job = s.jobs.Resume(id);
             if (!job) return SendError(res, job.error());
             SendJson(res, 200, *job);
           });
         });
  r.Post("/api/jobs/{id}/reorder", Access::kUser,
         [&s](const httplib::Request& req, httplib::Response& res, const std::string& raw) {
           WithJob(req, res, [&](int64_t id) {
             auto body = ParseBody(raw, res);
             if (!body) return;
             if (!body->is_object()) return SendError(res, 400, "the body must be a JSON object", "");
             for (auto it = body->begin(); it != body->end(); ++it) {
               if (it.key() != "priority" && it.key() != "position") {
                 return SendError(res, 400, fmt::format("unknown field '{}': give priority and/or position", it.key()),
                                  it.key());
               }
               if (!it->is_string()) return SendError(res, 400, fmt::format("{} must be a string", it.key()), it.key());
             }
             auto job = s.jobs.Reorder(id, body->value("priority", ""), body->value("position", ""));
             if (!job) return SendError(res, job.error());
             SendJson(res, 200, *job);
           });
         });
  r.Post("/api/jobs/{id}/retry", Access::kUser,
         [&s](const httplib::Request& req, httplib::Response& res, const std::string&) {
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
