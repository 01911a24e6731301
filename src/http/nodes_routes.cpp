#include <httplib.h>

#include "dicom/echo.h"
#include "http/api.h"
#include "http/errors.h"

namespace pb::http {
namespace {

nlohmann::json WithWarnings(const NodeChange& c) {
  nlohmann::json j = NodeToJson(c.node);
  j["warnings"] = c.warnings;
  return j;
}

}  // namespace

void AddNodeRoutes(httplib::Server& srv, Services& s) {
  srv.Get("/api/nodes", [&s](const httplib::Request&, httplib::Response& res) {
    nlohmann::json out = nlohmann::json::array();
    for (const Node& n : s.nodes.List()) out.push_back(NodeToJson(n));
    SendJson(res, 200, out);
  });
  Post(srv, "/api/nodes", [&s](const httplib::Request&, httplib::Response& res, const std::string& raw) {
    auto body = ParseBody(raw, res);
    if (!body) return;
    auto c = s.nodes.Add(*body);
    if (!c) return SendError(res, c.error());
    SendJson(res, 201, WithWarnings(*c));
  });
  srv.Get(R"(/api/nodes/([^/]+))", [&s](const httplib::Request& req, httplib::Response& res) {
    auto n = s.nodes.Get(req.matches[1]);
    if (!n) return SendError(res, n.error());
    SendJson(res, 200, NodeToJson(*n));
  });
  Put(srv, R"(/api/nodes/([^/]+))", [&s](const httplib::Request& req, httplib::Response& res, const std::string& raw) {
    auto existing = s.nodes.Get(req.matches[1]);
    if (!existing) return SendError(res, existing.error());
    auto body = ParseBody(raw, res);
    if (!body) return;
    auto c = s.nodes.Update(req.matches[1], *body);
    if (!c) return SendError(res, c.error());
    SendJson(res, 200, WithWarnings(*c));
  });
  srv.Delete(R"(/api/nodes/([^/]+))", [&s](const httplib::Request& req, httplib::Response& res) {
    auto r = s.nodes.Remove(req.matches[1]);
    if (!r) return SendError(res, r.error());
    res.status = 204;
  });
  Post(srv, R"(/api/nodes/([^/]+)/echo)", [&s](const httplib::Request& req, httplib::Response& res, const std::string&) {
    auto n = s.nodes.Get(req.matches[1]);
    if (!n) return SendError(res, n.error());
    if (n->type != NodeType::kDimse) {
      return SendJson(res, 200, {{"ok", false},
                                 {"message", "Connection failed: testing DICOMweb nodes is not "
                                             "available in this version"},
                                 {"latency_ms", 0}});
    }
    dicom::EchoRequest rq{n->host, n->port, n->ae_title,
                          n->calling_ae_title.empty() ? s.settings.ae_title : n->calling_ae_title,
                          n->timeout_seconds, n->tls.enabled, n->tls.verify_peer,
                          n->tls.ca_file, n->tls.cert_file, n->tls.key_file};
    dicom::EchoResult r = dicom::Echo(rq);
    SendJson(res, 200, {{"ok", r.ok}, {"message", r.message}, {"latency_ms", r.latency_ms}});
  });
}

}  // namespace pb::http
