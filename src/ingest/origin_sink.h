#pragma once
// The one ingest path of every origin, as the DICOM layer's StoreSink: identify (the origin's
// rules, the site's, the defaults; the retrieve job that awaits the instance; the labels the
// origin imposes) → process → anonymize (the origin's choice, or the project's own options) →
// stage or archive, then the DIMSE answer. A receiver's association and a C-GET of a retrieve
// job differ only by their IngestPolicy (origin.h). One sink per association, holding the
// policy as it was when it opened, so a change at run time never alters an association half
// way. Thread-safe (no mutable state).
//
// An instance a discarding expectation awaits (the C-MOVE self-test) leaves this path first:
// the sender is answered success, the data is deleted and only the expectation's counter learns
// of it; nothing is journaled, archived, staged, indexed or announced to the ArrivalHub.
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "dicom/server.h"
#include "ingest/expectations.h"
#include "ingest/origin.h"
#include "ingest/pipeline.h"
#include "ingest/routing.h"
#include "ingest/staging.h"

namespace pb {

// What every origin shares; lives as long as the server.
struct IngestSite {
  IngestPipeline& pipeline;
  StagingArea& staging;
  ExpectationRegistry& expectations;
  std::function<std::shared_ptr<const RoutingRules>()> site_rules;
  std::string secret;  // the site's anonymization secret
  // A project's own anonymization options, which replace the origin's for data filed there.
  std::function<std::optional<AnonymizationChoices>(const std::string& project)> project_anonymization;
  // Whether any project has such options (then data sets of some origins come in memory).
  std::function<bool()> any_anonymizing_project;
};

class OriginSink : public dicom::StoreSink {
 public:
  OriginSink(std::shared_ptr<const IngestPolicy> policy, IngestSite& site);
  std::filesystem::path NewTempPath() override { return site_.pipeline.NewTempPath(); }
  dicom::StoreAnswer Store(const dicom::IncomingInstance& in) override;
  bool WantsDataset() const override { return wants_dataset_; }
  dicom::StoreAnswer StoreDataset(const dicom::IncomingInstance& in, dicom::Dataset& data) override;
  // A retrieve job's C-GET (its policy's answer_first), or its C-MOVE: the PACS names the job's
  // request as Move Originator, and the job counts the stores it waits for
  // (Expectation::pending_stores).
  std::unique_ptr<PendingStore> AnswerBeforeStore(const dicom::IncomingInstance& in) override;

  // The labels for an instance, from its attributes, and whether it is anonymized (exposed for
  // tests). Labels the default rules took from identifying data become pseudonyms then.
  struct Identity {
    Labels labels;
    bool anonymize = false;
    AnonymizationChoices choices;
    std::vector<std::pair<uint32_t, std::string>> set;  // attributes the awaiting job sets
  };
  Identity Identify(const AttributeLookup& get, const std::string& calling_ae,
                    const std::shared_ptr<const Expectation>& job) const;

 private:
  dicom::StoreAnswer Commit(const std::filesystem::path& temp, IngestSource& src, const dicom::IncomingInstance& in);
  // Set: the answer refusing an instance identified into a project the origin may not write to.
  std::optional<dicom::StoreAnswer> RefuseProject(const std::string& project, const dicom::IncomingInstance& in) const;
  // `job`: the job awaiting this instance, as JobFor chose it.
  dicom::StoreAnswer StoreDatasetFor(const dicom::IncomingInstance& in, dicom::Dataset& data,
                                     const std::shared_ptr<const Expectation>& job);
  // The expectation the registry matches for an instance, and whether by its Move Originator.
  struct Awaited {
    std::shared_ptr<const Expectation> expectation;
    bool by_originator = false;
  };
  Awaited AwaitedBy(const dicom::IncomingInstance& in, const std::string& study_uid,
                    const std::string& series_uid) const;
  // The job whose labels apply (null: none), from what the registry matched.
  std::shared_ptr<const Expectation> JobFor(const Awaited& awaited) const;
  // Answers success, deletes the data (if on disk) and counts it; nothing else happens.
  dicom::StoreAnswer Discard(const dicom::IncomingInstance& in, const Expectation& e) const;

  std::shared_ptr<const IngestPolicy> policy_;
  IngestSite& site_;
  bool wants_dataset_ = false;
};

}  // namespace pb
