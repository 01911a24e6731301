#pragma once
// C-ECHO SCU: "is this PACS reachable and does it accept us?", with a reason a person can act on
// when it does not. Thread-safe; each call opens and closes its own association.
#include <cstdint>
#include <string>

namespace pb::dicom {

struct EchoRequest {
  std::string host;
  uint16_t port = 104;
  std::string called_ae;
  std::string calling_ae;
  int timeout_seconds = 10;
  // TLS (DICOM PS3.15 BCP 195 profile). Without ca_file, the system's CA folder is trusted.
  bool tls = false;
  bool tls_verify_peer = true;
  std::string tls_ca_file, tls_cert_file, tls_key_file;
};

struct EchoResult {
  bool ok = false;
  std::string message;  // "Connection established" or "Connection failed: <reason>"
  int64_t latency_ms = 0;
};

EchoResult Echo(const EchoRequest& request);

}  // namespace pb::dicom
