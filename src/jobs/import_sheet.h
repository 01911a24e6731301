#pragma once
// The spreadsheet of a bulk import (POST /api/imports): a CSV whose header names columns that
// find studies (Accession Number, Patient ID, Study Instance UID, Study Date or a range,
// Modality, Patient Name) and optional relabeling columns (Project, Subject, Session). Parsed
// with libcsv (RFC 4180 quoting, strict); the delimiter (`,`, `;` or tab) is taken from the
// header line, a UTF-8 byte order mark is skipped. Headers match case-insensitively, with or
// without spaces and underscores, and by DICOM keyword. Every refusal names the line (the
// header is line 1) and the column (1-based) of what is wrong. Pure functions.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <tl/expected.hpp>

namespace pb {

struct ImportRow {
  int line = 0;  // where the row ends in the file (the header is line 1)
  // The C-FIND keys of the row at STUDY level: DICOM keyword → matching value (dates as DICOM
  // dates or ranges, modalities upper-case). Only non-empty cells.
  std::vector<std::pair<std::string, std::string>> keys;
  std::string project, subject, session;  // "" when the row does not relabel
};

struct ImportSheet {
  char delimiter = ',';
  // What each column is: a DICOM keyword of the find columns, or "project", "subject", "session".
  std::vector<std::string> columns;
  std::vector<ImportRow> rows;
};

struct SheetError {
  int line = 0;
  int column = 0;       // 0: the line as a whole
  std::string message;  // starts with "line L, column C (header): "
};

// At most this many data rows.
constexpr size_t kMaxImportRows = 10000;

[[nodiscard]] tl::expected<ImportSheet, SheetError> ParseImportSheet(std::string_view text);

// The keywords of the columns that can find a study, in the order the docs list them.
const std::vector<std::string>& ImportFindKeywords();

}  // namespace pb
