#include "dicom/worklist.h"

#include <set>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcvr.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "dicom/charset.h"
#include "dicom/find_impl.h"
#include "dicom/flat_item_impl.h"
#include "dicom/matching.h"

namespace pb::dicom {
namespace {

// Return keys of every worklist query: what a modality needs to start the procedure and fill
// its images and its MPPS (IHE RAD TF-2, Query Modality Worklist, return keys R and R+).
const std::vector<DcmTagKey>& TopKeys() {
  static const std::vector<DcmTagKey> kKeys{DCM_AccessionNumber,
                                            DCM_ReferringPhysicianName,
                                            DCM_PatientName,
                                            DCM_PatientID,
                                            DCM_IssuerOfPatientID,
                                            DCM_PatientBirthDate,
                                            DCM_PatientSex,
                                            DCM_StudyInstanceUID,
                                            DCM_RequestingPhysician,
                                            DCM_RequestedProcedureID,
                                            DCM_RequestedProcedureDescription,
                                            DCM_RequestedProcedurePriority,
                                            DCM_AdmissionID};
  return kKeys;
}

const std::vector<DcmTagKey>& StepKeys() {
  static const std::vector<DcmTagKey> kKeys{DCM_ScheduledStationAETitle,
                                            DCM_ScheduledProcedureStepStartDate,
                                            DCM_ScheduledProcedureStepStartTime,
                                            DCM_Modality,
                                            DCM_ScheduledPerformingPhysicianName,
                                            DCM_ScheduledProcedureStepDescription,
                                            DCM_ScheduledStationName,
                                            DCM_ScheduledProcedureStepLocation,
                                            DCM_ScheduledProcedureStepID};
  return kKeys;
}

// Attributes of the Scheduled Procedure Step Sequence's items (PS3.4 K.6.1.2.2).
const std::set<DcmTagKey>& StepAttributes() {
  static const std::set<DcmTagKey> kSet{DCM_ScheduledStationAETitle,
                                        DCM_ScheduledProcedureStepStartDate,
                                        DCM_ScheduledProcedureStepStartTime,
                                        DCM_ScheduledProcedureStepEndDate,
                                        DCM_ScheduledProcedureStepEndTime,
                                        DCM_Modality,
                                        DCM_ScheduledPerformingPhysicianName,
                                        DCM_ScheduledProcedureStepDescription,
                                        DCM_ScheduledProtocolCodeSequence,
                                        DCM_ScheduledStationName,
                                        DCM_ScheduledProcedureStepLocation,
                                        DCM_PreMedication,
                                        DCM_ScheduledProcedureStepID,
                                        DCM_RequestedContrastAgent,
                                        DCM_CommentsOnTheScheduledProcedureStep,
                                        DCM_ScheduledProcedureStepStatus};
  return kSet;
}

// Specific Character Set defined terms (PS3.3 C.12.1.1.2): single-byte without extensions,
// and the ISO 2022 ones.
const std::set<std::string>& PlainSets() {
  static const std::set<std::string> kSets{"ISO_IR 192", "ISO_IR 100", "ISO_IR 101", "ISO_IR 109", "ISO_IR 110",
                                           "ISO_IR 144", "ISO_IR 127", "ISO_IR 126", "ISO_IR 138", "ISO_IR 148",
                                           "ISO_IR 203", "ISO_IR 166", "ISO_IR 13",  "GB18030",    "GBK"};
  return kSets;
}

const std::set<std::string>& Iso2022Sets() {
  static const std::set<std::string> kSets{
      "ISO 2022 IR 6",   "ISO 2022 IR 100", "ISO 2022 IR 101", "ISO 2022 IR 109", "ISO 2022 IR 110", "ISO 2022 IR 144",
      "ISO 2022 IR 127", "ISO 2022 IR 126", "ISO 2022 IR 138", "ISO 2022 IR 148", "ISO 2022 IR 203", "ISO 2022 IR 166",
      "ISO 2022 IR 13",  "ISO 2022 IR 87",  "ISO 2022 IR 159", "ISO 2022 IR 149", "ISO 2022 IR 58"};
  return kSets;
}

std::vector<std::string> SplitValues(const std::string& v) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t end = v.find('\\', start);
    out.push_back(v.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) return out;
    start = end + 1;
  }
}

bool IsIso2022(const std::string& charset) { return charset.find("ISO 2022") != std::string::npos; }

// The form to declare: a multi-byte ISO 2022 set alone cannot be value 1 (PS3.3 C.12.1.1.2:
// value 1 is then the default repertoire, left empty).
std::string Declared(const std::string& charset) {
  static const std::set<std::string> kMultiByte{"ISO 2022 IR 87", "ISO 2022 IR 159", "ISO 2022 IR 149",
                                                "ISO 2022 IR 58"};
  return kMultiByte.count(charset) ? "\\" + charset : charset;
}

bool IsAscii(const std::string& s) {
  for (unsigned char c : s) {
    if (c >= 0x80) return false;
  }
  return true;
}

}  // namespace

bool IsScheduledStepKey(const std::string& keyword) {
  DcmTagKey key;
  return ParseKeyword(keyword, key) && StepAttributes().count(key) > 0;
}

