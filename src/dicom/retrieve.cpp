#include "dicom/retrieve.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmnet/diutil.h>
#include <fmt/format.h>

#include "dicom/condition.h"
#include "dicom/scu.h"
#include "dicom/store_receive.h"

namespace pb::dicom {
namespace {

using Steady = std::chrono::steady_clock;

constexpr int kMaxContexts = 128;  // PS3.8: presentation context IDs are odd numbers 1..255
constexpr auto kCancelGrace = std::chrono::seconds(30);

// Compressed syntaxes offered as contexts of their own when the SOP classes are known, so a PACS
// can send each instance as it stores it (no transcoding, bit-preserving).
const char* const kCompressed[] = {UID_JPEGProcess14SV1TransferSyntax,
                                   UID_JPEGProcess1TransferSyntax,
                                   UID_JPEGProcess2_4TransferSyntax,
                                   UID_JPEGLSLosslessTransferSyntax,
                                   UID_JPEGLSLossyTransferSyntax,
                                   UID_JPEG2000LosslessOnlyTransferSyntax,
                                   UID_JPEG2000TransferSyntax,
                                   UID_RLELosslessTransferSyntax,
                                   UID_DeflatedExplicitVRLittleEndianTransferSyntax};

// Message IDs unique in this process (until they wrap), so the Move Originator Message ID of a
// C-STORE tells which of several concurrent C-MOVEs it belongs to.
DIC_US NextMessageId() {
  static std::atomic<uint32_t> next{1};
  uint32_t id = next.fetch_add(1) % 0xFFFF;
  return static_cast<DIC_US>(id + 1);
}

bool IsPending(uint16_t s) { return s == STATUS_Pending || s == 0xFF01; }

DcmDataset Identifier(const RetrieveTarget& t) {
  DcmDataset id;
  auto join = [](const std::vector<std::string>& v) { return fmt::format("{}", fmt::join(v, "\\")); };
  id.putAndInsertString(DCM_QueryRetrieveLevel, t.level.c_str());
  if (t.level == "STUDY") {
    id.putAndInsertString(DCM_StudyInstanceUID, join(t.uids).c_str());
  } else if (t.level == "SERIES") {
    id.putAndInsertString(DCM_StudyInstanceUID, t.study_uid.c_str());
    id.putAndInsertString(DCM_SeriesInstanceUID, join(t.uids).c_str());
  } else {
    id.putAndInsertString(DCM_StudyInstanceUID, t.study_uid.c_str());
    id.putAndInsertString(DCM_SeriesInstanceUID, t.series_uid.c_str());
    id.putAndInsertString(DCM_SOPInstanceUID, join(t.uids).c_str());
  }
  return id;
}

// A C-GET or C-MOVE response, as far as following it goes.
struct Response {
  uint16_t status = 0;
  SubOperations counts;
  T_DIMSE_DataSetType data_set = DIMSE_DATASET_NULL;
};

template <typename Rsp>
Response Convert(const Rsp& r, unsigned remaining, unsigned completed, unsigned failed, unsigned warning) {
  Response out{r.DimseStatus, {}, r.DataSetType};
  if (r.opts & remaining) out.counts.remaining = r.NumberOfRemainingSubOperations;
  if (r.opts & completed) out.counts.completed = r.NumberOfCompletedSubOperations;
  if (r.opts & failed) out.counts.failed = r.NumberOfFailedSubOperations;
  if (r.opts & warning) out.counts.warning = r.NumberOfWarningSubOperations;
  return out;
}

Response FromGet(const T_DIMSE_C_GetRSP& r) {
  return Convert(r, O_GET_NUMBEROFREMAININGSUBOPERATIONS, O_GET_NUMBEROFCOMPLETEDSUBOPERATIONS,
                 O_GET_NUMBEROFFAILEDSUBOPERATIONS, O_GET_NUMBEROFWARNINGSUBOPERATIONS);
}

Response FromMove(const T_DIMSE_C_MoveRSP& r) {
  return Convert(r, O_MOVE_NUMBEROFREMAININGSUBOPERATIONS, O_MOVE_NUMBEROFCOMPLETEDSUBOPERATIONS,
                 O_MOVE_NUMBEROFFAILEDSUBOPERATIONS, O_MOVE_NUMBEROFWARNINGSUBOPERATIONS);
}

void TakeFailedList(DcmDataset* ds, RetrieveAnswer& answer) {
  if (!ds) return;
  OFString list;
  if (ds->findAndGetOFStringArray(DCM_FailedSOPInstanceUIDList, list).good()) {
    std::string s = list.c_str();
    size_t start = 0;
    while (start <= s.size()) {
      size_t end = s.find('\\', start);
      if (end == std::string::npos) end = s.size();
      if (end > start) answer.failed_uids.push_back(s.substr(start, end - start));
      start = end + 1;
    }
  }
}

// Contexts of a C-GET: the model, then the storage classes with the SCP role, within the limit.
// One transfer syntax per context: a PACS sends each instance on the context whose syntax is the
// one it stores the instance in, unchanged, when there is one (a context listing several
// syntaxes gets one chosen by the PACS, and every other instance transcoded).
std::vector<ProposedContext> GetContexts(const GetRequest& rq, const char* model) {
  std::vector<ProposedContext> out{
      {model, {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax}}};
  std::vector<const char*> classes;
  for (const auto& c : rq.sop_classes) classes.push_back(c.c_str());
  const bool known = !classes.empty();
  if (!known)
    classes.assign(dcmShortSCUStorageSOPClassUIDs,
                   dcmShortSCUStorageSOPClassUIDs + numberOfDcmShortSCUStorageSOPClassUIDs);
  const char* preferred = rq.preferred_transfer_syntax.empty() ? nullptr : rq.preferred_transfer_syntax.c_str();
  // Per class: [preferred], Explicit LE, Implicit LE, then compressed syntaxes, as the budget
  // allows; without known classes, only the preferred and uncompressed ones for common classes.
  std::vector<const char*> syntaxes;
  if (preferred) syntaxes.push_back(preferred);
  for (const char* ts : {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax}) {
    if (!preferred || std::string(ts) != preferred) syntaxes.push_back(ts);
  }
  const size_t uncompressed = syntaxes.size();
  if (known) {
    for (const char* ts : kCompressed) {
      if (!preferred || std::string(ts) != preferred) syntaxes.push_back(ts);
    }
  }
  const size_t budget = kMaxContexts - 1;
  size_t per_class = std::min(syntaxes.size(), std::max<size_t>(1, budget / classes.size()));
  if (per_class < uncompressed && !known) {
    per_class = uncompressed;  // fewer common classes rather than fewer syntaxes
  }
  classes.resize(std::min(classes.size(), budget / per_class));
  for (const char* sop : classes) {
    for (size_t i = 0; i < per_class; ++i) out.push_back({sop, {syntaxes[i]}, ASC_SC_ROLE_SCP});
  }
  return out;
}

// Reads the data set that follows a response when it says one does.
std::unique_ptr<DcmDataset> ResponseDataSet(T_ASC_Association* assoc, T_DIMSE_DataSetType type) {
  if (type == DIMSE_DATASET_NULL) return nullptr;
  DcmDataset* ds = nullptr;
  T_ASC_PresentationContextID pres = 0;
  if (DIMSE_receiveDataSetInMemory(assoc, DIMSE_BLOCKING, 0, &pres, &ds, nullptr, nullptr).bad()) {
    return nullptr;
  }
  return std::unique_ptr<DcmDataset>(ds);
}

// The response loop shared by C-GET and C-MOVE. `sink` is null for C-MOVE.
[[nodiscard]] Result<RetrieveAnswer> Follow(ScuAssociation& a, T_ASC_PresentationContextID pres, DIC_US message_id,
                                            bool is_get, StoreSink* sink, const PeerRequest& peer,
                                            int inactivity_seconds, const RetrieveHooks& hooks) {
  RetrieveAnswer answer;
  answer.local_address = a.LocalAddress();
  const char* what = is_get ? "C-GET" : "C-MOVE";
  StoreContext ctx{fmt::format("{} from {}", what, a.where()), peer.called_ae, peer.calling_ae, a.where()};
  SpareFile spare;
  ctx.spare = &spare;
  auto last_activity = Steady::now();
  Steady::time_point cancel_sent{};
  while (true) {
    if (!answer.canceled && hooks.cancel_requested && hooks.cancel_requested()) {
      (void)DIMSE_sendCancelRequest(a.get(), pres, message_id);
      answer.canceled = true;
      cancel_sent = Steady::now();
    }
    T_DIMSE_Message msg{};
    T_ASC_PresentationContextID rpres = 0;
    DcmDataset* detail = nullptr;
    // Short polls, so a cancel is sent promptly; DCMTK's timeout is in whole seconds.
    OFCondition cond = DIMSE_receiveCommand(a.get(), DIMSE_NONBLOCKING, 1, &rpres, &msg, &detail);
    std::unique_ptr<DcmDataset> owned_detail(detail);
    if (cond == DIMSE_NODATAAVAILABLE) {
      auto now = Steady::now();
      if (answer.canceled && now - cancel_sent > kCancelGrace) {
        a.Abort();
        return answer;  // the peer ignored the cancel: the association is cut
      }
      if (now - last_activity > std::chrono::seconds(inactivity_seconds)) {
        a.Abort();
        return Fail(Code::kTimeout,
                    fmt::format("{} stopped answering the {} for {} s", a.where(), what, inactivity_seconds));
      }
      continue;
    }
    if (cond.bad()) {
      a.Abort();
      if (cond == DUL_PEERABORTEDASSOCIATION) {
        return Fail(Code::kAborted, fmt::format("{} aborted the association during the {}{}", a.where(), what,
                                                answer.stores_received || !is_get
                                                    ? ""
                                                    : fmt::format(" (it may not allow {} from our calling AE "
                                                                  "title '{}')",
                                                                  what, peer.calling_ae)));
      }
      return FailCondition(cond, fmt::format("the association with {} was lost during the {}", a.where(), what),
                           Code::kUnavailable);
    }
    last_activity = Steady::now();
    if (is_get && msg.CommandField == DIMSE_C_STORE_RQ && sink) {
      uint16_t status = 0;
      if (ReceiveStore(a.get(), rpres, msg.msg.CStoreRQ, *sink, ctx, status) == StoreEnd::kAssociationLost) {
        return Fail(Code::kUnavailable,
                    fmt::format("the association with {} broke while receiving an instance", a.where()));
      }
      ++answer.stores_received;
      continue;
    }
    std::optional<Response> rsp;
    if (is_get && msg.CommandField == DIMSE_C_GET_RSP) rsp = FromGet(msg.msg.CGetRSP);
    if (!is_get && msg.CommandField == DIMSE_C_MOVE_RSP) rsp = FromMove(msg.msg.CMoveRSP);
    if (rsp) {
      auto ds = ResponseDataSet(a.get(), rsp->data_set);
      if (IsPending(rsp->status)) {
        if (hooks.on_pending) hooks.on_pending(rsp->counts);
        continue;
      }
      answer.status = rsp->status;
      answer.counts = rsp->counts;
      TakeFailedList(ds.get(), answer);
      if (answer.failed_uids.empty()) TakeFailedList(owned_detail.get(), answer);  // some PACS put it there
      if (owned_detail) {
        OFString c;
        if (owned_detail->findAndGetOFString(DCM_ErrorComment, c).good()) answer.error_comment = c.c_str();
      }
      break;
    }
    a.Abort();
    return Fail(Code::kUnavailable, fmt::format("{} sent an unexpected DIMSE command 0x{:04x} during the {}", a.where(),
                                                static_cast<unsigned>(msg.CommandField), what));
  }
  a.Release();
  return answer;
}

// An association for a retrieve; a peer that accepts none of the contexts does not offer it.
[[nodiscard]] Result<std::unique_ptr<ScuAssociation>> Open(const PeerRequest& peer,
                                                           const std::vector<ProposedContext>& contexts) {
  return Associate(peer, contexts);  // no accepted context: kUnsupported
}

// Sends a C-GET/C-MOVE request with the target's identifier.
[[nodiscard]] Result<void> Send(ScuAssociation& a, T_ASC_PresentationContextID pres, T_DIMSE_Message& msg,
                                DIC_US message_id, const RetrieveTarget& target, const char* what,
                                const RetrieveHooks& hooks) {
  DcmDataset id = Identifier(target);
  OFCondition cond = DIMSE_sendMessageUsingMemoryData(a.get(), pres, &msg, nullptr, &id, nullptr, nullptr);
  if (cond.bad()) {
    return FailCondition(cond, fmt::format("cannot send the {} to {}", what, a.where()), Code::kUnavailable);
  }
  if (hooks.on_sent) hooks.on_sent(message_id);
  return {};
}

}  // namespace

std::string RetrieveAnswer::StatusText() const {
  const char* text = DU_cmoveStatusString(status);
  return fmt::format("0x{:04X} ({})", status, text ? text : "unknown status");
}

std::vector<std::pair<std::string, std::string>> ProposedGetContexts(const GetRequest& rq) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const ProposedContext& c : GetContexts(rq, UID_GETStudyRootQueryRetrieveInformationModel)) {
    out.emplace_back(c.abstract_syntax, fmt::format("{}", fmt::join(c.transfer_syntaxes, ",")));
  }
  return out;
}

