#pragma once
// One way to talk to a node per node type, behind one interface, chosen in one place
// (TransportFor): callers ask "test node X", "query node X", "retrieve from node X" and never
// branch on the protocol. DIMSE today; DICOMweb (QIDO-RS, WADO-RS, STOW-RS) implements the same
// interface next. Retrieve is split so every transport shares the
// job's planning, progress, verification, retry and cancel: the transport plans (what the node
// has) and fetches; the job (jobs/retrieve_job) decides what is missing, counts arrivals through
// the one ingest path and verifies. Thread-safe: each call opens its own association or
// connection, so a plan's instance list may be fetched while the data flows.
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"
#include "dicom/store_scu.h"
#include "nodes/node.h"
#include "receivers/association_log.h"
#include "receivers/receiver.h"
#include "transport/connection_check.h"
#include "transport/retrieve_plan.h"

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

// A retrieve's fetch: the requests for what is missing (TargetsFor), and how to take the data.
struct FetchRequest {
  RetrieveParams params;  // params.method: "auto", "c-get" or "c-move" (DIMSE)
  std::vector<dicom::RetrieveTarget> targets;
  std::set<std::string> sop_classes;  // the storage classes the plan saw
  std::string job;                    // "retrieve job 7", for log lines
  // Not empty: the project the job files into anonymizes (its own options), so data must not
  // come through a path that keeps it as sent (DIMSE: a C-MOVE to a non-anonymizing receiver).
  std::string anonymizing_project;
};

// What the job hears while a fetch runs (called on the fetching thread).
struct FetchHooks {
  dicom::StoreSink* sink = nullptr;                             // data arriving on our own connection (C-GET) goes here
  std::function<void(uint16_t message_id)> on_sent;             // a request went out
  std::function<void(const dicom::SubOperations&)> on_pending;  // the node's progress
  std::function<void(const dicom::SubOperations&)> on_finished;  // a request ended (final counts)
  std::function<bool()> cancel_requested;                        // polled; true: stop (C-CANCEL)
  std::function<size_t()> arrived;  // instances of this job that reached the archive so far
};

// Why an operation on a node failed, as GET /metrics counts it
// (pacsbridge_node_errors_total{node, operation, reason}), one of a closed set:
//   unreachable, timeout, aborted, refused, unsupported: the error's Code (kUnavailable,
//   kTimeout, kAborted, kPermissionDenied, kUnsupported);
//   failure_status: the node answered with a failure status (DIMSE, or HTTP other than 401/403);
//   not_confirmed: instances sent that the node never confirmed (the connection ended);
//   other: anything else (our side: disk, database).
// nullptr for what is no fault of the node: the caller's input (kInvalidArgument), nothing
// matching (kNotFound), a cancel (kCanceled).
const char* NodeErrorReason(Code code);

struct FetchResult {
  std::string method_used;                  // "c-get", "c-move"; empty when nothing could be fetched
  std::string fallback_reason;              // method "auto" left C-GET for C-MOVE: the C-GET's error or refusal
  std::string error;                        // empty when every request ended well
  const char* error_reason = "other";       // with an error: NodeErrorReason's set (nullptr: canceled)
  std::vector<std::string> failed_uids;     // what the node said it could not send
  std::vector<std::string> discarded_uids;  // what the node sent without being asked (dropped)
  bool transient = false;                   // the error may go away by itself (see IsTransient)
  int retry_after_seconds = 0;              // the node asked us to wait this long first (HTTP 429)
};

class Transport {
 public:
  virtual ~Transport() = default;
  // What the node is used for, checked (echo_only: reachability alone).
  virtual ConnectionTest TestConnection(bool echo_only) = 0;
  // Errors: kInvalidArgument naming the field ("level", "query.X"); kUnavailable, kTimeout or
  // kPermissionDenied (the node refused our calling identity) with the diagnosis.
  [[nodiscard]] virtual Result<FindAnswer> Find(const FindQuery& query) = 0;

  // What the node has of a retrieve: counts, series and SOP classes first (kNotFound when it has
  // none of it); then the instance list, added to `plan` (left unlisted, with a note, when the
  // node does not list instances).
  [[nodiscard]] virtual Result<RetrievePlan> PlanCounts(const RetrieveParams& params) = 0;
  [[nodiscard]] virtual Result<void> ListInstances(const RetrieveParams& params, RetrievePlan& plan) = 0;
  // Fetches the targets; what arrives walks the one ingest path (the hooks' sink, or our
  // receivers). Errors are in the result: what arrived is verified by the job, not here.
  virtual FetchResult Fetch(const FetchRequest& request, const FetchHooks& hooks) = 0;
  // Whether a fetch of `params` needs the SOP classes first (C-GET proposes them); when it does
  // not, a fresh study's counts are asked while the data already flows.
  virtual bool FetchNeedsSopClasses(const RetrieveParams& params) const = 0;
  // Whether listing instances costs the node little next to sending them. When not (QIDO-RS
  // servers that read every instance to answer; a PACS answering an IMAGE-level C-FIND while it
  // sends), a fresh fetch is checked against the node's counts and the list is asked only when
  // they do not add up.
  virtual bool ListingIsCheap() const { return true; }

  // Sends archive files over one association (or connection): one outcome per item, in order
  // (status as in a C-STORE response; never sent or never answered: not confirmed, with why).
  // An error only when nothing could be opened. The job runs several of these in parallel, up
  // to the node's max_associations, and shares progress, verification and retry.
  [[nodiscard]] virtual Result<std::vector<dicom::SendOutcome>> Send(const std::vector<dicom::SendItem>& items,
                                                                     const dicom::SendHooks& hooks) = 0;
};

// What a transport may need of the rest of the server.
struct TransportContext {
  std::string our_ae_title;  // our calling AE title unless the node names its own
  // Our receivers (a C-MOVE must name one), and the associations they saw since a time (the
  // evidence for a C-MOVE that brought nothing). Either may be empty (then not used).
  std::function<std::vector<Receiver>()> receivers;
  std::function<std::vector<AssociationAttempt>(std::chrono::steady_clock::time_point)> seen_since;
};

// `inner`, counting what fails on `node` for GET /metrics (NodeErrorReason).
std::unique_ptr<Transport> CountErrors(std::unique_ptr<Transport> inner, const std::string& node);

// The transport for `node` (counting its errors). A node this version cannot use
// (UnavailableReason) gets kUnsupported naming the node and the reason.
[[nodiscard]] Result<std::unique_ptr<Transport>> TransportFor(const Node& node, const TransportContext& context);

}  // namespace pb
