#include "jobs/import_sheet.h"

#include <csv.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "core/validate.h"
#include "ingest/routing.h"

namespace pb {
namespace {

// What a header may say, reduced to lower-case letters and digits, and what it means.
const std::map<std::string, std::string>& HeaderNames() {
  static const std::map<std::string, std::string> kNames{{"accessionnumber", "AccessionNumber"},
                                                         {"accession", "AccessionNumber"},
                                                         {"accessionno", "AccessionNumber"},
                                                         {"patientid", "PatientID"},
                                                         {"patientsid", "PatientID"},
                                                         {"mrn", "PatientID"},
                                                         {"studyinstanceuid", "StudyInstanceUID"},
                                                         {"studyuid", "StudyInstanceUID"},
                                                         {"studydate", "StudyDate"},
                                                         {"modality", "ModalitiesInStudy"},
                                                         {"modalities", "ModalitiesInStudy"},
                                                         {"modalitiesinstudy", "ModalitiesInStudy"},
                                                         {"patientname", "PatientName"},
                                                         {"patientsname", "PatientName"},
                                                         {"project", "project"},
                                                         {"subject", "subject"},
                                                         {"session", "session"}};
  return kNames;
}

std::string Reduce(std::string_view header) {
  std::string out;
  for (unsigned char c : header) {
    if (std::isalnum(c)) out += static_cast<char>(std::tolower(c));
  }
  return out;
}

// Trims blanks, tabs and line ends (core's Trim takes spaces only).
std::string Blank(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return "";
  return std::string(s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1));
}

// One date of a cell: YYYYMMDD or YYYY-MM-DD, a day that exists; the DICOM form.
std::optional<std::string> OneDate(std::string_view s) {
  std::string digits;
  if (s.size() == 8 && std::all_of(s.begin(), s.end(), ::isdigit)) {
    digits = s;
  } else if (s.size() == 10 && s[4] == '-' && s[7] == '-') {
    digits = std::string(s.substr(0, 4)) + std::string(s.substr(5, 2)) + std::string(s.substr(8, 2));
    if (!std::all_of(digits.begin(), digits.end(), ::isdigit)) return std::nullopt;
  } else {
    return std::nullopt;
  }
  using namespace std::chrono;
  const year_month_day d{year{std::stoi(digits.substr(0, 4))},
                         month{static_cast<unsigned>(std::stoi(digits.substr(4, 2)))},
                         day{static_cast<unsigned>(std::stoi(digits.substr(6, 2)))}};
  if (!d.ok()) return std::nullopt;
  return digits;
}

// A Study Date cell: a date, or a range FROM-TO (DICOM dates), "FROM to TO" or "FROM..TO"
// (either form of date), with either end open.
std::optional<std::string> StudyDate(const std::string& cell) {
  std::string from, to;
  bool range = false;
  for (std::string_view sep : {"..", " to ", " - "}) {
    if (size_t at = cell.find(sep); at != std::string::npos) {
      from = Blank(std::string_view(cell).substr(0, at));
      to = Blank(std::string_view(cell).substr(at + sep.size()));
      range = true;
      break;
    }
  }
  if (!range) {
    // DICOM's own range: dates without hyphens around one hyphen ("20240101-20240131",
    // "-20240131", "20240101-").
    if (size_t at = cell.find('-'); at != std::string::npos && (at == 0 || at == 8) && cell.size() <= 17) {
      if (cell.find('-', at + 1) == std::string::npos) {
        from = cell.substr(0, at);
        to = cell.substr(at + 1);
        range = true;
      }
    }
  }
  if (!range) return OneDate(cell);
  if (from.empty() && to.empty()) return std::nullopt;
  std::optional<std::string> a, b;
  if (!from.empty() && !(a = OneDate(from))) return std::nullopt;
  if (!to.empty() && !(b = OneDate(to))) return std::nullopt;
  if (a && b && *a > *b) return std::nullopt;
  return a.value_or("") + "-" + b.value_or("");
}

struct Parse {
  std::vector<std::vector<std::string>> records;
  std::vector<std::vector<int>> field_lines;  // the line each field ended on
  std::vector<std::string> current;
  std::vector<int> current_lines;
  int line = 0;          // the line being fed
  int record_start = 0;  // the line where the record being read began
  bool between = true;   // no record begun since the last one ended
};

void OnField(void* data, size_t len, void* ctx) {
  auto* p = static_cast<Parse*>(ctx);
  p->current.emplace_back(data ? static_cast<const char*>(data) : "", data ? len : 0);
  p->current_lines.push_back(p->line);
}

void OnRecord(int, void* ctx) {
  auto* p = static_cast<Parse*>(ctx);
  p->records.push_back(std::move(p->current));
  p->field_lines.push_back(std::move(p->current_lines));
  p->current.clear();
  p->current_lines.clear();
  p->between = true;
}

int OnlySpace(unsigned char c) { return c == CSV_SPACE ? 1 : 0; }

SheetError At(int line, int column, const std::string& header, const std::string& why) {
  std::string where = column > 0 ? fmt::format("line {}, column {}", line, column) : fmt::format("line {}", line);
  if (!header.empty()) where += fmt::format(" ({})", header);
  return SheetError{line, column, where + ": " + why};
}

// The delimiter: the most frequent of `,` `;` and tab on the header line, outside quotes.
char DetectDelimiter(std::string_view text) {
  int comma = 0, semicolon = 0, tab = 0;
  bool quoted = false;
  for (char c : text) {
    if (c == '"') quoted = !quoted;
    if (quoted) continue;
    if (c == '\n' || c == '\r') break;
    comma += c == ',';
    semicolon += c == ';';
    tab += c == '\t';
  }
  if (semicolon > comma && semicolon >= tab) return ';';
  if (tab > comma && tab > semicolon) return '\t';
  return ',';
}

}  // namespace

