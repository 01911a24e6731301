#pragma once
// Where and how to reach a remote DICOM peer as an SCU: one struct for echo, find, get, move.
#include <cstdint>
#include <memory>
#include <string>

#include "core/rate_limiter.h"

namespace pb::dicom {

struct PeerRequest {
  std::string host;
  uint16_t port = 104;
  std::string called_ae;
  std::string calling_ae;
  int timeout_seconds = 10;
  // TLS (DICOM PS3.15 BCP 195 profile). Without ca_file, the system's CA folder is trusted.
  bool tls = false;
  bool tls_verify_peer = true;
  std::string tls_ca_file, tls_cert_file, tls_key_file;
  bool tls_verify_hostname = true;  // the certificate must name `host` (with tls_verify_peer)
  // Paces every byte read and written on the association (the node's max_bytes_per_second,
  // shared with its other transfers); null: as fast as the network goes. Not on TLS.
  std::shared_ptr<RateLimiter> limiter;
};

}  // namespace pb::dicom
