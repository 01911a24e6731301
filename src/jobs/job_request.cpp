#include "jobs/job_request.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/validate.h"

namespace pb {

using json = nlohmann::json;

[[nodiscard]] Result<void> RefuseUnknownFields(const json& rq, const std::set<std::string>& known) {
  if (!rq.is_object()) return Fail(Code::kInvalidArgument, "the body must be a JSON object");
  for (auto it = rq.begin(); it != rq.end(); ++it) {
    if (!known.count(it.key())) {
      return Fail(Code::kInvalidArgument, fmt::format("unknown field '{}'", it.key()), it.key());
    }
  }
  return {};
}

[[nodiscard]] Result<std::string> OptionalString(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return std::string();
  if (!j[key].is_string()) return Fail(Code::kInvalidArgument, fmt::format("{} must be a string", key), key);
  return Trim(j[key].get<std::string>());
}

namespace {

// A DICOMweb retrieve needs QIDO-RS (to list the instances) and WADO-RS; a send needs STOW-RS.
[[nodiscard]] Result<void> CheckDicomWebCapability(const Node& node, bool storage) {
  if (node.type != NodeType::kDicomWeb) return {};
  const char* flag = nullptr;
  if (storage) {
    if (!node.stow) flag = "stow";
  } else if (!node.qido) {
    flag = "qido";
  } else if (!node.wado) {
    flag = "wado";
  }
  if (!flag) return {};
  return Fail(Code::kConflict,
              fmt::format("node '{}' cannot {}: its {} capability is off (set {} to true)", node.name,
                          storage ? "take a send" : "be retrieved from", flag, flag),
              "node");
}

}  // namespace

[[nodiscard]] Result<Node> ChooseNode(const NodeRegistry& nodes, const json& rq, NodeRole role) {
  const bool storage = role == NodeRole::kStorage;
  auto name = OptionalString(rq, "node");
  if (!name) return tl::unexpected(name.error());
  Node node;
  if (name->empty()) {
    auto all = nodes.List();
    auto it = std::find_if(all.begin(), all.end(),
                           [&](const Node& n) { return storage ? n.default_storage : n.default_query_retrieve; });
    if (it == all.end()) {
      return Fail(
          Code::kInvalidArgument,
          fmt::format("node is missing and no node is the default {} node", storage ? "storage" : "query/retrieve"),
          "node");
    }
    node = *it;
  } else {
    auto n = nodes.Get(*name);
    if (!n) return Fail(Code::kNotFound, fmt::format("no node named '{}'", *name), "node");
    node = *n;
  }
  // Before the version check: a capability switched off is the node's settings, fixable now.
  if (auto c = CheckDicomWebCapability(node, storage); !c) return tl::unexpected(c.error());
  if (storage ? !node.storable : !node.queryable) {
    return Fail(Code::kConflict,
                fmt::format("node '{}' is not {}: set {} to {} it", node.name, storage ? "storable" : "queryable",
                            storage ? "storable" : "queryable", storage ? "send to" : "retrieve from"),
                "node");
  }
  return node;
}

[[nodiscard]] Result<TargetRequest> ParseTarget(const json& rq) {
  TargetRequest t;
  auto level = OptionalString(rq, "level");
  if (!level) return tl::unexpected(level.error());
  if (!level->empty()) {
    t.level = *level;
    std::transform(t.level.begin(), t.level.end(), t.level.begin(), [](unsigned char c) { return std::toupper(c); });
  }
  if (t.level != "STUDY" && t.level != "SERIES" && t.level != "IMAGE") {
    return Fail(Code::kInvalidArgument, "level must be STUDY, SERIES or IMAGE", "level");
  }
  if (!rq.contains("uids") || !rq["uids"].is_array() || rq["uids"].empty()) {
    return Fail(Code::kInvalidArgument, "uids must be a non-empty list of UIDs", "uids");
  }
  for (const auto& u : rq["uids"]) {
    if (!u.is_string() || !IsValidUid(Trim(u.get<std::string>()))) {
      return Fail(Code::kInvalidArgument,
                  fmt::format("{} is not a UID (digits and dots, at most 64 characters)", u.dump()), "uids");
    }
    t.uids.push_back(Trim(u.get<std::string>()));
  }
  for (auto [out, field] : {std::pair{&t.study_uid, "study_uid"}, std::pair{&t.series_uid, "series_uid"}}) {
    auto v = OptionalString(rq, field);
    if (!v) return tl::unexpected(v.error());
    if (!v->empty() && !IsValidUid(*v)) {
      return Fail(Code::kInvalidArgument, fmt::format("'{}' is not a UID", *v), field);
    }
    *out = *v;
  }
  return t;
}

json TargetToJson(const TargetRequest& t) {
  json j{{"level", t.level}, {"uids", t.uids}};
  if (!t.study_uid.empty()) j["study_uid"] = t.study_uid;
  if (!t.series_uid.empty()) j["series_uid"] = t.series_uid;
  return j;
}

}  // namespace pb
