// pacsbridge jobs [--state S --node N --type T --since D --until D] | show ID [--follow] |
// cancel ID | retry ID [--follow] | pause ID | resume ID | reorder ID [--priority P] [--first|--last];
// and FollowJob, shared with retrieve --follow and send --follow.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <iostream>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/job_lines.h"

namespace pb::cli {
namespace {

bool Ended(const std::string& state) {
  return state == "succeeded" || state == "partial" || state == "failed" || state == "canceled";
}

std::string Megabytes(double bytes) { return fmt::format("{:.1f} MB", bytes / 1e6); }

std::string Count(const nlohmann::json& v) { return v.is_number() ? std::to_string(v.get<int64_t>()) : "?"; }

// "[########------------]  120/300 instances  14.2 MB  3.1 MB/s  ETA 0:12"
std::string ProgressLine(const nlohmann::json& job) {
  if (job.value("state", "") == "queued") return "queued (waiting for a free worker or a free connection to its node)";
  if (job.value("state", "") == "waiting") return WaitingLine(job);
  const auto& p = job.value("progress", nlohmann::json::object());
  if (p.contains("phase") && p.contains("rows")) {  // an import
    return fmt::format("{}: {} of {} rows queried", p.value("phase", ""), p.value("queried", 0), p.value("rows", 0));
  }
  if (!p.contains("completed")) {
    return Ended(job.value("state", "")) ? "nothing transferred" : "starting (asking the PACS what the request covers)";
  }
  int64_t done = p.value("completed", int64_t{0});
  const nlohmann::json total = p.contains("total") ? p["total"] : nlohmann::json(nullptr);
  double bytes = p.value("bytes", 0.0), rate = p.value("bytes_per_second", 0.0);
  // Retrieves count what arrived; sends what the peer confirmed.
  int64_t arrived = p.value("arrived", p.value("completed", int64_t{0}));
  int64_t remaining = p.value("remaining", int64_t{0});
  std::string bar;
  if (total.is_number() && total.get<int64_t>() > 0) {
    int filled = static_cast<int>(20.0 * std::min<int64_t>(done, total.get<int64_t>()) / total.get<int64_t>());
    bar = "[" + std::string(filled, '#') + std::string(20 - filled, '-') + "] ";
  }
  std::string line =
      fmt::format("{}{}/{} instances  {}  {}/s", bar, done, Count(total), Megabytes(bytes), Megabytes(rate));
  if (!Ended(job.value("state", "")) && rate > 0 && arrived > 0 && remaining > 0) {
    int64_t eta = static_cast<int64_t>(std::ceil(remaining * (bytes / arrived) / rate));
    line += fmt::format("  ETA {}:{:02}", eta / 60, eta % 60);
  }
  int64_t failed = p.value("failed", int64_t{0});
  if (failed > 0) line += fmt::format("  {} failed", failed);
  return line;
}

void PrintJob(const nlohmann::json& j) {
  std::cout << "job " << j.value("id", "?") << " (" << j.value("type", "?")
            << (j.value("type", "") == "send" ? " to " : " from ") << j.value("node", "?")
            << "): " << j.value("state", "?") << "\n";
  std::cout << "  " << ProgressLine(j) << "\n";
  if (j.contains("method_used") && j["method_used"].is_string()) {
    std::cout << "  method: " << j["method_used"].get<std::string>() << "\n";
  }
  std::cout << "  priority " << j.value("priority", "normal") << ", " << j.value("attempts", 0) << " run(s)\n";
  if (j.contains("error") && j["error"].is_string()) std::cout << "  " << j["error"].get<std::string>() << "\n";
  // One line per run: when, how it ended, why.
  if (j.contains("history") && j["history"].is_array() && !j["history"].empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& h : j["history"]) {
      const auto count =
          h.contains("completed") && h["completed"].is_number() ? std::to_string(h["completed"].get<int64_t>()) : "";
      std::string why = h.contains("error") && h["error"].is_string() ? h["error"].get<std::string>() : "";
      if (h.value("transient", false) && h.value("outcome", "") != "interrupted" && !why.empty()) why += " (transient)";
      rows.push_back({std::to_string(h.value("attempt", 0)), h.value("started_at", ""), h.value("ended_at", ""),
                      h.value("outcome", ""), count, why});
    }
    std::cout << "  history:\n";
    PrintTable({"RUN", "STARTED", "ENDED", "OUTCOME", "DONE", "WHY"}, rows, "  ");
  }
  if (j.contains("note") && j["note"].is_string()) std::cout << "  note: " << j["note"].get<std::string>() << "\n";
  if (j.contains("failed_instances") && j["failed_instances"].is_array() && !j["failed_instances"].empty()) {
    std::cout << "  failed (" << j["failed_instances"].size() << "):\n";
    for (const auto& f : j["failed_instances"]) {
      std::cout << "    " << f.value("sop_uid", "?") << ": " << f.value("reason", "") << "\n";
    }
  }
  if (j.contains("not_confirmed") && j["not_confirmed"].is_array() && !j["not_confirmed"].empty()) {
    std::cout << "  not confirmed by the peer: " << j["not_confirmed"].size() << " (pacsbridge jobs retry "
              << j.value("id", "?") << " sends them again)\n";
  }
  if (j.contains("missing") && j["missing"].is_array() && !j["missing"].empty()) {
    std::cout << "  missing (" << j["missing"].size() << "):\n";
    for (const auto& m : j["missing"]) std::cout << "    " << m.get<std::string>() << "\n";
  }
}

// Ctrl-C while following: the job is the server's, not ours, so say so and how to get back to
// it. The handler only write()s a line prepared beforehand and _exit()s (async-signal-safe).
std::array<char, 512> interrupt_text{};
size_t interrupt_length = 0;

extern "C" void OnInterrupt(int) {
  (void)!write(STDERR_FILENO, interrupt_text.data(), interrupt_length);
  _exit(130);
}

// Installs OnInterrupt for SIGINT while alive; restores the previous action after.
class InterruptNotice {
 public:
  explicit InterruptNotice(const std::string& text) {
    interrupt_length = std::min(text.size(), interrupt_text.size());
    std::copy_n(text.begin(), interrupt_length, interrupt_text.begin());
    struct sigaction action {};
    action.sa_handler = OnInterrupt;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &previous_);
  }
  ~InterruptNotice() { sigaction(SIGINT, &previous_, nullptr); }
  InterruptNotice(const InterruptNotice&) = delete;
  InterruptNotice& operator=(const InterruptNotice&) = delete;

