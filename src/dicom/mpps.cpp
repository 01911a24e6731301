#include "dicom/mpps.h"

#include <random>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/dimse.h>
#include <fmt/format.h>

#include "dicom/condition.h"
#include "dicom/flat_item_impl.h"
#include "dicom/scu.h"

namespace pb::dicom {

std::string NewUid() {
  __extension__ typedef unsigned __int128 U128;  // a GCC/clang extension; fine under -Wpedantic
  std::random_device rd;
  U128 v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 32) | rd();
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  } while (v != 0);
  return "2.25." + digits;  // PS3.5 B.2: a UUID as a UID
}

bool IsImageSopClass(const std::string& uid) {
  for (int i = 0; i < numberOfDcmImageSOPClassUIDs; ++i) {
    if (uid == dcmImageSOPClassUIDs[i]) return true;
  }
  return false;
}

[[nodiscard]] Result<std::string> ToDicomJson(const FlatItem& item, const std::string& field_prefix) {
  DcmDataset ds;
  if (auto r = Unflatten(item, ds, field_prefix); !r) return tl::unexpected(r.error());
  ds.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 192");
  return DicomJson(ds);
}

std::string NStatusMeaning(uint16_t status) {
  // PS3.7 C.4 (DIMSE-N statuses) and PS3.4 F.7.2 (MPPS).
  switch (status) {
    case 0x0000:
      return "Success";
    case 0x0105:
      return "No such attribute";
    case 0x0106:
      return "Invalid attribute value";
    case 0x0107:
      return "Attribute list error";
    case 0x0110:
      return "Processing failure";
    case 0x0111:
      return "Duplicate SOP Instance";
    case 0x0112:
      return "No such SOP Instance";
    case 0x0113:
      return "No such event type";
    case 0x0114:
      return "No such argument";
    case 0x0115:
      return "Invalid argument value";
    case 0x0116:
      return "Attribute value out of range";
    case 0x0117:
      return "Invalid SOP Instance";
    case 0x0118:
      return "No such SOP Class";
    case 0x0119:
      return "Class-instance conflict";
    case 0x0120:
      return "Missing attribute";
    case 0x0121:
      return "Missing attribute value";
    case 0x0122:
      return "SOP Class not supported";
    case 0x0123:
      return "No such action";
    case 0x0124:
      return "Refused: not authorized";
    case 0x0210:
      return "Duplicate invocation";
    case 0x0211:
      return "Unrecognized operation";
    case 0x0212:
      return "Mistyped argument";
    case 0x0213:
      return "Resource limitation";
    default:
      break;
  }
  if ((status & 0xFF00) == 0xA700) return "Out of resources";
  return {};
}

std::string DescribeNAnswer(const NAnswer& a) {
  std::string meaning = NStatusMeaning(a.status);
  std::string detail = a.error_comment;
  if (a.error_id == 0xA710 && detail.empty()) detail = "Performed Procedure Step Object may no longer be updated";
  if (!meaning.empty() && !detail.empty())
    meaning += ": " + detail;
  else if (meaning.empty())
    meaning = detail;
  return meaning.empty() ? fmt::format("0x{:04X}", a.status) : fmt::format("0x{:04X} ({})", a.status, meaning);
}

