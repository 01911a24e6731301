#include "dicom/store_scu.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmnet/diutil.h>
#include <fmt/format.h>

#include "dicom/scu.h"

namespace pb::dicom {
namespace {

constexpr size_t kMaxContexts = 128;

bool Uncompressed(const std::string& ts) {
  return ts == UID_LittleEndianExplicitTransferSyntax || ts == UID_LittleEndianImplicitTransferSyntax ||
         ts == UID_BigEndianExplicitTransferSyntax;
}

std::string Name(const std::string& ts) {
  DcmXfer x(ts.c_str());
  return x.getXfer() == EXS_Unknown ? ts : std::string(x.getXferName());
}

bool IsWarning(int s) { return s == 0xB000 || s == 0xB006 || s == 0xB007 || (s & 0xF000) == 0xB000; }

// The contexts for the items' SOP classes: per class, its stored syntaxes, the preferred one,
// Explicit and Implicit LE; one syntax per context. `keep` owns the strings proposed.
std::vector<ProposedContext> Contexts(const SendRequest& rq, std::vector<std::string>& keep) {
  std::map<std::string, std::vector<std::string>> by_class;
  for (const SendItem& it : rq.items) {
    auto& list = by_class[it.sop_class_uid];
    if (std::find(list.begin(), list.end(), it.transfer_syntax_uid) == list.end()) {
      list.push_back(it.transfer_syntax_uid);
    }
  }
  for (auto& [cls, list] : by_class) {
    for (const std::string& ts : {rq.preferred_transfer_syntax, std::string(UID_LittleEndianExplicitTransferSyntax),
                                  std::string(UID_LittleEndianImplicitTransferSyntax)}) {
      if (!ts.empty() && std::find(list.begin(), list.end(), ts) == list.end()) list.push_back(ts);
    }
  }
  keep.clear();
  for (auto& [cls, list] : by_class) {
    keep.push_back(cls);
    for (auto& ts : list) keep.push_back(ts);
  }
  std::vector<ProposedContext> out;
  size_t k = 0;
  for (auto& [cls, list] : by_class) {
    const char* abstract = keep[k++].c_str();
    for (size_t i = 0; i < list.size(); ++i, ++k) {
      if (out.size() < kMaxContexts) out.push_back({abstract, {keep[k].c_str()}});
    }
  }
  return out;
}

// The accepted context to send an item on, and whether it needs converting; 0 if none.
struct Route {
  T_ASC_PresentationContextID pres = 0;
  bool convert = false;
  std::string accepted;
};

Route RouteFor(T_ASC_Association* assoc, const SendItem& it, const std::string& preferred) {
  Route exact, uncompressed;
  for (int i = 0; i < ASC_countPresentationContexts(assoc->params); ++i) {
    T_ASC_PresentationContext pc;
    if (ASC_getPresentationContext(assoc->params, i, &pc).bad() || pc.resultReason != ASC_P_ACCEPTANCE ||
        it.sop_class_uid != pc.abstractSyntax) {
      continue;
    }
    std::string ts = pc.acceptedTransferSyntax;
    if (ts == it.transfer_syntax_uid) exact = {pc.presentationContextID, false, ts};
    if (Uncompressed(it.transfer_syntax_uid) && Uncompressed(ts) &&
        (!uncompressed.pres || ts == preferred || ts == UID_LittleEndianExplicitTransferSyntax)) {
      uncompressed = {pc.presentationContextID, true, ts};
    }
  }
  if (exact.pres) return exact;
  return uncompressed;
}

std::string AcceptedFor(T_ASC_Association* assoc, const std::string& sop_class) {
  std::vector<std::string> names;
  for (int i = 0; i < ASC_countPresentationContexts(assoc->params); ++i) {
    T_ASC_PresentationContext pc;
    if (ASC_getPresentationContext(assoc->params, i, &pc).good() && pc.resultReason == ASC_P_ACCEPTANCE &&
        sop_class == pc.abstractSyntax) {
      names.push_back(Name(pc.acceptedTransferSyntax));
    }
  }
  return names.empty() ? "the SOP class itself was refused" : fmt::format("it accepts {}", fmt::join(names, ", "));
}

}  // namespace

std::string StoreStatusText(int status) {
  const char* text = DU_cstoreStatusString(static_cast<Uint16>(status));
  return fmt::format("0x{:04X} ({})", status, text ? text : "unknown status");
}

Result<std::vector<SendOutcome>> SendInstances(const SendRequest& rq, const SendHooks& hooks) {
  std::vector<SendOutcome> out(rq.items.size());
  if (rq.items.empty()) return out;
  std::vector<std::string> keep;
  auto a = Associate(rq.peer, Contexts(rq, keep));
  if (!a) return tl::unexpected(a.error());
  T_ASC_Association* assoc = (*a)->get();
  for (size_t i = 0; i < rq.items.size(); ++i) {
    if (hooks.cancel_requested && hooks.cancel_requested()) break;
    const SendItem& it = rq.items[i];
    SendOutcome& o = out[i];
    Route route = RouteFor(assoc, it, rq.preferred_transfer_syntax);
    if (!route.pres) {
      o.status = SendStatus::kFailed;
      o.reason = fmt::format("the peer does not accept {} in {} ({}); this version does not "
                             "transcode compressed data",
                             dcmFindNameOfUID(it.sop_class_uid.c_str(), it.sop_class_uid.c_str()),
                             Name(it.transfer_syntax_uid), AcceptedFor(assoc, it.sop_class_uid));
      if (hooks.on_instance) hooks.on_instance(i, o);
      continue;
    }
    T_DIMSE_C_StoreRQ req{};
    req.MessageID = assoc->nextMsgID++;
    OFStandard::strlcpy(req.AffectedSOPClassUID, it.sop_class_uid.c_str(), sizeof req.AffectedSOPClassUID);
    OFStandard::strlcpy(req.AffectedSOPInstanceUID, it.sop_uid.c_str(), sizeof req.AffectedSOPInstanceUID);
    req.DataSetType = DIMSE_DATASET_PRESENT;
    req.Priority = DIMSE_PRIORITY_MEDIUM;
    T_DIMSE_C_StoreRSP rsp{};
    DcmDataset* detail = nullptr;
    OFCondition cond;
    if (!route.convert) {
      // Unchanged: the data set streams from the file.
      cond = DIMSE_storeUser(assoc, route.pres, &req, it.path.c_str(), nullptr, nullptr, nullptr,
                             DIMSE_BLOCKING, 0, &rsp, &detail);
    } else {
      DcmFileFormat file;
      if (file.loadFile(it.path.c_str()).bad()) {
        o.status = SendStatus::kFailed;
        o.reason = fmt::format("cannot read the stored file {}", it.path);
        if (hooks.on_instance) hooks.on_instance(i, o);
        continue;
      }
      cond = DIMSE_storeUser(assoc, route.pres, &req, nullptr, file.getDataset(), nullptr, nullptr,
                             DIMSE_BLOCKING, 0, &rsp, &detail);
    }
    std::unique_ptr<DcmDataset> owned(detail);
    if (cond.bad()) {
      o.reason = fmt::format("the association with {} broke: {}", (*a)->where(), cond.text());
      (*a)->Abort();
      for (size_t j = i + 1; j < out.size(); ++j) out[j].reason = "not sent: the association broke before";
      return out;
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
    if (hooks.on_instance) hooks.on_instance(i, o);
  }
  (*a)->Release();
  return out;
}

}  // namespace pb::dicom
