#pragma once
// Adapts the ingest pipeline to the DICOM layer's StoreSink: every C-STORE, whether it reaches a
// receiver or arrives as a C-GET sub-operation, goes through here. DIMSE statuses are chosen
// here, from the ingest outcome. Thread-safe.
#include <string>

#include "dicom/server.h"
#include "ingest/pipeline.h"

namespace pb {

class PipelineSink : public dicom::StoreSink {
 public:
  // `log_name` is the subject of log lines ("retrieve job 12"); empty: "receiver <called AE>".
  PipelineSink(IngestPipeline& pipeline, std::string log_name)
      : pipeline_(pipeline), log_name_(std::move(log_name)) {}
  std::filesystem::path NewTempPath() override { return pipeline_.NewTempPath(); }
  dicom::StoreAnswer Store(const dicom::IncomingInstance& in) override;

 private:
  IngestPipeline& pipeline_;
  std::string log_name_;
};

// The DIMSE status for an ingest outcome (logged as a refusal or failure of `who`).
dicom::StoreAnswer AnswerFor(const IngestOutcome& out, const std::string& who, const dicom::IncomingInstance& in);

}  // namespace pb
