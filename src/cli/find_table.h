#pragma once
// The columns of `pacsbridge find`: what a person acts on first (date, patient, description,
// modality, counts), then the UID that retrieves the row (StudyInstanceUID at STUDY level,
// SeriesInstanceUID at SERIES, SOPInstanceUID at IMAGE, PatientID at PATIENT), never cut.
#include <map>
#include <string>
#include <vector>

#include "cli/table.h"
#include "core/result.h"

namespace pb::cli {

struct FindColumn {
  TableColumn column;
  std::vector<std::string> keywords;  // the first one with a value in the row fills the cell
};

// The default columns at `level` (case-insensitive); columns without a value in any of `rows`
// are left out, except the UID.
std::vector<FindColumn> DefaultFindColumns(const std::string& level,
                                           const std::vector<std::map<std::string, std::string>>& rows);

// Columns named by `--columns A,B,C` (DICOM keywords, titled by keyword; UIDs and PatientID
// are never cut). `is_keyword` says whether a name is a DICOM keyword; errors name the unknown
// one (field "--columns").
[[nodiscard]] Result<std::vector<FindColumn>> ExplicitFindColumns(const std::string& list,
                                                                  bool (*is_keyword)(const std::string&));

std::vector<std::string> FindCells(const std::vector<FindColumn>& columns,
                                   const std::map<std::string, std::string>& row);

}  // namespace pb::cli
