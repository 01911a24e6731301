#include "ingest/store_sink.h"

#include <spdlog/spdlog.h>

#include "dicom/network.h"

namespace pb {

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
