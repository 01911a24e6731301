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
  PipelineSink(IngestPipeline& pipeline, std::string log_name)
      : pipeline_(pipeline), log_name_(std::move(log_name)) {}
  std::filesystem::path NewTempPath() override { return pipeline_.NewTempPath(); }
  dicom::StoreAnswer Store(const dicom::IncomingInstance& in) override;
  // Files instances by the site's routing rules and the defaults, with the labels given here
  // (a job's project and relabeling) taking precedence. Without this, instances get no labels.
  void SetRouting(Labels fixed, std::function<std::shared_ptr<const RoutingRules>()> site_rules) {
    labels_ = std::move(fixed);
    site_rules_ = std::move(site_rules);
  }

 private:
  IngestPipeline& pipeline_;
  std::string log_name_;
  Labels labels_;
  std::function<std::shared_ptr<const RoutingRules>()> site_rules_;
};

// The value of a tag an InstanceRecord carries (nullopt when empty or not carried).
std::optional<std::string> RecordValue(const InstanceRecord& r, uint32_t tag);
bool IsRecordTag(uint32_t tag);

// The DIMSE status for an ingest outcome (logged as a refusal or failure of `who`).
dicom::StoreAnswer AnswerFor(const IngestOutcome& out, const std::string& who, const dicom::IncomingInstance& in);

}  // namespace pb
