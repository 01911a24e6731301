#include "transport/move_check.h"

#include <algorithm>
#include <map>
#include <mutex>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "core/validate.h"
#include "dicom/find.h"
#include "os/local_address.h"
#include "transport/move_diagnosis.h"

namespace pb {
namespace {

using Steady = std::chrono::steady_clock;

int64_t MillisSince(Steady::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - t).count();
}

std::string Where(const Node& n) { return fmt::format("node '{}' ({})", n.name, JoinHostPort(n.host, n.port)); }

std::string Address(const MoveFacts& f) {
  return JoinHostPort(f.our_host.empty() ? "this machine's address" : f.our_host, f.our_port);
}

std::string Register(const MoveFacts& f) {
  return fmt::format("AE title {}, host {}, port {}", f.destination,
                     f.our_host.empty() ? "this machine's address" : f.our_host, f.our_port);
}

std::string Counts(const dicom::SubOperations& c) {
  auto n = [](int v) { return v < 0 ? std::string("-") : std::to_string(v); };
  return fmt::format("completed {}, failed {}, warning {}", n(c.completed), n(c.failed), n(c.warning));
}

bool SpecificBind(const std::string& bind) {
  return !bind.empty() && bind != "0.0.0.0" && bind != "::" && bind != "[::]" && bind != "*";
}

// One C-FIND answer at a level, asking only for `keys` (the UIDs the next step needs).
[[nodiscard]] Result<std::optional<std::map<std::string, std::string>>> FindOne(
    const Node& node, const dicom::PeerRequest& peer, const std::string& level,
    std::vector<std::pair<std::string, std::string>> keys) {
  dicom::FindRequest rq;
  rq.peer = peer;
  rq.level = level;
  rq.patient_root = node.patient_root;
  if (!node.query_charset.empty()) rq.charset = node.query_charset;
  rq.max_results = 1;
  rq.default_keys = false;
  rq.keys = std::move(keys);
  auto found = dicom::Find(rq);
  if (!found) return tl::unexpected(found.error());
  if (found->rows.empty()) return std::optional<std::map<std::string, std::string>>{};
  return std::optional<std::map<std::string, std::string>>{found->rows.front()};
}

struct Instance {
  std::string study, series, sop;
};

// One instance the PACS holds: STUDY, then SERIES of it, then IMAGE of that (one answer each).
// nullopt: it holds none (or the first series has no instance).
[[nodiscard]] Result<std::optional<Instance>> FindInstance(const Node& node, const dicom::PeerRequest& peer) {
  const bool pr = node.patient_root;
  auto with_patient = [&](std::vector<std::pair<std::string, std::string>> keys, const std::string& pid) {
    if (pr) keys.emplace(keys.begin(), "PatientID", pid);
    return keys;
  };
  auto study = FindOne(node, peer, "STUDY", with_patient({{"StudyInstanceUID", ""}}, ""));
  if (!study) return tl::unexpected(study.error());
  if (!*study || (*study)->count("StudyInstanceUID") == 0 || (*study)->at("StudyInstanceUID").empty()) {
    return std::optional<Instance>{};
  }
  Instance i;
  i.study = (*study)->at("StudyInstanceUID");
  const std::string pid = (*study)->count("PatientID") ? (*study)->at("PatientID") : "";
  auto series =
      FindOne(node, peer, "SERIES", with_patient({{"StudyInstanceUID", i.study}, {"SeriesInstanceUID", ""}}, pid));
  if (!series) return tl::unexpected(series.error());
  if (!*series || (*series)->count("SeriesInstanceUID") == 0 || (*series)->at("SeriesInstanceUID").empty()) {
    return std::optional<Instance>{};
  }
  i.series = (*series)->at("SeriesInstanceUID");
  auto image = FindOne(
      node, peer, "IMAGE",
      with_patient({{"StudyInstanceUID", i.study}, {"SeriesInstanceUID", i.series}, {"SOPInstanceUID", ""}}, pid));
  if (!image) return tl::unexpected(image.error());
  if (!*image || (*image)->count("SOPInstanceUID") == 0 || (*image)->at("SOPInstanceUID").empty()) {
    return std::optional<Instance>{};
  }
  i.sop = (*image)->at("SOPInstanceUID");
  return std::optional<Instance>{i};
}

std::mutex& OneAtATime() {
  static std::mutex mu;
  return mu;
}

}  // namespace

