#include "dicom/store_scu.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmnet/diutil.h>
#include <fmt/format.h>

#include "core/files.h"
#include "dicom/condition.h"
#include "dicom/header_scan.h"
#include "dicom/pdv_write.h"
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

// A stored file whose data set goes on the wire as its bytes are: [begin, end) of the file.
struct StoredDataSet {
  UniqueFd fd;
  off_t begin = 0, end = 0;  // the data set's bytes in the file
};

// The item's file, when its data set can go as it is stored: a regular file of the size the
// index has, whose meta header reads and names the syntax the index has (the context was
// chosen for that syntax). nullopt otherwise: DCMTK then parses the file and sends what it
// reads, or says what is wrong with it, as for a converted instance.
std::optional<StoredDataSet> OpenAsStored(const SendItem& it) {
  StoredDataSet file{UniqueFd(::open(it.path.c_str(), O_RDONLY | O_CLOEXEC))};
  if (!file.fd) return std::nullopt;
  const int fd = file.fd.get();
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (it.bytes > 0 && st.st_size != it.bytes)) return std::nullopt;
  char head[8192];  // meta headers are a few hundred bytes; a longer one goes the DCMTK way
  const ssize_t n = ::pread(fd, head, std::min<size_t>(sizeof head, static_cast<size_t>(st.st_size)), 0);
  if (n <= 0) return std::nullopt;
  auto meta = ScanMetaHeader(std::string_view(head, static_cast<size_t>(n)));
  // An odd length is a deflated data set stored without its pad byte (PS3.5 A.5): DCMTK's
  // sender adds it, and a DCMTK receiver refuses a PDV of odd length.
  if (!meta || meta->transfer_syntax_uid != it.transfer_syntax_uid ||
      static_cast<off_t>(meta->data_set_offset) >= st.st_size || (st.st_size - meta->data_set_offset) % 2 != 0) {
    return std::nullopt;
  }
  file.begin = static_cast<off_t>(meta->data_set_offset);
  file.end = st.st_size;
  return file;
}

// The C-STORE-RQ command set (PS3.7 9.3.1.1).
OFCondition SendStoreCommand(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, const T_DIMSE_C_StoreRQ& rq) {
  DcmDataset cmd;
  OFCondition c = cmd.putAndInsertString(DCM_AffectedSOPClassUID, rq.AffectedSOPClassUID);
  if (c.good()) c = cmd.putAndInsertUint16(DCM_CommandField, DIMSE_C_STORE_RQ);
  if (c.good()) c = cmd.putAndInsertUint16(DCM_MessageID, rq.MessageID);
  if (c.good()) c = cmd.putAndInsertUint16(DCM_Priority, static_cast<Uint16>(rq.Priority));
  if (c.good()) c = cmd.putAndInsertUint16(DCM_CommandDataSetType, static_cast<Uint16>(DIMSE_DATASET_PRESENT));
  if (c.good()) c = cmd.putAndInsertString(DCM_AffectedSOPInstanceUID, rq.AffectedSOPInstanceUID);
  if (c.good() && (rq.opts & O_STORE_MOVEORIGINATORAETITLE)) {
    // Without the padding an AE title may come with, as DCMTK's own command builder puts it.
    std::string ae = rq.MoveOriginatorApplicationEntityTitle;
    ae.erase(ae.find_last_not_of(' ') + 1);
    ae.erase(0, std::min(ae.find_first_not_of(' '), ae.size()));
    c = cmd.putAndInsertString(DCM_MoveOriginatorApplicationEntityTitle, ae.c_str());
  }
  if (c.good() && (rq.opts & O_STORE_MOVEORIGINATORID)) {
    c = cmd.putAndInsertUint16(DCM_MoveOriginatorMessageID, rq.MoveOriginatorID);
  }
  if (c.bad()) return c;
  return WriteCommand(assoc, pres, cmd);
}