const std::vector<std::string>& ImportFindKeywords() {
  static const std::vector<std::string> kFind{"AccessionNumber", "PatientID",         "StudyInstanceUID",
                                              "StudyDate",       "ModalitiesInStudy", "PatientName"};
  return kFind;
}

[[nodiscard]] tl::expected<ImportSheet, SheetError> ParseImportSheet(std::string_view text) {
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  if (Blank(text).empty())
    return tl::unexpected(At(1, 0, "", "the file is empty; its first line must name the columns"));
  ImportSheet sheet;
  sheet.delimiter = DetectDelimiter(text);

  Parse parse;
  csv_parser parser;
  if (csv_init(&parser, CSV_STRICT | CSV_STRICT_FINI) != 0) {
    return tl::unexpected(At(1, 0, "", "out of memory reading the file"));
  }
  csv_set_delim(&parser, static_cast<unsigned char>(sheet.delimiter));
  csv_set_space_func(&parser, OnlySpace);
  struct Free {
    csv_parser* p;
    ~Free() { csv_free(p); }
  } free_parser{&parser};
  // Fed one line at a time, so that every field and every error knows its line. A line ends
  // with LF, CR LF or a lone CR (old Mac exports), as libcsv ends records.
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find_first_of("\r\n", pos);
    size_t end = nl == std::string_view::npos ? text.size() : nl + 1;
    if (nl != std::string_view::npos && text[nl] == '\r' && end < text.size() && text[end] == '\n') ++end;
    ++parse.line;
    std::string_view chunk = text.substr(pos, end - pos);
    if (parse.between && !Blank(chunk).empty()) {
      parse.record_start = parse.line;
      parse.between = false;
    }
    if (csv_parse(&parser, chunk.data(), chunk.size(), OnField, OnRecord, &parse) != chunk.size()) {
      const int column = static_cast<int>(parse.current.size()) + 1;
      return tl::unexpected(At(parse.line, column, "",
                               csv_error(&parser) == CSV_EPARSE
                                   ? "malformed quoting: a quote inside a field that does not start with one, or "
                                     "text after a closing quote (a quote inside a quoted field is written twice)"
                                   : "the file cannot be read"));
    }
    pos = end;
    if (parse.records.size() > kMaxImportRows + 1) {
      return tl::unexpected(At(parse.line, 0, "", fmt::format("more than {} rows; split the file", kMaxImportRows)));
    }
  }
  if (csv_fini(&parser, OnField, OnRecord, &parse) != 0) {
    return tl::unexpected(At(parse.record_start, static_cast<int>(parse.current.size()) + 1, "",
                             "a quoted field opened on this line is not closed before the end of the file"));
  }

  if (parse.records.empty()) {
    return tl::unexpected(At(1, 0, "", "the file is empty; its first line must name the columns"));
  }
  // The header.
  const std::vector<std::string>& header = parse.records.front();
  const int header_line = parse.field_lines.front().empty() ? 1 : parse.field_lines.front().back();
  bool finds = false;
  for (size_t c = 0; c < header.size(); ++c) {
    const std::string name = Blank(header[c]);
    const int column = static_cast<int>(c) + 1;
    if (name.empty()) {  // a trailing delimiter, or a column left unnamed: it must stay empty
      sheet.columns.emplace_back();
      continue;
    }
    if (!IsValidUtf8(name))
      return tl::unexpected(At(header_line, column, "", "not UTF-8 text; save the file as CSV UTF-8"));
    auto it = HeaderNames().find(Reduce(name));
    if (it == HeaderNames().end()) {
      return tl::unexpected(
          At(header_line, column, name,
             "unknown column; the columns are Accession Number, Patient ID, Study Instance UID, Study Date, Modality, "
             "Patient Name (to find studies) and Project, Subject, Session (to label them)"));
    }
    if (std::find(sheet.columns.begin(), sheet.columns.end(), it->second) != sheet.columns.end()) {
      return tl::unexpected(At(header_line, column, name, "this column appears twice"));
    }
    sheet.columns.push_back(it->second);
    finds = finds || std::find(ImportFindKeywords().begin(), ImportFindKeywords().end(), it->second) !=
                         ImportFindKeywords().end();
  }
  if (!finds) {
    return tl::unexpected(At(header_line, 0, "",
                             "no column can find a study: name at least one of Accession Number, Patient ID, Study "
                             "Instance UID, Study Date, Modality, Patient Name"));
  }

  for (size_t r = 1; r < parse.records.size(); ++r) {
    const auto& cells = parse.records[r];
    const auto& lines = parse.field_lines[r];
    const int row_line = lines.empty() ? 0 : lines.back();
    if (std::all_of(cells.begin(), cells.end(), [](const std::string& c) { return Blank(c).empty(); })) continue;
    if (cells.size() > header.size()) {
      return tl::unexpected(
          At(lines[header.size()], static_cast<int>(header.size()) + 1, "",
             fmt::format("this row has {} fields, the header names {} columns", cells.size(), header.size())));
    }
    if (cells.size() < header.size()) {
      return tl::unexpected(At(row_line, static_cast<int>(cells.size()), "",
                               fmt::format("this row has {} fields, the header names {} columns (a line break "
                                           "inside a cell must be quoted)",
                                           cells.size(), header.size())));
    }
    ImportRow row;
    row.line = row_line;
    for (size_t c = 0; c < cells.size(); ++c) {
      const std::string& what = sheet.columns[c];
      const std::string value = Blank(cells[c]);
      const int line = lines[c], column = static_cast<int>(c) + 1;
      const std::string name = Blank(header[c]);
      if (value.empty()) continue;
      auto bad = [&](const std::string& why) { return tl::unexpected(At(line, column, name, why)); };
      if (what.empty()) return bad("a value in a column without a header");
      if (!IsValidUtf8(value)) return bad("not UTF-8 text; save the file as CSV UTF-8");
      if (what == "project" || what == "subject" || what == "session") {
        if (CleanLabel(value) != value) return bad("a label is letters, digits, _ and - (at most 64)");
        (what == "project" ? row.project : what == "subject" ? row.subject : row.session) = value;
        continue;
      }
      std::string key = value;
      if (what == "StudyDate") {
        auto d = StudyDate(value);
        if (!d) {
          return bad(
              fmt::format("'{}' is not a date: write YYYYMMDD or YYYY-MM-DD, or a range FROM-TO "
                          "(20240101-20240131, or 2024-01-01..2024-01-31)",
                          value));
        }
        key = *d;
      } else if (what == "StudyInstanceUID") {
        if (!IsValidUid(value)) return bad("not a DICOM UID (digits and dots, at most 64 characters)");
      } else if (what == "ModalitiesInStudy") {
        std::transform(key.begin(), key.end(), key.begin(), [](unsigned char ch) { return std::toupper(ch); });
        if (key.size() > 16 ||
            !std::all_of(key.begin(), key.end(), [](unsigned char ch) { return std::isalnum(ch); })) {
          return bad("a modality is a code of letters and digits (CT, MR, …)");
        }
      } else if (what == "AccessionNumber") {
        if (value.size() > 16) return bad("an accession number has at most 16 characters");
      } else if (what == "PatientID") {
        if (value.size() > 64) return bad("a patient ID has at most 64 characters");
      } else if (what == "PatientName") {
        if (value.size() > 192) return bad("a patient name has at most 192 bytes");
      }
      if (key.find('\\') != std::string::npos) return bad("a backslash separates DICOM values; give one value");
      row.keys.emplace_back(what, key);
    }
    if (row.keys.empty()) {
      return tl::unexpected(At(row_line, 0, "",
                               "no value to find a study: fill at least one of the columns "
                               "that find studies"));
    }
    sheet.rows.push_back(std::move(row));
  }
  if (sheet.rows.empty()) return tl::unexpected(At(header_line, 0, "", "no rows below the header"));
  return sheet;
}

}  // namespace pb
