#pragma once
// Images of instances rendered on the server with DCMTK's image module, as PNG or JPEG: for the
// archive's series thumbnails and WADO-RS rendered / thumbnail resources (PS3.18 10.4.1.1.4,
// 8.3.5). One frame is decoded (partial access), never the whole cine loop; windowing from the
// request, else the file's first VOI window, else the full range of the values; scaled to fit
// a viewport with the aspect kept.
#include <filesystem>
#include <optional>
#include <string>

#include "core/result.h"

namespace pb::dicom {

struct Thumbnail {
  std::string png;  // the encoded image (PNG, or JPEG when asked)
  int width = 0, height = 0;
};

struct RenderRequest {
  std::optional<int> frame;           // from 1; none: the middle frame
  int max_width = 0, max_height = 0;  // fit within (0: the image's own size in that direction)
  bool upscale = false;               // a viewport larger than the image enlarges it
  struct Window {
    double center = 0, width = 1;
    enum class Function { kLinear, kLinearExact, kSigmoid } function = Function::kLinear;
  };
  std::optional<Window> window;  // monochrome images only
  enum class Format { kPng, kJpeg } format = Format::kPng;
  int quality = 90;  // JPEG, 1..100
};

// kUnsupported when the file has no image DCMTK can show (a report, an unknown compression);
// kNotFound for a frame it does not have; kIoError when it cannot be read.
[[nodiscard]] Result<Thumbnail> Render(const std::filesystem::path& file, const RenderRequest& request);

// The middle frame as PNG, fitting a max_side square.
[[nodiscard]] Result<Thumbnail> RenderThumbnail(const std::filesystem::path& file, int max_side);

}  // namespace pb::dicom
