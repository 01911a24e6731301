#pragma once
// Checks of the files a TLS set-up reads, so a mistake is said at configuration time, naming
// the field: present and readable; a private key not readable by other users.
#include <string>

#include "core/result.h"

namespace pb::dicom {

Result<void> CheckTlsFile(const std::string& path, const std::string& field, bool private_key);

}  // namespace pb::dicom
