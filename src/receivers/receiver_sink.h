#pragma once
// Where one receiver's instances go: identification (routing rules, or the retrieve job that
// awaits them), custom processors, anonymization, then the archive or the staging area. One
// sink per association, holding the receiver's settings as they were when it opened, so a
// change at run time never alters an association half way. Thread-safe (no mutable state).
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "dicom/server.h"
#include "ingest/expectations.h"
#include "ingest/pipeline.h"
#include "ingest/routing.h"
#include "ingest/staging.h"
#include "receivers/receiver.h"

namespace pb {

// What every receiver shares; lives as long as the ReceiverService.
struct ReceiverSite {
  IngestPipeline& pipeline;
  StagingArea& staging;
  ExpectationRegistry& expectations;
  std::function<std::shared_ptr<const RoutingRules>()> site_rules;
  std::string secret;  // the site's anonymization secret
  // A project's own anonymization options, which replace the receiver's for data filed there.
  std::function<std::optional<AnonymizationChoices>(const std::string& project)> project_anonymization;
};

class ReceiverSink : public dicom::StoreSink {
 public:
  ReceiverSink(std::shared_ptr<const Receiver> receiver, ReceiverSite& site)
      : receiver_(std::move(receiver)), site_(site) {}
  std::filesystem::path NewTempPath() override { return site_.pipeline.NewTempPath(); }
  dicom::StoreAnswer Store(const dicom::IncomingInstance& in) override;
  bool WantsDataset() const override { return receiver_->ChangesData(); }
  dicom::StoreAnswer StoreDataset(const dicom::IncomingInstance& in, dicom::Dataset& data) override;

  // The labels for an instance, from its attributes (exposed for tests).
  Labels Identify(const AttributeLookup& get, const std::string& calling_ae,
                  const std::shared_ptr<const Expectation>& job) const;

 private:
  dicom::StoreAnswer Commit(const std::filesystem::path& temp, IngestSource& src, const dicom::IncomingInstance& in);
  std::shared_ptr<const Expectation> JobFor(const dicom::IncomingInstance& in, const std::string& study_uid,
                                            const std::string& series_uid) const;

  std::shared_ptr<const Receiver> receiver_;
  ReceiverSite& site_;
};

}  // namespace pb
