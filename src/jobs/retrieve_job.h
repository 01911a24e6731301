#pragma once
// The retrieve job: fetch studies, series or instances from a node through its transport (DIMSE:
// C-GET or C-MOVE, "auto" falling back to C-MOVE and remembering what worked; DICOMweb: WADO-RS).
// What arrived is counted from the ingest pipeline's announcements and verified against the
// index at the end: `succeeded` only when every instance the PACS listed is in the archive,
// `partial` with the missing SOP Instance UIDs otherwise. Re-running fetches only what is
// missing. Thread-safe (one Run per job).
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "archive/database.h"
#include "ingest/expectations.h"
#include "ingest/origin_sink.h"
#include "ingest/pipeline.h"
#include "ingest/routing.h"
#include "ingest/staging.h"
#include "jobs/job_service.h"
#include "nodes/registry.h"
#include "receivers/association_log.h"
#include "receivers/receiver.h"
#include "transport/transport.h"

namespace pb {

class RetrieveRunner : public JobRunner {
 public:
  // `ingest_site`: the parts of the ingest path every origin shares (its staging area is the one
  // whose sessions complete when a job has all it expected).
  RetrieveRunner(NodeRegistry& nodes, IngestPipeline& pipeline, Database& db, std::string default_calling_ae,
                 std::function<std::vector<Receiver>()> receivers, ExpectationRegistry& expectations,
                 IngestSite& ingest_site,
                 std::function<std::vector<AssociationAttempt>(std::chrono::steady_clock::time_point)> seen_since = {})
      : nodes_(nodes),
        pipeline_(pipeline),
        db_(db),
        default_ae_(std::move(default_calling_ae)),
        receivers_(std::move(receivers)),
        expectations_(expectations),
        ingest_site_(ingest_site),
        seen_since_(std::move(seen_since)) {}

  [[nodiscard]] Result<std::pair<nlohmann::json, std::string>> Prepare(const nlohmann::json& request) override;
  JobOutcome Run(JobContext& job) override;

 private:
  // A run is plan → fetch (Run, through the node's transport) → verify.
  struct Planned;  // what to fetch and what to verify against
  struct Tally;    // what the job learns while the data flows
  [[nodiscard]] static Result<Planned> PlanFetch(JobContext& job, Transport& node_link, const RetrieveParams& p,
                                                 Database& db);
  JobOutcome Verify(JobContext& job, const Node& node, Transport& node_link, const RetrieveParams& p, Planned& planned,
                    const FetchResult& fetched, Tally& tally, const std::function<nlohmann::json()>& progress);

  NodeRegistry& nodes_;
  IngestPipeline& pipeline_;
  Database& db_;
  std::string default_ae_;
  std::function<std::vector<Receiver>()> receivers_;
  ExpectationRegistry& expectations_;
  // C-GET arrivals walk the one ingest path as receivers' do (site rules, the job's labels, the
  // anonymization of a project that has its own options).
  IngestSite& ingest_site_;
  // The associations our receivers saw since a time: evidence for a C-MOVE that brought nothing.
  std::function<std::vector<AssociationAttempt>(std::chrono::steady_clock::time_point)> seen_since_;
};

}  // namespace pb
