#include <httplib.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/clock.h"
#include "dicom/worklist.h"

#include "http/api.h"
#include "http/auth.h"
#include "http/errors.h"
#include "http/router.h"
#include "transport/move_check.h"
#include "transport/transport.h"

namespace pb::http {
namespace {

nlohmann::json WithWarnings(const NodeChange& c, const std::string& server_ae_title) {
  nlohmann::json j = NodeToApiJson(c.node, server_ae_title);
  j["warnings"] = c.warnings;
  return j;
}

constexpr int kTestsKept = 200;  // per node

// A node as shown to someone who may not edit it, and in the audit log: the values of extra
// HTTP headers (an X-Api-Key, say) and a proxy's credentials are secrets too.
nlohmann::json Masked(nlohmann::json j) {
  if (auto h = j.find("headers"); h != j.end() && h->is_array()) {
    for (auto& header : *h) {
      if (header.is_object() && header.contains("value")) header["value"] = "***";
    }
  }
  if (auto p = j.find("proxy"); p != j.end() && p->is_string()) {
    std::string proxy = *p;
    const size_t scheme = proxy.find("://"), at = proxy.rfind('@');
    if (at != std::string::npos) {
      const size_t from = scheme == std::string::npos ? 0 : scheme + 3;
      if (at > from) j["proxy"] = proxy.substr(0, from) + "***" + proxy.substr(at);
    }
  }
  return j;
}

// The view for the current caller: admins, who edit nodes, see header values.
nlohmann::json ForCaller(nlohmann::json j) {
  const auth::Principal* p = CurrentPrincipal();
  return p && p->role == auth::Role::kAdmin ? j : Masked(std::move(j));
}

nlohmann::json TestToJson(const NodeTestRecord& t) {
  nlohmann::json checks = nlohmann::json::parse(t.checks_json, nullptr, false);
  return {{"at", t.at},
          {"ok", t.ok},
          {"message", t.message},
          {"latency_ms", t.latency_ms},
          {"checks", checks.is_discarded() ? nlohmann::json::array() : checks}};
}

// The node as the API shows it, with its last connection test (null before the first).
nlohmann::json WithLastTest(nlohmann::json node, const NodeTestRecord* last) {
  node["last_test"] = last ? TestToJson(*last) : nlohmann::json(nullptr);
  return node;
}

std::map<std::string, NodeTestRecord> Latest(Services& s) {
  auto latest = s.db.LatestNodeTests();
  if (!latest) spdlog::warn("nodes: {}", latest.error().message);  // the list still answers
  return latest ? std::move(*latest) : std::map<std::string, NodeTestRecord>{};
}

// Keeps a test (`j`: as the API answered it) in the node's history; a failure to write it is
// logged, the answer still given.
void Remember(Services& s, const std::string& node, const nlohmann::json& j) {
  NodeTestRecord t;
  t.at = UtcNowIso();
  t.ok = j.value("ok", false);
  t.message = j.value("message", "");
  t.latency_ms = j.value("latency_ms", int64_t{0});
  t.checks_json = j.value("checks", nlohmann::json::array()).dump();
  if (auto saved = s.nodes.RecordTest(node, t, kTestsKept); !saved) {
    spdlog::warn("node {}: the connection test was not kept in its history: {}", node, saved.error().message);
  }
}

}  // namespace

void AddNodeRoutes(Router& r, Services& s) {
  r.Get("/api/nodes", Access::kReadOnly, [&s](const httplib::Request&, httplib::Response& res) {
    nlohmann::json out = nlohmann::json::array();
    const auto latest = Latest(s);
    for (const Node& n : s.nodes.List()) {
      auto it = latest.find(n.name);
      out.push_back(
          ForCaller(WithLastTest(NodeToApiJson(n, s.settings.ae_title), it == latest.end() ? nullptr : &it->second)));
    }
    SendJson(res, 200, out);
  });
  r.Post("/api/nodes", Access::kAdmin,
         [&s](const httplib::Request& req, httplib::Response& res, const std::string& raw) {
           auto body = ParseBody(raw, res);
           if (!body) return;
           bool dry_run = false;
           if (!DryRun(req, res, dry_run)) return;
           auto c = s.nodes.Add(*body, dry_run);
           if (!c) return SendError(res, c.error());
           if (dry_run) return SendJson(res, 200, WithWarnings(*c, s.settings.ae_title));
           AuditChange(s, req, "node.create", "node", c->node.name, nullptr,
                       Masked(NodeToApiJson(c->node, s.settings.ae_title)));
           SendJson(res, 201, WithWarnings(*c, s.settings.ae_title));
         });
  r.Get("/api/nodes/{name}", Access::kReadOnly, [&s](const httplib::Request& req, httplib::Response& res) {
    auto n = s.nodes.Get(req.matches[1]);
    if (!n) return SendError(res, n.error());
    auto last = s.db.NodeTests(n->name, 1);
    SendJson(res, 200,
             ForCaller(WithLastTest(NodeToApiJson(*n, s.settings.ae_title),
                                    last && !last->empty() ? &last->front() : nullptr)));
  });
  // The node's connection tests, newest first (?limit=, 1 to 200, default 50).
  r.Get("/api/nodes/{name}/tests", Access::kReadOnly, [&s](const httplib::Request& req, httplib::Response& res) {
    auto n = s.nodes.Get(req.matches[1]);
    if (!n) return SendError(res, n.error());
    int limit = 50;
    if (req.has_param("limit")) {
      const std::string v = req.get_param_value("limit");
      if (!ParseInt(v, 1, kTestsKept, limit)) {
        return SendError(res, 400, fmt::format("limit must be a whole number from 1 to {}, not '{}'", kTestsKept, v),
                         "limit");
      }
    }
    auto tests = s.db.NodeTests(n->name, limit);
    if (!tests) return SendError(res, tests.error());
    nlohmann::json out = nlohmann::json::array();
    for (const NodeTestRecord& t : *tests) out.push_back(TestToJson(t));
    SendJson(res, 200, out);
  });
  r.Put("/api/nodes/{name}", Access::kAdmin,
        [&s](const httplib::Request& req, httplib::Response& res, const std::string& raw) {
          auto existing = s.nodes.Get(req.matches[1]);
          if (!existing) return SendError(res, existing.error());
          auto body = ParseBody(raw, res);
          if (!body) return;
          bool dry_run = false;
          if (!DryRun(req, res, dry_run)) return;
          auto c = s.nodes.Update(req.matches[1], *body, dry_run);
          if (!c) return SendError(res, c.error());
          if (dry_run) return SendJson(res, 200, WithWarnings(*c, s.settings.ae_title));
          AuditChange(s, req, "node.update", "node", existing->name,
                      Masked(NodeToApiJson(*existing, s.settings.ae_title)),
                      Masked(NodeToApiJson(c->node, s.settings.ae_title)));
          s.jobs.NodeChanged(c->node.name);  // a new schedule may open a window now
          SendJson(res, 200, WithWarnings(*c, s.settings.ae_title));
        });
  r.Delete("/api/nodes/{name}", Access::kAdmin, [&s](const httplib::Request& req, httplib::Response& res) {
    auto before = s.nodes.Get(req.matches[1]);
    auto r = s.nodes.Remove(req.matches[1]);
    if (!r) return SendError(res, r.error());
    if (before) {
      AuditChange(s, req, "node.delete", "node", before->name, Masked(NodeToApiJson(*before, s.settings.ae_title)),
                  nullptr);
    }
    res.status = 204;
  });
  // Test connection: the echo, then what the node is used for (nodes/connection_check.h).
  // Body (optional): {"echo_only": true} for the plain C-ECHO.
  r.Post("/api/nodes/{name}/echo", Access::kUser,
         [&s](const httplib::Request& req, httplib::Response& res, const std::string& raw) {
           auto n = s.nodes.Get(req.matches[1]);
           if (!n) return SendError(res, n.error());
           bool echo_only = false;
           if (!raw.empty()) {
             auto body = ParseBody(raw, res);
             if (!body) return;
             if (!body->is_object()) return SendError(res, 400, "the body must be a JSON object");
             for (auto it = body->begin(); it != body->end(); ++it) {
               if (it.key() != "echo_only") return SendError(res, 400, "unknown field '" + it.key() + "'", it.key());
               if (!it->is_boolean()) return SendError(res, 400, "echo_only must be true or false", "echo_only");
               echo_only = it->get<bool>();
             }
           }
           auto transport = TransportFor(*n, TransportContext{s.settings.ae_title, {}, {}});
           ConnectionTest test = transport ? (*transport)->TestConnection(echo_only)
                                           : ConnectionTest{{{"echo", "failed", transport.error().message, 0}}};
           const nlohmann::json answer = test.ToJson();
           Remember(s, n->name, answer);
           SendJson(res, 200, answer);
         });
  // "Does the PACS know us?" (transport/move_check.h): one instance the node holds is moved to
  // our receiver and discarded there. No body (or an empty object).
  r.Post("/api/nodes/{name}/move-check", Access::kUser,
         [&s](const httplib::Request& req, httplib::Response& res, const std::string& raw) {
           auto n = s.nodes.Get(req.matches[1]);
           if (!n) return SendError(res, n.error());
           if (!raw.empty()) {
             auto body = ParseBody(raw, res);
             if (!body) return;
             if (!body->is_object()) return SendError(res, 400, "the body must be a JSON object");
             if (!body->empty()) {
               return SendError(res, 400, "unknown field '" + body->begin().key() + "'", body->begin().key());
             }
           }
           MoveCheckContext context;
           context.our_ae_title = s.settings.ae_title;
           context.receivers = s.receivers.List();
           context.listening = [&s](const Receiver& r) { return s.receivers.Status(r.id) == "listening"; };
           context.expectations = &s.receivers.site().expectations;
           context.seen_since = [&s](std::chrono::steady_clock::time_point t) { return s.receivers.AttemptsSince(t); };
           auto check = RunMoveCheck(*n, context);
           if (!check) return SendError(res, check.error());
           SendJson(res, 200, check->ToJson());
         });
}

namespace {

// What a query of a node (find, worklist) checks before asking it: the body's fields, the
// node's availability window (unless overridden), and a positive limit. Sends the error and
// returns nullopt when something is wrong.
// clang-tidy 14 on the implicit members of a struct holding nlohmann::json: they do not throw.
struct NodeQueryBody {  // NOLINT(bugprone-exception-escape)
  nlohmann::json body;
  size_t limit = 0;  // 0: the node's max_results
};

std::optional<NodeQueryBody> ReadNodeQuery(const Node& n, const std::string& raw, httplib::Response& res,
                                           const std::set<std::string>& fields) {
  auto body = raw.empty() ? std::optional<nlohmann::json>(nlohmann::json::object()) : ParseBody(raw, res);
  if (!body) return std::nullopt;
  if (!body->is_object()) {
    SendError(res, 400, "the body must be a JSON object");
    return std::nullopt;
  }
  for (auto it = body->begin(); it != body->end(); ++it) {
    if (!fields.count(it.key()) && it.key() != "query" && it.key() != "limit" && it.key() != "override_schedule") {
      SendError(res, 400, "unknown field '" + it.key() + "'", it.key());
      return std::nullopt;
    }
  }
  if (body->contains("query") && !(*body)["query"].is_object()) {
    SendError(res, 400, "query must be an object of keyword: value", "query");
    return std::nullopt;
  }
  const nlohmann::json query = body->value("query", nlohmann::json::object());
  for (const auto& [k, v] : query.items()) {
    if (!v.is_string()) {
      SendError(res, 400, "query values are strings", "query." + k);
      return std::nullopt;
    }
  }
  NodeQueryBody out;
  if (body->contains("limit")) {
    const auto& l = (*body)["limit"];
    if (!l.is_number_integer() || l.get<int64_t>() < 1) {
      SendError(res, 400, "limit must be a positive integer", "limit");
      return std::nullopt;
    }
    out.limit = static_cast<size_t>(l.get<int64_t>());
  }
  // Outside the node's availability window the PACS is not asked, unless an administrator
  // says so for this request.
  if (body->contains("override_schedule") && !(*body)["override_schedule"].is_boolean()) {
    SendError(res, 400, "override_schedule must be true or false", "override_schedule");
    return std::nullopt;
  }
  if (!body->value("override_schedule", false)) {
    if (std::string closed = ClosedReason(n, std::chrono::system_clock::now()); !closed.empty()) {
      SendError(res, 409, closed + " (send \"override_schedule\": true to query anyway)", "schedule");
      return std::nullopt;
    }
  }
  out.body = std::move(*body);
  return out;
}

// A node that could not be asked: 502 (504 on a timeout) with the diagnosis; anything else as
// its code says.
void SendQueryError(httplib::Response& res, const Error& e) {
  if (e.code == Code::kUnavailable || e.code == Code::kAborted || e.code == Code::kTimeout ||
      e.code == Code::kPermissionDenied) {
    return SendError(res, e.code == Code::kTimeout ? 504 : 502, "Connection failed: " + e.message);
  }
  SendError(res, e);
}

nlohmann::json FlatToJson(const dicom::FlatItem& item) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : item.values) j[k] = v;
  for (const auto& [k, items] : item.sequences) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& i : items) list.push_back(FlatToJson(i));
    j[k] = std::move(list);
  }
  return j;
}

