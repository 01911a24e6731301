#pragma once
// Reads the identifying attributes of a stored DICOM file without loading its pixel data
// (parsing stops at PixelData), converted to UTF-8 from the file's Specific Character Set.
#include <filesystem>

#include "archive/records.h"
#include "core/result.h"

namespace pb::dicom {

// Fills the patient/study/series/instance fields of an InstanceRecord (not file_path/size/AEs).
// Errors: unreadable or truncated file, missing SOP Instance / Study / Series UID.
Result<InstanceRecord> ReadHeader(const std::filesystem::path& file);

}  // namespace pb::dicom
