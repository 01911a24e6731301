#pragma once
// A small PNG of an instance's image, rendered on the server with DCMTK's image module: the
// middle frame, its first VOI window (else the full range of its values), scaled to fit a
// square, aspect kept. For the archive's series thumbnails.
#include <filesystem>
#include <string>

#include "core/result.h"

namespace pb::dicom {

struct Thumbnail {
  std::string png;
  int width = 0, height = 0;
};

// kUnsupported when the file has no image DCMTK can show (a report, an unknown compression);
// kIoError when it cannot be read.
Result<Thumbnail> RenderThumbnail(const std::filesystem::path& file, int max_side);

}  // namespace pb::dicom
