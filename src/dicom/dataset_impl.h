#pragma once
// The DCMTK side of Dataset. Internal to src/dicom.
#include <filesystem>
#include <memory>
#include <string>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>

#include "dicom/dataset.h"

namespace pb::dicom {

// A file removed when its owner goes.
struct RemovedFile {
  std::filesystem::path path;
  RemovedFile() = default;
  RemovedFile(const RemovedFile&) = delete;
  RemovedFile& operator=(const RemovedFile&) = delete;
  ~RemovedFile() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove(path, ec);
  }
};

struct Dataset::Impl {
  // Where DCMTK reads the values it left on disk (a split data set's spill file); it outlives
  // the data set.
  RemovedFile spill;
  std::unique_ptr<DcmDataset> ds;
  std::string transfer_syntax_uid;
};

}  // namespace pb::dicom
