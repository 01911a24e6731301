#include "ingest/store_sink.h"

#include <spdlog/spdlog.h>

#include "dicom/header.h"
#include "dicom/network.h"

namespace pb {

// The record fields a header parse already gives, by tag.
std::optional<std::string> RecordValue(const InstanceRecord& r, uint32_t tag) {
  const std::string* v = nullptr;
  switch (tag) {
    case 0x00104000: v = &r.patient_comments; break;
    case 0x00324000: v = &r.study_comments; break;
    case 0x00081030: v = &r.study_description; break;
    case 0x00100010: v = &r.patient_name; break;
    case 0x00100020: v = &r.patient_id; break;
    case 0x00080050: v = &r.accession_number; break;
    case 0x0020000D: v = &r.study_uid; break;
    case 0x0020000E: v = &r.series_uid; break;
    case 0x00080018: v = &r.sop_uid; break;
    case 0x00080060: v = &r.modality; break;
    case 0x0008103E: v = &r.series_description; break;
    case 0x00200011: v = &r.series_number; break;
    case 0x00200010: v = &r.study_id; break;
    case 0x00080020: v = &r.study_date; break;
    case 0x00180015: v = &r.body_part; break;
    case 0x00080090: v = &r.referring_physician; break;
    case 0x00100030: v = &r.patient_birth_date; break;
    case 0x00100040: v = &r.patient_sex; break;
    default: return std::nullopt;
  }
  if (v->empty()) return std::nullopt;
  return *v;
}

bool IsRecordTag(uint32_t tag) {
  switch (tag) {
    case 0x00104000: case 0x00324000: case 0x00081030: case 0x00100010: case 0x00100020:
    case 0x00080050: case 0x0020000D: case 0x0020000E: case 0x00080018: case 0x00080060:
    case 0x0008103E: case 0x00200011: case 0x00200010: case 0x00080020: case 0x00180015:
    case 0x00080090: case 0x00100030: case 0x00100040:
      return true;
    default:
      return false;
  }
}


dicom::StoreAnswer PipelineSink::Store(const dicom::IncomingInstance& in) {
  IngestSource src;
  std::optional<InstanceRecord> read;
  if (site_rules_ || !labels_.project.empty()) {
    const InstanceRecord* header = in.header ? &*in.header : nullptr;
    if (!header) {
      if (auto h = dicom::ReadHeader(in.temp_file)) read = std::move(*h);
      header = read ? &*read : nullptr;
    }
    Labels l;
    if (header) {
      auto site = site_rules_ ? site_rules_() : nullptr;
      l = Route(nullptr, site.get(), "", [header](uint32_t tag) { return RecordValue(*header, tag); });
    }
    if (!labels_.project.empty()) l.project = labels_.project;
    if (!labels_.subject.empty()) l.subject = labels_.subject;
    if (!labels_.session.empty()) l.session = labels_.session;
    src.project = l.project;
    src.subject = l.subject;
    src.session = l.session;
  }
  src.calling_ae = in.calling_ae;
  src.called_ae = in.called_ae;
  src.peer = in.peer_address;
  src.expected_sop_uid = in.sop_instance_uid;
  src.size = in.file_size;
  src.header = in.header ? &*in.header : (read ? &*read : nullptr);
  src.move_originator_ae = in.move_originator_ae;
  src.move_originator_id = in.move_originator_id;
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
      spdlog::warn("{}: refused an instance from {}@{}: {}", who, in.calling_ae,
                   in.peer_address, out.message);
      return {dicom::status::kCannotUnderstand, out.message};
    case IngestStatus::kOutOfSpace:
      spdlog::error("{}: out of space: {}", who, out.message);
      return {dicom::status::kOutOfResources, out.message};
    case IngestStatus::kFailed:
      spdlog::error("{}: cannot store an instance: {}", who, out.message);
      return {dicom::status::kOutOfResources, out.message};
  }
  return {dicom::status::kOutOfResources, "internal error"};
}

}  // namespace pb
