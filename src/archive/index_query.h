#pragma once
// A query of the archive's index in DICOM terms, for the archive served as a PACS (C-FIND on our
// receivers, QIDO-RS later): a level, matching keys by DICOM keyword with values in UTF-8, the
// keys to return, and the projects the caller may see. Answered from the index tables alone,
// never from archive files.
//
// Matching (PS3.4 C.2.2.2): an empty value is universal; a single value matches exactly (case
// sensitive; PN optionally ignoring ASCII case, and a PN value also matches one of a name's
// component groups: "Yamada^Tarou" finds "Yamada^Tarou=山田^太郎"); `*` and `?` are wildcards
// (not in UIDs); UIDs and code strings take lists ("uid1\uid2", "CT\MR"); DA and TM take ranges
// ("20240101-20240131", "-20240131", "20240101-"; a range's end time covers the whole of its
// last unit: "-1300" includes 13:00:59). Values are trimmed of spaces at both ends.
#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace pb {

enum class IndexLevel { kPatient, kStudy, kSeries, kImage };

struct IndexQuery {
  IndexLevel level = IndexLevel::kStudy;
  // Keyword → value. Keys of the query's level and of the levels above it are matched; a key the
  // index does not know at that level (IndexKnows() false) is ignored for matching.
  std::vector<std::pair<std::string, std::string>> keys;
  std::vector<std::string> returns;  // keywords whose values are wanted in the answers
  bool names_ignore_case = false;    // PN matching ignores ASCII case
  // Non-empty: only series filed in these projects are seen (and counted), and the patients
  // and studies that have such series.
  std::vector<std::string> projects;
  size_t limit = 1000, offset = 0;  // ordered by the index's own order (stable for paging)
};

// One matching entity: keyword → value (UTF-8; multi-valued values joined by backslashes), for
// the keys of `returns` the index knows at that level.
using IndexAnswer = std::map<std::string, std::string>;

// Whether the index holds `keyword` at `level` (an attribute of that level or of a level above
// it, or one computed for it: NumberOfStudyRelatedInstances, ModalitiesInStudy, ...).
bool IndexKnows(IndexLevel level, const std::string& keyword);

// "PATIENT", "STUDY", "SERIES", "IMAGE" → level; false for anything else.
bool IndexLevelFromName(const std::string& name, IndexLevel& level);

}  // namespace pb
