#include "jobs/retrieve_job.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <mutex>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/thread_annotations.h"
#include "core/validate.h"
#include "ingest/arrivals.h"
#include "ingest/routing.h"
#include "jobs/job_metrics.h"
#include "jobs/job_request.h"
#include "jobs/job_text.h"
#include "transport/retrieve_plan.h"
#include "transport/transport.h"

namespace pb {
namespace {

using jobs_text::kProgressEvery;

using Steady = std::chrono::steady_clock;
using json = nlohmann::json;

// How long a job waits for the stores of what it asked for, answered before they were stored, to
// finish (a receiver's, for a C-MOVE; a C-GET's are done when its association is).
constexpr auto kPendingStoresWait = std::chrono::seconds(30);

RetrieveParams ParamsFrom(const json& j) {
  RetrieveParams p;
  p.node = j.value("node", "");
  p.level = j.value("level", "STUDY");
  p.method = j.value("method", "auto");
  p.uids = j.value("uids", std::vector<std::string>{});
  p.study_uid = j.value("study_uid", "");
  p.series_uid = j.value("series_uid", "");
  p.project = j.value("project", "");
  p.subject = j.value("subject", "");
  p.session = j.value("session", "");
  p.relabel_patient = j.value("relabel_patient", false);
  p.impose_labels = j.value("impose_labels", false);
  return p;
}

}  // namespace

struct RetrieveRunner::Planned {
  RetrievePlan plan;
  std::future<Result<RetrievePlan>> counts;   // the node's counts, when asked alongside
  std::future<Result<RetrievePlan>> listing;  // the instance list, when fetched alongside
  std::vector<std::string> expected;          // SOP Instance UIDs listed so far
  std::set<std::string> present;              // of those, already in the archive
  std::vector<dicom::RetrieveTarget> targets;
  bool list_after = false;  // the list is asked only if the counts do not add up at the end
};

// Everything the job learns while it runs; guarded, since arrivals come from other threads.
struct RetrieveRunner::Tally {
  Mutex mu;
  std::set<std::string> arrived;  // SOP Instance UIDs that reached the archive for this job
  int64_t bytes = 0;
  dicom::SubOperations peer;  // the latest counts the PACS gave for the current request
  int64_t peer_total = -1;    // remaining + done at the first pending response
  int64_t done_completed = 0, done_failed = 0, done_warning = 0;  // finished requests
  std::set<int> message_ids;                                      // of our C-MOVE requests, as Move Originator IDs
  int64_t not_by_originator = 0;            // arrivals of ours the PACS did not mark as our C-MOVE's
  int64_t not_stored = 0;                   // answered Success to the PACS, then not stored (it counts them done)
  std::map<std::string, int64_t> by_study;  // arrivals per study