std::string TransferSyntaxUid(const std::string& name_or_uid) {
  if (name_or_uid.empty()) return {};
  // DICOM keywords (PS3.6 Table A-1) of the syntaxes people name most; DCMTK knows the rest.
  static const std::map<std::string, const char*> kKeywords{
      {"ImplicitVRLittleEndian", UID_LittleEndianImplicitTransferSyntax},
      {"ExplicitVRLittleEndian", UID_LittleEndianExplicitTransferSyntax},
      {"ExplicitVRBigEndian", UID_BigEndianExplicitTransferSyntax},
      {"DeflatedExplicitVRLittleEndian", UID_DeflatedExplicitVRLittleEndianTransferSyntax},
      {"JPEGBaseline8Bit", UID_JPEGProcess1TransferSyntax},
      {"JPEGExtended12Bit", UID_JPEGProcess2_4TransferSyntax},
      {"JPEGLossless", UID_JPEGProcess14TransferSyntax},
      {"JPEGLosslessSV1", UID_JPEGProcess14SV1TransferSyntax},
      {"JPEGLSLossless", UID_JPEGLSLosslessTransferSyntax},
      {"JPEGLSNearLossless", UID_JPEGLSLossyTransferSyntax},
      {"JPEG2000Lossless", UID_JPEG2000LosslessOnlyTransferSyntax},
      {"JPEG2000", UID_JPEG2000TransferSyntax},
      {"RLELossless", UID_RLELosslessTransferSyntax}};
  if (auto it = kKeywords.find(name_or_uid); it != kKeywords.end()) return it->second;
  DcmXfer x(name_or_uid.c_str());
  if (x.getXfer() == EXS_Unknown) return {};
  return x.getXferID();
}

