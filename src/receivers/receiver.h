#pragma once
// A receiver: our own AE title + port, and what happens to what it receives (who may send,
// where it is filed, whether it is anonymized, staged or archived at once). Plain values and
// their JSON form; ReceiverService (receiver_service.h) runs them.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"
#include "dicom/server.h"
#include "ingest/origin.h"
#include "ingest/routing.h"
#include "receivers/whitelist.h"

namespace pb {

struct Receiver {
  std::string id;
  std::string ae_title;
  uint16_t port = 8104;
  std::string bind = "0.0.0.0";
  bool enabled = true;
  bool locked = false;  // from the config file
  dicom::ServerTls tls;

  bool whitelist_enabled = false;
  std::string whitelist_text;
  std::shared_ptr<const Whitelist> whitelist = std::make_shared<Whitelist>();

  std::string routing_project, routing_subject, routing_session;  // rule texts
  std::shared_ptr<const RoutingRules> routing = std::make_shared<RoutingRules>();
  std::string default_project;
  std::string identification = "rules";  // or "jobs"
  std::vector<Processor> processors;
  nlohmann::json processors_json = nlohmann::json::array();

  bool anonymize = true;
  AnonymizationChoices anonymization;
  bool direct_archive = true;
  int staging_idle_seconds = 60;
  bool mpps = false;         // MPPS N-CREATE/N-SET from modalities are accepted and kept
  std::string mpps_forward;  // a node (mpps on) each accepted request is forwarded to; "" none
  // Query/Retrieve over the archive (C-FIND now), to the callers the whitelist admits.
  bool query_retrieve = false;
  std::vector<std::string> query_retrieve_projects;  // non-empty: only these projects are seen
  bool query_names_ignore_case = false;              // PN matching ignores ASCII case

  // Whether data must be held in memory and changed before it reaches the disk.
  bool ChangesData() const;
};

// Where a receiver description comes from decides two defaults and one rule: receivers made
// through the API are anonymizing unless told otherwise and must use a port of 1024 to 49151;
// receivers of the config file keep data as sent unless `anonymize = true`, and any port is
// accepted there (the administrator's file is the authority; ports outside the range are warned
// about at start).
enum class ReceiverOrigin { kApi, kConfig };

[[nodiscard]] Result<Receiver> ReceiverFromJson(const nlohmann::json& j, ReceiverOrigin origin = ReceiverOrigin::kApi);
nlohmann::json ReceiverToJson(const Receiver& r);
// A PUT body applied to an existing receiver (fields not given keep their value; objects such
// as `routing` and `anonymization` are merged field by field).
[[nodiscard]] Result<Receiver> PatchReceiver(const Receiver& base, const nlohmann::json& patch);

// The anonymization options as JSON ({"retain_dates", ...}); errors name `field`.
[[nodiscard]] Result<AnonymizationChoices> AnonymizationFromJson(const nlohmann::json& j, const std::string& field);
nlohmann::json AnonymizationToJson(const AnonymizationChoices& a);

// Site-wide routing rules (GET/PUT /api/routing): {"project", "subject", "session"} texts.
[[nodiscard]] Result<std::shared_ptr<const RoutingRules>> ParseSiteRouting(const nlohmann::json& j);

}  // namespace pb
