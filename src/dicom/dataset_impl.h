#pragma once
// The DCMTK side of Dataset. Internal to src/dicom.
#include <memory>
#include <string>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>

#include "dicom/dataset.h"

namespace pb::dicom {

struct Dataset::Impl {
  std::unique_ptr<DcmDataset> ds;
  std::string transfer_syntax_uid;
};

}  // namespace pb::dicom
