// MPPS: the steps we send for worklist items (N-CREATE, then N-SET) and those modalities report
// to our receivers. GET /api/mpps[/{uid}], POST /api/mpps, PUT /api/mpps/{uid}.
#include <httplib.h>

#include <set>

#include <fmt/format.h>

#include "dicom/mpps.h"
#include "http/api.h"
#include "http/auth.h"
#include "http/errors.h"
#include "http/router.h"
#include "mpps/mpps_steps.h"

namespace pb::http {
namespace {

using json = nlohmann::json;

// Archive studies a step is about: by its Study Instance UID, else by its accession number.
json LinkedStudies(Services& s, const MppsRecord& m) {
  json out = json::array();
  std::set<std::string> seen;
  auto add = [&](StudyFilter f) {
    f.limit = 20;
    auto found = s.db.FindStudies(f);
    if (!found) return;
    for (const auto& st : *found) {
      if (!seen.insert(st.study_uid).second) continue;
      out.push_back({{"StudyInstanceUID", st.study_uid},
                     {"AccessionNumber", st.accession_number},
                     {"instance_count", st.instance_count}});
    }
  };
  if (!m.study_instance_uid.empty()) {
    StudyFilter f;
    f.study_uid = m.study_instance_uid;
    add(f);
  }
  if (!m.accession_number.empty()) {
    StudyFilter f;
    f.accession_number = m.accession_number;
    add(f);
  }
  return out;
}

json StepJson(Services& s, const MppsRecord& m, bool full) {
  json j = MppsSteps::ToJson(m, full);
  j["studies"] = LinkedStudies(s, m);
  return j;
}

// The node a step goes to: DIMSE with mpps on (409 naming the field otherwise).
[[nodiscard]] Result<Node> MppsNode(Services& s, const std::string& name) {
  auto n = s.nodes.Get(name);
  if (!n) return tl::unexpected(n.error());
  if (n->type != NodeType::kDimse || !n->mpps) {
    return Fail(Code::kConflict,
                fmt::format("node '{}' does not accept MPPS; set mpps to true if it takes N-CREATE/N-SET", name),
                "mpps");
  }
  return n;
}

// Sends one N-CREATE or N-SET and records the answer. The peer's refusal: 409 with its status
// and meaning; a peer that cannot be asked: 502/504.
void SendStep(Services& s, httplib::Response& res, const Node& node, const std::string& uid, bool create,
              const dicom::FlatItem& attributes, int ok_status) {
  auto as_json = dicom::ToDicomJson(attributes, "attributes.");
  if (!as_json) return SendError(res, as_json.error());
  auto answer = dicom::SendMpps(ToPeerRequest(node, s.settings.ae_title), create, uid, attributes, node.mwl_charset);
  const char* what = create ? "N-CREATE" : "N-SET";
  if (!answer) {
    const Error& e = answer.error();
    if (e.code == Code::kInvalidArgument) return SendError(res, e);
    (void)s.mpps.RecordSent(node.name, uid, create, *as_json, "not sent: " + e.message, false);
    return SendError(res, e.code == Code::kTimeout ? 504 : 502, fmt::format("Connection failed: {}", e.message));
  }
  const std::string outcome = dicom::DescribeNAnswer(*answer);
  auto recorded = s.mpps.RecordSent(node.name, uid, create, *as_json, outcome, answer->ok());
  if (!answer->ok()) {
    json body{{"error", fmt::format("node '{}' refused the {}: {}", node.name, what, outcome)},
              {"field", "status"},
              {"dimse_status", answer->status},
              {"sop_instance_uid", uid}};
    return SendJson(res, 409, body);
  }
  if (!recorded) return SendError(res, recorded.error());
  json j = StepJson(s, *recorded, true);
  if (answer->status != 0) j["warning"] = outcome;
  SendJson(res, ok_status, j);
}

}  // namespace

void AddMppsRoutes(Router& r, Services& s) {
  r.Get("/api/mpps", Access::kReadOnly, [&s](const httplib::Request& req, httplib::Response& res) {
    MppsFilter f;
    f.direction = req.get_param_value("direction");
    if (!f.direction.empty() && f.direction != "sent" && f.direction != "received") {
      return SendError(res, 400, "direction must be sent or received", "direction");
    }
    f.status = req.get_param_value("status");
    f.accession_number = req.get_param_value("accession_number");
    f.study_instance_uid = req.get_param_value("study_instance_uid");
    f.node = req.get_param_value("node");
    if (req.has_param("limit") && !ParseInt(req.get_param_value("limit"), 1, 1000, f.limit)) {
      return SendError(res, 400, "limit must be 1 to 1000", "limit");
    }
    auto steps = s.db.ListMpps(f);
    if (!steps) return SendError(res, steps.error());
    json out = json::array();
    for (const auto& m : *steps) out.push_back(StepJson(s, m, false));
    SendJson(res, 200, out);
  });

  r.Get("/api/mpps/{uid}", Access::kReadOnly, [&s](const httplib::Request& req, httplib::Response& res) {
    const std::string uid = req.matches[1];
    std::string direction = req.get_param_value("direction");
    if (!direction.empty() && direction != "sent" && direction != "received") {
      return SendError(res, 400, "direction must be sent or received", "direction");
    }
    for (const char* d : {"sent", "received"}) {
      if (!direction.empty() && direction != d) continue;
      auto m = s.db.GetMpps(d, uid);
      if (!m) return SendError(res, m.error());
      if (*m) return SendJson(res, 200, StepJson(s, **m, true));
    }
    SendError(res, 404, fmt::format("no MPPS step {}", uid));
  });

  // Starts a step for a worklist item: N-CREATE "IN PROGRESS" to the node.
  r.Post("/api/mpps", Access::kUser, [&s](const httplib::Request& req, httplib::Response& res, const std::string& raw) {
    auto body = ParseBody(raw, res);
    if (!body) return;
    if (!body->is_object()) return SendError(res, 400, "the body must be a JSON object");
    for (auto it = body->begin(); it != body->end(); ++it) {
      if (it.key() != "node" && it.key() != "item" && it.key() != "attributes") {
        return SendError(res, 400, "unknown field '" + it.key() + "'", it.key());
      }
    }
    if (!body->contains("node") || !(*body)["node"].is_string()) {
      return SendError(res, 400, "node must name the node that takes the step (mpps on)", "node");
    }
    if (!body->contains("item") || !(*body)["item"].is_object()) {
      return SendError(res, 400, "item must be the worklist item the step performs (as the worklist gives it)", "item");
    }
    auto node = MppsNode(s, (*body)["node"].get<std::string>());
    if (!node) return SendError(res, node.error());
    MppsStart start;
    start.item = (*body)["item"];
    start.attributes = body->value("attributes", json::object());
    start.station_ae_title = s.settings.ae_title;
    auto attributes = s.mpps.StartAttributes(start);
    if (!attributes) return SendError(res, attributes.error());
    SendStep(s, res, *node, dicom::NewUid(), true, *attributes, 201);
  });

  // Ends (or updates) a step we sent: N-SET COMPLETED with the series produced (archive series
  // UIDs), or DISCONTINUED with a reason.
  r.Put("/api/mpps/{uid}", Access::kUser,
        [&s](const httplib::Request& req, httplib::Response& res, const std::string& raw) {
          const std::string uid = req.matches[1];
          auto body = ParseBody(raw, res);
          if (!body) return;
          if (!body->is_object()) return SendError(res, 400, "the body must be a JSON object");
          for (auto it = body->begin(); it != body->end(); ++it) {
            if (it.key() != "status" && it.key() != "series" && it.key() != "reason" && it.key() != "attributes") {
              return SendError(res, 400, "unknown field '" + it.key() + "'", it.key());
            }
          }
          auto step = s.db.GetMpps("sent", uid);
          if (!step) return SendError(res, step.error());
          if (!*step) return SendError(res, 404, fmt::format("no MPPS step {} was sent from here", uid));
          auto node = MppsNode(s, (*step)->node);
          if (!node) return SendError(res, node.error());
          if (!body->contains("status") || !(*body)["status"].is_string()) {
            return SendError(res, 400, "status must be COMPLETED or DISCONTINUED", "status");
          }
          MppsEnd end;
          end.status = (*body)["status"].get<std::string>();
          end.attributes = body->value("attributes", json::object());
          if (body->contains("reason")) {
            const json& reason = (*body)["reason"];
            if (!reason.is_object()) {
              return SendError(res, 400,
                               "reason must be a code: {\"CodeValue\", \"CodingSchemeDesignator\", \"CodeMeaning\"}",
                               "reason");
            }
            if (end.status != "DISCONTINUED") return SendError(res, 400, "a reason goes with DISCONTINUED", "reason");
            end.reason = reason;
          }
          if (body->contains("series")) {
            const json& list = (*body)["series"];
            if (!list.is_array()) return SendError(res, 400, "series must be a list of Series Instance UIDs", "series");
            for (const auto& uid_json : list) {
              if (!uid_json.is_string())
                return SendError(res, 400, "series must be a list of Series Instance UIDs", "series");
              const std::string series_uid = uid_json.get<std::string>();
              auto instances = s.db.ListInstances(series_uid);
              if (!instances) return SendError(res, instances.error());
              if (instances->empty()) {
                return SendError(res, 400, fmt::format("the archive holds no series {}", series_uid), "series");
              }
              PerformedSeries ps;
              ps.series_uid = series_uid;
              ps.retrieve_ae_title = s.settings.ae_title;
              if (auto all = s.db.ListSeries(instances->front().study_uid)) {
                for (const auto& row : *all) {
                  if (row.series_uid == series_uid) ps.description = row.description;
                }
              }
              for (const auto& i : *instances) ps.instances.emplace_back(i.sop_class_uid, i.sop_uid);
              end.series.push_back(std::move(ps));
            }
          }
          auto attributes = s.mpps.EndAttributes(end);
          if (!attributes) return SendError(res, attributes.error());
          SendStep(s, res, *node, uid, false, *attributes, 200);
        });
}

}  // namespace pb::http
