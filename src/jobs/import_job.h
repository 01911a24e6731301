#pragma once
// The import job: studies listed in a spreadsheet (import_sheet.h), found on a node and
// retrieved. One job per sheet, in phases that each survive a stop or a crash (they are derived
// from the `import_rows` table and the job's own retrieves, never from memory):
//   1. query: each row is a STUDY-level find on the node (transient faults: the job is retried
//      later, rows already answered are kept); a row gets no_match, one_match, several_matches or
//      error;
//   2. confirmation: the job waits for a person (POST /api/imports/{id}/confirm) to take or
//      decline each matched row, unless the request asked for `confirm` and no row needs a choice;
//   3. retrieve: one retrieve job per taken row, with this job as parent, filed under the row's
//      project, subject and session, Patient Name and ID replaced by the subject; the import
//      waits for them and ends succeeded when every one did, partial or failed otherwise.
#include <string>

#include <nlohmann/json.hpp>

#include "archive/database.h"
#include "jobs/job_service.h"
#include "nodes/registry.h"
#include "transport/transport.h"

namespace pb {

class ImportRunner : public JobRunner {
 public:
  ImportRunner(NodeRegistry& nodes, Database& db, TransportContext transport_context)
      : nodes_(nodes), db_(db), transport_context_(std::move(transport_context)) {}
  // The service the rows' retrieve jobs are submitted to (the one this runner is registered in).
  void SetJobs(JobService& jobs) { jobs_ = &jobs; }

  // {"csv", "node", "project", "several": "ask"/"all"/"none", "confirm", "method"}. A malformed
  // sheet is refused with its line and column (the route reports them as fields of the error).
  [[nodiscard]] Result<std::pair<nlohmann::json, std::string>> Prepare(const nlohmann::json& request) override;
  JobOutcome Run(JobContext& job) override;

  // The import with its rows, their matches, choices and retrieve jobs, and where it stands.
  [[nodiscard]] Result<nlohmann::json> View(int64_t id);
  // {"several": "all"/"none", "rows": {"<line>": "all"/"none"}}: every matched row is taken or
  // declined (one match: taken unless declined), then the retrieves start.
  [[nodiscard]] Result<nlohmann::json> Confirm(int64_t id, const nlohmann::json& body);

 private:
  [[nodiscard]] Result<JobRow> ImportJob(int64_t id);

  NodeRegistry& nodes_;
  Database& db_;
  TransportContext transport_context_;
  JobService* jobs_ = nullptr;
};

}  // namespace pb
