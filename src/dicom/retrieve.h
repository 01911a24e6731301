#pragma once
// C-GET and C-MOVE as an SCU (Study Root model). C-GET takes the C-STORE sub-operations on the
// association it opened and hands each to a StoreSink (the same receiving code as our
// receivers); C-MOVE asks the peer to send to a destination AE title, typically one of our
// receivers, and only follows the peer's progress. Both can be canceled (C-CANCEL).
// Thread-safe: each call opens its own association.
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"
#include "dicom/peer.h"
#include "dicom/server.h"

namespace pb::dicom {

// What to retrieve: a list of UIDs at one level, with the parent UIDs that level needs.
struct RetrieveTarget {
  std::string level;              // STUDY, SERIES or IMAGE
  std::vector<std::string> uids;  // Study / Series / SOP Instance UIDs (list matching)
  std::string study_uid;          // SERIES and IMAGE
  std::string series_uid;         // IMAGE
};

// Sub-operation counters of a C-GET/C-MOVE response; -1: the peer did not say.
struct SubOperations {
  int remaining = -1, completed = -1, failed = -1, warning = -1;
};

struct RetrieveHooks {
  std::function<void(uint16_t message_id)> on_sent;      // the request went out with this ID
  std::function<void(const SubOperations&)> on_pending;  // each pending response
  std::function<bool()> cancel_requested;                // polled about every 200 ms
};

struct RetrieveAnswer {
  uint16_t status = 0;   // the final response's DIMSE status
  SubOperations counts;  // from the final response
  std::string error_comment;
  std::vector<std::string> failed_uids;  // Failed SOP Instance UID List, when given
  bool canceled = false;                 // we sent a C-CANCEL
  int stores_received = 0;               // C-GET: sub-operations received on our association
  std::string local_address;             // our address on the association, as the peer sees it
  bool success() const { return status == 0x0000; }
  bool warning() const { return status == 0xB000; }
  std::string StatusText() const;  // "0xA801 (Refused: Move Destination unknown)"
};

struct GetRequest {
  PeerRequest peer;
  RetrieveTarget target;
  std::vector<std::string> sop_classes;   // the storage classes to take; empty: a common list
  std::string preferred_transfer_syntax;  // UID, proposed first; empty: as the peer has it
  int inactivity_seconds = 120;           // no response or data for this long: abort
};

struct MoveRequest {
  PeerRequest peer;
  RetrieveTarget target;
  std::string destination;  // Move Destination AE title
  int inactivity_seconds = 120;
};

// Errors: kUnsupported when the peer does not accept the C-GET (or C-MOVE) model or any storage
// class we proposed; kUnavailable/kTimeout with the connection diagnosis, also when the
// association is lost midway (the answer so far is in the message only: callers verify what
// arrived on their side). A refusal by status is an answer, not an error.
[[nodiscard]] Result<RetrieveAnswer> Get(const GetRequest& request, StoreSink& sink, const RetrieveHooks& hooks);
[[nodiscard]] Result<RetrieveAnswer> Move(const MoveRequest& request, const RetrieveHooks& hooks);

// The presentation contexts a C-GET proposes, as (abstract syntax, transfer syntaxes joined
// by ','): the C-GET model first, then one context per storage class and transfer syntax.
std::vector<std::pair<std::string, std::string>> ProposedGetContexts(const GetRequest& request);

// Transfer syntax name (DCMTK's, e.g. "JPEGLossless") or UID → UID; "" if unknown.
std::string TransferSyntaxUid(const std::string& name_or_uid);

}  // namespace pb::dicom
