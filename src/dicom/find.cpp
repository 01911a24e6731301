#include "dicom/find.h"

#include <algorithm>
#include <cctype>
#include <functional>

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcelem.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/dimse.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "dicom/charset.h"
#include "dicom/condition.h"
#include "dicom/find_impl.h"
#include "dicom/matching.h"
#include "dicom/scu.h"

namespace pb::dicom {
namespace {

// Return keys asked for at each level (empty values), besides what the caller adds.
const std::map<std::string, std::vector<DcmTagKey>>& ReturnKeys() {
  static const std::map<std::string, std::vector<DcmTagKey>> kKeys{
      {"PATIENT",
       {DCM_PatientName, DCM_PatientID, DCM_IssuerOfPatientID, DCM_PatientBirthDate, DCM_PatientSex,
        DCM_NumberOfPatientRelatedStudies}},
      {"STUDY",
       {DCM_StudyInstanceUID, DCM_StudyDate, DCM_StudyTime, DCM_AccessionNumber, DCM_StudyID, DCM_StudyDescription,
        DCM_ReferringPhysicianName, DCM_PatientName, DCM_PatientID, DCM_PatientBirthDate, DCM_PatientSex,
        DCM_ModalitiesInStudy, DCM_SOPClassesInStudy, DCM_NumberOfStudyRelatedSeries,
        DCM_NumberOfStudyRelatedInstances}},
      {"SERIES",
       {DCM_StudyInstanceUID, DCM_SeriesInstanceUID, DCM_Modality, DCM_SeriesNumber, DCM_SeriesDescription,
        DCM_SeriesDate, DCM_BodyPartExamined, DCM_NumberOfSeriesRelatedInstances}},
      {"IMAGE", {DCM_StudyInstanceUID, DCM_SeriesInstanceUID, DCM_SOPInstanceUID, DCM_SOPClassUID, DCM_InstanceNumber}},
  };
  return kKeys;
}

// "PatientName", "(0010,0010)" or "0010,0010" → tag.
bool ParseKey(const std::string& key, DcmTagKey& out) {
  unsigned g = 0, e = 0;
  char tail = 0;
  if (std::sscanf(key.c_str(), "(%4x,%4x)%c", &g, &e, &tail) == 2 ||
      std::sscanf(key.c_str(), "%4x,%4x%c", &g, &e, &tail) == 2) {
    out = DcmTagKey(static_cast<Uint16>(g), static_cast<Uint16>(e));
    return true;
  }
  DcmTag tag;
  if (DcmTag::findTagFromName(key.c_str(), tag).good()) {
    out = tag.getXTag();
    return true;
  }
  return false;
}

std::string Keyword(const DcmTagKey& key) {
  DcmTag tag(key);
  const char* name = tag.getTagName();
  if (name && std::string(name) != DcmTag_ERROR_TagName) return name;
  return fmt::format("({:04x},{:04x})", key.getGroup(), key.getElement());
}

struct Collector {
  bool truncated = false;
  size_t count = 0;
  size_t max;
  T_ASC_Association* assoc;
  T_ASC_PresentationContextID pres;
  const std::function<void(DcmDataset&)>* take;
};

void OnResponse(void* data, T_DIMSE_C_FindRQ* request, int, T_DIMSE_C_FindRSP*, DcmDataset* identifier) {
  auto* c = static_cast<Collector*>(data);
  if (!identifier || c->truncated) return;
  if (c->count >= c->max) {
    // Enough: ask the peer to stop; it ends with a "canceled" final response.
    c->truncated = true;
    (void)DIMSE_sendCancelRequest(c->assoc, c->pres, request->MessageID);
    return;
  }
  ++c->count;
  (*c->take)(*identifier);
}

}  // namespace

bool ParseKeyword(const std::string& key, DcmTagKey& out) { return ParseKey(key, out); }

std::string KeywordOf(const DcmTagKey& key) { return Keyword(key); }

[[nodiscard]] Result<bool> RunFind(const PeerRequest& peer, const char* model, DcmDataset& query, size_t max_results,
                                   const std::function<void(DcmDataset&)>& take) {
  auto a = Associate(peer, {{model, {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax}}});
  if (!a) return tl::unexpected(a.error());
  T_ASC_PresentationContextID pres = (*a)->ContextFor(model);
  T_DIMSE_C_FindRQ req{};
  req.MessageID = (*a)->get()->nextMsgID++;
  OFStandard::strlcpy(req.AffectedSOPClassUID, model, sizeof req.AffectedSOPClassUID);
  req.DataSetType = DIMSE_DATASET_PRESENT;
  req.Priority = DIMSE_PRIORITY_MEDIUM;
  Collector collector{false, 0, max_results, (*a)->get(), pres, &take};
  T_DIMSE_C_FindRSP rsp{};
  DcmDataset* detail = nullptr;
  int responses = 0;
  OFCondition cond = DIMSE_findUser((*a)->get(), pres, &req, &query, responses, OnResponse, &collector,
                                    DIMSE_NONBLOCKING, peer.timeout_seconds, &rsp, &detail);
  std::unique_ptr<DcmDataset> owned_detail(detail);
  if (cond.bad()) {
    (*a)->Abort();
    if (cond == DIMSE_NODATAAVAILABLE) {
      return Fail(Code::kTimeout,
                  fmt::format("{} stopped answering the C-FIND for {} s", (*a)->where(), peer.timeout_seconds));
    }
    if (cond == DUL_PEERABORTEDASSOCIATION) {
      return Fail(Code::kPermissionDenied,
                  fmt::format("{} aborted the association when asked to C-FIND: it may not allow "
                              "queries from our calling AE title '{}' (register it on the PACS, "
                              "e.g. in Orthanc's DicomModalities)",
                              (*a)->where(), peer.calling_ae));
    }
    return FailCondition(cond, fmt::format("C-FIND to {} failed", (*a)->where()), Code::kUnavailable);
  }
  (*a)->Release();
  if (rsp.DimseStatus != STATUS_Success && rsp.DimseStatus != STATUS_FIND_Cancel_MatchingTerminatedDueToCancelRequest &&
      !collector.truncated) {
    OFString comment;
    if (detail) detail->findAndGetOFString(DCM_ErrorComment, comment);
    // Out of resources (A7xx) may pass; other refusals are about the query.
    return Fail((rsp.DimseStatus & 0xFF00) == 0xA700 ? Code::kUnavailable : Code::kInternal,
                fmt::format("C-FIND refused by {}: status 0x{:04X}{}{}", (*a)->where(), rsp.DimseStatus,
                            comment.empty() ? "" : ": ", comment.c_str()));
  }
  return collector.truncated;
}

bool IsKeyword(const std::string& name) {
  DcmTag tag;
  return !name.empty() && name.find_first_of("(,") == std::string::npos &&
         DcmTag::findTagFromName(name.c_str(), tag).good();
}

std::optional<KeyInfo> LookupKey(const std::string& key) {
  DcmTagKey k;
  if (!ParseKey(key, k)) return std::nullopt;
  return LookupTag((static_cast<uint32_t>(k.getGroup()) << 16) | k.getElement());
}

KeyInfo LookupTag(uint32_t tag) {
  DcmTagKey k(static_cast<Uint16>(tag >> 16), static_cast<Uint16>(tag & 0xffff));
  DcmTag t(k);
  return KeyInfo{tag, Keyword(k), DcmVR(t.getEVR()).getVRName()};
}

std::vector<uint32_t> DefaultReturnKeys(const std::string& level) {
  std::vector<uint32_t> out;
  auto it = ReturnKeys().find(level);
  if (it == ReturnKeys().end()) return out;
  for (const DcmTagKey& k : it->second) out.push_back((static_cast<uint32_t>(k.getGroup()) << 16) | k.getElement());
  return out;
}

[[nodiscard]] Result<FindResult> Find(const FindRequest& rq) {
  std::string level = rq.level;
  std::transform(level.begin(), level.end(), level.begin(), [](unsigned char ch) { return std::toupper(ch); });
  auto defaults = ReturnKeys().find(level);
  if (defaults == ReturnKeys().end()) {
    return Fail(Code::kInvalidArgument, "level must be PATIENT, STUDY, SERIES or IMAGE", "level");
  }
  if (level == "PATIENT" && !rq.patient_root) {
    return Fail(Code::kInvalidArgument, "PATIENT level needs the Patient Root model: set the node's patient_root",
                "level");
  }
  DcmDataset query;
  query.putAndInsertString(DCM_QueryRetrieveLevel, level.c_str());
  if (rq.default_keys) {
    for (const DcmTagKey& k : defaults->second) query.insertEmptyElement(k);
  }
  for (const auto& [name, value] : rq.keys) {
    DcmTagKey key;
    if (!ParseKey(name, key)) {
      return Fail(Code::kInvalidArgument, fmt::format("'{}' is not a DICOM keyword or (gggg,eeee) tag", name),
                  "query." + name);
    }
    const DcmTag tag(key);
    if (auto checked = CheckMatchingValue(name, DcmVR(tag.getEVR()).getVRName(), value); !checked) {
      return tl::unexpected(checked.error());
    }
    if (query.putAndInsertString(key, value.c_str()).bad()) {
      return Fail(Code::kInvalidArgument, fmt::format("'{}' cannot take the value '{}'", name, value), "query." + name);
    }
  }
  if (rq.charset != "none") {
    query.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 192");
    if (!rq.charset.empty() && rq.charset != "ISO_IR 192") {
      OFCondition c = query.convertCharacterSet(rq.charset.c_str(), 0);
      if (c.bad()) {
        return Fail(Code::kInvalidArgument,
                    fmt::format("the query cannot be written in {}: {}", rq.charset, ConditionText(c)),
                    "query_charset");
      }
    }
  }
  const char* model = rq.patient_root ? UID_FINDPatientRootQueryRetrieveInformationModel
                                      : UID_FINDStudyRootQueryRetrieveInformationModel;
  FindResult result;
  bool warned = false;
  auto truncated = RunFind(rq.peer, model, query, rq.max_results, [&](DcmDataset& identifier) {
    std::string problem;
    if (!ToUtf8(identifier, &problem) && !warned) {
      warned = true;
      spdlog::warn("C-FIND answer not fully decoded: {}", problem);
    }
    std::map<std::string, std::string> row;
    for (unsigned long i = 0; i < identifier.card(); ++i) {
      DcmElement* el = identifier.getElement(i);
      DcmTagKey key = el->getTag().getXTag();
      if (key == DCM_SpecificCharacterSet || key == DCM_QueryRetrieveLevel) continue;
      if (el->ident() == EVR_SQ) continue;
      OFString value;
      el->getOFStringArray(value);
      row[Keyword(key)] = value.c_str();
    }
    result.rows.push_back(std::move(row));
  });
  if (!truncated) return tl::unexpected(truncated.error());
  result.truncated = *truncated;
  return result;
}

}  // namespace pb::dicom