bool IsKnownCharacterSet(const std::string& value) {
  if (PlainSets().count(value)) return true;
  const std::vector<std::string> parts = SplitValues(value);
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].empty() && i == 0 && parts.size() > 1) continue;  // value 1 empty: ISO 2022 IR 6
    if (!Iso2022Sets().count(parts[i])) return false;
  }
  return true;
}

[[nodiscard]] Result<WorklistResult> FindWorklist(const WorklistRequest& rq) {
  const std::string charset = rq.charset == "none" || rq.charset.empty() ? rq.charset : Declared(rq.charset);
  if (!charset.empty() && charset != "none" && !IsKnownCharacterSet(charset)) {
    return Fail(
        Code::kInvalidArgument,
        fmt::format("'{}' is not a DICOM Specific Character Set (e.g. \"ISO_IR 100\", \"ISO 2022 IR 87\")", rq.charset),
        "mwl_charset");
  }
  DcmDataset query;
  for (const DcmTagKey& k : TopKeys()) query.insertEmptyElement(k);
  query.insert(new DcmSequenceOfItems(DCM_RequestedProcedureCodeSequence));
  DcmItem* step = nullptr;
  if (query.findOrCreateSequenceItem(DCM_ScheduledProcedureStepSequence, step, 0).bad() || !step) {
    return Fail(Code::kInternal, "cannot build the worklist query");
  }
  for (const DcmTagKey& k : StepKeys()) step->insertEmptyElement(k);
  step->insert(new DcmSequenceOfItems(DCM_ScheduledProtocolCodeSequence));
  for (const auto& [name, value] : rq.keys) {
    DcmTagKey key;
    if (!ParseKeyword(name, key)) {
      return Fail(Code::kInvalidArgument, fmt::format("'{}' is not a DICOM keyword or (gggg,eeee) tag", name),
                  "query." + name);
    }
    const DcmTag tag(key);
    if (tag.getEVR() == EVR_SQ) {
      return Fail(Code::kInvalidArgument,
                  fmt::format("'{}' is a sequence: name the attributes of its items instead", name), "query." + name);
    }
    if (auto checked = CheckMatchingValue(name, DcmVR(tag.getEVR()).getVRName(), value); !checked) {
      return tl::unexpected(checked.error());
    }
    if (IsIso2022(charset) && !IsAscii(value)) {
      return Fail(Code::kInvalidArgument,
                  fmt::format("'{}' has characters beyond ASCII, which a query in {} cannot carry here; "
                              "match by ASCII values (e.g. PatientID) or set the node's mwl_charset to a "
                              "single-byte set or ISO_IR 192",
                              name, rq.charset),
                  "query." + name);
    }
    DcmItem& where = StepAttributes().count(key) ? *step : static_cast<DcmItem&>(query);
    if (where.putAndInsertString(key, value.c_str()).bad()) {
      return Fail(Code::kInvalidArgument, fmt::format("'{}' cannot take the value '{}'", name, value), "query." + name);
    }
  }
  if (IsIso2022(charset)) {
    query.putAndInsertString(DCM_SpecificCharacterSet, charset.c_str());  // the values are ASCII
  } else if (charset != "none") {
    query.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 192");
    if (!charset.empty() && charset != "ISO_IR 192") {
      if (query.convertCharacterSet(charset.c_str(), 0).bad()) {
        // Which value does not fit: the one the caller can change.
        for (const auto& [name, value] : rq.keys) {
          DcmTagKey key;
          DcmDataset one;
          one.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 192");
          if (!ParseKeyword(name, key) || one.putAndInsertString(key, value.c_str()).bad()) continue;
          if (one.convertCharacterSet(charset.c_str(), 0).bad()) {
            return Fail(Code::kInvalidArgument,
                        fmt::format("'{}' cannot be written in {} (the node's mwl_charset)", value, charset),
                        "query." + name);
          }
        }
        return Fail(Code::kInvalidArgument, fmt::format("the query cannot be written in {}", charset), "mwl_charset");
      }
    }
  }
  WorklistResult result;
  bool warned = false;
  auto truncated =
      RunFind(rq.peer, UID_FINDModalityWorklistInformationModel, query, rq.max_results, [&](DcmDataset& answer) {
        OFString declared;
        answer.findAndGetOFStringArray(DCM_SpecificCharacterSet, declared);
        if (declared.empty() && !charset.empty() && charset != "none") {
          answer.putAndInsertString(DCM_SpecificCharacterSet, charset.c_str());
        }
        std::string problem;
        if (!ToUtf8(answer, &problem) && !warned) {
          warned = true;
          spdlog::warn("worklist answer not fully decoded: {}", problem);
        }
        WorklistAnswer a;
        a.item = Flatten(answer);
        a.dicom_json = DicomJson(answer);
        result.answers.push_back(std::move(a));
      });
  if (!truncated) {
    if (truncated.error().code == Code::kUnsupported) {
      return Fail(Code::kUnsupported,
                  fmt::format("{} (the node does not offer Modality Worklist)", truncated.error().message));
    }
    return tl::unexpected(truncated.error());
  }
  result.truncated = *truncated;
  return result;
}

}  // namespace pb::dicom