 private:
  struct sigaction previous_ {};
};

}  // namespace

int FollowJob(const ServerOptions& server, const std::string& id, bool json) {
  const bool tty = isatty(STDERR_FILENO);
  InterruptNotice notice(fmt::format("{}the job goes on in the server; follow it again with `{}`\n",
                                     tty ? "\r\033[K" : "\n", FollowCommand(server, id)));
  auto last_line = std::chrono::steady_clock::now() - std::chrono::seconds(10);
  nlohmann::json job;
  while (true) {
    if (int rc = CallAndReport(server, "GET", "/api/jobs/" + id, nullptr, 200, job)) return rc;
    std::string state = job.value("state", "");
    if (Ended(state)) break;
    auto now = std::chrono::steady_clock::now();
    if (tty) {
      std::cerr << "\r\033[K" << ProgressLine(job) << std::flush;
    } else if (now - last_line >= std::chrono::seconds(2)) {
      std::cerr << ProgressLine(job) << "\n";
      last_line = now;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  if (tty) std::cerr << "\r\033[K";
  if (json) {
    std::cout << job.dump(2) << "\n";
  } else {
    PrintJob(job);
  }
  std::string state = job.value("state", "");
  if (state == "succeeded") return 0;
  std::cerr << "job " << id << " " << state << ": " << job.value("error", std::string("no reason given")) << "\n";
  return 1;
}

void AddJobsCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("jobs", "list, show, cancel, retry, pause, resume or reorder jobs (retrieves, sends)");
  auto server = std::make_shared<ServerOptions>();
  auto json = std::make_shared<bool>(false);
  auto filters = std::make_shared<std::array<std::string, 6>>();  // state, node, type, since, until, limit
  AddServerOptions(cmd, *server);
  cmd->add_flag("--json", *json, "print JSON");
  cmd->add_option("--state", (*filters)[0],
                  "only jobs in this state (queued, waiting, running, succeeded, partial, failed, canceled)");
  cmd->add_option("--node", (*filters)[1], "only jobs of this node");
  cmd->add_option("--type", (*filters)[2], "only jobs of this type (retrieve, send)");
  cmd->add_option("--since", (*filters)[3], "only jobs created at or after this date (2026-12-01) or UTC time");
  cmd->add_option("--until", (*filters)[4], "only jobs created up to this date (the whole day) or UTC time");
  cmd->add_option("--limit", (*filters)[5], "at most this many jobs, newest first (default 100)");
  auto print_list = [=, &exit_code] {
    nlohmann::json list;
    static const char* const kKeys[] = {"state", "node", "type", "since", "until", "limit"};
    httplib::Params params;
    for (size_t i = 0; i < filters->size(); ++i) {
      if (!(*filters)[i].empty()) params.emplace(kKeys[i], (*filters)[i]);
    }
    std::string path = "/api/jobs";
    if (!params.empty()) path += "?" + httplib::detail::params_to_query_str(params);
    if ((exit_code = CallAndReport(*server, "GET", path, nullptr, 200, list))) return;
    if (*json) {
      std::cout << list.dump(2) << "\n";
      return;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& j : list) {
      rows.push_back({j.value("id", ""), j.value("type", ""), j.value("node", ""), j.value("state", ""),
                      j.value("priority", ""), ProgressLine(j), j.value("created_at", "")});
    }
    PrintTable({"ID", "TYPE", "NODE", "STATE", "PRIORITY", "PROGRESS", "CREATED"}, rows);
  };
  cmd->callback([=] {
    if (cmd->get_subcommands().empty()) print_list();
  });
  // `jobs list` as `nodes list` and `receivers list`: the same as `jobs`, with the same filters.
  auto* list = cmd->add_subcommand("list", "list the jobs, newest first (the same as `jobs` alone; filters as for it)");
  list->fallthrough();
  list->callback(print_list);
  auto add = [&](const char* name, const char* help, const char* method, const char* suffix, int ok) {
    auto* sub = cmd->add_subcommand(name, help);
    auto id = std::make_shared<std::string>();
    auto follow = std::make_shared<bool>(false);
    sub->add_option("id", *id, "the job's id")->required();
    AddServerOptions(sub, *server);
    sub->add_flag("--json", *json, "print JSON");
    if (std::string(name) != "cancel") {
      sub->add_flag("--follow", *follow, "wait until the job ends, showing progress; exit 0 only if it succeeded");
    }
    sub->callback([=, &exit_code] {
      nlohmann::json job;
      if ((exit_code = CallAndReport(*server, method, "/api/jobs/" + *id + suffix, nullptr, ok, job))) return;
      if (*follow) {
        exit_code = FollowJob(*server, job.value("id", ""), *json);
        return;
      }
      if (*json)
        std::cout << job.dump(2) << "\n";
      else
        PrintJob(job);
    });
  };
  add("show", "show one job, with the instances it is missing", "GET", "", 200);
  add("cancel", "cancel a queued or running job (what arrived stays)", "POST", "/cancel", 200);
  add("retry", "run a finished job again (a retrieve fetches only what is missing)", "POST", "/retry", 202);
  add("pause", "pause a job (a running one stops between instances); resume continues where it was", "POST", "/pause",
      200);
  add("resume", "queue a paused job again; it continues where it was", "POST", "/resume", 200);
  {
    auto* sub = cmd->add_subcommand("reorder", "change a queued or waiting job's priority or place in the queue");
    auto id = std::make_shared<std::string>();
    auto priority = std::make_shared<std::string>();
    auto first = std::make_shared<bool>(false), last = std::make_shared<bool>(false);
    sub->add_option("id", *id, "the job's id")->required();
    sub->add_option("--priority", *priority, "high, normal or low")->check(CLI::IsMember({"high", "normal", "low"}));
    auto* f = sub->add_flag("--first", *first, "first of its priority");
    sub->add_flag("--last", *last, "last of its priority")->excludes(f);
    AddServerOptions(sub, *server);
    sub->add_flag("--json", *json, "print JSON");
    sub->callback([=, &exit_code] {
      nlohmann::json body = nlohmann::json::object();
      if (!priority->empty()) body["priority"] = *priority;
      if (*first) body["position"] = "first";
      if (*last) body["position"] = "last";
      if (body.empty()) {
        std::cerr << "say what to change: --priority, --first or --last\n";
        exit_code = 2;
        return;
      }
      nlohmann::json job;
      if ((exit_code = CallAndReport(*server, "POST", "/api/jobs/" + *id + "/reorder", &body, 200, job))) return;
      if (*json)
        std::cout << job.dump(2) << "\n";
      else
        PrintJob(job);
    });
  }
}

}  // namespace pb::cli
