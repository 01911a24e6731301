#pragma once
// A stored file in another transfer syntax, for answers that must be in the syntax a client
// asked for (WADO-RS). Lossless only: lossy targets are never produced here.
#include <filesystem>
#include <string>

#include "core/result.h"

namespace pb::dicom {

// Whether a file stored in `from` can be given in `to` without loss (`from` == `to` included).
bool CanGiveLosslessly(const std::string& from, const std::string& to);

// Writes `source` (stored in `from`) to `target` in `to`, with a new file meta header.
[[nodiscard]] Result<void> ConvertFile(const std::filesystem::path& source, const std::string& from,
                                       const std::string& to, const std::filesystem::path& target);

}  // namespace pb::dicom
