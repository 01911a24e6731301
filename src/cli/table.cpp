#include "cli/table.h"

#include <locale.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <wchar.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <numeric>
#include <utility>

namespace pb::cli {

namespace {

// The code point at utf8[i] and its length in bytes (a stray byte counts as one character).
std::pair<char32_t, size_t> CodePointAt(std::string_view utf8, size_t i) {
  const auto c = static_cast<unsigned char>(utf8[i]);
  const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
  if (n == 1 || i + n > utf8.size()) return {c, 1};
  char32_t cp = c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(utf8[i + k]) & 0x3F);
  return {cp, n};
}

// Columns a terminal gives the character: glibc's wcwidth under a UTF-8 locale (2 for East
// Asian wide and full-width characters, 0 for combining marks); 1 when it cannot say.
size_t Columns(char32_t cp) {
  static const locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
  if (cp < 0x80 || !utf8) return 1;
  const locale_t before = uselocale(utf8);
  const int w = wcwidth(static_cast<wchar_t>(cp));
  uselocale(before);
  return w < 0 ? 1 : static_cast<size_t>(w);
}

}  // namespace

size_t DisplayWidth(std::string_view utf8) {
  size_t width = 0;
  for (size_t i = 0; i < utf8.size();) {
    auto [cp, n] = CodePointAt(utf8, i);
    width += Columns(cp);
    i += n;
  }
  return width;
}

std::string Truncate(std::string_view utf8, size_t width) {
  if (DisplayWidth(utf8) <= width) return std::string(utf8);
  if (width == 0) return {};
  size_t used = 0, end = 0;
  while (end < utf8.size()) {
    auto [cp, n] = CodePointAt(utf8, end);
    if (used + Columns(cp) > width - 1) break;  // one column stays for "…"
    used += Columns(cp);
    end += n;
  }
  return std::string(utf8.substr(0, end)) + "…";
}

std::vector<std::string> LayoutTable(const std::vector<TableColumn>& columns,
                                     const std::vector<std::vector<std::string>>& rows, size_t max_width) {
  std::vector<size_t> width(columns.size());
  for (size_t i = 0; i < columns.size(); ++i) width[i] = DisplayWidth(columns[i].title);
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i) width[i] = std::max(width[i], DisplayWidth(r[i]));
  }
  auto total = [&] {
    return std::accumulate(width.begin(), width.end(), size_t{0}) + 2 * (width.empty() ? 0 : width.size() - 1);
  };
  while (max_width > 0 && total() > max_width) {
    size_t widest = columns.size();
    for (size_t i = 0; i < columns.size(); ++i) {
      size_t floor = std::max<size_t>(6, DisplayWidth(columns[i].title));
      if (columns[i].whole || width[i] <= floor) continue;
      if (widest == columns.size() || width[i] > width[widest]) widest = i;
    }
    if (widest == columns.size()) break;
    --width[widest];
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < cells.size() && i < width.size(); ++i) {
      std::string cell = Truncate(cells[i], width[i]);
      out += cell;
      if (i + 1 < cells.size()) out += std::string(width[i] - DisplayWidth(cell) + 2, ' ');
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
  };
  std::vector<std::string> out;
  std::vector<std::string> titles;
  for (const auto& c : columns) titles.push_back(c.title);
  out.push_back(line(titles));
  for (const auto& r : rows) out.push_back(line(r));
  return out;
}

void PrintQueryTable(const std::vector<TableColumn>& columns, const std::vector<std::vector<std::string>>& rows,
                     const char* noun, bool truncated) {
  for (const auto& line : LayoutTable(columns, rows, OutputWidth())) std::cout << line << "\n";
  std::cout << rows.size() << " " << noun
            << (truncated ? " (truncated: more matched; narrow the query or raise --limit)" : "") << "\n";
}

size_t OutputWidth() {
  if (const char* env = std::getenv("COLUMNS")) {
    char* end = nullptr;
    long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n > 0) return static_cast<size_t>(n);
  }
  winsize ws{};
  if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 0;
}

}  // namespace pb::cli
