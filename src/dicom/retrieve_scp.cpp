#include "dicom/retrieve_scp.h"

#include <chrono>
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

bool HasValue(const std::vector<std::pair<std::string, std::string>>& keys, const std::string& keyword) {
  for (const auto& [k, v] : keys) {
    if (k == keyword && v.find_first_not_of(" *") != std::string::npos) return true;
  }
  return false;
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
template <typename Rsp>
void SetCounts(Rsp& r, const Tally& t) {
  r.NumberOfRemainingSubOperations = static_cast<DIC_US>(t.remaining());
  r.NumberOfCompletedSubOperations = static_cast<DIC_US>(t.completed);
  r.NumberOfFailedSubOperations = static_cast<DIC_US>(t.failed);
  r.NumberOfWarningSubOperations = static_cast<DIC_US>(t.warning);
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

uint16_t FinalStatus(const Tally& t, bool canceled) {
  if (canceled) return kCanceled;
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

OFCondition Prepare(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, const char* sop_class,
                    const char* patient_root_class, RetrieveSink& sink, const FindContext& ctx, Prepared& p) {
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
  if (!HasValue(p.query.keys, UniqueKey(p.query.level))) {
    p.status = kIdentifierDoesNotMatch;
    p.comment = fmt::format("a {}-level retrieve needs {}", p.query.level, UniqueKey(p.query.level));
    return EC_Normal;
  }
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
    spdlog::info("{}: {} from {}@{} refused with status 0x{:04X}", ctx.name, what, ctx.calling_ae, ctx.peer,
                 p.status);
    spdlog::debug("{}: {} from {}@{}: {}", ctx.name, what, ctx.calling_ae, ctx.peer, p.comment);
    return;
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("{}: {} {} from {}@{}{}: {} sent, {} failed, {} with warnings of {}{} in {:.1f} s", ctx.name, what,
               p.query.level, ctx.calling_ae, ctx.peer, to.empty() ? "" : " to " + to, t.completed, t.failed,
               t.warning, t.total, canceled ? " (canceled)" : "", s);
}

// True when the caller sent a C-CANCEL for `message_id`; `cond` set when the association failed.
bool CancelRequested(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, DIC_US message_id,
                     OFCondition& cond) {
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
  OFCondition cond = Prepare(assoc, pres, request.AffectedSOPClassUID,
                             UID_GETPatientRootQueryRetrieveInformationModel, sink, ctx, p);
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
  const StoreOptions options;  // as stored, or converted losslessly to what the caller accepts
  for (const SendItem& item : p.items) {
    if (CancelRequested(assoc, pres, request.MessageID, cond)) {
      canceled = true;
      break;
    }
    if (cond.bad()) return cond;
    std::string broke;
    SendOutcome o = StoreOne(assoc, item, options, broke);
    if (!broke.empty()) {
      spdlog::info("{}: C-GET from {}@{}: the association broke: {}", ctx.name, ctx.calling_ae, ctx.peer, broke);
      return makeDcmnetCondition(DIMSEC_BADDATA, OF_error, "C-GET: the association broke during a sub-operation");
    }
    if (o.status == SendStatus::kFailed) {
      spdlog::warn("{}: C-GET from {}@{}: an instance was not sent: {}", ctx.name, ctx.calling_ae, ctx.peer,
                   o.reason);
    }
    t.Add(item, o);
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
  OFCondition cond = Prepare(assoc, pres, request.AffectedSOPClassUID,
                             UID_MOVEPatientRootQueryRetrieveInformationModel, sink, ctx, p);
  if (cond.bad()) return cond;
  const std::string destination = request.MoveDestination;
  Result<MoveTarget> target = Fail(Code::kInternal, "");
  if (p.status == 0) {
    target = sink.MoveDestination(destination, p.query);
    if (!target) {
      p.status = target.error().code == Code::kNotFound ? kMoveDestinationUnknown : kUnableToPerformSubOperations;
      p.comment = target.error().message;
      spdlog::warn("{}: C-MOVE from {}@{}: {}", ctx.name, ctx.calling_ae, ctx.peer, p.comment);
    }
  }
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
    rq.items = p.items;
    rq.preferred_transfer_syntax = target->preferred_transfer_syntax;
    rq.allow_lossy = target->allow_lossy;
    rq.move_originator_ae = ctx.calling_ae;
    rq.move_originator_id = request.MessageID;
    SendHooks hooks;
    hooks.cancel_requested = [&] {
      canceled = canceled || cond.bad() || CancelRequested(assoc, pres, request.MessageID, cond);
      return canceled;
    };
    hooks.on_instance = [&](size_t index, const SendOutcome& o) {
      if (o.status == SendStatus::kFailed) {
        spdlog::warn("{}: C-MOVE from {}@{} to {}: an instance was not sent: {}", ctx.name, ctx.calling_ae, ctx.peer,
                     destination, o.reason);
      }
      t.Add(p.items[index], o);
      if (t.remaining() == 0 || cond.bad()) return;
      T_DIMSE_C_MoveRSP pending{};
      pending.DimseStatus = kPending;
      SetCounts(pending, t);
      cond = DIMSE_sendMoveResponse(assoc, pres, &request, &pending, nullptr, nullptr);
    };
    auto outcomes = SendInstances(rq, hooks);
    if (cond.bad()) return cond;  // the caller is gone
    if (!outcomes) {
      rsp.DimseStatus = kUnableToPerformSubOperations;
      auto detail = Comment(outcomes.error().message);
      spdlog::warn("{}: C-MOVE from {}@{} to {}: {}", ctx.name, ctx.calling_ae, ctx.peer, destination,
                   outcomes.error().message);
      p.status = rsp.DimseStatus;
      p.comment = outcomes.error().message;
      LogEnd("C-MOVE", ctx, p, t, false, start, destination);
      return DIMSE_sendMoveResponse(assoc, pres, &request, &rsp, nullptr, detail.get());
    }
    if (!canceled) {
      // Those the association did not carry to the end (it broke) failed.
      for (size_t i = 0; i < outcomes->size(); ++i) {
        const SendOutcome& o = (*outcomes)[i];
        if (o.status == SendStatus::kNotConfirmed) t.Add(p.items[i], o);
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
