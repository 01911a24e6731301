#include "ingest/store_sink.h"

#include <spdlog/spdlog.h>

#include "dicom/header.h"
#include "dicom/network.h"

namespace pb {

namespace {

// The record fields a header parse already gives, by tag.
std::string InstanceRecord::*RecordField(uint32_t tag) {
  switch (tag) {
    case 0x00104000:
      return &InstanceRecord::patient_comments;
    case 0x00324000:
      return &InstanceRecord::study_comments;
    case 0x00081030:
      return &InstanceRecord::study_description;
    case 0x00100010:
      return &InstanceRecord::patient_name;
    case 0x00100020:
      return &InstanceRecord::patient_id;
    case 0x00080050:
      return &InstanceRecord::accession_number;
    case 0x0020000D:
      return &InstanceRecord::study_uid;
    case 0x0020000E:
      return &InstanceRecord::series_uid;
    case 0x00080018:
      return &InstanceRecord::sop_uid;
    case 0x00080060:
      return &InstanceRecord::modality;
    case 0x0008103E:
      return &InstanceRecord::series_description;
    case 0x00200011:
      return &InstanceRecord::series_number;
    case 0x00200010:
      return &InstanceRecord::study_id;
    case 0x00080020:
      return &InstanceRecord::study_date;
    case 0x00180015:
      return &InstanceRecord::body_part;
    case 0x00080090:
      return &InstanceRecord::referring_physician;
    case 0x00100030:
      return &InstanceRecord::patient_birth_date;
    case 0x00100040:
      return &InstanceRecord::patient_sex;
    default:
      return nullptr;
  }
}

}  // namespace

std::optional<std::string> RecordValue(const InstanceRecord& r, uint32_t tag) {
  auto field = RecordField(tag);
  if (!field || (r.*field).empty()) return std::nullopt;
  return r.*field;
}

bool IsRecordTag(uint32_t tag) { return RecordField(tag) != nullptr; }

dicom::StoreAnswer PipelineSink::Store(const dicom::IncomingInstance& in) {
  IngestSource src;
  src.calling_ae = in.calling_ae;
  src.called_ae = in.called_ae;
  src.peer = in.peer_address;
  src.expected_sop_uid = in.sop_instance_uid;
  src.size = in.file_size;
  src.header = in.header ? &*in.header : nullptr;
  src.move_originator_ae = in.move_originator_ae;
  src.move_originator_id = in.move_originator_id;
  src.answered = in.answered;
  IngestOutcome out = pipeline_.Ingest(in.temp_file, src);
  return AnswerFor(out, log_name_.empty() ? "receiver " + in.called_ae : log_name_, in);
}

dicom::StoreAnswer AnswerFor(const IngestOutcome& out, const std::string& who, const dicom::IncomingInstance& in) {
  switch (out.status) {
    case IngestStatus::kStored:
    case IngestStatus::kReplaced:
    case IngestStatus::kDuplicate:
      return {dicom::status::kSuccess, ""};
    case IngestStatus::kInvalid:
      spdlog::warn("{}: refused an instance from {}@{}: {}", who, in.calling_ae, in.peer_address, out.message);
      return {dicom::status::kCannotUnderstand, out.message};
    case IngestStatus::kNotAuthorized:
      spdlog::warn("{}: refused an instance from {}@{}: {}", who, in.calling_ae, in.peer_address, out.message);
      return {dicom::status::kNotAuthorized, out.message};
    case IngestStatus::kOutOfSpace:
      spdlog::error("{}: out of resources: {}", who, out.message);
      return {dicom::status::kOutOfResources, out.message};
    case IngestStatus::kFailed:
      spdlog::error("{}: cannot store an instance: {}", who, out.message);
      return {dicom::status::kOutOfResources, out.message};
  }
  return {dicom::status::kOutOfResources, "internal error"};
}

}  // namespace pb
