#pragma once
// Adapts the ingest pipeline to the DICOM layer's StoreSink: every C-STORE, whether it reaches a
// receiver or arrives as a C-GET sub-operation, goes through here. DIMSE statuses are chosen
// here, from the ingest outcome. Thread-safe.
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "dicom/server.h"
#include "ingest/pipeline.h"
#include "ingest/routing.h"

namespace pb {

class PipelineSink : public dicom::StoreSink {
 public:
  // `log_name` is the subject of log lines ("retrieve job 12"); empty: "receiver <called AE>".
  PipelineSink(IngestPipeline& pipeline, std::string log_name) : pipeline_(pipeline), log_name_(std::move(log_name)) {}
  std::filesystem::path NewTempPath() override { return pipeline_.NewTempPath(); }
  // Ingests as received, without labels: every origin that identifies (receivers, retrieve
  // jobs) uses OriginSink (origin_sink.h); this one only backs the listener's default.
  dicom::StoreAnswer Store(const dicom::IncomingInstance& in) override;

 private:
  IngestPipeline& pipeline_;
  std::string log_name_;
};

// The value of a tag an InstanceRecord carries (nullopt when empty or not carried).
std::optional<std::string> RecordValue(const InstanceRecord& r, uint32_t tag);
bool IsRecordTag(uint32_t tag);

// The DIMSE status for an ingest outcome (logged as a refusal or failure of `who`).
dicom::StoreAnswer AnswerFor(const IngestOutcome& out, const std::string& who, const dicom::IncomingInstance& in);

}  // namespace pb
