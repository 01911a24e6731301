#include "dicom/retrieve_scp.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/dimse.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "dicom/query_scp_impl.h"
#include "dicom/store_scu_impl.h"

namespace pb::dicom {
namespace {

constexpr uint16_t kPending = 0xFF00;
constexpr uint16_t kSubOperationsWithFailures = 0xB000;
constexpr uint16_t kCanceled = 0xFE00;
constexpr uint16_t kMoveDestinationUnknown = 0xA801;
constexpr uint16_t kUnableToPerformSubOperations = 0xA702;
constexpr uint16_t kUnableToCalculateMatches = 0xA701;
constexpr uint16_t kIdentifierDoesNotMatch = 0xA900;

// The unique key a retrieve at this level must name (PS3.4 C.4.2.2.1): without it, a request
// would select everything under the level above, the whole archive at STUDY level.
const char* UniqueKey(const std::string& level) {
  if (level == "PATIENT") return "PatientID";
  if (level == "STUDY") return "StudyInstanceUID";
  if (level == "SERIES") return "SeriesInstanceUID";
  return "SOPInstanceUID";
}

bool IsUidList(const std::string& v) {
  size_t pos = 0;
  while (pos <= v.size()) {
    size_t end = v.find('\\', pos);
    if (end == std::string::npos) end = v.size();
    const std::string uid = v.substr(pos, end - pos);
    if (uid.empty() || uid.size() > 64 || uid.find_first_not_of("0123456789.") != std::string::npos) return false;
    pos = end + 1;
  }
  return true;
}

// Why the identifier's unique key cannot select what to send ("" when it can): it must be there,
// and be exact (PS3.4 C.4.2.2.1): UIDs (a list allowed), or one Patient ID without wildcards.
std::string UniqueKeyProblem(const std::string& level, const std::vector<std::pair<std::string, std::string>>& keys) {
  const std::string key = UniqueKey(level);
  for (const auto& [k, raw] : keys) {
    if (k != key) continue;
    std::string v = raw;
    while (!v.empty() && v.back() == ' ') v.pop_back();
    while (!v.empty() && v.front() == ' ') v.erase(0, 1);
    if (v.empty()) break;
    if (key == "PatientID") {
      if (v.find_first_of("*?\\") == std::string::npos) return {};
      return "PatientID must be one ID, without wildcards";
    }
    if (IsUidList(v)) return {};
    return fmt::format("{} must be a UID or a list of UIDs, without wildcards", key);
  }
  return fmt::format("a {}-level retrieve needs {}", level, key);
}

struct Tally {
  int total = 0, completed = 0, failed = 0, warning = 0;
  std::vector<std::string> failed_uids;
  int remaining() const { return total - completed - failed - warning; }
  void Add(const SendItem& item, const SendOutcome& o) {
    if (o.status == SendStatus::kSuccess) {
      ++completed;
    } else if (o.status == SendStatus::kWarning) {
      ++warning;
    } else {
      ++failed;
      failed_uids.push_back(item.sop_uid);
    }
  }
};

// A C-GET-RSP or C-MOVE-RSP with the counts; the final one carries the failed UIDs.
// The counts are 16-bit (US): beyond 65535 they say 65535 rather than wrap.
DIC_US Count(int n) { return static_cast<DIC_US>(std::min(n, 0xFFFF)); }

template <typename Rsp>
void SetCounts(Rsp& r, const Tally& t) {
  r.NumberOfRemainingSubOperations = Count(t.remaining());
  r.NumberOfCompletedSubOperations = Count(t.completed);
  r.NumberOfFailedSubOperations = Count(t.failed);
  r.NumberOfWarningSubOperations = Count(t.warning);
}

std::unique_ptr<DcmDataset> FailedList(const Tally& t) {
  if (t.failed_uids.empty()) return nullptr;
  std::string list;
  for (const auto& uid : t.failed_uids) list += (list.empty() ? "" : "\\") + uid;
  auto ds = std::make_unique<DcmDataset>();
  ds->putAndInsertString(DCM_FailedSOPInstanceUIDList, list.c_str());
  return ds;
}

std::unique_ptr<DcmDataset> Comment(const std::string& text) {
  auto d = std::make_unique<DcmDataset>();
  d->putAndInsertString(DCM_ErrorComment, text.substr(0, 64).c_str());
  return d;
}

// PS3.4 C.4.2.3.1 / C.4.3.3.1: Success; Warning when some failed or warned; Refused (unable to
// perform sub-operations) when every one failed.
uint16_t FinalStatus(const Tally& t, bool canceled) {
  if (canceled) return kCanceled;
  if (t.total > 0 && t.failed == t.total) return kUnableToPerformSubOperations;
  return t.failed > 0 || t.warning > 0 ? kSubOperationsWithFailures : STATUS_Success;
}

// What both operations do first: the identifier, its unique key, the instances it selects.
// False with the status and reason to refuse with.
struct Prepared {
  RetrieveQuery query;
  std::vector<SendItem> items;
  uint16_t status = 0;
  std::string comment;
};

// `before_instances`: a check that may refuse (setting p.status) before the instances are read.
OFCondition Prepare(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, const char* sop_class,
                    const char* patient_root_class, RetrieveSink& sink, const FindContext& ctx, Prepared& p,
                    const std::function<bool(Prepared&)>& before_instances = {}) {
  std::unique_ptr<DcmDataset> identifier;
  OFCondition cond = ReceiveIdentifier(assoc, pres, ctx.dimse_timeout_seconds, identifier);
  if (cond.bad()) return cond;
  p.query.patient_root = std::string(sop_class) == patient_root_class;
  p.query.calling_ae = ctx.calling_ae;
  p.query.called_ae = ctx.called_ae;
  p.query.peer = ctx.peer;
  Identifier id;
  if (!ReadIdentifier(identifier.get(), p.query.patient_root, id, p.status, p.comment)) return EC_Normal;
  p.query.level = id.level;
  p.query.keys = std::move(id.keys);
  if (std::string why = UniqueKeyProblem(p.query.level, p.query.keys); !why.empty()) {
    p.status = kIdentifierDoesNotMatch;
    p.comment = std::move(why);
    return EC_Normal;
  }
  if (before_instances && !before_instances(p)) return EC_Normal;
  auto items = sink.Instances(p.query);
  if (!items) {
    p.status = FailureStatus(items.error(), kUnableToCalculateMatches);
    p.comment = items.error().message;
    return EC_Normal;
  }
  p.items = std::move(*items);
  return EC_Normal;
}

void LogEnd(const char* what, const FindContext& ctx, const Prepared& p, const Tally& t, bool canceled,
            std::chrono::steady_clock::time_point start, const std::string& to = {}) {
  if (p.status != 0) {
    spdlog::info("{}: {} from {}@{} refused with status 0x{:04X}", ctx.name, what, ctx.calling_ae, ctx.peer, p.status);
    spdlog::debug("{}: {} from {}@{}: {}", ctx.name, what, ctx.calling_ae, ctx.peer, p.comment);
    return;
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("{}: {} {} from {}@{}{}: {} sent, {} failed, {} with warnings of {}{} in {:.1f} s", ctx.name, what,
               p.query.level, ctx.calling_ae, ctx.peer, to.empty() ? "" : " to " + to, t.completed, t.failed, t.warning,
               t.total, canceled ? " (canceled)" : "", s);
}

bool Stopping(const FindContext& ctx) { return ctx.stopping && ctx.stopping->load(); }

// True when the caller sent a C-CANCEL for `message_id`; `cond` set when the association failed.
bool CancelRequested(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, DIC_US message_id, OFCondition& cond) {
  OFCondition c = DIMSE_checkForCancelRQ(assoc, pres, message_id);
  if (c.good()) return true;
  if (c != DIMSE_NODATAAVAILABLE) cond = c;
  return false;
}

}  // namespace

OFCondition AnswerGet(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, T_DIMSE_C_GetRQ& request,
                      RetrieveSink& sink, const FindContext& ctx) {
  const auto start = std::chrono::steady_clock::now();
  Prepared p;
  OFCondition cond =
      Prepare(assoc, pres, request.AffectedSOPClassUID, UID_GETPatientRootQueryRetrieveInformationModel, sink, ctx, p);
  if (cond.bad()) return cond;
  Tally t;
  T_DIMSE_C_GetRSP rsp{};
  if (p.status != 0) {
    rsp.DimseStatus = p.status;
    auto detail = Comment(p.comment);
    LogEnd("C-GET", ctx, p, t, false, start);
    return DIMSE_sendGetResponse(assoc, pres, &request, &rsp, nullptr, detail.get());
  }
  t.total = static_cast<int>(p.items.size());
  bool canceled = false;
  T_DIMSE_DetectedCancelParameters detected{};
  StoreOptions options;  // as stored, or converted losslessly to what the caller accepts
  options.on_callers_association = true;
  options.cancel = &detected;
  for (const SendItem& item : p.items) {
    if (Stopping(ctx) || CancelRequested(assoc, pres, request.MessageID, cond)) {
      canceled = true;
      break;
    }
    if (cond.bad()) return cond;
    std::string broke;
    SendOutcome o = StoreOne(assoc, item, options, broke);
    // A C-CANCEL that came while the C-STORE-RSP was awaited: this one is done, no more follow.
    if (detected.cancelEncountered && detected.req.MessageIDBeingRespondedTo == request.MessageID) canceled = true;
    if (!broke.empty()) {
      // Also when an instance's stored file failed mid-data-set: the caller's association cannot go on.
      spdlog::info("{}: C-GET from {}@{}: the association broke: {}", ctx.name, ctx.calling_ae, ctx.peer,
                   o.reason.empty() ? broke : o.reason);
      return makeDcmnetCondition(DIMSEC_BADDATA, OF_error, "C-GET: the association broke during a sub-operation");
    }
    if (o.status == SendStatus::kFailed || o.status == SendStatus::kNotConfirmed) {
      spdlog::warn("{}: C-GET from {}@{}: an instance was not sent: {}", ctx.name, ctx.calling_ae, ctx.peer, o.reason);
    }
    t.Add(item, o);
    if (canceled) break;
    if (t.remaining() > 0) {
      T_DIMSE_C_GetRSP pending{};
      pending.DimseStatus = kPending;
      SetCounts(pending, t);
      cond = DIMSE_sendGetResponse(assoc, pres, &request, &pending, nullptr, nullptr);
      if (cond.bad()) return cond;
    }
  }
  rsp.DimseStatus = FinalStatus(t, canceled);
  SetCounts(rsp, t);
  auto failed = FailedList(t);
  LogEnd("C-GET", ctx, p, t, canceled, start);
  return DIMSE_sendGetResponse(assoc, pres, &request, &rsp, failed.get(), nullptr);
}

OFCondition AnswerMove(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, T_DIMSE_C_MoveRQ& request,
                       RetrieveSink& sink, const FindContext& ctx) {
  const auto start = std::chrono::steady_clock::now();
  Prepared p;
  const std::string destination = request.MoveDestination;
  Result<MoveTarget> target = Fail(Code::kInternal, "");
  // The destination first: an unknown one costs no query of the archive.
  OFCondition cond = Prepare(
      assoc, pres, request.AffectedSOPClassUID, UID_MOVEPatientRootQueryRetrieveInformationModel, sink, ctx, p,
      [&](Prepared& pr) {
        target = sink.MoveDestination(destination, pr.query);
        if (target) return true;
        pr.status = target.error().code == Code::kNotFound ? kMoveDestinationUnknown : kUnableToPerformSubOperations;
        pr.comment = target.error().message;
        spdlog::warn("{}: C-MOVE from {}@{}: {}", ctx.name, ctx.calling_ae, ctx.peer, pr.comment);
        return false;
      });
  if (cond.bad()) return cond;
  Tally t;
  T_DIMSE_C_MoveRSP rsp{};
  if (p.status != 0) {
    rsp.DimseStatus = p.status;
    auto detail = Comment(p.comment);
    LogEnd("C-MOVE", ctx, p, t, false, start, destination);
    return DIMSE_sendMoveResponse(assoc, pres, &request, &rsp, nullptr, detail.get());
  }
  t.total = static_cast<int>(p.items.size());
  bool canceled = false;
  if (!p.items.empty()) {
    SendRequest rq;
    rq.peer = target->peer;
    rq.items = std::move(p.items);
    rq.preferred_transfer_syntax = target->preferred_transfer_syntax;
    rq.allow_lossy = target->allow_lossy;
    rq.move_originator_ae = ctx.calling_ae;
    rq.move_originator_id = request.MessageID;
    SendHooks hooks;
    hooks.cancel_requested = [&] {
      canceled = canceled || cond.bad() || Stopping(ctx) || CancelRequested(assoc, pres, request.MessageID, cond);
      return canceled;
    };
    hooks.on_instance = [&](size_t index, const SendOutcome& o) {
      if (o.status == SendStatus::kFailed || o.status == SendStatus::kNotConfirmed) {
        spdlog::warn("{}: C-MOVE from {}@{} to {}: an instance was not sent: {}", ctx.name, ctx.calling_ae, ctx.peer,
                     destination, o.reason);
      }
      t.Add(rq.items[index], o);
      if (t.remaining() == 0 || cond.bad()) return;
      T_DIMSE_C_MoveRSP pending{};
      pending.DimseStatus = kPending;
      SetCounts(pending, t);
      cond = DIMSE_sendMoveResponse(assoc, pres, &request, &pending, nullptr, nullptr);
    };
    auto outcomes = SendInstances(rq, hooks);
    if (cond.bad()) return cond;  // the caller is gone
    if (!outcomes) {
      // No association with the destination: every sub-operation failed.
      for (const SendItem& item : rq.items) t.Add(item, SendOutcome{});
      rsp.DimseStatus = kUnableToPerformSubOperations;
      SetCounts(rsp, t);
      auto failed = FailedList(t);
      auto detail = Comment(outcomes.error().message);
      spdlog::warn("{}: C-MOVE from {}@{} to {}: {}", ctx.name, ctx.calling_ae, ctx.peer, destination,
                   outcomes.error().message);
      p.status = rsp.DimseStatus;
      p.comment = outcomes.error().message;
      LogEnd("C-MOVE", ctx, p, t, false, start, destination);
      return DIMSE_sendMoveResponse(assoc, pres, &request, &rsp, failed.get(), detail.get());
    }
    if (!canceled) {
      // Those the association did not carry to the end (it broke) failed; the hook saw the others.
      for (size_t i = 0; i < outcomes->size(); ++i) {
        const SendOutcome& o = (*outcomes)[i];
        if (o.status == SendStatus::kNotConfirmed && (o.broke_here || o.never_sent)) t.Add(rq.items[i], o);
      }
    }
  }
  rsp.DimseStatus = FinalStatus(t, canceled);
  SetCounts(rsp, t);
  auto failed = FailedList(t);
  LogEnd("C-MOVE", ctx, p, t, canceled, start, destination);
  return DIMSE_sendMoveResponse(assoc, pres, &request, &rsp, failed.get(), nullptr);
}

}  // namespace pb::dicom