// Today in the server's time zone, as a DICOM date.
std::string LocalToday() {
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y%m%d", &local);
  return buf;
}

// The MPPS step (sent or received here) that performs a worklist item, matched by accession
// number (by Study Instance UID for an item without one) and, when both have one, the scheduled
// step's ID: "mpps" and whether it is "done" (COMPLETED). An item nobody performed yet has
// "mpps": null.
// A text attribute of a flattened item ("" when absent, or when a peer sent it as a sequence).
std::string TextOf(const nlohmann::json& item, const char* key) {
  auto it = item.find(key);
  return it != item.end() && it->is_string() ? it->get<std::string>() : std::string();
}

void MarkPerformed(Services& s, nlohmann::json& item) {
  item["mpps"] = nullptr;
  item["done"] = false;
  MppsFilter f;
  f.accession_number = TextOf(item, "AccessionNumber");
  if (f.accession_number.empty()) f.study_instance_uid = TextOf(item, "StudyInstanceUID");
  if (f.accession_number.empty() && f.study_instance_uid.empty()) return;
  auto steps = s.db.ListMpps(f);
  if (!steps) return;
  const std::string step_id = TextOf(item, "ScheduledProcedureStepID");
  for (const MppsRecord& m : *steps) {  // newest first
    if (!step_id.empty() && !m.scheduled_step_id.empty() && m.scheduled_step_id != step_id) continue;
    item["mpps"] = {{"sop_instance_uid", m.sop_instance_uid},
                    {"direction", m.direction},
                    {"status", m.status},
                    {"updated_at", m.updated_at}};
    item["done"] = m.status == "COMPLETED";
    return;
  }
}

}  // namespace

