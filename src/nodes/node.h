#pragma once
// A remote node: a classic DIMSE peer or a DICOMweb server. One model for both, so that callers
// ask "query node X" without branching on the protocol; transport-specific fields are ignored by
// the other transport. JSON names are those of the REST API and the [[nodes]] config tables.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/result.h"
#include "dicom/peer.h"
#include "nodes/schedule.h"

namespace pb {

enum class NodeType { kDimse, kDicomWeb };
enum class RetrieveMethod { kAuto, kCGet, kCMove };

struct NodeTls {
  bool enabled = false;
  bool verify_peer = true;
  bool verify_hostname = true;
  std::string ca_file, cert_file, key_file;
};

struct NodeAuth {
  std::string type = "none";  // none, basic, bearer, oauth2
  std::string username, password, token, token_url, client_id, client_secret;
  std::string scope;  // oauth2: optional scope of the token request
};

struct Node {
  std::string name;
  NodeType type = NodeType::kDimse;
  std::string description;
  bool queryable = false;
  bool storable = false;
  bool default_query_retrieve = false;
  bool default_storage = false;
  bool locked = false;  // from the config file: read-only
  NodeTls tls;
  // DIMSE
  std::string ae_title;
  std::string host;
  uint16_t port = 104;
  RetrieveMethod retrieve_method = RetrieveMethod::kAuto;
  std::string calling_ae_title;  // empty: the server's AE title
  std::string move_destination;  // our AE title as the PACS knows it; empty: calling AE title
  int listen_port = 0;           // 0: the default receiver
  std::string preferred_transfer_syntax;
  bool allow_lossy_compression = false;  // a send may compress lossily when the peer wants it
  int max_associations = 2;
  int timeout_seconds = 10;
  bool patient_root = false;  // query with the Patient Root model (else Study Root)
  std::string query_charset;  // Specific Character Set of queries: "" = ISO_IR 192; "none"
  int max_results = 1000;     // C-FIND answers kept per query; the rest is canceled
  // DICOMweb
  std::string url;
  bool qido = true, wado = true, stow = true, stow_multipart = true;
  NodeAuth auth;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers on every request
  // Separate roots where a server serves QIDO-RS, WADO-RS or STOW-RS elsewhere (empty: `url`).
  std::string qido_root, wado_root, stow_root;
  // Headers carrying our calling AE title and the node's `ae_title` (empty name: not sent).
  std::string calling_ae_header, called_ae_header;
  int stow_batch_instances = 100;      // multipart STOW-RS: at most this many instances per request
  int stow_batch_mb = 64;              // ... and at most this many MB
  int query_timeout_seconds = 30;      // a QIDO-RS request, whole
  int retrieve_timeout_seconds = 120;  // WADO-RS and STOW-RS: no byte moving for this long
  std::string proxy;                   // an HTTP proxy URL (empty: none; the environment is ignored)
  bool allow_redirects = false;        // follow a redirect to another host (same host: always)
  // How jobs use the node: automatic retries of transient faults (attempts count runs, the
  // first included; delays double from the first up to the maximum) and retrieves at once
  // (0 in JSON: the type's default, 1 for DIMSE, 2 for DICOMweb).
  struct Retry {
    int attempts = 5;
    int first_delay_seconds = 30;
    int max_delay_seconds = 1800;
  } retry;
  int max_parallel_retrieves = 1;
  // Scheduling and worklist (stored; used by later features)
  nlohmann::json schedule;  // null: always available
  int64_t max_bytes_per_second = 0;
  // The share of each minute the node may be busy with our jobs (connection time; 100: always).
  int utilization_percent = 100;
  bool mwl = false;
  std::string mwl_charset;
  bool mpps = false;
  // Learned at run time, read-only (not part of the settings): the retrieve method that worked
  // last under "auto" ("c-get" or "c-move"; empty: not known yet).
  std::string retrieve_method_learned;
};

// Builds a node from JSON, refusing unknown fields and wrong types, then validates it.
// Error.field names the offending field ("ae_title", "tls.ca_file", ...).
[[nodiscard]] Result<Node> NodeFromJson(const nlohmann::json& j);

// The JSON form. With `with_secrets` false (the API), passwords, tokens and client secrets are
// replaced by `has_password`-style booleans: secrets are write-only.
nlohmann::json NodeToJson(const Node& n, bool with_secrets = false);

// Checks one node on its own (cross-node rules live in the registry).
[[nodiscard]] Result<void> ValidateNode(Node& n);

const char* RetrieveMethodName(RetrieveMethod m);

// How to reach a DIMSE node as an SCU; `default_calling_ae` when the node sets none.
dicom::PeerRequest ToPeerRequest(const Node& n, const std::string& default_calling_ae);

// The AE titles a DIMSE node is actually used with, given the server's own ([server] ae_title):
// the calling AE title of every association, and the C-MOVE destination (default: the calling
// AE title).
std::string EffectiveCallingAeTitle(const Node& n, const std::string& server_ae_title);
std::string EffectiveMoveDestination(const Node& n, const std::string& server_ae_title);

// Why the node's schedule keeps it from being used at `now`, with its next window ("" when it
// is available).
std::string ClosedReason(const Node& n, TimePoint now);
std::string ClosedReason(const Node& n, const Schedule& schedule, const Schedule::Availability& a);

// The API's JSON of a node: NodeToJson without secrets, plus read-only derived fields
// (`effective_calling_ae_title`, `effective_move_destination` for DIMSE nodes; `available`
// (its schedule lets it be used now), `availability_changes_at` and `unavailable_reason`).
nlohmann::json NodeToApiJson(const Node& n, const std::string& server_ae_title,
                             TimePoint now = std::chrono::system_clock::now());

}  // namespace pb
