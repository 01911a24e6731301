#include "dicom/thumbnail.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmimgle/dcmimage.h>
// The plugins need DicomImage declared first.
#include <dcmtk/dcmimage/dipipng.h>
#include <dcmtk/dcmimage/diregist.h>  // colour images
#include <dcmtk/dcmjpeg/dipijpeg.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>

#include <fmt/format.h>

#include "dicom/transcode.h"

namespace pb::dicom {

[[nodiscard]] Result<Thumbnail> Render(const std::filesystem::path& file, const RenderRequest& rq) {
  RegisterCodecs();  // compressed pixel data (JPEG, JPEG-LS, RLE) is decoded on the way
  DcmFileFormat ff;
  if (ff.loadFile(file.c_str()).bad()) return Fail(Code::kIoError, "the stored file cannot be read");
  DcmDataset* ds = ff.getDataset();
  if (!ds->tagExists(DCM_PixelData)) return Fail(Code::kUnsupported, "the instance has no image (no pixel data)");
  long frames = 1;
  ds->findAndGetLongInt(DCM_NumberOfFrames, frames);
  if (frames < 1) frames = 1;
  if (rq.frame && (*rq.frame < 1 || *rq.frame > frames)) {
    return Fail(Code::kNotFound, fmt::format("there is no frame {}: the instance has {}", *rq.frame, frames));
  }
  const unsigned long frame =
      rq.frame ? static_cast<unsigned long>(*rq.frame - 1) : (frames > 1 ? static_cast<unsigned long>(frames / 2) : 0);
  // Only the frame shown is decoded (partial access), not the whole cine loop.
  DicomImage image(ds, ds->getOriginalXfer(), CIF_UsePartialAccessToPixelData, frame, 1);
  if (image.getStatus() != EIS_Normal) {
    return Fail(Code::kUnsupported,
                fmt::format("the image cannot be shown: {}", DicomImage::getString(image.getStatus())));
  }
  if (image.isMonochrome()) {
    if (rq.window) {
      using F = RenderRequest::Window::Function;
      // DCMTK 3.6.7 has no LINEAR_EXACT: it is drawn as LINEAR (half a value step apart).
      image.setVoiLutFunction(rq.window->function == F::kSigmoid ? EFV_Sigmoid : EFV_Linear);
      image.setWindow(rq.window->center, rq.window->width);
    } else if (image.getWindowCount() > 0) {
      image.setWindow(0);
    } else {
      image.setMinMaxWindow();
    }
  }
  const unsigned long w = image.getWidth(), h = image.getHeight();
  if (w == 0 || h == 0) return Fail(Code::kUnsupported, "the image is empty");
  double f = std::numeric_limits<double>::infinity();
  if (rq.max_width > 0) f = std::min(f, static_cast<double>(rq.max_width) / static_cast<double>(w));
  if (rq.max_height > 0) f = std::min(f, static_cast<double>(rq.max_height) / static_cast<double>(h));
  if (!std::isfinite(f)) f = 1.0;
  if (!rq.upscale) f = std::min(f, 1.0);
  const auto nw = std::max<unsigned long>(1, std::lround(w * f));
  const auto nh = std::max<unsigned long>(1, std::lround(h * f));
  std::unique_ptr<DicomImage> scaled;
  if (nw != w || nh != h) {
    scaled.reset(image.createScaledImage(nw, nh, /*interpolate=*/1, /*aspect=*/0));
    if (!scaled || scaled->getStatus() != EIS_Normal) return Fail(Code::kUnsupported, "the image cannot be scaled");
  }
  DicomImage& out = scaled ? *scaled : image;
  // DCMTK writes images to a FILE*: one in memory.
  char* buf = nullptr;
  size_t len = 0;
  FILE* mem = open_memstream(&buf, &len);
  if (!mem) return Fail(Code::kInternal, "no memory for the image");
  int written = 0;
  if (rq.format == RenderRequest::Format::kJpeg) {
    DiJPEGPlugin jpeg;
    jpeg.setQuality(static_cast<unsigned int>(std::clamp(rq.quality, 1, 100)));
    written = out.writePluginFormat(&jpeg, mem, 0);
  } else {
    DiPNGPlugin png;
    png.setInterlaceType(E_pngInterlaceNone);
    png.setMetainfoType(E_pngNoMetainfo);
    written = out.writePluginFormat(&png, mem, 0);
  }
  std::fclose(mem);
  std::unique_ptr<char, decltype(&std::free)> owned(buf, &std::free);
  if (!written || len == 0) return Fail(Code::kUnsupported, "the image cannot be encoded");
  return Thumbnail{std::string(buf, len), static_cast<int>(nw), static_cast<int>(nh)};
}

[[nodiscard]] Result<Thumbnail> RenderThumbnail(const std::filesystem::path& file, int max_side) {
  RenderRequest rq;
  rq.max_width = rq.max_height = max_side;
  return Render(file, rq);
}

}  // namespace pb::dicom
