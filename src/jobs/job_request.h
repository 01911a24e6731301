#pragma once
// Parsing the body of a job request (POST /api/retrieve, /api/send), shared by the job kinds:
// unknown fields refused, the node (or the default one), the level and the UIDs. Every error
// names its field.
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"
#include "nodes/registry.h"

namespace pb {

struct TargetRequest {
  std::string level = "STUDY";  // STUDY, SERIES or IMAGE
  std::vector<std::string> uids;
  std::string study_uid, series_uid;  // parents of SERIES / IMAGE uids, when given
};

[[nodiscard]] Result<void> RefuseUnknownFields(const nlohmann::json& request, const std::set<std::string>& known);

// An optional string field, trimmed ("" when absent or null).
[[nodiscard]] Result<std::string> OptionalString(const nlohmann::json& request, const char* key);

enum class NodeRole { kQueryRetrieve, kStorage };

// The node named in "node", or the default one for the role; DIMSE only, and queryable or
// storable as the role needs (404 unknown, 409 wrong role, 501 DICOMweb). A DICOMweb node also
// needs `qido` and `wado` to be retrieved from, `stow` to take a send (409 naming the flag).
[[nodiscard]] Result<Node> ChooseNode(const NodeRegistry& nodes, const nlohmann::json& request, NodeRole role);

// "level", "uids", "study_uid", "series_uid".
[[nodiscard]] Result<TargetRequest> ParseTarget(const nlohmann::json& request);

nlohmann::json TargetToJson(const TargetRequest& t);

}  // namespace pb
