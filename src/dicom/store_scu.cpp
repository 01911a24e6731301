#include "dicom/store_scu.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <set>

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmnet/diutil.h>
#include <fmt/format.h>

#include "dicom/condition.h"
#include "dicom/scu.h"
#include "dicom/store_scu_impl.h"
#include "dicom/transcode.h"

namespace pb::dicom {
namespace {

constexpr size_t kMaxContexts = 128;

std::string Name(const std::string& ts) {
  DcmXfer x(ts.c_str());
  return x.getXfer() == EXS_Unknown ? ts : std::string(x.getXferName());
}

bool IsWarning(int s) { return (s & 0xF000) == 0xB000; }

// What we can turn data into, in the order we would rather send it (after its own syntax and
// the preferred one): uncompressed, then lossless compression, then lossy when allowed.
std::vector<std::string> Targets(bool allow_lossy) {
  std::vector<std::string> t{UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax,
                             UID_JPEGLSLosslessTransferSyntax, UID_JPEGProcess14SV1TransferSyntax,
                             UID_RLELosslessTransferSyntax};
  if (allow_lossy) {
    t.insert(t.end(),
             {UID_JPEGLSLossyTransferSyntax, UID_JPEGProcess1TransferSyntax, UID_JPEGProcess2_4TransferSyntax});
  }
  return t;
}

// The contexts for the items' SOP classes, one syntax per context: per class its stored
// syntaxes, the preferred one, then what we can convert to, as far as 128 contexts allow.
// `keep` owns the strings proposed.
std::vector<ProposedContext> Contexts(const SendRequest& rq, std::list<std::string>& keep) {
  std::map<std::string, std::vector<std::string>> by_class;
  for (const SendItem& it : rq.items) {
    auto& list = by_class[it.sop_class_uid];
    if (std::find(list.begin(), list.end(), it.transfer_syntax_uid) == list.end()) {
      list.push_back(it.transfer_syntax_uid);
    }
  }
  std::vector<std::string> extra;
  if (!rq.preferred_transfer_syntax.empty()) extra.push_back(rq.preferred_transfer_syntax);
  for (const auto& t : Targets(rq.allow_lossy)) extra.push_back(t);
  const size_t per_class = std::max<size_t>(1, kMaxContexts / std::max<size_t>(1, by_class.size()));
  std::vector<ProposedContext> out;
  for (auto& [cls, list] : by_class) {
    for (const auto& t : extra) {
      if (list.size() >= per_class) break;
      if (std::find(list.begin(), list.end(), t) == list.end()) list.push_back(t);
    }
    const char* abstract = keep.emplace_back(cls).c_str();
    for (const auto& ts : list) {
      if (out.size() < kMaxContexts) out.push_back({abstract, {keep.emplace_back(ts).c_str()}});
    }
  }
  return out;
}

// The accepted context to send an item on, and the syntax it must be converted to (empty:
// unchanged); pres 0 if none will do.
struct Route {
  T_ASC_PresentationContextID pres = 0;
  std::string convert_to;
};

Route RouteFor(T_ASC_Association* assoc, const SendItem& it, const StoreOptions& rq) {
  std::map<std::string, T_ASC_PresentationContextID> accepted;  // syntax → context
  for (int i = 0; i < ASC_countPresentationContexts(assoc->params); ++i) {
    T_ASC_PresentationContext pc;
    if (ASC_getPresentationContext(assoc->params, i, &pc).good() && pc.resultReason == ASC_P_ACCEPTANCE &&
        it.sop_class_uid == pc.abstractSyntax &&
        (!rq.on_callers_association || pc.acceptedRole == ASC_SC_ROLE_SCP || pc.acceptedRole == ASC_SC_ROLE_SCUSCP)) {
      accepted.emplace(pc.acceptedTransferSyntax, pc.presentationContextID);
    }
  }
  if (auto e = accepted.find(it.transfer_syntax_uid); e != accepted.end()) return {e->second, ""};
  std::vector<std::string> order;
  if (!rq.preferred_transfer_syntax.empty()) order.push_back(rq.preferred_transfer_syntax);
  for (const auto& t : Targets(rq.allow_lossy)) order.push_back(t);
  for (const auto& t : order) {
    auto c = accepted.find(t);
    if (c != accepted.end() && CanConvert(it.transfer_syntax_uid, t, rq.allow_lossy)) return {c->second, t};
  }
  return {};
}

std::vector<std::string> AcceptedSyntaxes(T_ASC_Association* assoc, const std::string& sop_class) {
  std::vector<std::string> names;
  for (int i = 0; i < ASC_countPresentationContexts(assoc->params); ++i) {
    T_ASC_PresentationContext pc;
    if (ASC_getPresentationContext(assoc->params, i, &pc).good() && pc.resultReason == ASC_P_ACCEPTANCE &&
        sop_class == pc.abstractSyntax) {
      names.push_back(Name(pc.acceptedTransferSyntax));
    }
  }
  return names;
}

std::string NoRouteReason(T_ASC_Association* assoc, const SendItem& it, bool allow_lossy) {
  const char* cls = dcmFindNameOfUID(it.sop_class_uid.c_str(), it.sop_class_uid.c_str());
  auto names = AcceptedSyntaxes(assoc, it.sop_class_uid);
  if (names.empty()) return fmt::format("the peer does not accept {} at all (it refused the SOP class)", cls);
  return fmt::format(
      "the peer does not accept {} in {}, and it cannot be converted to what the peer "
      "accepts (it accepts {}){}",
      cls, Name(it.transfer_syntax_uid), fmt::join(names, ", "),
      allow_lossy || IsLossy(it.transfer_syntax_uid)
          ? ""
          : "; lossy syntaxes were not offered: the node's allow_lossy_compression is off");
}

}  // namespace

SendOutcome StoreOne(T_ASC_Association* assoc, const SendItem& it, const StoreOptions& opt, std::string& broke) {
  SendOutcome o;
  Route route = RouteFor(assoc, it, opt);
  if (!route.pres) {
    o.status = SendStatus::kFailed;
    o.reason = NoRouteReason(assoc, it, opt.allow_lossy);
    return o;
  }
  if (::access(it.path.c_str(), R_OK) != 0) {
    // Caught before the command goes out: DCMTK would send it and then break the association
    // when the data set cannot be read.
    o.status = SendStatus::kFailed;
    o.reason = fmt::format("cannot read the stored file {}: {}", it.path, std::strerror(errno));
    return o;
  }
  T_DIMSE_C_StoreRQ req{};
  req.MessageID = assoc->nextMsgID++;
  OFStandard::strlcpy(req.AffectedSOPClassUID, it.sop_class_uid.c_str(), sizeof req.AffectedSOPClassUID);
  OFStandard::strlcpy(req.AffectedSOPInstanceUID, it.sop_uid.c_str(), sizeof req.AffectedSOPInstanceUID);
  req.DataSetType = DIMSE_DATASET_PRESENT;
  req.Priority = DIMSE_PRIORITY_MEDIUM;
  if (!opt.move_originator_ae.empty()) {
    // A sub-operation of a C-MOVE (PS3.7 9.1.1.1): who asked for it, and in which request.
    OFStandard::strlcpy(req.MoveOriginatorApplicationEntityTitle, opt.move_originator_ae.c_str(),
                        sizeof req.MoveOriginatorApplicationEntityTitle);
    req.MoveOriginatorID = opt.move_originator_id;
    req.opts = O_STORE_MOVEORIGINATORAETITLE | O_STORE_MOVEORIGINATORID;
  }
  T_DIMSE_C_StoreRSP rsp{};
  DcmDataset* detail = nullptr;
  OFCondition cond;
  if (route.convert_to.empty()) {
    // Unchanged: the data set streams from the file.
    cond = DIMSE_storeUser(assoc, route.pres, &req, it.path.c_str(), nullptr, nullptr, nullptr, DIMSE_BLOCKING, 0, &rsp,
                           &detail, opt.cancel);
  } else {
    DcmFileFormat file;
    Result<void> converted = file.loadFile(it.path.c_str()).good()
                                 ? Transcode(*file.getDataset(), it.transfer_syntax_uid, route.convert_to)
                                 : Fail(Code::kIoError, fmt::format("cannot read the stored file {}", it.path));
    if (!converted) {
      o.status = SendStatus::kFailed;
      o.reason = converted.error().message;
      return o;
    }
    cond = DIMSE_storeUser(assoc, route.pres, &req, nullptr, file.getDataset(), nullptr, nullptr, DIMSE_BLOCKING, 0,
                           &rsp, &detail, opt.cancel);
  }
  std::unique_ptr<DcmDataset> owned(detail);
  if (cond.bad()) {
    broke = ConditionText(cond);
    return o;
  }
  o.dimse_status = rsp.DimseStatus;
  if (rsp.DimseStatus == 0x0000) {
    o.status = SendStatus::kSuccess;
  } else if (IsWarning(rsp.DimseStatus)) {
    o.status = SendStatus::kWarning;
    o.reason = StoreStatusText(rsp.DimseStatus);
  } else {
    o.status = SendStatus::kFailed;
    OFString comment;
    if (owned) owned->findAndGetOFString(DCM_ErrorComment, comment);
    o.reason = StoreStatusText(rsp.DimseStatus) + (comment.empty() ? "" : ": " + std::string(comment.c_str()));
  }
  return o;
}

std::string StoreStatusText(int status) {
  const char* text = DU_cstoreStatusString(static_cast<Uint16>(status));
  return fmt::format("0x{:04X} ({})", status, text ? text : "unknown status");
}

[[nodiscard]] Result<std::vector<SendOutcome>> SendInstances(const SendRequest& rq, const SendHooks& hooks) {
  std::vector<SendOutcome> out(rq.items.size());
  if (rq.items.empty()) return out;
  std::list<std::string> keep;  // stable addresses for the proposed UIDs
  auto a = Associate(rq.peer, Contexts(rq, keep));
  if (!a) return tl::unexpected(a.error());
  T_ASC_Association* assoc = (*a)->get();
  const StoreOptions opt{rq.preferred_transfer_syntax, rq.allow_lossy, rq.move_originator_ae, rq.move_originator_id};
  for (size_t i = 0; i < rq.items.size(); ++i) {
    if (hooks.cancel_requested && hooks.cancel_requested()) break;
    std::string broke;
    out[i] = StoreOne(assoc, rq.items[i], opt, broke);
    if (!broke.empty()) {
      out[i].reason = fmt::format("the association with {} broke: {}", (*a)->where(), broke);
      out[i].broke_here = true;
      (*a)->Abort();
      for (size_t j = i + 1; j < out.size(); ++j) {
        out[j].reason = "not sent: the association broke before";
        out[j].never_sent = true;
      }
      return out;
    }
    if (hooks.on_instance) hooks.on_instance(i, out[i]);
  }
  (*a)->Release();
  return out;
}

}  // namespace pb::dicom