nlohmann::json MoveCheck::ToJson() const {
  auto count = [](int v) { return v < 0 ? nlohmann::json(nullptr) : nlohmann::json(v); };
  return {{"ok", ok ? nlohmann::json(*ok) : nlohmann::json(nullptr)},
          {"outcome", outcome},
          {"message", message},
          {"destination",
           {{"ae_title", destination_ae},
            {"host", destination_host.empty() ? nlohmann::json(nullptr) : nlohmann::json(destination_host)},
            {"port", destination_port == 0 ? nlohmann::json(nullptr) : nlohmann::json(destination_port)}}},
          {"status", status ? nlohmann::json(fmt::format("0x{:04X}", *status)) : nlohmann::json(nullptr)},
          {"completed", count(counts.completed)},
          {"failed", count(counts.failed)},
          {"warning", count(counts.warning)},
          {"instance_arrived", instance_arrived},
          {"latency_ms", latency_ms}};
}

MoveCheck ClassifyMove(const MoveFacts& f) {
  MoveCheck out;
  out.destination_ae = f.destination;
  out.destination_host = f.our_host;
  out.destination_port = f.our_port;
  out.status = f.answer.status;
  out.counts = f.answer.counts;
  out.instance_arrived = f.arrived;
  out.latency_ms = f.latency_ms;
  const dicom::RetrieveAnswer& a = f.answer;
  const std::string node = fmt::format("node '{}'", f.node);
  const std::string status = a.StatusText();
  if (f.arrived) {
    out.ok = true;
    out.outcome = "known";
    out.message = fmt::format(
        "{} knows {} and reaches us at {}: the test instance arrived in {} ms (C-MOVE {}; "
        "it was not kept)",
        node, f.destination, Address(f), f.latency_ms, status);
    return out;
  }
  out.ok = false;
  if (a.status == 0xA801) {
    out.outcome = "unknown_destination";
    out.message = fmt::format(
        "{} does not know the move destination {} (C-MOVE status {}). Register us on the "
        "PACS: {}",
        node, f.destination, status, Register(f));
    return out;
  }
  MoveEvidence e;
  e.where = node;
  e.pacs_ae = f.pacs_ae;
  e.pacs_host = f.pacs_host;
  e.destination = f.destination;
  e.our_ae = f.destination;
  e.our_port = f.our_port;
  e.our_address = f.our_host;
  e.status = a.status;
  e.status_text = status;
  e.error_comment = a.error_comment;
  e.failed_suboperations = std::max(0, a.counts.failed);
  e.seen = f.seen;
  if (RefusedByUs(e)) {
    out.outcome = "not_delivered";
    out.message = ExplainEmptyMove(e);
    return out;
  }
  if (a.success() || a.warning() || a.counts.failed > 0) {
    out.outcome = "not_delivered";
    out.message = fmt::format(
        "{} knows the AE title {} but sends to an address that does not reach us (C-MOVE {}, "
        "{}; nothing arrived): check the host and port it has for {}: they must be ours, {}",
        node, f.destination, status, Counts(a.counts), f.destination, Address(f));
    return out;
  }
  out.outcome = "refused";
  out.message = fmt::format(
      "{} refused the C-MOVE of an instance it holds to {} with status {}{}{} and sent nothing. It does not say "
      "why; a PACS answers so when it does not know the move destination {}, when the address it has for it does "
      "not reach us (Orthanc 1.10 answers 0xC000 to both), or when calling AE title {} may not move. Make sure "
      "it lists: {}",
      node, f.destination, status, a.error_comment.empty() ? "" : ": ", a.error_comment, f.destination, f.calling_ae,
      Register(f));
  return out;
}

std::optional<Receiver> MoveReceiver(const Node& node, const std::string& destination,
                                     const MoveCheckContext& context) {
  for (const Receiver& r : context.receivers) {
    if (!r.enabled || r.ae_title != destination) continue;
    if (node.listen_port > 0 && r.port != node.listen_port) continue;
    if (context.listening && !context.listening(r)) continue;
    return r;
  }
  return std::nullopt;
}

