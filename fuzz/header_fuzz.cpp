// The header of a received data set, from its first bytes: the fast walk (header_scan) answers
// only where it gives exactly what DCMTK's parse gives, so the two are compared on arbitrary
// bytes, in both Little Endian syntaxes, as a data set and as a file.
#include <cstdlib>
#include <string>

#include "dicom/header.h"
#include "dicom/header_scan.h"

namespace {

bool Same(const pb::InstanceRecord& a, const pb::InstanceRecord& b) {
  return a.patient_id == b.patient_id && a.issuer_of_patient_id == b.issuer_of_patient_id &&
         a.patient_name == b.patient_name && a.patient_birth_date == b.patient_birth_date &&
         a.patient_sex == b.patient_sex && a.study_uid == b.study_uid && a.study_date == b.study_date &&
         a.study_time == b.study_time && a.accession_number == b.accession_number && a.study_id == b.study_id &&
         a.study_description == b.study_description && a.referring_physician == b.referring_physician &&
         a.series_uid == b.series_uid && a.modality == b.modality && a.series_number == b.series_number &&
         a.series_description == b.series_description && a.body_part == b.body_part && a.sop_uid == b.sop_uid &&
         a.sop_class_uid == b.sop_class_uid && a.instance_number == b.instance_number &&
         a.transfer_syntax_uid == b.transfer_syntax_uid && a.patient_comments == b.patient_comments &&
         a.study_comments == b.study_comments;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool complete = data[0] & 1;
  const char* syntax = (data[0] & 2) ? "1.2.840.10008.1.2" : "1.2.840.10008.1.2.1";
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (auto scanned = pb::dicom::ScanHeader(bytes, complete, syntax)) {
    auto dcmtk = pb::dicom::ReadHeaderFromBufferByDcmtk(bytes, complete, syntax);
    if (!dcmtk || !Same(*scanned, *dcmtk)) std::abort();  // the walk vouched for a wrong answer
  }
  (void)pb::dicom::ReadHeaderFromBuffer(bytes, complete, syntax);
  (void)pb::dicom::ReadHeaderFromFileBytes(bytes, complete);
  return 0;
}
