#include "dicom/query_scp.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <thread>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/dimse.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "dicom/charset.h"
#include "dicom/find_impl.h"
#include "dicom/matching.h"
#include "dicom/query_scp_impl.h"

namespace pb::dicom {

const char* const kPatientRootFind = UID_FINDPatientRootQueryRetrieveInformationModel;
const char* const kStudyRootFind = UID_FINDStudyRootQueryRetrieveInformationModel;

namespace {

constexpr uint16_t kPending = 0xFF00;
constexpr uint16_t kPendingUnsupportedKeys = 0xFF01;
constexpr uint16_t kIdentifierDoesNotMatch = 0xA900;
constexpr uint16_t kUnableToProcess = 0xC000;

// Test-only: PACSBRIDGE_TEST_FIND_DELAY_MS paces pending answers, so that a test can send its
// C-CANCEL while answers are still to come (they otherwise all leave within microseconds).
std::chrono::milliseconds TestAnswerDelay() {
  static const std::chrono::milliseconds delay = [] {
    const char* v = std::getenv("PACSBRIDGE_TEST_FIND_DELAY_MS");
    return std::chrono::milliseconds(v ? std::clamp(std::atoi(v), 0, 5000) : 0);
  }();
  return delay;
}

bool IsAscii(const std::string& s) {
  for (unsigned char c : s) {
    if (c >= 0x80) return false;
  }
  return true;
}

struct FindState {
  QuerySink& sink;
  FindQuery rq;
  Identifier id;
  FindPage page;
  size_t next = 0, offset = 0;
  uint16_t fail_status = 0;
  std::string fail_comment;
  int answered = 0;
  bool cancelled = false;

