#pragma once
// C-ECHO SCU: "is this PACS reachable and does it accept us?", with a reason a person can act on
// when it does not. Thread-safe; each call opens and closes its own association.
#include <cstdint>
#include <string>

#include "dicom/peer.h"

namespace pb::dicom {

using EchoRequest = PeerRequest;

struct EchoResult {
  bool ok = false;
  std::string message;  // "Connection established" or "Connection failed: <reason>"
  int64_t latency_ms = 0;
  std::string reason;  // when it failed: why, without the "Connection failed: " lead
};

EchoResult Echo(const EchoRequest& request);

}  // namespace pb::dicom