  void Finish(const dicom::SubOperations& final_counts) {  // mu held
    dicom::SubOperations c = final_counts;
    if (c.completed < 0) c.completed = peer.completed;
    if (c.failed < 0) c.failed = peer.failed;
    if (c.warning < 0) c.warning = peer.warning;
    done_completed += std::max(0, c.completed);
    done_failed += std::max(0, c.failed);
    done_warning += std::max(0, c.warning);
    peer = {};
  }
  int64_t Completed() const { return done_completed + std::max(0, peer.completed); }
  int64_t Failed() const { return done_failed + std::max(0, peer.failed); }
  int64_t Warning() const { return done_warning + std::max(0, peer.warning); }
};

// What to fetch. A fresh study (nothing of it here) whose fetch names no SOP classes (C-MOVE,
// WADO-RS) is asked for at once, and the node's counts are asked alongside on a second
// connection when the node's limit leaves one free: the planning query costs the node about as
// long as sending a small study takes (Orthanc: ~15 ms for 500 instances), and nothing in the
// request depends on it. Otherwise the counts come first (a C-GET proposes the study's SOP
// classes). Then the instance list: now when something may be here already; alongside the
// transfer where listing is cheap; or, where it costs the node more (an IMAGE-level C-FIND, a
// QIDO-RS server reading every instance), only at the end if the counts do not add up.
Result<RetrieveRunner::Planned> RetrieveRunner::PlanFetch(JobContext& job, Transport& node_link,
                                                          const RetrieveParams& p, Database& db) {
  Planned out;
  auto nothing_here = [&]() {
    if (p.level != "STUDY") return false;
    for (const auto& uid : p.uids) {
      auto here = db.StudyExists(uid);
      if (!here || *here) return false;
    }
    return true;
  };
  if (!node_link.FetchNeedsSopClasses(p) && !node_link.ListingIsCheap() && nothing_here() &&
      job.ExtraConnections(1) == 1) {
    out.counts = std::async(std::launch::async, [&node_link, &job, p] {
      auto counted = node_link.PlanCounts(p);
      job.ReleaseConnections(1);  // the transfer goes on; the node's slot is free again
      return counted;
    });
    out.list_after = true;
    out.targets = TargetsFor(p, out.plan, {});
    return out;
  }
  auto counted = node_link.PlanCounts(p);
  if (!counted) return tl::unexpected(counted.error());
  out.plan = std::move(*counted);
  RetrievePlan& plan = out.plan;
  const bool fresh = !(plan.sop_classes.empty() && node_link.FetchNeedsSopClasses(p)) && nothing_here();
  if (!fresh) {
    if (auto r = node_link.ListInstances(p, plan); !r) return tl::unexpected(r.error());
  } else if (!node_link.ListingIsCheap() && plan.expected_count) {
    out.list_after = true;  // the counts may be enough (Verify)
  } else if (job.ExtraConnections(1) == 1) {
    out.listing = std::async(std::launch::async, [&node_link, p, copy = plan]() mutable -> Result<RetrievePlan> {
      if (auto r = node_link.ListInstances(p, copy); !r) return tl::unexpected(r.error());
      return copy;
    });
  } else if (auto r = node_link.ListInstances(p, plan); !r) {  // no second connection: first
    return tl::unexpected(r.error());
  }
  for (const auto& [sop, _] : plan.instances) out.expected.push_back(sop);
  auto present_list = db.PresentInstances(out.expected);
  if (!present_list) return tl::unexpected(present_list.error());
  out.present = std::set<std::string>(present_list->begin(), present_list->end());
  out.targets = TargetsFor(p, plan, plan.listed ? out.present : std::set<std::string>{});
  return out;
}

Result<std::pair<json, std::string>> RetrieveRunner::Prepare(const json& rq) {
  if (auto r =
          RefuseUnknownFields(rq, {"node", "level", "uids", "method", "study_uid", "series_uid", "retry_of", "project",
                                   "subject", "session", "relabel_patient", "impose_labels", "import_row"});
      !r) {
    return tl::unexpected(r.error());
  }
  auto node = ChooseNode(nodes_, rq, NodeRole::kQueryRetrieve);
  if (!node) return tl::unexpected(node.error());
  auto target = ParseTarget(rq);
  if (!target) return tl::unexpected(target.error());
  auto method = OptionalString(rq, "method");
  if (!method) return tl::unexpected(method.error());
  std::string m = method->empty() ? RetrieveMethodName(node->retrieve_method) : *method;
  if (m != "auto" && m != "c-get" && m != "c-move") {
    return Fail(Code::kInvalidArgument, "method must be auto, c-get or c-move", "method");
  }
  if (node->type == NodeType::kDicomWeb && m != "auto") {
    return Fail(Code::kInvalidArgument,
                fmt::format("method {} applies to DIMSE nodes; node '{}' is retrieved from by WADO-RS", m, node->name),
                "method");
  }
  if (target->level == "IMAGE" && (target->study_uid.empty() || target->series_uid.empty())) {
    return Fail(Code::kInvalidArgument, "an IMAGE-level retrieve needs study_uid and series_uid",
                target->study_uid.empty() ? "study_uid" : "series_uid");
  }
  json params = TargetToJson(*target);
  params["node"] = node->name;
  params["method"] = m;
  for (const char* label : {"project", "subject", "session"}) {
    auto v = OptionalString(rq, label);
    if (!v) return tl::unexpected(v.error());
    if (v->empty()) continue;
    if (CleanLabel(*v) != *v) {
      return Fail(Code::kInvalidArgument,
                  fmt::format("{} must be a label of letters, digits, _ and - (at most 64)", label), label);
    }
    params[label] = *v;
  }
  if (rq.contains("relabel_patient")) {
    if (!rq["relabel_patient"].is_boolean()) {
      return Fail(Code::kInvalidArgument, "relabel_patient must be true or false", "relabel_patient");
    }
    if (rq["relabel_patient"].get<bool>()) {
      if (!params.contains("subject")) {
        return Fail(Code::kInvalidArgument, "relabel_patient needs a subject (Patient Name and ID become it)",
                    "relabel_patient");
      }
      params["relabel_patient"] = true;
    }
  }
  if (rq.contains("impose_labels")) {
    if (!rq["impose_labels"].is_boolean()) {
      return Fail(Code::kInvalidArgument, "impose_labels must be true or false", "impose_labels");
    }
    if (rq["impose_labels"].get<bool>()) params["impose_labels"] = true;
  }
  if (rq.contains("import_row")) {  // the line of the import's sheet this retrieve is for
    if (!rq["import_row"].is_number_integer() || rq["import_row"].get<int64_t>() < 1) {
      return Fail(Code::kInvalidArgument, "import_row must be a line number", "import_row");
    }
    params["import_row"] = rq["import_row"];
  }
  return std::pair{params, node->name};
}

JobOutcome RetrieveRunner::Run(JobContext& job) {
  const RetrieveParams p = ParamsFrom(job.params());
  auto node = nodes_.Get(p.node);
  if (!node) return {"failed", fmt::format("node '{}' no longer exists", p.node), nullptr, {}};
  auto transport = TransportFor(*node, TransportContext{default_ae_, receivers_, seen_since_});
  if (!transport) return {"failed", transport.error().message, nullptr, {}};
  Transport& node_link = **transport;
  const std::string calling_ae = EffectiveCallingAeTitle(*node, default_ae_);

  auto planned = PlanFetch(job, node_link, p, db_);
  if (!planned) {
    JobOutcome out{"failed", planned.error().message, nullptr, {}};
    out.transient = IsTransient(planned.error().code);  // the PACS down, not "it has none of it"
    return out;
  }
  RetrievePlan& plan = planned->plan;
  const std::set<std::string>& present = planned->present;

  Tally tally;
  std::set<std::string> study_set, series_set;  // for matching when there is no list
  for (const auto& [series, study] : plan.series_study) {
    series_set.insert(series);
    study_set.insert(study);
  }
  if (p.level == "STUDY") study_set.insert(p.uids.begin(), p.uids.end());
  // Receivers that identify by jobs (and C-GET here) file what arrives where the job says.
  auto expectation = std::make_shared<Expectation>();
  expectation->job_id = job.id();
  expectation->project = p.project;
  expectation->subject = p.subject;
  expectation->session = p.session;
  expectation->study_uids = study_set;
  expectation->series_uids = p.level == "SERIES" ? std::set<std::string>(p.uids.begin(), p.uids.end()) : series_set;
  for (const auto& [sop, _] : plan.instances) expectation->sop_uids.insert(sop);
  expectation->calling_ae = calling_ae;
  expectation->pending_stores = std::make_shared<PendingStores>();
  std::vector<std::pair<uint32_t, std::string>> relabel;
  if (p.relabel_patient && !p.subject.empty()) {
    relabel = {{0x00100010, p.subject}, {0x00100020, p.subject}};  // Patient Name, Patient ID
    expectation->set_attributes = relabel;
  }
  expectation->impose = p.impose_labels || !relabel.empty();
  ExpectationScope expecting(expectations_, expectation);
  const auto start = Steady::now();
  auto progress = [&]() {
    MutexLock lock(tally.mu);
    int64_t arrived = static_cast<int64_t>(tally.arrived.size());
    int64_t already = plan.listed ? static_cast<int64_t>(present.size()) : 0;
    std::optional<int64_t> total = plan.expected_count;
    if (!total && tally.peer_total >= 0) total = tally.peer_total;
    int64_t failed = tally.Failed(), warning = tally.Warning();
    int64_t completed = already + arrived;
    double secs = std::chrono::duration<double>(Steady::now() - start).count();
    json j{{"total", total ? json(*total) : json(nullptr)},
           {"completed", completed},
           {"failed", failed},
           {"warning", warning},
           {"remaining", total ? std::max<int64_t>(0, *total - completed - failed) : std::max(0, tally.peer.remaining)},
           {"arrived", arrived},
           {"already_present", already},
           {"bytes", tally.bytes},
           {"bytes_per_second", secs > 0 ? static_cast<int64_t>(tally.bytes / secs) : 0},
           {"peer",
            {{"remaining", std::max(0, tally.peer.remaining)},
             {"completed", tally.Completed()},
             {"failed", failed},
             {"warning", warning}}}};
    return j;
  };
  job.Progress(progress());

  metrics::Counter& retrieved = NodeInstances().With({node->name, "retrieved"});
  metrics::Counter& retrieved_bytes = NodeBytes().With({node->name, "retrieved"});
  std::optional<ArrivalSubscription> subscription;
  subscription.emplace(pipeline_.arrivals(), [&](const Arrival& a) {
    MutexLock lock(tally.mu);
    // A PACS sending for our C-MOVE names it (Move Originator); otherwise the UIDs tell.
    bool moved_for_us = a.move_originator_ae == calling_ae && tally.message_ids.count(a.move_originator_id) > 0;
    bool ours = plan.listed ? plan.instances.count(a.sop_uid) > 0
                            : (moved_for_us || (p.level == "STUDY" ? study_set.count(a.study_uid) > 0
                                                                   : series_set.count(a.series_uid) > 0));
    if (!ours) return;
    if (tally.arrived.insert(a.sop_uid).second) {
      tally.bytes += a.bytes;
      retrieved.Add();
      retrieved_bytes.Add(static_cast<uint64_t>(std::max<int64_t>(a.bytes, 0)));
      if (!moved_for_us) ++tally.not_by_originator;
      ++tally.by_study[a.study_uid];
    }
  });
  auto last_progress = Steady::now();
  // C-GET arrivals walk the one ingest path as a receiver's do; the job is the origin.
  auto policy = std::make_shared<IngestPolicy>();
  policy->name = fmt::format("retrieve job {}", job.id());
  policy->project = p.project;
  policy->subject = p.subject;
  policy->session = p.session;
  policy->anonymize_in_anonymizing_projects = true;
  policy->answer_first = expectation->pending_stores;
  if (!relabel.empty()) {
    Processor set;
    set.kind = Processor::Kind::kSetAttributes;
    set.set = relabel;
    policy->processors.push_back(set);
  }
  OriginSink sink(policy, ingest_site_);
  FetchHooks hooks;
  hooks.sink = &sink;
  hooks.on_sent = [&](uint16_t id) {
    expectations_.AddMessageId(expecting.token(), id);
    MutexLock lock(tally.mu);
    tally.message_ids.insert(id);
  };
  hooks.on_pending = [&](const dicom::SubOperations& s) {
    MutexLock lock(tally.mu);
    tally.peer = s;
    if (tally.peer_total < 0 && s.remaining >= 0) {
      tally.peer_total = s.remaining + std::max(0, s.completed) + std::max(0, s.failed) + std::max(0, s.warning);
    }
  };
  hooks.on_finished = [&](const dicom::SubOperations& s) {
    MutexLock lock(tally.mu);
    tally.Finish(s);
  };
  hooks.cancel_requested = [&]() {
    if (Steady::now() - last_progress >= kProgressEvery) {
      last_progress = Steady::now();
      job.Progress(progress());
    }
    return job.StopRequested();
  };
  hooks.arrived = [&]() {
    MutexLock lock(tally.mu);
    return tally.arrived.size();
  };
  FetchRequest fetch{p, planned->targets, plan.sop_classes, policy->name, ""};
  if (!p.project.empty() && ingest_site_.project_anonymization && ingest_site_.project_anonymization(p.project)) {
    fetch.anonymizing_project = p.project;
  }
  const FetchResult fetched = node_link.Fetch(fetch, hooks);
  // What we asked for is answered before it is stored: a PACS's final C-MOVE response can
  // overtake the receiver's last stores. The PACS counts those that then failed as done.
  if (!expectation->pending_stores->WaitIdle(Steady::now() + kPendingStoresWait)) {
    spdlog::warn("retrieve job {}: instances answered for it were still being stored after {} s", job.id(),
                 kPendingStoresWait.count());
  }
  subscription.reset();
  {
    MutexLock lock(tally.mu);
    tally.not_stored = static_cast<int64_t>(expectation->pending_stores->failed());
  }
  return Verify(job, *node, node_link, p, *planned, fetched, tally, progress);
}

JobOutcome RetrieveRunner::Verify(JobContext& job, const Node& node, Transport& node_link, const RetrieveParams& p,
                                  Planned& planned, const FetchResult& fetched, Tally& tally,
                                  const std::function<json()>& progress) {
  const std::string& method_used = fetched.method_used;
  std::string error = fetched.error;
  const std::vector<std::string>& failed_uids = fetched.failed_uids;
  int64_t not_stored = 0;  // written once by Run, before it called this
  {
    MutexLock lock(tally.mu);
    not_stored = tally.not_stored;
  }
  // Against the index, once everything announced is indexed, and against the list.
  RetrievePlan& plan = planned.plan;
  std::vector<std::string>& expected = planned.expected;
  if (planned.counts.valid()) {  // asked alongside the transfer
    auto counted = planned.counts.get();
    if (!counted && counted.error().code != Code::kNotFound && !job.StopRequested()) {
      counted = node_link.PlanCounts(p);  // once more, alone (a PACS may refuse a second association)
    }
    if (counted) {
      plan = std::move(*counted);
    } else {
      bool nothing = false;
      {
        MutexLock lock(tally.mu);
        nothing = tally.arrived.empty();
      }
      const bool not_there = counted.error().code == Code::kNotFound;
      if (nothing && (error.empty() || not_there) && !job.StopRequested()) {
        // Nothing came, and the node says why: it has no such study (whatever the fetch's own
        // answer suggested: an empty C-MOVE reads like a missing registration), or it could
        // not be asked.
        JobOutcome out{"failed", counted.error().message, progress(), json::object()};
        out.transient = IsTransient(counted.error().code);
        return out;
      }
      plan.note = fmt::format(
          "the node did not give its counts ({}); the retrieve is checked against what "
          "it reported sending",
          counted.error().message);
    }
  }
  if (planned.list_after) {
    // The list was left for the end: not needed when every instance the node counted arrived
    // (each a distinct instance of what was asked for); otherwise it tells what is missing,
    // per instance, for the job's result and its retry.
    // Study by study: what arrived of each must be exactly what the node counted (a stale count
    // or someone else's store of the same study sends us to the list).
    bool all_counted = error.empty() && plan.expected_count && !plan.study_counts.empty();
    {
      MutexLock lock(tally.mu);
      // An instance answered and then not stored hides behind any other arrival of its study.
      all_counted = all_counted && not_stored == 0;
      for (const auto& [study, n] : plan.study_counts) {
        auto it = tally.by_study.find(study);
        all_counted = all_counted && it != tally.by_study.end() && it->second == n;
      }
      all_counted = all_counted && plan.study_counts.size() == p.uids.size();
    }
    if (!all_counted && !job.StopRequested()) {
      planned.listing =
          std::async(std::launch::deferred, [&node_link, &p, copy = plan]() mutable -> Result<RetrievePlan> {
            if (auto r = node_link.ListInstances(p, copy); !r) return tl::unexpected(r.error());
            return copy;
          });
    }
  }
  if (planned.listing.valid()) {
    auto listed = planned.listing.get();
    if (listed) {
      plan = std::move(*listed);
      expected.clear();
      for (const auto& [sop, _] : plan.instances) expected.push_back(sop);
    } else {
      std::string why = fmt::format("the PACS did not list the instances ({})", listed.error().message);
      plan.note =
          plan.note.empty() ? why + "; the retrieve is checked against its instance counts" : plan.note + "; " + why;
    }
  }
  if (auto f = pipeline_.Flush(); !f) {
    spdlog::warn("retrieve job {}: the index is behind: {}", job.id(), f.error().message);
  }
  json out_progress = progress();
  int64_t arrived = out_progress["arrived"].get<int64_t>();
  if (node.type == NodeType::kDimse && p.method == "auto" && !method_used.empty() && (arrived > 0 || error.empty()) &&
      node.retrieve_method_learned != method_used) {
    if (auto r = nodes_.SetRetrieveMethodLearned(node.name, method_used); !r) {
      spdlog::warn("node {}: cannot remember the retrieve method: {}", node.name, r.error().message);
    }
  }
  json result{{"method_used", method_used.empty() ? json(nullptr) : json(method_used)},
              {"verification", plan.listed ? "instances" : "counts"}};
  if (!plan.note.empty()) result["note"] = plan.note;
  if (!fetched.fallback_reason.empty()) result["fallback_reason"] = "C-GET not possible: " + fetched.fallback_reason;
  std::vector<std::string> missing;
  bool fetched_transient_override = false;  // a fault no retry mends
  if (plan.listed) {
    auto here = db_.PresentInstances(expected);
    if (!here) return {"failed", here.error().message, out_progress, result};
    std::set<std::string> here_set(here->begin(), here->end());
    {
      // What arrived under another name (anonymized) or into the staging area was announced,
      // durably stored, with the UIDs the PACS sent.
      MutexLock lock(tally.mu);
      here_set.insert(tally.arrived.begin(), tally.arrived.end());
    }
    for (const auto& sop : expected) {
      if (!here_set.count(sop)) missing.push_back(sop);
    }
    out_progress["completed"] = static_cast<int64_t>(expected.size() - missing.size());
    out_progress["remaining"] = static_cast<int64_t>(missing.size());
  }
  result["missing"] = missing;
  result["missing_count"] = static_cast<int64_t>(missing.size());
  if (!failed_uids.empty()) result["failed_uids"] = failed_uids;
  if (not_stored > 0) result["not_stored"] = not_stored;
  if (!fetched.discarded_uids.empty()) result["discarded_uids"] = fetched.discarded_uids;

  const int64_t have = out_progress["completed"].get<int64_t>();
  std::string state;
  if (plan.listed) {
    state = missing.empty() ? "succeeded" : (have > 0 ? "partial" : "failed");
  } else {
    // Without a list, trust the PACS's counts and what arrived.
    MutexLock lock(tally.mu);
    // Without counts either, what the PACS reported completing must have arrived.
    bool all = error.empty() && tally.Failed() == 0 && not_stored == 0 &&
               (plan.expected_count ? arrived >= *plan.expected_count : arrived >= tally.Completed());
    state = all ? "succeeded" : (arrived > 0 ? "partial" : "failed");
    if (plan.expected_count && arrived < *plan.expected_count) {
      result["missing_count"] = *plan.expected_count - arrived;
    }
  }
  int64_t unlabeled = 0;
  {
    MutexLock lock(tally.mu);
    unlabeled = tally.not_by_originator;
  }
  if ((p.impose_labels || p.relabel_patient) && method_used == "c-move" && unlabeled > 0) {
    // The labels and the patient this job imposes reach a receiver's instances only through the
    // PACS's word that they are ours (Move Originator); without it they were filed as anyone's.
    state = "partial";
    error = fmt::format(
        "{} instance(s) arrived without the PACS naming our C-MOVE as their origin (Move "
        "Originator AE title and message ID): the receiver filed them by its own rules, with "
        "their patient data, not as this job asks; retrieve with method c-get",
        unlabeled);
    fetched_transient_override = true;
  }
  if (job.StopRequested() && state != "succeeded") {
    if (job.ServerStopping()) {
      error = fmt::format(
          "interrupted: the server stopped; {} of {} instances are here; retry to "
          "fetch the rest",
          have, out_progress["total"].dump());
    } else {
      state = "canceled";
      error = fmt::format("canceled; {} instance(s) had arrived and stay in the archive", arrived);
    }
  } else if (state != "succeeded" && error.empty()) {
    error = plan.listed ? fmt::format("{} of {} instances did not arrive", missing.size(), expected.size())
                        : "fewer instances arrived than the PACS reported";
    if (not_stored > 0) {
      error += fmt::format(" ({} were received and could not be stored here: see the server log)", not_stored);
    }
  } else if (state == "succeeded") {
    // Everything asked for is here; what else went wrong on the way (a part that was not asked
    // for, discarded) is still worth saying.
    if (!error.empty()) result["warning"] = error;
    error.clear();
    // Staged sessions that received this job's instances are complete: the job had them all.
    if (arrived > 0) {
      // Checked against the list, or against the counts (then what arrived is all of it).
      std::vector<std::string> held = expected;
      if (!plan.listed) {
        MutexLock lock(tally.mu);
        held.assign(tally.arrived.begin(), tally.arrived.end());
      }
      for (const auto& a : ingest_site_.staging.ArchiveHolding(held)) {
        spdlog::info("retrieve job {}: staged session {} complete and archived ({} instance(s))", job.id(),
                     a.session.id, a.archived);
      }
    }
    if (plan.listed && arrived == 0 && !expected.empty()) {
      result["note"] = fmt::format("all {} instances were already in the archive", expected.size());
    }
  }
  JobOutcome out{state, error, out_progress, result};
  out.transient = fetched.transient && !fetched_transient_override;
  out.retry_after_seconds = fetched.retry_after_seconds;
  return out;
}

}  // namespace pb
