#include "cli/table.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <numeric>

namespace pb::cli {

size_t DisplayWidth(std::string_view utf8) {
  return static_cast<size_t>(std::count_if(utf8.begin(), utf8.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

std::string Truncate(std::string_view utf8, size_t width) {
  if (DisplayWidth(utf8) <= width) return std::string(utf8);
  if (width == 0) return {};
  size_t kept = 0, end = 0;
  for (; end < utf8.size(); ++end) {
    if ((static_cast<unsigned char>(utf8[end]) & 0xC0) != 0x80 && kept++ == width - 1) break;
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
