#include "nodes/node.h"

#include "nodes/schedule.h"

#include <set>

#include <fmt/format.h>

#include "core/url.h"
#include "core/validate.h"
#include "dicom/retrieve.h"
#include "dicom/tls_files.h"
#include "dicom/worklist.h"
#include "nodes/dicomweb_node.h"
#include "nodes/json_reader.h"

namespace pb {
namespace {

using nlohmann::json;

// Read-only fields of the API's answers are accepted and ignored, so that what a GET gives can be
// sent back in a PUT.
const std::set<std::string> kNodeFields{
    "name", "type", "description", "queryable", "storable", "default_query_retrieve", "default_storage", "locked",
    "tls", "ae_title", "host", "port", "retrieve_method", "calling_ae_title", "move_destination", "listen_port",
    "preferred_transfer_syntax", "allow_lossy_compression", "max_associations", "timeout_seconds", "patient_root",
    "query_charset", "max_results", "url", "qido", "wado", "stow", "stow_multipart", "qido_root", "wado_root",
    "stow_root", "calling_ae_header", "called_ae_header", "stow_batch_instances", "stow_batch_mb",
    "query_timeout_seconds", "retrieve_timeout_seconds", "proxy", "allow_redirects", "auth", "headers", "schedule",
    "max_bytes_per_second", "mwl", "mwl_charset", "mpps", "retry", "max_parallel_retrieves", "utilization_percent",
    // read-only
    "warnings", "retrieve_method_learned", "effective_calling_ae_title", "effective_move_destination", "available",
    "unavailable_reason", "availability_changes_at", "offers_import", "offers_export", "last_test"};
const std::set<std::string> kRetryFields{"attempts", "first_delay_seconds", "max_delay_seconds"};
const std::set<std::string> kTlsFields{"enabled", "verify_peer", "verify_hostname", "ca_file", "cert_file", "key_file"};
const std::set<std::string> kAuthFields{"type",         "username",  "password",         "token",
                                        "token_url",    "client_id", "client_secret",    "scope",
                                        "has_password", "has_token", "has_client_secret"};

}  // namespace

const char* RetrieveMethodName(RetrieveMethod m) {
  switch (m) {
    case RetrieveMethod::kAuto:
      return "auto";
    case RetrieveMethod::kCGet:
      return "c-get";
    case RetrieveMethod::kCMove:
      return "c-move";
  }
  return "auto";
}

[[nodiscard]] Result<Node> NodeFromJson(const json& j) {
  if (!j.is_object()) return Fail(Code::kInvalidArgument, "a node must be a JSON object");
  JsonReader r(j, "");
  if (auto k = r.CheckKnown(kNodeFields); !k) return tl::unexpected(k.error());
  Node n;
  std::string type = "dimse", method = "auto";
  int64_t port = 104, listen_port = 0, max_assoc = 2, timeout = 10, max_bps = 0, max_results = 1000;
  r.Str("name", n.name);
  r.Str("type", type);
  r.Str("description", n.description);
  r.Bool("queryable", n.queryable);
  r.Bool("storable", n.storable);
  r.Bool("default_query_retrieve", n.default_query_retrieve);
  r.Bool("default_storage", n.default_storage);
  r.Str("ae_title", n.ae_title);
  r.Str("host", n.host);
  r.Int("port", port);
  r.Str("retrieve_method", method);
  r.Str("calling_ae_title", n.calling_ae_title);
  r.Str("move_destination", n.move_destination);
  r.Int("listen_port", listen_port);
  r.Str("preferred_transfer_syntax", n.preferred_transfer_syntax);
  r.Bool("allow_lossy_compression", n.allow_lossy_compression);
  r.Int("max_associations", max_assoc);
  r.Int("timeout_seconds", timeout);
  r.Bool("patient_root", n.patient_root);
  r.Str("query_charset", n.query_charset);
  r.Int("max_results", max_results);
  ReadDicomWebFields(r, n);
  r.Int("max_bytes_per_second", max_bps);
  r.Bool("mwl", n.mwl);
  r.Str("mwl_charset", n.mwl_charset);
  r.Bool("mpps", n.mpps);
  if (r.error()) return tl::unexpected(*r.error());

  if (type == "dimse")
    n.type = NodeType::kDimse;
  else if (type == "dicomweb")
    n.type = NodeType::kDicomWeb;
  else
    return Fail(Code::kInvalidArgument, "type must be \"dimse\" or \"dicomweb\"", "type");

  if (method == "auto")
    n.retrieve_method = RetrieveMethod::kAuto;
  else if (method == "c-get" || method == "C-GET")
    n.retrieve_method = RetrieveMethod::kCGet;
  else if (method == "c-move" || method == "C-MOVE")
    n.retrieve_method = RetrieveMethod::kCMove;
  else
    return Fail(Code::kInvalidArgument, "retrieve_method must be \"auto\", \"c-get\" or \"c-move\"", "retrieve_method");

  if (n.type == NodeType::kDimse || j.contains("port")) {
    auto p = ValidatePort(port, "port");
    if (!p) return tl::unexpected(p.error());
    n.port = *p;
  }
  if (listen_port != 0) {
    auto p = ValidatePort(listen_port, "listen_port");
    if (!p) return tl::unexpected(p.error());
  }
  n.listen_port = static_cast<int>(listen_port);
  if (max_assoc < 1 || max_assoc > 64) {
    return Fail(Code::kInvalidArgument, "max_associations must be between 1 and 64", "max_associations");
  }
  n.max_associations = static_cast<int>(max_assoc);
  if (timeout < 1 || timeout > 3600) {
    return Fail(Code::kInvalidArgument, "timeout_seconds must be between 1 and 3600", "timeout_seconds");
  }
  n.timeout_seconds = static_cast<int>(timeout);
  if (max_results < 1 || max_results > 100000) {
    return Fail(Code::kInvalidArgument, "max_results must be between 1 and 100000", "max_results");
  }
  n.max_results = static_cast<int>(max_results);
  static const std::set<std::string> kCharsets{
      "",           "none",       "ISO_IR 192", "ISO_IR 100", "ISO_IR 101", "ISO_IR 109", "ISO_IR 110", "ISO_IR 144",
      "ISO_IR 127", "ISO_IR 126", "ISO_IR 138", "ISO_IR 148", "ISO_IR 166", "ISO_IR 13",  "GB18030",    "GBK"};
  if (!kCharsets.count(n.query_charset)) {
    return Fail(Code::kInvalidArgument,
                "query_charset must be a DICOM Specific Character Set (e.g. \"ISO_IR 192\", "
                "\"ISO_IR 100\") or \"none\"",
                "query_charset");
  }
  n.mwl_charset = Trim(n.mwl_charset);
  if (!n.mwl_charset.empty() && n.mwl_charset != "none" && !dicom::IsKnownCharacterSet(n.mwl_charset)) {
    return Fail(Code::kInvalidArgument,
                "mwl_charset must be a DICOM Specific Character Set (e.g. \"ISO_IR 100\", \"ISO_IR 192\", "
                "\"ISO 2022 IR 87\", \"ISO 2022 IR 6\\\\ISO 2022 IR 87\") or \"none\"",
                "mwl_charset");
  }
  if (n.type != NodeType::kDimse && (n.mwl || n.mpps)) {
    return Fail(
        Code::kInvalidArgument,
        fmt::format("{} is a DIMSE service; a DICOMweb node cannot offer it", n.mwl ? "Modality Worklist" : "MPPS"),
        n.mwl ? "mwl" : "mpps");
  }
  n.preferred_transfer_syntax = Trim(n.preferred_transfer_syntax);
  if (!n.preferred_transfer_syntax.empty() && dicom::TransferSyntaxUid(n.preferred_transfer_syntax).empty()) {
    return Fail(Code::kInvalidArgument,
                fmt::format("'{}' is not a transfer syntax: give its UID (e.g. "
                            "1.2.840.10008.1.2.4.70), its DICOM keyword (e.g. JPEGLossless, "
                            "ExplicitVRLittleEndian) or DCMTK's name (e.g. \"JPEG-LS Lossless\")",
                            n.preferred_transfer_syntax),
                "preferred_transfer_syntax");
  }
  if (max_bps < 0) {
    return Fail(Code::kInvalidArgument, "max_bytes_per_second must be 0 (unlimited) or more", "max_bytes_per_second");
  }
  n.max_bytes_per_second = max_bps;

  int64_t utilization = 100;
  r.Int("utilization_percent", utilization);
  if (r.error()) return tl::unexpected(*r.error());
  if (utilization < 1 || utilization > 100) {
    return Fail(Code::kInvalidArgument,
                "utilization_percent must be between 1 and 100 (the share of each minute the node may be busy; 100: "
                "no limit)",
                "utilization_percent");
  }
  n.utilization_percent = static_cast<int>(utilization);

  int64_t parallel_retrieves = 0;
  r.Int("max_parallel_retrieves", parallel_retrieves);
  if (r.error()) return tl::unexpected(*r.error());
  if (parallel_retrieves < 0 || parallel_retrieves > 64) {
    return Fail(Code::kInvalidArgument, "max_parallel_retrieves must be between 1 and 64 (0: the default)",
                "max_parallel_retrieves");
  }
  n.max_parallel_retrieves =
      parallel_retrieves > 0 ? static_cast<int>(parallel_retrieves) : (n.type == NodeType::kDimse ? 1 : 2);
  if (auto* t = r.Find("retry"); t && !t->is_null()) {
    if (!t->is_object()) return Fail(Code::kInvalidArgument, "retry must be an object", "retry");
    JsonReader tr(*t, "retry.");
    if (auto k = tr.CheckKnown(kRetryFields); !k) return tl::unexpected(k.error());
    int64_t attempts = n.retry.attempts, first = n.retry.first_delay_seconds, most = n.retry.max_delay_seconds;
    tr.Int("attempts", attempts);
    tr.Int("first_delay_seconds", first);
    tr.Int("max_delay_seconds", most);
    if (tr.error()) return tl::unexpected(*tr.error());
    if (attempts < 1 || attempts > 100) {
      return Fail(Code::kInvalidArgument, "retry.attempts must be between 1 (no automatic retry) and 100",
                  "retry.attempts");
    }
    if (first < 1 || first > 86400) {
      return Fail(Code::kInvalidArgument, "retry.first_delay_seconds must be between 1 and 86400",
                  "retry.first_delay_seconds");
    }
    if (most < first || most > 7 * 86400) {
      return Fail(Code::kInvalidArgument,
                  "retry.max_delay_seconds must be at least retry.first_delay_seconds and at most 604800 (a week)",
                  "retry.max_delay_seconds");
    }
    n.retry = {static_cast<int>(attempts), static_cast<int>(first), static_cast<int>(most)};
  }
  if (auto* t = r.Find("tls"); t && !t->is_null()) {
    if (!t->is_object()) return Fail(Code::kInvalidArgument, "tls must be an object", "tls");
    JsonReader tr(*t, "tls.");
    if (auto k = tr.CheckKnown(kTlsFields); !k) return tl::unexpected(k.error());
    tr.Bool("enabled", n.tls.enabled);
    tr.Bool("verify_peer", n.tls.verify_peer);
    tr.Bool("verify_hostname", n.tls.verify_hostname);
    tr.Str("ca_file", n.tls.ca_file);
    tr.Str("cert_file", n.tls.cert_file);
    tr.Str("key_file", n.tls.key_file);
    if (tr.error()) return tl::unexpected(*tr.error());
    // Our client certificate: both files, and a key only we can read.
    if (!n.tls.cert_file.empty() || !n.tls.key_file.empty()) {
      if (n.tls.cert_file.empty() || n.tls.key_file.empty()) {
        const char* missing = n.tls.cert_file.empty() ? "tls.cert_file" : "tls.key_file";
        return Fail(Code::kInvalidArgument, "a client certificate needs both tls.cert_file and tls.key_file", missing);
      }
      if (auto k = dicom::CheckTlsFile(n.tls.key_file, "tls.key_file", true); !k) return tl::unexpected(k.error());
    }
  }
  if (auto* a = r.Find("auth"); a && !a->is_null()) {
    if (!a->is_object()) return Fail(Code::kInvalidArgument, "auth must be an object", "auth");
    JsonReader ar(*a, "auth.");
    if (auto k = ar.CheckKnown(kAuthFields); !k) return tl::unexpected(k.error());
    ar.Str("type", n.auth.type);
    ar.Str("username", n.auth.username);
    ar.Str("password", n.auth.password);
    ar.Str("token", n.auth.token);
    ar.Str("token_url", n.auth.token_url);
    ar.Str("client_id", n.auth.client_id);
    ar.Str("client_secret", n.auth.client_secret);
    ar.Str("scope", n.auth.scope);
    if (ar.error()) return tl::unexpected(*ar.error());
  }
  if (auto* h = r.Find("headers"); h && !h->is_null()) {
    if (!h->is_array()) return Fail(Code::kInvalidArgument, "headers must be a list of {name, value}", "headers");
    for (const auto& e : *h) {
      const std::string field = fmt::format("headers[{}]", n.headers.size());
      if (!e.is_object() || !e.contains("name") || !e["name"].is_string() ||
          (e.contains("value") && !e["value"].is_string())) {
        return Fail(Code::kInvalidArgument,
                    fmt::format("{} must be {{\"name\": \"X-Api-Key\", \"value\": \"...\"}}", field), field);
      }
      for (auto it = e.begin(); it != e.end(); ++it) {
        if (it.key() != "name" && it.key() != "value") {
          return Fail(Code::kInvalidArgument, fmt::format("unknown field '{}.{}'", field, it.key()),
                      field + "." + it.key());
        }
      }
      n.headers.emplace_back(e["name"].get<std::string>(), e.value("value", ""));
    }
  }
  if (auto* s = r.Find("schedule"); s && !s->is_null()) {
    if (auto parsed = Schedule::Parse(*s); !parsed) return tl::unexpected(parsed.error());
    n.schedule = *s;
  }
  if (auto v = ValidateNode(n); !v) return tl::unexpected(v.error());
  return n;
}

[[nodiscard]] Result<void> ValidateNode(Node& n) {
  n.name = Trim(n.name);
  if (n.name.empty()) return Fail(Code::kInvalidArgument, "name must not be empty", "name");
  if (n.name.size() > 128) return Fail(Code::kInvalidArgument, "name is longer than 128 characters", "name");
  for (unsigned char c : n.name) {
    if (c < 0x20 || c == 0x7f || c == '/') {
      return Fail(Code::kInvalidArgument, "name must not contain '/' or control characters", "name");
    }
  }
  if (n.type == NodeType::kDimse) {
    auto ae = ValidateAeTitle(n.ae_title, "ae_title");
    if (!ae) return tl::unexpected(ae.error());
    n.ae_title = *ae;
    auto host = ValidateHost(n.host, "host");
    if (!host) return tl::unexpected(host.error());
    n.host = *host;
    for (auto [field, value] : {std::pair<const char*, std::string*>{"calling_ae_title", &n.calling_ae_title},
                                {"move_destination", &n.move_destination}}) {
      if (Trim(*value).empty()) {
        value->clear();
        continue;
      }
      auto v = ValidateAeTitle(*value, field);
      if (!v) return tl::unexpected(v.error());
      *value = *v;
    }
  }
  if (n.default_query_retrieve && !n.queryable) {
    return Fail(Code::kInvalidArgument, "default_query_retrieve needs a queryable node: set queryable to true first",
                "default_query_retrieve");
  }
  if (n.default_storage && !n.storable) {
    return Fail(Code::kInvalidArgument, "default_storage needs a storable node: set storable to true first",
                "default_storage");
  }
  static const std::set<std::string> kAuthTypes{"none", "basic", "bearer", "oauth2"};
  if (!kAuthTypes.count(n.auth.type)) {
    return Fail(Code::kInvalidArgument, "auth.type must be none, basic, bearer or oauth2", "auth.type");
  }
  if (n.tls.enabled && (n.tls.cert_file.empty() != n.tls.key_file.empty())) {
    return Fail(Code::kInvalidArgument, "tls.cert_file and tls.key_file go together", "tls.key_file");
  }
  if (n.type == NodeType::kDicomWeb) return ValidateDicomWebFields(n);
  return {};
}

json NodeToJson(const Node& n, bool with_secrets) {
  json j;
  j["name"] = n.name;
  j["type"] = n.type == NodeType::kDimse ? "dimse" : "dicomweb";
  j["description"] = n.description;
  j["queryable"] = n.queryable;
  j["storable"] = n.storable;
  j["default_query_retrieve"] = n.default_query_retrieve;
  j["default_storage"] = n.default_storage;
  if (!with_secrets) {
    j["locked"] = n.locked;
    j["retrieve_method_learned"] =
        n.retrieve_method_learned.empty() ? nlohmann::json(nullptr) : nlohmann::json(n.retrieve_method_learned);
  }
  j["tls"] = {
      {"enabled", n.tls.enabled}, {"verify_peer", n.tls.verify_peer}, {"verify_hostname", n.tls.verify_hostname},
      {"ca_file", n.tls.ca_file}, {"cert_file", n.tls.cert_file},     {"key_file", n.tls.key_file}};
  if (n.type == NodeType::kDimse) {
    j["ae_title"] = n.ae_title;
    j["host"] = n.host;
    j["port"] = n.port;
    j["retrieve_method"] = RetrieveMethodName(n.retrieve_method);
    j["calling_ae_title"] = n.calling_ae_title;
    j["move_destination"] = n.move_destination;
    j["listen_port"] = n.listen_port;
    j["preferred_transfer_syntax"] = n.preferred_transfer_syntax;
    j["allow_lossy_compression"] = n.allow_lossy_compression;
    j["max_associations"] = n.max_associations;
    j["timeout_seconds"] = n.timeout_seconds;
    j["patient_root"] = n.patient_root;
    j["query_charset"] = n.query_charset;
    j["max_results"] = n.max_results;
  } else {
    WriteDicomWebFields(n, with_secrets, j);
  }
  j["max_parallel_retrieves"] = n.max_parallel_retrieves;
  j["retry"] = {{"attempts", n.retry.attempts},
                {"first_delay_seconds", n.retry.first_delay_seconds},
                {"max_delay_seconds", n.retry.max_delay_seconds}};
  j["schedule"] = n.schedule;
  j["max_bytes_per_second"] = n.max_bytes_per_second;
  j["utilization_percent"] = n.utilization_percent;
  j["mwl"] = n.mwl;
  j["mwl_charset"] = n.mwl_charset;
  j["mpps"] = n.mpps;
  return j;
}

std::string EffectiveCallingAeTitle(const Node& n, const std::string& server_ae_title) {
  return n.calling_ae_title.empty() ? server_ae_title : n.calling_ae_title;
}

std::string EffectiveMoveDestination(const Node& n, const std::string& server_ae_title) {
  return n.move_destination.empty() ? EffectiveCallingAeTitle(n, server_ae_title) : n.move_destination;
}

nlohmann::json NodeToApiJson(const Node& n, const std::string& server_ae_title, TimePoint now) {
  json j = NodeToJson(n, false);
  if (n.type == NodeType::kDimse) {
    j["effective_calling_ae_title"] = EffectiveCallingAeTitle(n, server_ae_title);
    j["effective_move_destination"] = EffectiveMoveDestination(n, server_ae_title);
  }
  if (n.type == NodeType::kDicomWeb && !n.calling_ae_header.empty()) {
    j["effective_calling_ae_title"] = EffectiveCallingAeTitle(n, server_ae_title);
  }
  // What the node offers, all flags considered: a DICOMweb import needs QIDO-RS and WADO-RS.
  const bool dimse = n.type == NodeType::kDimse;
  j["offers_import"] = n.queryable && (dimse || (n.qido && n.wado));
  j["offers_export"] = n.storable && (dimse || n.stow);
  // The availability schedule, now: open or not, and when that changes.
  auto schedule = Schedule::Parse(n.schedule);
  const Schedule::Availability a = schedule ? schedule->At(now) : Schedule::Availability{};
  j["available"] = a.open;
  j["availability_changes_at"] = a.next_change ? json(UtcIso(*a.next_change)) : json(nullptr);
  j["unavailable_reason"] = a.open ? json(nullptr) : json(ClosedReason(n, *schedule, a));
  return j;
}

std::string ClosedReason(const Node& n, TimePoint now) {
  auto schedule = Schedule::Parse(n.schedule);
  if (!schedule) return "";
  return ClosedReason(n, *schedule, schedule->At(now));
}

std::string ClosedReason(const Node& n, const Schedule& schedule, const Schedule::Availability& a) {
  if (a.open) return "";
  return fmt::format(
      "node '{}' is outside its availability window ({}); {}", n.name, schedule.Describe(),
      a.next_change ? fmt::format("the next one opens at {}", UtcIso(*a.next_change)) : std::string("no window opens"));
}

dicom::PeerRequest ToPeerRequest(const Node& n, const std::string& default_calling_ae) {
  return dicom::PeerRequest{n.host,
                            n.port,
                            n.ae_title,
                            EffectiveCallingAeTitle(n, default_calling_ae),
                            n.timeout_seconds,
                            n.tls.enabled,
                            n.tls.verify_peer,
                            n.tls.ca_file,
                            n.tls.cert_file,
                            n.tls.key_file,
                            n.tls.verify_hostname,
                            nullptr};
}

}  // namespace pb
