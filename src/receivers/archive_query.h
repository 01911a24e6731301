#pragma once
// What a receiver with Query/Retrieve on answers a C-FIND with: the archive's index, through
// the receiver's window on it (the projects it shows, its PN matching). One per association.
#include <string>
#include <vector>

#include "archive/database.h"
#include "dicom/query_scp.h"

namespace pb {

class ArchiveQuerySink : public dicom::QuerySink {
 public:
  static constexpr size_t kPage = 500;  // answers read from the index at a time

  ArchiveQuerySink(Database& db, std::vector<std::string> projects, bool names_ignore_case)
      : db_(db), projects_(std::move(projects)), names_ignore_case_(names_ignore_case) {}

  Result<dicom::FindPage> Find(const dicom::FindQuery& request, size_t offset) override;

 private:
  Database& db_;
  std::vector<std::string> projects_;
  bool names_ignore_case_;
};

}  // namespace pb