  bool Parse(const std::string& sop_class, DcmDataset* identifier);
  void Fail(const Error& e);
  DcmDataset* Answer(const std::map<std::string, std::string>& values);
};

bool FindState::Parse(const std::string& sop_class, DcmDataset* identifier) {
  rq.patient_root = sop_class == kPatientRootFind;
  if (!ReadIdentifier(identifier, rq.patient_root, id, fail_status, fail_comment)) return false;
  rq.level = id.level;
  rq.keys = id.keys;
  return true;
}

void FindState::Fail(const Error& e) {
  fail_comment = e.message;
  fail_status = FailureStatus(e);
}

DcmDataset* FindState::Answer(const std::map<std::string, std::string>& values) {
  auto out = std::make_unique<DcmDataset>();
  bool ascii = true;
  out->putAndInsertString(DCM_QueryRetrieveLevel, rq.level.c_str());
  for (const IdentifierKey& key : id.elements) {
    if (key.sequence) {
      out->insertEmptyElement(key.tag);
      continue;
    }
    std::string value;
    if (key.tag == DCM_RetrieveAETitle) {
      value = rq.called_ae;
    } else if (key.tag == DCM_InstanceAvailability) {
      value = "ONLINE";
    } else if (auto it = values.find(key.keyword); it != values.end()) {
      value = it->second;
    }
    ascii = ascii && IsAscii(value);
    if (out->putAndInsertString(key.tag, value.c_str()).bad()) out->insertEmptyElement(key.tag);
  }
  const std::string& declared = id.declared;
  if (ascii) {
    if (!declared.empty()) out->putAndInsertString(DCM_SpecificCharacterSet, declared.c_str());
    return out.release();
  }
  out->putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 192");
  // The caller's own character set when every value fits it (one without code extensions).
  if (!declared.empty() && declared != "ISO_IR 192" && declared.find('\\') == std::string::npos) {
    DcmDataset converted(*out);
    if (converted.convertCharacterSet("ISO_IR 192", declared.c_str(), 0, OFTrue).good()) {
      return new DcmDataset(converted);
    }
  }
  return out.release();
}

// The next response: its status, and the answer or the status detail it carries.
void Next(FindState& st, uint16_t& status, std::unique_ptr<DcmDataset>& answer, std::unique_ptr<DcmDataset>& detail) {
  try {
    if (st.fail_status == 0 && st.next == st.page.answers.size() && st.page.more) {
      st.offset += st.page.answers.size();
      st.next = 0;
      auto page = st.sink.Find(st.rq, st.offset);
      if (page)
        st.page = std::move(*page);
      else
        st.Fail(page.error());
    }
    if (st.fail_status != 0) {
      status = st.fail_status;
      detail = std::make_unique<DcmDataset>();
      detail->putAndInsertString(DCM_ErrorComment, st.fail_comment.substr(0, 64).c_str());
      return;
    }
    if (st.next < st.page.answers.size()) {
      if (st.answered > 0 && TestAnswerDelay().count() > 0) std::this_thread::sleep_for(TestAnswerDelay());
      answer.reset(st.Answer(st.page.answers[st.next++]));
      status = st.page.unsupported ? kPendingUnsupportedKeys : kPending;
      return;
    }
    status = STATUS_Success;
  } catch (const std::exception&) {
    // Nothing thrown may leave an association thread: the query ends as unable to process.
    st.fail_status = status = kUnableToProcess;
    st.fail_comment = "internal error";
    answer.reset();
  }
}

}  // namespace

OFCondition ReceiveIdentifier(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, int timeout_seconds,
                              std::unique_ptr<DcmDataset>& identifier) {
  DcmDataset* received = nullptr;
  T_ASC_PresentationContextID data_pres = 0;
  OFCondition cond =
      DIMSE_receiveDataSetInMemory(assoc, DIMSE_NONBLOCKING, timeout_seconds, &data_pres, &received, nullptr, nullptr);
  identifier.reset(received);
  if (cond.bad()) return cond;
  if (data_pres != pres) {
    return makeDcmnetCondition(DIMSEC_INVALIDPRESENTATIONCONTEXTID, OF_error,
                               "the identifier came on another presentation context than its command");
  }
  return cond;
}

uint16_t FailureStatus(const Error& e, uint16_t out_of_resources) {
  switch (e.code) {
    case Code::kInvalidArgument:
      return kIdentifierDoesNotMatch;
    case Code::kUnavailable:
    case Code::kAborted:
    case Code::kIoError:
    case Code::kOutOfSpace:
      return out_of_resources;
    default:
      return kUnableToProcess;
  }
}

bool ReadIdentifier(DcmDataset* identifier, bool patient_root, Identifier& out, uint16_t& status,
                    std::string& comment) {
  if (!identifier) {
    status = kIdentifierDoesNotMatch;
    comment = "the request carries no identifier";
    return false;
  }
  DcmDataset copy(*identifier);
  OFString charset;
  copy.findAndGetOFStringArray(DCM_SpecificCharacterSet, charset);
  out.declared = charset.c_str();
  std::string problem;
  if (!ToUtf8(copy, &problem)) {
    status = kUnableToProcess;
    comment = fmt::format("cannot read the identifier: {}", problem);
    return false;
  }
  OFString level;
  copy.findAndGetOFString(DCM_QueryRetrieveLevel, level);
  out.level = level.c_str();
  if (out.level != "PATIENT" && out.level != "STUDY" && out.level != "SERIES" && out.level != "IMAGE") {
    status = kIdentifierDoesNotMatch;
    comment = fmt::format("QueryRetrieveLevel '{}' is not PATIENT, STUDY, SERIES or IMAGE", out.level);
    return false;
  }
  if (out.level == "PATIENT" && !patient_root) {
    status = kIdentifierDoesNotMatch;
    comment = "PATIENT level needs the Patient Root model";
    return false;
  }
  for (unsigned long k = 0; k < copy.card(); ++k) {
    DcmElement* e = copy.getElement(k);
    const DcmTagKey tag = e->getTag();
    if (tag == DCM_SpecificCharacterSet || tag == DCM_QueryRetrieveLevel) continue;
    if (tag.getElement() == 0) continue;  // group lengths
    IdentifierKey key{tag, KeywordOf(tag), e->ident() == EVR_SQ};
    OFString value;
    if (!key.sequence) e->getOFStringArray(value);
    // A malformed date, time or UID is refused with what was expected, rather than matching
    // nothing (a lone "*" is taken as universal matching, as some callers send it).
    if (!key.sequence && value != "*") {
      // By the dictionary's VR, not the one on the wire: a UID sent as LO is still a UID.
      if (auto ok = CheckMatchingValue(key.keyword, DcmTag(tag).getVR().getVRName(), value.c_str()); !ok) {
        status = kIdentifierDoesNotMatch;
        comment = ok.error().message;
        return false;
      }
    }
    out.keys.emplace_back(key.keyword, value.c_str());
    out.elements.push_back(std::move(key));
  }
  return true;
}

OFCondition AnswerFind(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, T_DIMSE_C_FindRQ& request,
                       QuerySink& sink, const FindContext& ctx) {
  FindState st{sink, {}, {}, {}, 0, 0, 0, {}, 0, false};
  st.rq.calling_ae = ctx.calling_ae;
  st.rq.called_ae = ctx.called_ae;
  st.rq.peer = ctx.peer;
  std::unique_ptr<DcmDataset> identifier;
  OFCondition cond = ReceiveIdentifier(assoc, pres, ctx.dimse_timeout_seconds, identifier);
  if (cond.bad()) return cond;
  if (st.Parse(request.AffectedSOPClassUID, identifier.get())) {
    auto page = sink.Find(st.rq, 0);
    if (page)
      st.page = std::move(*page);
    else
      st.Fail(page.error());
  }
  while (true) {
    T_DIMSE_C_FindRSP rsp{};
    std::unique_ptr<DcmDataset> answer, detail;
    Next(st, rsp.DimseStatus, answer, detail);
    if (DICOM_PENDING_STATUS(rsp.DimseStatus)) {
      // A C-CANCEL that came meanwhile ends the answers here (PS3.4 C.4.1.2.3).
      cond = DIMSE_checkForCancelRQ(assoc, pres, request.MessageID);
      if (cond.good()) {
        st.cancelled = true;
        answer.reset();
        rsp.DimseStatus = STATUS_FIND_Cancel_MatchingTerminatedDueToCancelRequest;
      } else if (cond != DIMSE_NODATAAVAILABLE) {
        return cond;
      } else {
        ++st.answered;
      }
    }
    cond = DIMSE_sendFindResponse(assoc, pres, &request, &rsp, answer.get(), detail.get());
    if (cond.bad() || !DICOM_PENDING_STATUS(rsp.DimseStatus)) break;
  }
  if (st.fail_status != 0) {
    // The reason may quote the caller's values (a birth date): at debug only.
    spdlog::info("{}: C-FIND from {}@{} refused with status 0x{:04X}", ctx.name, ctx.calling_ae, ctx.peer,
                 st.fail_status);
    spdlog::debug("{}: C-FIND from {}@{}: {}", ctx.name, ctx.calling_ae, ctx.peer, st.fail_comment);
  } else {
    spdlog::info("{}: C-FIND {} from {}@{}: {} answers{}", ctx.name, st.rq.level, ctx.calling_ae, ctx.peer, st.answered,
                 st.cancelled ? " (canceled)" : "");
  }
  return cond;
}

}  // namespace pb::dicom
