#include "dicom/header.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <fmt/format.h>

#include "dicom/charset.h"
#include "dicom/condition.h"
#include "dicom/header_scan.h"

namespace pb::dicom {
namespace {

std::string Get(DcmItem* item, const DcmTagKey& key) {
  OFString v;
  if (item->findAndGetOFStringArray(key, v).good()) return std::string(v.c_str(), v.length());
  return {};
}

[[nodiscard]] Result<InstanceRecord> Extract(DcmDataset* ds, std::string transfer_syntax_uid);

}  // namespace

[[nodiscard]] Result<InstanceRecord> ReadHeader(const std::filesystem::path& file) {
  DcmFileFormat ff;
  OFCondition cond =
      ff.loadFileUntilTag(file.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect, DCM_PixelData);
  if (cond.bad()) {
    return FailCondition(cond, "unreadable DICOM header", Code::kInvalidArgument);
  }
  return Extract(ff.getDataset(), Get(ff.getMetaInfo(), DCM_TransferSyntaxUID));
}

[[nodiscard]] Result<InstanceRecord> ReadHeaderFromBuffer(const std::string& bytes, bool complete,
                                                          const std::string& transfer_syntax_uid) {
  if (auto scanned = ScanHeader(bytes, complete, transfer_syntax_uid)) return std::move(*scanned);
  return ReadHeaderFromBufferByDcmtk(bytes, complete, transfer_syntax_uid);
}

[[nodiscard]] Result<InstanceRecord> ReadHeaderFromBufferByDcmtk(const std::string& bytes, bool complete,
                                                                 const std::string& transfer_syntax_uid) {
  DcmXfer xfer(transfer_syntax_uid.c_str());
  if (xfer.getXfer() == EXS_Unknown || xfer.getStreamCompression() != ESC_none) {
    return Fail(Code::kInvalidArgument, "header parsing from memory: syntax not supported");
  }
  DcmInputBufferStream in;
  in.setBuffer(bytes.data(), static_cast<offile_off_t>(bytes.size()));
  if (complete) in.setEos();
  DcmDataset ds;
  ds.transferInit();
  OFCondition cond = ds.readUntilTag(in, xfer.getXfer(), EGL_noChange, DCM_MaxReadLength, DCM_PixelData);
  ds.transferEnd();
  if (cond.bad()) {
    return FailCondition(cond, "header not in the first bytes", Code::kInvalidArgument);
  }
  return Extract(&ds, transfer_syntax_uid);
}

[[nodiscard]] Result<InstanceRecord> ReadHeaderFromFileBytes(const std::string& bytes, bool complete) {
  if (auto scanned = ScanFileHeader(bytes, complete)) return std::move(*scanned);
  DcmInputBufferStream in;
  in.setBuffer(bytes.data(), static_cast<offile_off_t>(bytes.size()));
  if (complete) in.setEos();
  DcmFileFormat ff;
  ff.transferInit();
  OFCondition cond = ff.readUntilTag(in, EXS_Unknown, EGL_noChange, DCM_MaxReadLength, DCM_PixelData);
  ff.transferEnd();
  if (cond.bad()) {
    return FailCondition(cond, "header not in the first bytes", Code::kInvalidArgument);
  }
  return Extract(ff.getDataset(), Get(ff.getMetaInfo(), DCM_TransferSyntaxUID));
}

[[nodiscard]] Result<std::map<uint32_t, std::string>> ReadAttributes(const std::filesystem::path& file,
                                                                     const std::vector<uint32_t>& tags) {
  DcmFileFormat ff;
  OFCondition cond =
      ff.loadFileUntilTag(file.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect, DCM_PixelData);
  if (cond.bad()) {
    return FailCondition(cond, "unreadable DICOM header", Code::kInvalidArgument);
  }
  DcmDataset* ds = ff.getDataset();
  (void)ToUtf8(*ds);
  std::map<uint32_t, std::string> out;
  for (uint32_t tag : tags) {
    DcmTagKey key(static_cast<Uint16>(tag >> 16), static_cast<Uint16>(tag & 0xffff));
    if (ds->tagExists(key)) out[tag] = Get(ds, key);
  }
  return out;
}

namespace {

[[nodiscard]] Result<InstanceRecord> Extract(DcmDataset* ds, std::string transfer_syntax_uid) {
  // Attribute values become UTF-8; what cannot be decoded is left as it is.
  (void)ToUtf8(*ds);
  InstanceRecord r;
  r.sop_uid = Get(ds, DCM_SOPInstanceUID);
  r.sop_class_uid = Get(ds, DCM_SOPClassUID);
  r.study_uid = Get(ds, DCM_StudyInstanceUID);
  r.series_uid = Get(ds, DCM_SeriesInstanceUID);
  for (auto [value, name] : {std::pair{&r.sop_uid, "SOPInstanceUID"}, std::pair{&r.study_uid, "StudyInstanceUID"},
                             std::pair{&r.series_uid, "SeriesInstanceUID"}}) {
    if (value->empty()) {
      return Fail(Code::kInvalidArgument, fmt::format("the data set has no {}", name), name);
    }
  }
  r.patient_id = Get(ds, DCM_PatientID);
  r.issuer_of_patient_id = Get(ds, DCM_IssuerOfPatientID);
  r.patient_name = Get(ds, DCM_PatientName);
  r.patient_birth_date = Get(ds, DCM_PatientBirthDate);
  r.patient_sex = Get(ds, DCM_PatientSex);
  r.study_date = Get(ds, DCM_StudyDate);
  r.study_time = Get(ds, DCM_StudyTime);
  r.accession_number = Get(ds, DCM_AccessionNumber);
  r.study_id = Get(ds, DCM_StudyID);
  r.study_description = Get(ds, DCM_StudyDescription);
  r.referring_physician = Get(ds, DCM_ReferringPhysicianName);
  r.modality = Get(ds, DCM_Modality);
  r.series_number = Get(ds, DCM_SeriesNumber);
  r.series_description = Get(ds, DCM_SeriesDescription);
  r.body_part = Get(ds, DCM_BodyPartExamined);
  r.instance_number = Get(ds, DCM_InstanceNumber);
  r.patient_comments = Get(ds, DCM_PatientComments);
  r.study_comments = Get(ds, DCM_RETIRED_StudyComments);
  r.transfer_syntax_uid = std::move(transfer_syntax_uid);
  return r;
}

}  // namespace

}  // namespace pb::dicom
