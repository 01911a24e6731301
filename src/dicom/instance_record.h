#pragma once
// What an instance's header says (read by dicom/header and dicom/header_scan as it arrives), and
// what ingest adds on its way into the archive: one row of the index (archive/records.h).
// Attribute values are UTF-8.
#include <cstdint>
#include <string>

namespace pb {

// What the ingest pipeline learned from an instance's header, plus where it came from.
struct InstanceRecord {
  std::string patient_id, issuer_of_patient_id, patient_name, patient_birth_date, patient_sex;
  std::string study_uid, study_date, study_time, accession_number, study_id, study_description, referring_physician;
  std::string series_uid, modality, series_number, series_description, body_part;
  std::string sop_uid, sop_class_uid, instance_number, transfer_syntax_uid;
  std::string file_path;  // relative to the archive root
  int64_t file_size = 0;
  std::string source_ae, receiver_ae;
  // Read for routing (the default rules look for "Project: X" there); not indexed.
  std::string patient_comments, study_comments;
  // Where routing filed the instance (cleaned labels; empty when not routed).
  std::string project, subject, session;
};

}  // namespace pb
