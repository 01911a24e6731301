#pragma once
// "Does the PACS know us?": the C-MOVE self-test of a DIMSE node. A C-MOVE of a study no archive
// holds tells nothing (Orthanc 1.10 refuses the unknown study first, with 0xC000, whatever the
// destination; dcmqrscp answers success without mapping the destination), so the test moves
// one real instance:
//   1. the node's effective move destination must be the AE title of one of our receivers that
//      is enabled and listening (else: moved data could not arrive; say what to do);
//   2. C-FIND STUDY (universal), SERIES, IMAGE, one answer each: one instance the PACS holds
//      (none: the test cannot tell);
//   3. a discarding expectation (ingest/expectations.h) for that SOP Instance: our receiver
//      answers success and keeps nothing (no archive, index, journal, staging or announcement);
//   4. a C-MOVE at IMAGE level of that instance to the destination; the final response and the
//      arrival are awaited (the C-MOVE: up to 3x the node's timeout of silence, at least 30 s;
//      the arrival after a success: up to the node's timeout);
//   5. the answer, classified from the status (PS3.4 C.4.2.1.5), the sub-operation counts,
//      the arrival and what our receivers saw (ClassifyMove, pure).
// Thread-safe; one self-test at a time per process (a second one is refused with kConflict,
// since both would wait for the same instance).
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"
#include "dicom/retrieve.h"
#include "ingest/expectations.h"
#include "nodes/node.h"
#include "receivers/association_log.h"
#include "receivers/receiver.h"

namespace pb {

struct MoveCheck {
  // true: the PACS knows us and reaches us; false: it does not (message: why, what to do);
  // null: the test cannot tell (nothing to move, or the PACS could not be asked).
  std::optional<bool> ok;
  // "known", "unknown_destination", "not_delivered", "refused", "no_receiver" (ok false);
  // "no_instance", "failed" (ok null).
  std::string outcome;
  std::string message;
  std::string destination_ae;      // what the PACS must list for us: the AE title,
  std::string destination_host;    // our address as the PACS would reach it ("" unknown),
  uint16_t destination_port = 0;   // and our receiver's port (0: no receiver)
  std::optional<uint16_t> status;  // the final C-MOVE status, when one came
  dicom::SubOperations counts;     // of the final response (-1: not said)
  bool instance_arrived = false;
  int64_t latency_ms = 0;  // from the C-MOVE request to the final response and the arrival
  // {"ok", "outcome", "message", "destination": {"ae_title", "host", "port"}, "status": "0xA801"
  // or null, "completed", "failed", "warning" (null when not said), "instance_arrived",
  // "latency_ms"}
  nlohmann::json ToJson() const;
};

// What the C-MOVE of the test instance showed, for ClassifyMove.
struct MoveFacts {
  std::string node;                // the node's name
  std::string pacs_ae, pacs_host;  // whose associations count in `seen`
  std::string calling_ae;          // ours, on the C-MOVE
  std::string destination;         // the Move Destination AE title
  std::string our_host;            // our address as the PACS would reach it ("" unknown)
  uint16_t our_port = 0;           // the receiver's port
  dicom::RetrieveAnswer answer;    // the final response
  bool arrived = false;            // the instance reached our receiver
  int64_t latency_ms = 0;
  std::vector<AssociationAttempt> seen;  // on our receivers while the C-MOVE ran
};

// The answer from the facts (pure):
//   arrived → known (ok); 0xA801 → unknown_destination (register: AE title, host, port);
//   an association from the PACS our receivers refused → not_delivered, with what they saw;
//   success or warning with nothing arrived, or failed sub-operations (0xA702, 0xB000 with
//   failed > 0) → not_delivered (it knows the AE title, sends to an address that does not reach
//   us); any other failure with nothing attempted → refused (with the status, and the causes a
//   PACS hides behind it: Orthanc 1.10 answers 0xC000, no count, both to an unknown destination
//   and to one it cannot connect to).
MoveCheck ClassifyMove(const MoveFacts& facts);

// What the self-test needs of the rest of the server.
struct MoveCheckContext {
  std::string our_ae_title;  // [server] ae_title
  std::vector<Receiver> receivers;
  std::function<bool(const Receiver&)> listening;  // whether a receiver listens now
  ExpectationRegistry* expectations = nullptr;     // where the discarding expectation goes
  // Associations our receivers were asked for since a time (may be empty).
  std::function<std::vector<AssociationAttempt>(std::chrono::steady_clock::time_point)> seen_since;
};

// Runs the self-test against `node`. Errors: kConflict for a node without C-MOVE (DICOMweb) or
// while another self-test runs; kInternal when the context lacks the expectation registry.
// Everything the PACS answers, or fails to, is in the MoveCheck.
[[nodiscard]] Result<MoveCheck> RunMoveCheck(const Node& node, const MoveCheckContext& context);

// The receiver that takes data moved to `destination` for `node` (enabled, listening, that AE
// title, and the node's listen_port when it names one); nullopt: none.
std::optional<Receiver> MoveReceiver(const Node& node, const std::string& destination, const MoveCheckContext& context);

}  // namespace pb
