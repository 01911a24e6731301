#include "dicom/thumbnail.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmimage/diregist.h>  // colour images
#include <dcmtk/dcmimage/dipipng.h>
#include <dcmtk/dcmimgle/dcmimage.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include <fmt/format.h>

#include "dicom/transcode.h"

namespace pb::dicom {

Result<Thumbnail> RenderThumbnail(const std::filesystem::path& file, int max_side) {
  RegisterCodecs();  // compressed pixel data (JPEG, JPEG-LS, RLE) is decoded on the way
  DcmFileFormat ff;
  if (ff.loadFile(file.c_str()).bad()) return Fail(Code::kIoError, "the stored file cannot be read");
  DcmDataset* ds = ff.getDataset();
  if (!ds->tagExists(DCM_PixelData)) return Fail(Code::kUnsupported, "the instance has no image (no pixel data)");
  long frames = 1;
  ds->findAndGetLongInt(DCM_NumberOfFrames, frames);
  const unsigned long middle = frames > 1 ? static_cast<unsigned long>(frames / 2) : 0;
  // Only the frame shown is decoded (partial access), not the whole cine loop.
  DicomImage image(ds, ds->getOriginalXfer(), CIF_UsePartialAccessToPixelData, middle, 1);
  if (image.getStatus() != EIS_Normal) {
    return Fail(Code::kUnsupported,
                fmt::format("the image cannot be shown: {}", DicomImage::getString(image.getStatus())));
  }
  if (image.isMonochrome()) {
    if (image.getWindowCount() > 0) image.setWindow(0);
    else image.setMinMaxWindow();
  }
  const unsigned long w = image.getWidth(), h = image.getHeight();
  if (w == 0 || h == 0) return Fail(Code::kUnsupported, "the image is empty");
  const double f = std::min(1.0, static_cast<double>(max_side) / static_cast<double>(std::max(w, h)));
  const auto nw = std::max<unsigned long>(1, std::lround(w * f));
  const auto nh = std::max<unsigned long>(1, std::lround(h * f));
  std::unique_ptr<DicomImage> scaled(image.createScaledImage(nw, nh, /*interpolate=*/1, /*aspect=*/0));
  if (!scaled || scaled->getStatus() != EIS_Normal) return Fail(Code::kUnsupported, "the image cannot be scaled");
  // DCMTK writes PNG to a FILE*: one in memory.
  char* buf = nullptr;
  size_t len = 0;
  FILE* mem = open_memstream(&buf, &len);
  if (!mem) return Fail(Code::kInternal, "no memory for the thumbnail");
  DiPNGPlugin png;
  png.setInterlaceType(E_pngInterlaceNone);
  png.setMetainfoType(E_pngNoMetainfo);
  const int written = scaled->writePluginFormat(&png, mem, 0);
  std::fclose(mem);
  std::unique_ptr<char, decltype(&std::free)> owned(buf, &std::free);
  if (!written || len == 0) return Fail(Code::kUnsupported, "the image cannot be written as PNG");
  return Thumbnail{std::string(buf, len), static_cast<int>(nw), static_cast<int>(nh)};
}

}  // namespace pb::dicom
