#include "cli/find_table.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

namespace pb::cli {
namespace {

FindColumn Cut(std::string title, std::vector<std::string> keywords) {
  return {{std::move(title), false}, std::move(keywords)};
}
FindColumn Whole(std::string title, std::string keyword) { return {{std::move(title), true}, {std::move(keyword)}}; }

bool IsIdentifier(const std::string& keyword) {
  return keyword == "PatientID" || (keyword.size() > 3 && keyword.compare(keyword.size() - 3, 3, "UID") == 0);
}

}  // namespace

std::vector<FindColumn> DefaultFindColumns(const std::string& level,
                                           const std::vector<std::map<std::string, std::string>>& rows) {
  std::string l = level;
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::toupper(c); });
  std::vector<FindColumn> columns;
  if (l == "PATIENT") {
    columns = {Cut("PATIENT", {"PatientName"}), Cut("BIRTH DATE", {"PatientBirthDate"}), Cut("SEX", {"PatientSex"}),
               Cut("STUDIES", {"NumberOfPatientRelatedStudies"}), Whole("PATIENT ID", "PatientID")};
  } else if (l == "SERIES") {
    columns = {Cut("DATE", {"SeriesDate", "StudyDate"}),
               Cut("PATIENT", {"PatientName"}),
               Cut("ID", {"PatientID"}),
               Cut("DESCRIPTION", {"SeriesDescription"}),
               Cut("MODALITY", {"Modality"}),
               Cut("NUMBER", {"SeriesNumber"}),
               Cut("INSTANCES", {"NumberOfSeriesRelatedInstances"}),
               Whole("SERIES UID", "SeriesInstanceUID")};
  } else if (l == "IMAGE") {
    columns = {Cut("PATIENT", {"PatientName"}), Cut("ID", {"PatientID"}), Cut("NUMBER", {"InstanceNumber"}),
               Whole("SOP INSTANCE UID", "SOPInstanceUID")};
  } else {
    columns = {Cut("DATE", {"StudyDate"}),
               Cut("PATIENT", {"PatientName"}),
               Cut("ID", {"PatientID"}),
               Cut("DESCRIPTION", {"StudyDescription"}),
               Cut("MODALITY", {"ModalitiesInStudy", "Modality"}),
               Cut("SERIES", {"NumberOfStudyRelatedSeries"}),
               Cut("INSTANCES", {"NumberOfStudyRelatedInstances"}),
               Whole("STUDY UID", "StudyInstanceUID")};
  }
  columns.erase(std::remove_if(columns.begin(), columns.end(),
                               [&](const FindColumn& c) {
                                 if (c.column.whole) return false;
                                 return std::none_of(rows.begin(), rows.end(), [&](const auto& row) {
                                   for (const auto& k : c.keywords) {
                                     auto it = row.find(k);
                                     if (it != row.end() && !it->second.empty()) return true;
                                   }
                                   return false;
                                 });
                               }),
                columns.end());
  return columns;
}

[[nodiscard]] Result<std::vector<FindColumn>> ExplicitFindColumns(const std::string& list,
                                                                  bool (*is_keyword)(const std::string&)) {
  std::vector<FindColumn> columns;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    std::string name = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    if (name.empty() || !is_keyword(name)) {
      return Fail(Code::kInvalidArgument,
                  name.empty() ? fmt::format("--columns '{}' has an empty name; give DICOM keywords separated "
                                             "by commas, e.g. StudyDate,PatientName,StudyInstanceUID",
                                             list)
                               : fmt::format("--columns: '{}' is not a DICOM keyword (e.g. StudyDate, "
                                             "PatientName, StudyInstanceUID; case matters)",
                                             name),
                  "--columns");
    }
    columns.push_back({{name, IsIdentifier(name)}, {name}});
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return columns;
}

std::vector<std::string> FindCells(const std::vector<FindColumn>& columns,
                                   const std::map<std::string, std::string>& row) {
  std::vector<std::string> cells;
  for (const auto& c : columns) {
    std::string value;
    for (const auto& k : c.keywords) {
      auto it = row.find(k);
      if (it != row.end() && !it->second.empty()) {
        value = it->second;
        break;
      }
    }
    cells.push_back(std::move(value));
  }
  return cells;
}

}  // namespace pb::cli