[[nodiscard]] Result<RetrieveAnswer> Get(const GetRequest& rq, StoreSink& sink, const RetrieveHooks& hooks) {
  const char* model = UID_GETStudyRootQueryRetrieveInformationModel;
  auto a = Open(rq.peer, GetContexts(rq, model));
  if (!a) return tl::unexpected(a.error());
  T_ASC_PresentationContextID pres = (*a)->ContextFor(model);
  if (pres == 0) {
    return Fail(Code::kUnsupported,
                fmt::format("{} does not accept C-GET (Study Root Query/Retrieve - GET)", (*a)->where()));
  }
  bool any_storage = false;
  for (int i = 0; i < ASC_countPresentationContexts((*a)->get()->params); ++i) {
    T_ASC_PresentationContext pc;
    if (ASC_getPresentationContext((*a)->get()->params, i, &pc).good() && pc.resultReason == ASC_P_ACCEPTANCE &&
        std::string(pc.abstractSyntax) != model) {
      any_storage = true;
      break;
    }
  }
  if (!any_storage) {
    return Fail(Code::kUnsupported,
                fmt::format("{} accepted none of the storage classes proposed for C-GET", (*a)->where()));
  }
  T_DIMSE_Message msg{};
  msg.CommandField = DIMSE_C_GET_RQ;
  T_DIMSE_C_GetRQ& req = msg.msg.CGetRQ;
  req.MessageID = NextMessageId();
  OFStandard::strlcpy(req.AffectedSOPClassUID, model, sizeof req.AffectedSOPClassUID);
  req.Priority = DIMSE_PRIORITY_MEDIUM;
  req.DataSetType = DIMSE_DATASET_PRESENT;
  if (auto sent = Send(**a, pres, msg, req.MessageID, rq.target, "C-GET", hooks); !sent) {
    return tl::unexpected(sent.error());
  }
  return Follow(**a, pres, req.MessageID, true, &sink, rq.peer, rq.inactivity_seconds, hooks);
}

