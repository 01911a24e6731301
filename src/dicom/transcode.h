#pragma once
// Converting a data set to another transfer syntax with DCMTK's codecs (JPEG baseline,
// extended and lossless; JPEG-LS; RLE; Deflated; and between the uncompressed ones). This
// build has no JPEG 2000 codec: such data can be neither decoded nor produced. Internal to
// src/dicom.
#include <string>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>

#include "core/result.h"

namespace pb::dicom {

// DCMTK's codecs, registered once for the process (idempotent, thread-safe).
void RegisterCodecs();

bool IsUncompressed(const std::string& ts);
bool IsLossy(const std::string& ts);
// Whether data stored in `from` can be sent in `to` (lossy targets only when allowed).
bool CanConvert(const std::string& from, const std::string& to, bool allow_lossy);

// Converts `ds` (as read from a file stored in `from`) in place so it can be written in `to`.
[[nodiscard]] Result<void> Transcode(DcmDataset& ds, const std::string& from, const std::string& to);

}  // namespace pb::dicom
