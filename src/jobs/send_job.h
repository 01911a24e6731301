#pragma once
// The send job: instances of the archive (a study, series or instance list) to a storable node
// by C-STORE, many instances per association and up to the node's max_associations in
// parallel. Per-instance outcome kept: confirmed (success or warning), failed with the peer's
// status and its meaning, or not confirmed (the association broke). A retry sends only what
// failed or was not confirmed. Thread-safe (one Run per job).
#include <string>

#include "archive/blob_store.h"
#include "archive/database.h"
#include "ingest/pipeline.h"
#include "jobs/job_service.h"
#include "nodes/registry.h"

namespace pb {

class SendRunner : public JobRunner {
 public:
  SendRunner(NodeRegistry& nodes, IngestPipeline& pipeline, Database& db, BlobStore& blobs,
             std::string default_calling_ae)
      : nodes_(nodes), pipeline_(pipeline), db_(db), blobs_(blobs), default_ae_(std::move(default_calling_ae)) {}

  [[nodiscard]] Result<std::pair<nlohmann::json, std::string>> Prepare(const nlohmann::json& request) override;
  JobOutcome Run(JobContext& job) override;

 private:
  // The archive's instances for the parameters (level, uids, and `only` when set).
  [[nodiscard]] Result<std::vector<InstanceRow>> Select(const nlohmann::json& params);

  NodeRegistry& nodes_;
  IngestPipeline& pipeline_;  // flushed first: what a sender was told is stored can be sent
  Database& db_;
  BlobStore& blobs_;
  std::string default_ae_;
};

}  // namespace pb
