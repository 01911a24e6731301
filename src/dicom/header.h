#pragma once
// Reads the identifying attributes of a stored DICOM file without loading its pixel data
// (parsing stops at PixelData), converted to UTF-8 from the file's Specific Character Set.
#include <cstdint>
#include <filesystem>
#include <map>
#include <vector>

#include "core/result.h"
#include "dicom/instance_record.h"

namespace pb::dicom {

// Fills the patient/study/series/instance fields of an InstanceRecord (not file_path/size/AEs).
// Errors: unreadable or truncated file, missing SOP Instance / Study / Series UID.
[[nodiscard]] Result<InstanceRecord> ReadHeader(const std::filesystem::path& file);

// The same from the first bytes of a data set (no file meta header) in `transfer_syntax_uid`:
// by header_scan.h's walk where it can vouch for the answer, else by DCMTK; the same record.
// `complete` says the bytes are the whole data set. Fails when the bytes end before PixelData
// (the caller then reads the file) or the syntax is deflated.
[[nodiscard]] Result<InstanceRecord> ReadHeaderFromBuffer(const std::string& bytes, bool complete,
                                                          const std::string& transfer_syntax_uid);
// The same by DCMTK's parse alone (what the walk must agree with; its fuzz target compares).
[[nodiscard]] Result<InstanceRecord> ReadHeaderFromBufferByDcmtk(const std::string& bytes, bool complete,
                                                                 const std::string& transfer_syntax_uid);

// The same from the first bytes of a DICOM file (with its meta header) kept in memory while it
// was written, so a file just received need not be read again. `complete`: the bytes are the
// whole file. Fails when they end before PixelData (the caller then reads the file).
[[nodiscard]] Result<InstanceRecord> ReadHeaderFromFileBytes(const std::string& bytes, bool complete);

// Top-level values of the given tags (UTF-8) from a stored file's header; absent tags are left
// out. For routing rules that name attributes an InstanceRecord does not carry.
[[nodiscard]] Result<std::map<uint32_t, std::string>> ReadAttributes(const std::filesystem::path& file,
                                                                     const std::vector<uint32_t>& tags);

}  // namespace pb::dicom
