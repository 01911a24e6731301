#pragma once
// Text tables for people: aligned columns, UTF-8 aware, fitted to a width by cutting the cells
// of columns that may be cut ("…"), never those marked whole (UIDs and IDs someone copies).
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace pb::cli {

struct TableColumn {
  std::string title;
  bool whole = false;  // never cut (a UID)
};

// Code points of a UTF-8 string (what a terminal shows, for the scripts we print).
size_t DisplayWidth(std::string_view utf8);
// The first code points of `utf8`, ending with "…", so that it takes at most `width` columns.
std::string Truncate(std::string_view utf8, size_t width);

// The table's lines (title line first), columns two spaces apart, without trailing spaces.
// With max_width > 0 and a wider table, the widest cuttable columns are narrowed one column at
// a time, to no less than 6 (or their title's width), until the table fits or nothing more can
// be cut; whole columns keep their width, so a table of long UIDs may stay wider than max_width.
std::vector<std::string> LayoutTable(const std::vector<TableColumn>& columns,
                                     const std::vector<std::vector<std::string>>& rows, size_t max_width);

// A query's answers on stdout: the table fitted to OutputWidth(), then "N <noun>", and whether
// the node had more than the limit.
void PrintQueryTable(const std::vector<TableColumn>& columns, const std::vector<std::vector<std::string>>& rows,
                     const char* noun, bool truncated);

// The width to fit tables to: $COLUMNS when set, else the terminal's when stdout is one, else 0
// (no limit: output piped to a file or a script is never cut).
size_t OutputWidth();

}  // namespace pb::cli
