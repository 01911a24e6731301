#pragma once
// C-GET and C-MOVE as a service class provider (PS3.4 C.4.2, C.4.3): what a receiver with
// Query/Retrieve on sends when asked. The association side (the identifier, sub-operations,
// pending and final responses with their counts, the failed SOP Instance UIDs, C-CANCEL) is
// here; which instances and which destination are the RetrieveSink's.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"
#include "dicom/peer.h"
#include "dicom/store_scu.h"

namespace pb::dicom {

struct RetrieveQuery {
  bool patient_root = false;
  std::string level;  // PATIENT, STUDY, SERIES or IMAGE; its unique key is non-empty
  std::vector<std::pair<std::string, std::string>> keys;  // keyword → UTF-8 value
  std::string calling_ae, called_ae, peer;
};

// Where a C-MOVE sends: a node of the registry, found by the Move Destination AE title.
struct MoveTarget {
  PeerRequest peer;
  std::string preferred_transfer_syntax;  // UID; "" none
  bool allow_lossy = false;
};

// Called from association threads concurrently.
class RetrieveSink {
 public:
  virtual ~RetrieveSink() = default;
  // The instances the identifier selects (files, classes, syntaxes). Errors: kInvalidArgument
  // (0xA900), anything else 0xA701 / 0xC000 with the message as Error Comment.
  [[nodiscard]] virtual Result<std::vector<SendItem>> Instances(const RetrieveQuery& query) = 0;
  // kNotFound: not a destination we know (0xA801); the message says what to register.
  [[nodiscard]] virtual Result<MoveTarget> MoveDestination(const std::string& ae_title, const RetrieveQuery& query) = 0;
};

}  // namespace pb::dicom
