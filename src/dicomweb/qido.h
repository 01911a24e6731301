#pragma once
// QIDO-RS (PS3.18 10.6) as a find: the request a level and DICOM keywords become, and the rows
// an answer in DICOM JSON (PS3.18 F.2) becomes, in the shape of a DIMSE find (keyword → UTF-8
// string; several values joined by a backslash; a person name as its alphabetic form;
// sequences and bulk data left out). Pure logic over the DICOM dictionary; no network.
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"

namespace pb::dicomweb {

using Row = std::map<std::string, std::string>;

struct QidoSearch {
  std::string path;  // below the QIDO root: "studies", "studies/{uid}/series", ...
  std::vector<std::pair<std::string, std::string>> params;  // not yet URL-encoded
};

// The search for a find at `level` (PATIENT is asked as a study search, see GroupByPatient).
// Keys with a value match; keys without one, and the level's default return keys, are asked
// for with includefield. A single Study (and Series) Instance UID goes into the path, as
// servers that do not support every search resource expect. Errors: kInvalidArgument naming
// the field ("level", "query.<key>": not a keyword, a malformed date or UID).
// `minimal`: only the keys given are asked for, none of the level's defaults (a retrieve's
// plan needs UIDs; every other attribute may cost the server a read of the file).
[[nodiscard]] Result<QidoSearch> BuildSearch(const std::string& level,
                                             const std::vector<std::pair<std::string, std::string>>& keys,
                                             bool minimal = false);

// `path?name=value&...` with the values URL-encoded, plus limit/offset when not zero.
std::string SearchUrl(const std::string& root, const QidoSearch& search, size_t limit, size_t offset);

// The rows of a QIDO-RS answer body. Errors (kUnavailable) say what is wrong: not JSON (the
// first characters shown), not an array of objects.
[[nodiscard]] Result<std::vector<Row>> RowsFromDicomJson(std::string_view body);

// PATIENT level from study rows: one row per patient (Patient ID and issuer), with the
// patient's attributes and NumberOfPatientRelatedStudies counted.
std::vector<Row> GroupByPatient(const std::vector<Row>& studies);

}  // namespace pb::dicomweb
