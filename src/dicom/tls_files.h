#pragma once
// Checks of the files a TLS set-up reads, so a mistake is said at configuration time, naming
// the field: present and readable; a private key not readable by other users.
#include <cstdint>
#include <string>

#include "core/result.h"

namespace pb::dicom {

[[nodiscard]] Result<void> CheckTlsFile(const std::string& path, const std::string& field, bool private_key);

// What is wrong with the certificate of a TLS server our verification refused, seen through a
// second handshake that accepts anything: "certificate expired (on ...; subject ...)", "not yet
// valid", or "certificate not trusted (issuer ...; subject ...): put the issuer's certificate in
// tls.ca_file". Shared by DIMSE and DICOMweb so both say it the same way.
std::string DescribeCertificateProblem(const std::string& address, uint16_t port, int timeout_seconds);

}  // namespace pb::dicom