[[nodiscard]] Result<MoveCheck> RunMoveCheck(const Node& node, const MoveCheckContext& context) {
  if (node.type != NodeType::kDimse) {
    return Fail(Code::kConflict, fmt::format("node '{}' is a DICOMweb node: it has no C-MOVE and needs no move "
                                             "destination (its retrieves use WADO-RS)",
                                             node.name));
  }
  if (!context.expectations) return Fail(Code::kInternal, "the move check needs the expectation registry");
  std::unique_lock busy(OneAtATime(), std::try_to_lock);
  if (!busy.owns_lock()) {
    return Fail(Code::kConflict, "another move check is running; try again when it has ended");
  }
  const std::string where = Where(node);
  MoveCheck out;
  out.destination_ae = EffectiveMoveDestination(node, context.our_ae_title);
  const std::optional<Receiver> receiver = MoveReceiver(node, out.destination_ae, context);
  if (!receiver) {
    std::vector<std::string> ours;
    for (const Receiver& r : context.receivers) {
      if (r.enabled && (!context.listening || context.listening(r)))
        ours.push_back(fmt::format("{}@{}", r.ae_title, r.port));
    }
    out.ok = false;
    out.outcome = "no_receiver";
    out.message = fmt::format(
        "no receiver of ours that is enabled and listening is called {}{} (the move destination of {}), so data "
        "it moves could not arrive: add or enable a receiver with that AE title, or set the node's "
        "move_destination to one of ours ({})",
        out.destination_ae, node.listen_port > 0 ? fmt::format(" on port {}", node.listen_port) : "", where,
        ours.empty() ? "none listens" : fmt::format("{}", fmt::join(ours, ", ")));
    return out;
  }
  MoveFacts f;
  f.node = node.name;
  f.pacs_ae = node.ae_title;
  f.pacs_host = node.host;
  f.destination = out.destination_ae;
  f.our_port = receiver->port;
  if (SpecificBind(receiver->bind)) {
    f.our_host = receiver->bind;
  } else if (auto local = LocalAddressToward(node.host, node.port)) {
    f.our_host = *local;
  }
  out.destination_host = f.our_host;
  out.destination_port = f.our_port;
  const dicom::PeerRequest peer = ToPeerRequest(node, context.our_ae_title);
  f.calling_ae = peer.calling_ae;

  auto instance = FindInstance(node, peer);
  if (!instance) {
    out.outcome = "failed";
    out.message = fmt::format(
        "{} could not be asked for an instance to move, so whether it knows {} cannot be "
        "told: {}",
        where, out.destination_ae, instance.error().message);
    return out;
  }
  if (!*instance) {
    out.outcome = "no_instance";
    out.message = fmt::format(
        "{} holds no instance to move (its C-FIND found none), so whether it knows {} "
        "cannot be told this way. It must list: {}",
        where, out.destination_ae, Register(f));
    return out;
  }
  const Instance& i = **instance;
  auto counter = std::make_shared<DiscardCounter>();
  auto e = std::make_shared<Expectation>();
  e->discard = true;
  e->discarded = counter;
  e->calling_ae = peer.calling_ae;
  e->sop_uids = {i.sop};
  ExpectationScope scope(*context.expectations, e);
  dicom::RetrieveHooks hooks;
  hooks.on_sent = [&](uint16_t id) { context.expectations->AddMessageId(scope.token(), id); };
  dicom::RetrieveTarget target;
  target.level = "IMAGE";
  target.uids = {i.sop};
  target.study_uid = i.study;
  target.series_uid = i.series;
  const auto started = Steady::now();
  auto a = dicom::Move({peer, target, out.destination_ae, std::max(30, node.timeout_seconds * 3)}, hooks);
  if (!a) {
    out.outcome = "failed";
    out.latency_ms = MillisSince(started);
    out.instance_arrived = counter->count() > 0;
    out.message = fmt::format("the C-MOVE to {} could not be completed, so whether it knows {} cannot be told: {}",
                              where, out.destination_ae, a.error().message);
    return out;
  }
  if (counter->count() == 0 && (a->success() || a->warning())) {
    // A success whose data has not come yet: give it the node's timeout.
    counter->WaitFor(1, Steady::now() + std::chrono::seconds(std::max(1, node.timeout_seconds)));
  }
  f.answer = *a;
  f.arrived = counter->count() > 0;
  f.latency_ms = MillisSince(started);
  if (context.seen_since) f.seen = context.seen_since(started);
  MoveCheck classified = ClassifyMove(f);
  spdlog::info("{}: move check to {}: {} (C-MOVE 0x{:04X}, arrived: {})", where, out.destination_ae, classified.outcome,
               a->status, f.arrived ? "yes" : "no");
  return classified;
}

}  // namespace pb