void AddFindRoute(Router& r, Services& s) {
  r.Post("/api/nodes/{name}/find", Access::kUser,
         [&s](const httplib::Request& req, httplib::Response& res, const std::string& raw) {
           auto n = s.nodes.Get(req.matches[1]);
           if (!n) return SendError(res, n.error());
           if (!n->queryable) {
             return SendError(res, 409,
                              "node '" + n->name +
                                  "' is not queryable; set queryable to true if it "
                                  "answers C-FIND",
                              "queryable");
           }
           auto rq = ReadNodeQuery(*n, raw, res, {"level"});
           if (!rq) return;
           const nlohmann::json& body = rq->body;
           auto transport = TransportFor(*n, TransportContext{s.settings.ae_title, {}, {}});
           if (!transport) return SendError(res, transport.error());
           FindQuery q;
           if (!body.contains("level") || !body["level"].is_string()) {
             return SendError(res, 400, "level must be PATIENT, STUDY, SERIES or IMAGE", "level");
           }
           q.level = body["level"].get<std::string>();
           const nlohmann::json query = body.value("query", nlohmann::json::object());
           for (const auto& [k, v] : query.items()) q.keys.emplace_back(k, v.get<std::string>());
           q.limit = rq->limit;
           auto found = (*transport)->Find(q);
           if (!found) return SendQueryError(res, found.error());
           nlohmann::json rows = nlohmann::json::array();
           for (const auto& r : found->rows) rows.push_back(r);
           SendJson(res, 200, {{"results", rows}, {"truncated", found->truncated}});
         });

  // Modality Worklist: a C-FIND on the worklist model; the scheduled date is today unless the
  // query names it ("" for any date).
  r.Post("/api/nodes/{name}/worklist", Access::kUser,
         [&s](const httplib::Request& req, httplib::Response& res, const std::string& raw) {
           auto n = s.nodes.Get(req.matches[1]);
           if (!n) return SendError(res, n.error());
           if (n->type != NodeType::kDimse) {
             return SendError(
                 res, 409, "node '" + n->name + "' is a DICOMweb node; Modality Worklist is asked over DIMSE (C-FIND)",
                 "type");
           }
           if (!n->mwl) {
             return SendError(res, 409,
                              "node '" + n->name +
                                  "' does not offer Modality Worklist; set mwl to true if it answers "
                                  "worklist queries",
                              "mwl");
           }
           auto rq = ReadNodeQuery(*n, raw, res, {});
           if (!rq) return;
           dicom::WorklistRequest wl;
           wl.peer = ToPeerRequest(*n, s.settings.ae_title);
           wl.charset = n->mwl_charset;
           const size_t node_max = static_cast<size_t>(n->max_results);
           wl.max_results = rq->limit ? std::min(rq->limit, node_max) : node_max;
           bool dated = false;
           const nlohmann::json query = rq->body.value("query", nlohmann::json::object());
           for (const auto& [k, v] : query.items()) {
             dated = dated || k == "ScheduledProcedureStepStartDate" || k == "(0040,0002)" || k == "0040,0002";
             wl.keys.emplace_back(k, v.get<std::string>());
           }
           if (!dated) wl.keys.emplace_back("ScheduledProcedureStepStartDate", LocalToday());
           auto found = dicom::FindWorklist(wl);
           if (!found) return SendQueryError(res, found.error());
           nlohmann::json items = nlohmann::json::array();
           for (const auto& a : found->answers) {
             nlohmann::json item = FlatToJson(a.item);
             // The (first) scheduled step's attributes also at the top: one row a table can show.
             if (auto step = a.item.sequences.find("ScheduledProcedureStepSequence");
                 step != a.item.sequences.end() && !step->second.empty()) {
               const nlohmann::json first = FlatToJson(step->second.front());
               for (const auto& [k, v] : first.items()) {
                 if (!item.contains(k)) item[k] = v;
               }
             }
             item["dicom"] = nlohmann::json::parse(a.dicom_json, nullptr, false);
             if (item["dicom"].is_discarded()) item["dicom"] = nullptr;
             MarkPerformed(s, item);
             items.push_back(std::move(item));
           }
           // In the order of the day: scheduled date, then time (as the peer sent them otherwise).
           std::stable_sort(items.begin(), items.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
             auto when = [](const nlohmann::json& i) {
               return TextOf(i, "ScheduledProcedureStepStartDate") + TextOf(i, "ScheduledProcedureStepStartTime");
             };
             return when(a) < when(b);
           });
           SendJson(res, 200, {{"results", items}, {"truncated", found->truncated}});
         });
}

}  // namespace pb::http