[[nodiscard]] Result<NAnswer> SendMpps(const PeerRequest& peer, bool create, const std::string& uid,
                                       const FlatItem& attributes, const std::string& charset) {
  DcmDataset ds;
  if (auto r = Unflatten(attributes, ds, "attributes."); !r) return tl::unexpected(r.error());
  ds.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 192");
  if (!charset.empty() && charset != "none" && charset != "ISO_IR 192" &&
      charset.find("ISO 2022") == std::string::npos) {
    if (OFCondition c = ds.convertCharacterSet(charset.c_str(), 0); c.bad()) {
      return Fail(Code::kInvalidArgument,
                  fmt::format("the attributes cannot be written in {}: {}", charset, ConditionText(c)), "attributes");
    }
  }
  auto a = Associate(
      peer, {{kMppsSopClass, {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax}}});
  if (!a) {
    if (a.error().code == Code::kUnsupported) {
      return Fail(Code::kUnsupported, fmt::format("{} (it does not accept MPPS)", a.error().message));
    }
    return tl::unexpected(a.error());
  }
  const T_ASC_PresentationContextID pres = (*a)->ContextFor(kMppsSopClass);
  const char* what = create ? "N-CREATE" : "N-SET";
  T_DIMSE_Message msg{};
  if (create) {
    msg.CommandField = DIMSE_N_CREATE_RQ;
    T_DIMSE_N_CreateRQ& rq = msg.msg.NCreateRQ;
    rq.MessageID = (*a)->get()->nextMsgID++;
    OFStandard::strlcpy(rq.AffectedSOPClassUID, kMppsSopClass, sizeof rq.AffectedSOPClassUID);
    OFStandard::strlcpy(rq.AffectedSOPInstanceUID, uid.c_str(), sizeof rq.AffectedSOPInstanceUID);
    rq.opts = O_NCREATE_AFFECTEDSOPINSTANCEUID;
    rq.DataSetType = DIMSE_DATASET_PRESENT;
  } else {
    msg.CommandField = DIMSE_N_SET_RQ;
    T_DIMSE_N_SetRQ& rq = msg.msg.NSetRQ;
    rq.MessageID = (*a)->get()->nextMsgID++;
    OFStandard::strlcpy(rq.RequestedSOPClassUID, kMppsSopClass, sizeof rq.RequestedSOPClassUID);
    OFStandard::strlcpy(rq.RequestedSOPInstanceUID, uid.c_str(), sizeof rq.RequestedSOPInstanceUID);
    rq.DataSetType = DIMSE_DATASET_PRESENT;
  }
  OFCondition cond = DIMSE_sendMessageUsingMemoryData((*a)->get(), pres, &msg, nullptr, &ds, nullptr, nullptr);
  if (cond.bad()) {
    (*a)->Abort();
    return FailCondition(cond, fmt::format("cannot send the {} to {}", what, (*a)->where()), Code::kUnavailable);
  }
  T_DIMSE_Message rsp{};
  T_ASC_PresentationContextID rpres = 0;
  DcmDataset* detail = nullptr;
  cond = DIMSE_receiveCommand((*a)->get(), DIMSE_BLOCKING, 0, &rpres, &rsp, &detail);
  std::unique_ptr<DcmDataset> owned_detail(detail);
  if (cond.bad()) {
    (*a)->Abort();
    return Fail(cond == DUL_PEERABORTEDASSOCIATION ? Code::kPermissionDenied : Code::kUnavailable,
                fmt::format("{} gave no answer to the {}: {}", (*a)->where(), what, ConditionText(cond)));
  }
  const bool expected = create ? rsp.CommandField == DIMSE_N_CREATE_RSP : rsp.CommandField == DIMSE_N_SET_RSP;
  if (!expected) {
    (*a)->Abort();
    return Fail(Code::kUnavailable, fmt::format("{} answered the {} with DIMSE command 0x{:04x}", (*a)->where(), what,
                                                static_cast<unsigned>(rsp.CommandField)));
  }
  NAnswer out;
  out.status = create ? rsp.msg.NCreateRSP.DimseStatus : rsp.msg.NSetRSP.DimseStatus;
  const T_DIMSE_DataSetType data = create ? rsp.msg.NCreateRSP.DataSetType : rsp.msg.NSetRSP.DataSetType;
  if (data != DIMSE_DATASET_NULL) {  // the attributes the peer set itself: not kept
    DcmDataset* returned = nullptr;
    (void)DIMSE_receiveDataSetInMemory((*a)->get(), DIMSE_BLOCKING, 0, &rpres, &returned, nullptr, nullptr);
    delete returned;
  }
  if (owned_detail) {
    OFString comment;
    if (owned_detail->findAndGetOFString(DCM_ErrorComment, comment).good()) out.error_comment = comment.c_str();
    Uint16 id = 0;
    if (owned_detail->findAndGetUint16(DCM_ErrorID, id).good()) out.error_id = id;
  }
  (*a)->Release();
  return out;
}

}  // namespace pb::dicom
