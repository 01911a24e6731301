#pragma once
// What a receiver with Query/Retrieve on answers with: the archive's index and files, through
// the receiver's window on them (the projects it shows, its PN matching). C-FIND answers from
// the index; C-GET and C-MOVE send the files the index names, a C-MOVE to a node of the
// registry found by AE title. One per association.
#include <functional>
#include <string>
#include <vector>

#include "archive/database.h"
#include "dicom/query_scp.h"
#include "dicom/retrieve_scp.h"
#include "ingest/pipeline.h"

namespace pb {

// A C-MOVE destination by AE title; `our_ae` is the receiver's (the calling AE title unless the
// node names its own). kNotFound when no node has that AE title.
using MoveDestinations =
    std::function<Result<dicom::MoveTarget>(const std::string& ae_title, const std::string& our_ae)>;

class ArchiveQuerySink : public dicom::QuerySink, public dicom::RetrieveSink {
 public:
  static constexpr size_t kPage = 500;  // answers read from the index at a time

  ArchiveQuerySink(IngestPipeline& pipeline, Database& db, std::vector<std::string> projects, bool names_ignore_case,
                   MoveDestinations destinations)
      : pipeline_(pipeline),
        db_(db),
        projects_(std::move(projects)),
        names_ignore_case_(names_ignore_case),
        destinations_(std::move(destinations)) {}

  [[nodiscard]] Result<dicom::FindPage> Find(const dicom::FindQuery& request, size_t offset) override;
  [[nodiscard]] Result<std::vector<dicom::SendItem>> Instances(const dicom::RetrieveQuery& query) override;
  [[nodiscard]] Result<dicom::MoveTarget> MoveDestination(const std::string& ae_title,
                                                          const dicom::RetrieveQuery& query) override;

 private:
  IngestPipeline& pipeline_;
  Database& db_;
  std::vector<std::string> projects_;
  bool names_ignore_case_;
  MoveDestinations destinations_;
};

}  // namespace pb
