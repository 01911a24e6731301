#pragma once
// One way to talk to a node per node type, behind one interface, chosen in one place
// (TransportFor): callers ask "test node X", "query node X" and never branch on the protocol.
// DIMSE today; DICOMweb (QIDO-RS, WADO-RS, STOW-RS) implements the same interface next, and
// retrieve and send move behind it. A transport is made per operation and is not shared
// between threads; each call opens its own association or connection.
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"
#include "nodes/node.h"
#include "transport/connection_check.h"

namespace pb {

// A find as callers ask it, whatever the protocol: DICOM keywords (or "(gggg,eeee)") and
// matching values in, keywords and UTF-8 strings out.
struct FindQuery {
  std::string level;  // PATIENT, STUDY, SERIES, IMAGE (case-insensitive)
  std::vector<std::pair<std::string, std::string>> keys;
  size_t limit = 0;  // 0: the node's max_results; never more than it
};

struct FindAnswer {
  std::vector<std::map<std::string, std::string>> rows;
  bool truncated = false;  // more matched than the limit
};

class Transport {
 public:
  virtual ~Transport() = default;
  // What the node is used for, checked (echo_only: reachability alone).
  virtual ConnectionTest TestConnection(bool echo_only) = 0;
  // Errors: kInvalidArgument naming the field ("level", "query.X"); kUnavailable, kTimeout or
  // kPermissionDenied (the node refused our calling identity) with the diagnosis.
  virtual Result<FindAnswer> Find(const FindQuery& query) = 0;
};

// The transport for `node`, calling as `our_ae_title` unless the node names its own. A node this
// version cannot use (UnavailableReason) gets kUnsupported naming the node and the reason.
Result<std::unique_ptr<Transport>> TransportFor(const Node& node, const std::string& our_ae_title);

}  // namespace pb