// The data set, in PDVs as long as DCMTK's own (what the peer's maximum PDU allows), read from
// the file, one PDU per write. `file_fault` says what went wrong with the stored file itself
// (cut short while being sent); the association cannot go on either way.
OFCondition SendStoredDataSet(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, const StoredDataSet& file,
                              std::string& file_fault) {
  unsigned long room = assoc->sendPDVLength;
  const unsigned long max_pdu = dcmMaxOutgoingPDUSize.get();
  if (room + kPduHead > max_pdu) room = max_pdu - kPduHead;
  room &= ~1UL;
  // One PDU's worth, kept by the thread: a buffer of 128 KB or more is mapped and unmapped by
  // malloc each time.
  thread_local std::vector<unsigned char> pdu;
  if (pdu.size() < kPduHead + room) pdu.resize(kPduHead + room);
  for (off_t at = file.begin; at < file.end;) {
    const size_t want = static_cast<size_t>(std::min<off_t>(static_cast<off_t>(room), file.end - at));
    size_t got = 0;  // the whole PDV (an even length), however the reads fall
    while (got < want) {
      const ssize_t n = ::pread(file.fd.get(), pdu.data() + kPduHead + got, want - got, at + static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        // The association is in the middle of a data set: it cannot go on. A file shorter than
        // when it was opened is the instance's own fault; a read error may pass (the storage).
        const off_t pos = at + static_cast<off_t>(got);
        if (n < 0) {
          const std::string why =
              fmt::format("the stored file could not be read at byte {}: {}", pos, std::strerror(errno));
          return makeOFCondition(OFM_dcmnet, DIMSEC_SENDFAILED, OF_error, why.c_str());
        }
        file_fault = fmt::format(
            "the stored file ended at byte {} of {} while being sent: it was changed outside "
            "the server",
            pos, file.end);
        return makeOFCondition(OFM_dcmnet, DIMSEC_SENDFAILED, OF_error, "the stored file ended early");
      }
      got += static_cast<size_t>(n);
    }
    at += static_cast<off_t>(got);
    OFCondition c = WritePdv(assoc, pres, DUL_DATASETPDV, pdu.data(), static_cast<unsigned long>(got), at >= file.end);
    if (c.bad()) return c;
  }
  return EC_Normal;
}

