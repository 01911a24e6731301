#pragma once
// The web UI's files (ui/dist, built by Vite), embedded at build time by scripts/embed_ui.py:
// the binary serves the UI of its own version, from nowhere else.
#include <cstddef>
#include <vector>

namespace pb::http {

struct UiAsset {
  const char* path;  // "/index.html", "/assets/index-3f2a.js"
  const char* type;  // its media type
  const unsigned char* data;
  std::size_t size;
};

const std::vector<UiAsset>& UiAssets();

}  // namespace pb::http
