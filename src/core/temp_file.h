#pragma once
// A temp file to write an arriving instance into: its path and, when it was made ahead
// (archive/temp_files.h), an open descriptor to write from offset 0 (the file is empty; no
// truncation). fd -1: create the path yourself. Whoever takes one owns both.
#include <filesystem>

namespace pb {

struct TempFile {
  std::filesystem::path path;
  int fd = -1;
};

}  // namespace pb
