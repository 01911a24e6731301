#include "jobs/send_job.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/thread_annotations.h"
#include "dicom/store_scu.h"
#include "jobs/job_metrics.h"
#include "jobs/job_request.h"
#include "jobs/job_text.h"
#include "transport/transport.h"

namespace pb {
namespace {

using jobs_text::kProgressEvery;

using Steady = std::chrono::steady_clock;
using json = nlohmann::json;

constexpr size_t kMinPerAssociation = 20;  // fewer instances are not worth another association
constexpr auto kSaveEvery = std::chrono::milliseconds(100);

// A C-STORE refusal that may pass: the peer is out of resources (A7xx).
bool TransientRefusal(int status) { return status >= 0 && (status & 0xFF00) == 0xA700; }

}  // namespace

Result<std::vector<InstanceRow>> SendRunner::Select(const json& params) {
  if (auto f = pipeline_.Flush(); !f) return tl::unexpected(f.error());
  const std::string level = params.value("level", "STUDY");
  // Not empty: only series filed in these projects (asked for, or the account's limit).
  const auto projects = params.value("projects", std::vector<std::string>{});
  std::vector<InstanceRow> out;
  for (const auto& uid : params.value("uids", std::vector<std::string>{})) {
    if (level == "IMAGE") {
      auto row = db_.GetInstance(uid, projects);
      if (!row) return tl::unexpected(row.error());
      if (*row) out.push_back(**row);
      continue;
    }
    std::vector<std::string> series{uid};
    if (level == "STUDY") {
      auto list = db_.ListSeries(uid, projects);
      if (!list) return tl::unexpected(list.error());
      series.clear();
      for (const auto& s : *list) series.push_back(s.series_uid);
    }
    for (const auto& s : series) {
      auto rows = db_.ListInstances(s, projects);
      if (!rows) return tl::unexpected(rows.error());
      out.insert(out.end(), rows->begin(), rows->end());
    }
  }
  if (params.contains("only")) {  // a retry: what the earlier job did not get confirmed
    std::set<std::string> only = params["only"].get<std::set<std::string>>();
    out.erase(std::remove_if(out.begin(), out.end(), [&](const InstanceRow& r) { return !only.count(r.sop_uid); }),
              out.end());
  }
  return out;
}

Result<std::pair<json, std::string>> SendRunner::Prepare(const json& rq) {
  if (auto r =
          RefuseUnknownFields(rq, {"node", "level", "uids", "study_uid", "series_uid", "retry_of", "only", "projects"});
      !r) {
    return tl::unexpected(r.error());
  }
  std::vector<std::string> projects;
  if (rq.contains("projects") && !rq["projects"].is_null()) {
    const json& list = rq["projects"];
    bool ok = list.is_array();
    for (const auto& p : ok ? list : json::array()) ok = ok && p.is_string() && !p.get<std::string>().empty();
    if (!ok) return Fail(Code::kInvalidArgument, "projects must be a list of project names", "projects");
    projects = list.get<std::vector<std::string>>();
  }
  auto node = ChooseNode(nodes_, rq, NodeRole::kStorage);
  if (!node) return tl::unexpected(node.error());
  auto target = ParseTarget(rq);
  if (!target) return tl::unexpected(target.error());
  json params = TargetToJson(*target);
  params["node"] = node->name;
  if (!projects.empty()) params["projects"] = projects;
  if (rq.contains("retry_of") && rq["retry_of"].is_number_integer()) {
    // Only what the earlier job failed or could not confirm.
    auto earlier = db_.GetJob(rq["retry_of"].get<int64_t>());
    if (!earlier) return tl::unexpected(earlier.error());
    if (*earlier) {
      json result = json::parse((*earlier)->result, nullptr, false);
      std::set<std::string> only;
      if (result.is_object()) {
        for (const auto& f : result.value("failed_instances", json::array())) only.insert(f.value("sop_uid", ""));
        for (const auto& u : result.value("not_confirmed", json::array())) only.insert(u.get<std::string>());
      }
      params["only"] = only;
    }
  }
  auto rows = Select(params);
  if (!rows) return tl::unexpected(rows.error());
  if (rows->empty()) {
    return Fail(
        params.contains("only") ? Code::kConflict : Code::kNotFound,
        params.contains("only")
            ? "the earlier send has nothing left to send"
            : fmt::format("the archive has no instances for {} {}{}", target->level, fmt::join(target->uids, ", "),
                          projects.empty() ? "" : fmt::format(" in project(s) {}", fmt::join(projects, ", "))),
        params.contains("only") ? "id" : "uids");
  }
  return std::pair{params, node->name};
}

JobOutcome SendRunner::Run(JobContext& job) {
  const json& params = job.params();
  auto node = nodes_.Get(params.value("node", ""));
  if (!node) return {"failed", fmt::format("node '{}' no longer exists", params.value("node", "")), nullptr, {}};
  auto rows = Select(params);
  if (!rows) {
    JobOutcome out{"failed", rows.error().message, nullptr, {}};
    out.transient = IsTransient(rows.error().code);
    return out;
  }
  // What earlier runs of this job settled: confirmed instances are not sent again, refused ones
  // (a permanent refusal) are reported again without being sent.
  auto settled = db_.JobItems(job.id());
  if (!settled) {
    JobOutcome out{"failed", settled.error().message, nullptr, {}};
    out.transient = true;
    return out;
  }
  const size_t total = rows->size();
  int64_t total_bytes = 0, done = 0, bytes = 0, failed = 0, warned = 0;
  std::vector<dicom::SendItem> items;
  json earlier_refusals = json::array();
  for (const auto& r : *rows) {
    total_bytes += r.file_size;
    auto it = settled->find(r.sop_uid);
    if (it != settled->end() && (it->second == "confirmed" || it->second == "warning")) {
      ++done;
      bytes += r.file_size;
      if (it->second == "warning") ++warned;
      continue;
    }
    if (it != settled->end() && it->second.rfind("refused", 0) == 0) {
      ++failed;
      earlier_refusals.push_back({{"sop_uid", r.sop_uid},
                                  {"status", nullptr},
                                  {"reason", it->second.size() > 8 ? it->second.substr(8) : "refused by the peer"}});
      continue;
    }
    items.push_back(
        {blobs_.Absolute(r.file_path).string(), r.sop_class_uid, r.sop_uid, r.transfer_syntax_uid, r.file_size});
  }
  const int64_t done_before = done;
  const size_t n = items.size();
  // Contiguous slices, one per association: series stay together. Lanes beyond the first are
  // granted by the job engine within the node's limit across all jobs.
  size_t lanes = std::clamp<size_t>(n / kMinPerAssociation, 1, std::max(1, node->max_associations));
  if (lanes > 1) lanes = 1 + static_cast<size_t>(job.ExtraConnections(static_cast<int>(lanes - 1)));
  std::vector<dicom::SendOutcome> outcomes(n);
  metrics::Counter& sent = NodeInstances().With({node->name, "sent"});
  metrics::Counter& sent_bytes = NodeBytes().With({node->name, "sent"});
  Mutex mu;
  std::vector<std::string> lane_errors;
  bool lane_permanent = false;
  std::vector<std::pair<std::string, std::string>> unsaved;  // settled, not yet in the table
  const auto start = Steady::now();
  auto save = [&]() {  // mu held
    if (unsaved.empty()) return;
    if (auto r = db_.AddJobItems(job.id(), unsaved); !r) {
      spdlog::warn("send job {}: cannot save which instances were confirmed: {}", job.id(), r.error().message);
      return;  // kept for the next try
    }
    unsaved.clear();
  };
  auto progress = [&]() {  // mu held
    double secs = std::chrono::duration<double>(Steady::now() - start).count();
    return json{{"total", static_cast<int64_t>(total)},
                {"completed", done},
                {"failed", failed},
                {"warning", warned},
                {"remaining", static_cast<int64_t>(total) - done - failed},
                {"already_confirmed", done_before},
                {"bytes", bytes},
                {"total_bytes", total_bytes},
                {"bytes_per_second", secs > 0 ? static_cast<int64_t>(bytes / secs) : 0},
                {"associations", static_cast<int64_t>(lanes)}};
  };
  auto last = Steady::now();
  {
    MutexLock lock(mu);
    job.Progress(progress());
  }
  std::vector<std::thread> threads;
  for (size_t lane = 0; lane < lanes && n > 0; ++lane) {
    size_t begin = n * lane / lanes, end = n * (lane + 1) / lanes;
    threads.emplace_back([&, lane, begin, end] {
      // One transport per lane: each is one association (or connection) to the node.
      auto transport = TransportFor(*node, TransportContext{default_ae_, {}, {}});
      dicom::SendHooks hooks;
      hooks.cancel_requested = [&] { return job.StopRequested(); };
      hooks.on_instance = [&](size_t i, const dicom::SendOutcome& o) {
        MutexLock lock(mu);
        const auto& item = items[begin + i];
        if (o.status == dicom::SendStatus::kSuccess || o.status == dicom::SendStatus::kWarning) {
          ++done;
          bytes += item.bytes;
          sent.Add();
          sent_bytes.Add(static_cast<uint64_t>(std::max<int64_t>(item.bytes, 0)));
          unsaved.emplace_back(item.sop_uid, o.status == dicom::SendStatus::kWarning ? "warning" : "confirmed");
        }
        if (o.status == dicom::SendStatus::kFailed) {
          ++failed;
          if (!TransientRefusal(o.dimse_status)) unsaved.emplace_back(item.sop_uid, "refused " + o.reason);
        }
        if (o.status == dicom::SendStatus::kWarning) ++warned;
        if (Steady::now() - last >= kProgressEvery) {
          last = Steady::now();
          job.Progress(progress());
        }
      };
      auto r = transport ? (*transport)->Send({items.begin() + begin, items.begin() + end}, hooks)
                         : Result<std::vector<dicom::SendOutcome>>(tl::unexpected(transport.error()));
      MutexLock lock(mu);
      if (!r) {
        // The job's error names one cause; each lane that could not send says its own here.
        spdlog::warn("send job {}: association {} of {} to node {} sent none of its {} instance(s): {}", job.id(),
                     lane + 1, lanes, node->name, end - begin, r.error().message);
        lane_errors.push_back(r.error().message);
        if (!IsTransient(r.error().code)) lane_permanent = true;
        for (size_t i = begin; i < end; ++i) {
          outcomes[i].reason = "not sent: " + r.error().message;
          outcomes[i].never_sent = true;
          outcomes[i].transient = IsTransient(r.error().code);
        }
        return;
      }
      std::copy(r->begin(), r->end(), outcomes.begin() + begin);
    });
  }
  // Confirmations reach the table within a tenth of a second, however long the next instance
  // takes: after a crash, a resumed run sends again at most what was confirmed in that moment.
  std::condition_variable lanes_done;
  bool all_done = false;  // guarded by mu
  std::thread saver([&] {
    MutexLock lock(mu);
    while (!lanes_done.wait_for(lock, kSaveEvery, [&] { return all_done; })) save();
  });
  for (auto& t : threads) t.join();
  {
    MutexLock lock(mu);
    all_done = true;
    save();
  }
  lanes_done.notify_all();
  saver.join();

  json failed_list = earlier_refusals, not_confirmed = json::array(), warnings = json::array();
  std::string first_break, first_reason, first_unsent;
  bool transient = false, permanent = lane_permanent;
  int retry_after = 0;  // the longest wait the peer asked for
  for (size_t i = 0; i < n; ++i) {
    const auto& o = outcomes[i];
    const std::string& sop = items[i].sop_uid;
    switch (o.status) {
      case dicom::SendStatus::kSuccess:
        break;
      case dicom::SendStatus::kWarning:
        warnings.push_back({{"sop_uid", sop},
                            {"status", fmt::format("0x{:04X}", o.dimse_status)},
                            {"reason", dicom::StoreStatusText(o.dimse_status)}});
        break;
      case dicom::SendStatus::kFailed:
        failed_list.push_back(
            {{"sop_uid", sop},
             {"status", o.dimse_status >= 0 ? json(fmt::format("0x{:04X}", o.dimse_status)) : json(nullptr)},
             {"reason", o.reason}});
        if (TransientRefusal(o.dimse_status)) transient = true;
        break;
      case dicom::SendStatus::kNotConfirmed:
        not_confirmed.push_back(sop);
        if (o.transient)
          transient = true;
        else
          permanent = true;
        retry_after = std::max(retry_after, o.retry_after_seconds);
        // The instance that was on the wire when an association broke tells why.
        if (first_break.empty() && o.broke_here) first_break = o.reason;
        if (first_reason.empty() && !o.never_sent) first_reason = o.reason;
        if (first_unsent.empty() && o.never_sent) first_unsent = o.reason;  // e.g. a new association refused
        break;
    }
  }
  json result{{"failed_instances", failed_list}, {"not_confirmed", not_confirmed}, {"warnings", warnings}};
  MutexLock lock(mu);
  json out_progress = progress();
  std::string state, error;
  if (failed_list.empty() && not_confirmed.empty()) {
    state = "succeeded";
  } else {
    state = done > 0 ? "partial" : "failed";
    if (job.StopRequested() && !job.ServerStopping()) state = "canceled";
    std::vector<std::string> parts;
    // Why instances were not confirmed: a broken association says more than a parallel one
    // that could not be opened (the peer may have gone away in between).
    if (!first_break.empty())
      parts.push_back(first_break);
    else if (!lane_errors.empty())
      parts.push_back(lane_errors.front());
    else if (!first_reason.empty())
      parts.push_back(first_reason);
    else if (!first_unsent.empty())
      parts.push_back(first_unsent);
    if (!failed_list.empty()) {
      parts.push_back(fmt::format("{} instance(s) failed, e.g. {}: {}", failed_list.size(),
                                  failed_list[0]["sop_uid"].get<std::string>(),
                                  failed_list[0]["reason"].get<std::string>()));
    }
    if (!not_confirmed.empty()) parts.push_back(fmt::format("{} instance(s) not confirmed", not_confirmed.size()));
    if (job.ServerStopping()) parts.insert(parts.begin(), "interrupted: the server stopped");
    error = fmt::format("{}", fmt::join(parts, "; "));
  }
  JobOutcome out{state, error, out_progress, result};
  // Worth another attempt when something may pass and nothing says the peer refuses us.
  out.transient = transient && !permanent;
  out.retry_after_seconds = retry_after;
  return out;
}

}  // namespace pb
