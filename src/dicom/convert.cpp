#include "dicom/convert.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <fmt/format.h>

#include "dicom/transcode.h"

namespace pb::dicom {

bool CanGiveLosslessly(const std::string& from, const std::string& to) { return CanConvert(from, to, false); }

[[nodiscard]] Result<void> ConvertFile(const std::filesystem::path& source, const std::string& from,
                                       const std::string& to, const std::filesystem::path& target) {
  DcmFileFormat file;
  if (file.loadFile(source.c_str()).bad()) {
    return Fail(Code::kIoError, fmt::format("cannot read the stored file {}", source.string()));
  }
  if (auto r = Transcode(*file.getDataset(), from, to); !r) return r;
  if (file.saveFile(target.c_str(), DcmXfer(to.c_str()).getXfer()).bad()) {
    return Fail(Code::kIoError, fmt::format("cannot write {}", target.string()));
  }
  return {};
}

}  // namespace pb::dicom