// What DIMSE_storeUser does once the request is out: wait for the C-STORE-RSP, noting a
// C-CANCEL-RQ that comes first when `cancel` is given (a C-GET's caller may send one).
OFCondition AwaitStoreResponse(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, const T_DIMSE_C_StoreRQ& rq,
                               T_DIMSE_C_StoreRSP& rsp, DcmDataset** detail, T_DIMSE_DetectedCancelParameters* cancel) {
  if (cancel) cancel->cancelEncountered = OFFalse;
  while (true) {
    T_DIMSE_Message msg{};
    T_ASC_PresentationContextID on = pres;
    OFCondition c = DIMSE_receiveCommand(assoc, DIMSE_BLOCKING, 0, &on, &msg, detail);
    if (c.bad()) return c;
    if (cancel && msg.CommandField == DIMSE_C_CANCEL_RQ) {
      cancel->cancelEncountered = OFTrue;
      cancel->req = msg.msg.CCancelRQ;
      cancel->presId = on;
      delete *detail;  // what a C-CANCEL-RQ carried beyond its command: not the response's
      *detail = nullptr;
      continue;
    }
    if (msg.CommandField != DIMSE_C_STORE_RSP) {
      return makeOFCondition(
          OFM_dcmnet, DIMSEC_UNEXPECTEDRESPONSE, OF_error,
          fmt::format("the peer answered a C-STORE with command 0x{:04X}", static_cast<unsigned>(msg.CommandField))
              .c_str());
    }
    rsp = msg.msg.CStoreRSP;
    if (rsp.MessageIDBeingRespondedTo != rq.MessageID) {
      return makeOFCondition(
          OFM_dcmnet, DIMSEC_UNEXPECTEDRESPONSE, OF_error,
          fmt::format("the peer answered message {} where {} was awaited", rsp.MessageIDBeingRespondedTo, rq.MessageID)
              .c_str());
    }
    return EC_Normal;
  }
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
  if (it.sop_uid.empty() || it.sop_uid.size() > 64) {  // PS3.5 9.1: at most 64 characters
    o.status = SendStatus::kFailed;
    o.reason = "the instance has no valid SOP Instance UID";
    return o;
  }
  struct stat st {};
  if (::access(it.path.c_str(), R_OK) != 0 || ::stat(it.path.c_str(), &st) != 0) {
    // Caught before the command goes out: DCMTK would send it and then break the association
    // when the data set cannot be read.
    o.status = SendStatus::kFailed;
    o.reason = fmt::format("cannot read the stored file {}: {}", it.path, std::strerror(errno));
    return o;
  }
  if (it.bytes > 0 && st.st_size != it.bytes) {
    // Cut between two elements, such a file would still parse, and go out as a smaller instance.
    o.status = SendStatus::kFailed;
    o.transient = false;
    o.reason = fmt::format("the stored file {} is {} bytes, {} when it was indexed: it was changed outside the server",
                           it.path, st.st_size, it.bytes);
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
  std::string file_fault;
  std::optional<StoredDataSet> stored = route.convert_to.empty() ? OpenAsStored(it) : std::nullopt;
  if (stored) {
    // Unchanged: the data set goes from the file as it is stored, byte for byte (DCMTK would
    // parse it and write it again, turning sequences of undefined length into defined ones).
    req.DataSetType = DIMSE_DATASET_PRESENT;
    cond = SendStoreCommand(assoc, route.pres, req);
    if (cond.good()) cond = SendStoredDataSet(assoc, route.pres, *stored, file_fault);
    if (cond.good()) cond = AwaitStoreResponse(assoc, route.pres, req, rsp, &detail, opt.cancel);
  } else {
    // Converted, or unchanged but not a file we send ourselves: DCMTK reads it here, so that a
    // file it cannot read fails alone, before the command goes out.
    DcmFileFormat file;
    OFCondition loaded = file.loadFile(it.path.c_str());
    Result<void> ready =
        loaded.good()
            ? Result<void>{}
            : Fail(Code::kIoError, fmt::format("cannot read the stored file {}: {}", it.path, ConditionText(loaded)));
    if (ready && !route.convert_to.empty())
      ready = Transcode(*file.getDataset(), it.transfer_syntax_uid, route.convert_to);
    if (!ready && loaded.bad()) {
      // Its size is the indexed one: an error of the storage, which may pass, or a file damaged
      // in place. Not confirmed either way; nothing has gone out, the association goes on.
      o.reason = ready.error().message;
      return o;
    }
    if (!ready) {
      o.status = SendStatus::kFailed;
      o.transient = false;
      o.reason = ready.error().message;
      return o;
    }
    cond = DIMSE_storeUser(assoc, route.pres, &req, nullptr, file.getDataset(), nullptr, nullptr, DIMSE_BLOCKING, 0,
                           &rsp, &detail, opt.cancel);
  }
  std::unique_ptr<DcmDataset> owned(detail);
  if (cond.bad()) {
    broke = ConditionText(cond);
    if (!file_fault.empty()) {
      // The instance's own file failed: it fails alone, though the association it was on is lost.
      o.status = SendStatus::kFailed;
      o.transient = false;
      o.reason = fmt::format("{}: {}", it.path, file_fault);
    }
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
  const StoreOptions opt{rq.preferred_transfer_syntax, rq.allow_lossy, rq.move_originator_ae, rq.move_originator_id};
  for (size_t i = 0; i < rq.items.size(); ++i) {
    if (hooks.cancel_requested && hooks.cancel_requested()) break;
    std::string broke;
    out[i] = StoreOne((*a)->get(), rq.items[i], opt, broke);
    if (!broke.empty() && out[i].status == SendStatus::kFailed) {
      // Its stored file failed mid-data-set: the peer keeps nothing of an aborted association,
      // and the rest goes on a new one.
      (*a)->Abort();
      if (hooks.on_instance) hooks.on_instance(i, out[i]);
      if (i + 1 == rq.items.size() || (hooks.cancel_requested && hooks.cancel_requested())) return out;
      a = Associate(rq.peer, Contexts(rq, keep));
      if (!a) {
        for (size_t j = i + 1; j < out.size(); ++j) {
          out[j].reason = fmt::format("not sent: {}", a.error().message);
          out[j].never_sent = true;
          out[j].transient = IsTransient(a.error().code);
        }
        return out;
      }
      continue;
    }
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