[[nodiscard]] Result<RetrieveAnswer> Move(const MoveRequest& rq, const RetrieveHooks& hooks) {
  const char* model = UID_MOVEStudyRootQueryRetrieveInformationModel;
  auto a = Open(rq.peer, {{model, {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax}}});
  if (!a) return tl::unexpected(a.error());
  T_ASC_PresentationContextID pres = (*a)->ContextFor(model);
  T_DIMSE_Message msg{};
  msg.CommandField = DIMSE_C_MOVE_RQ;
  T_DIMSE_C_MoveRQ& req = msg.msg.CMoveRQ;
  req.MessageID = NextMessageId();
  OFStandard::strlcpy(req.AffectedSOPClassUID, model, sizeof req.AffectedSOPClassUID);
  OFStandard::strlcpy(req.MoveDestination, rq.destination.c_str(), sizeof req.MoveDestination);
  req.Priority = DIMSE_PRIORITY_MEDIUM;
  req.DataSetType = DIMSE_DATASET_PRESENT;
  if (auto sent = Send(**a, pres, msg, req.MessageID, rq.target, "C-MOVE", hooks); !sent) {
    return tl::unexpected(sent.error());
  }
  return Follow(**a, pres, req.MessageID, false, nullptr, rq.peer, rq.inactivity_seconds, hooks);
}

}  // namespace pb::dicom
