// Receivers (/api/receivers), the site-wide routing rules (/api/routing) and the staging area
// (/api/staging).
#include <httplib.h>

#include "http/api.h"
#include "http/auth.h"
#include "http/errors.h"
#include "http/router.h"

namespace pb::http {
namespace {

nlohmann::json LabelsJson(const FilingLabels& l) {
  return {{"project", l.project}, {"subject", l.subject}, {"session", l.session}};
}

// project/subject/session are the labels the archive will apply (the series' own when they are
// filed already); `routed` what routing gave the session; `destinations` and `note` say where
// each series goes when that differs, or when the session would be split or merged.
nlohmann::json StagedJson(const StagedSession& s, const ReceiverService& receivers, StagingArea& staging) {
  auto r = receivers.Get(s.receiver);
  nlohmann::json j{{"receiver_ae_title", r ? r->ae_title : ""},
                   {"id", s.id},
                   {"receiver", s.receiver},
                   {"project", s.project},
                   {"subject", s.subject},
                   {"session", s.session},
                   {"state", s.state},
                   {"first_at", s.first_at},
                   {"last_at", s.last_at},
                   {"instance_count", s.instance_count},
                   {"bytes", s.bytes}};
  if (!s.owner.empty()) j["instance"] = s.owner;  // servers sharing a data directory: which one receives it
  FilingLabels routed{s.project, s.subject, s.session};
  j["routed"] = LabelsJson(routed);
  auto plan = staging.Plan(s);
  if (!plan) {
    j["note"] = "where its series will be filed is not known: " + plan.error().message;
    return j;
  }
  j.update(LabelsJson(plan->effective()));
  j["split"] = plan->split();
  j["note"] = plan->Note();
  nlohmann::json dest = nlohmann::json::array();
  for (const auto& d : plan->destinations) {
    nlohmann::json one = LabelsJson(d.labels);
    one["series"] = d.series_uids;
    one["staged_instances"] = d.staged_instances;
    one["archived_instances"] = d.archived_instances;
    one["already_filed"] = d.already_filed;
    dest.push_back(std::move(one));
  }
  j["destinations"] = std::move(dest);
  return j;
}

bool ParseId(const std::string& text, int64_t& out) {
  try {
    size_t used = 0;
    out = std::stoll(text, &used);
    return used == text.size() && out > 0;
  } catch (...) {
    return false;
  }
}

}  // namespace

void AddReceiverRoutes(Router& r, Services& s) {
  r.Get("/api/receivers", Access::kReadOnly, [&s](const httplib::Request&, httplib::Response& res) {
    nlohmann::json out = nlohmann::json::array();
    for (const Receiver& r : s.receivers.List()) out.push_back(s.receivers.ToJson(r));
    SendJson(res, 200, out);
  });
  r.Post("/api/receivers", Access::kAdmin,
         [&s](const httplib::Request& req, httplib::Response& res, const std::string& raw) {
           bool dry_run = false;
           if (!DryRun(req, res, dry_run)) return;
           auto body = ParseBody(raw, res);
           if (!body) return;
           auto r = s.receivers.Create(*body, dry_run);
           if (!r) return SendError(res, r.error());
           if (dry_run) return SendJson(res, 200, ReceiverToJson(*r));
           AuditChange(s, req, "receiver.create", "receiver", r->id, nullptr, s.receivers.ToJson(*r));
           SendJson(res, 201, s.receivers.ToJson(*r));
         });
  r.Get("/api/receivers/{id}", Access::kReadOnly, [&s](const httplib::Request& req, httplib::Response& res) {
    auto r = s.receivers.Get(req.matches[1]);
    if (!r) return SendError(res, r.error());
    SendJson(res, 200, s.receivers.ToJson(*r));
  });
  r.Put("/api/receivers/{id}", Access::kAdmin,
        [&s](const httplib::Request& req, httplib::Response& res, const std::string& raw) {
          auto existing = s.receivers.Get(req.matches[1]);
          if (!existing) return SendError(res, existing.error());
          bool dry_run = false;
          if (!DryRun(req, res, dry_run)) return;
          auto body = ParseBody(raw, res);
          if (!body) return;
          auto r = s.receivers.Update(req.matches[1], *body, dry_run);
          if (!r) return SendError(res, r.error());
          if (dry_run) return SendJson(res, 200, ReceiverToJson(*r));
          AuditChange(s, req, "receiver.update", "receiver", r->id, s.receivers.ToJson(*existing),
                      s.receivers.ToJson(*r));
          SendJson(res, 200, s.receivers.ToJson(*r));
        });
  r.Delete("/api/receivers/{id}", Access::kAdmin, [&s](const httplib::Request& req, httplib::Response& res) {
    auto before = s.receivers.Get(req.matches[1]);
    auto r = s.receivers.Remove(req.matches[1]);
    if (!r) return SendError(res, r.error());
    if (before) AuditChange(s, req, "receiver.delete", "receiver", before->id, s.receivers.ToJson(*before), nullptr);
    res.status = 204;
  });

  r.Get("/api/routing", Access::kReadOnly,
        [&s](const httplib::Request&, httplib::Response& res) { SendJson(res, 200, s.receivers.SiteRouting()); });
  r.Put("/api/routing", Access::kAdmin,
        [&s](const httplib::Request& req, httplib::Response& res, const std::string& raw) {
          auto body = ParseBody(raw, res);
          if (!body) return;
          const nlohmann::json before = s.receivers.SiteRouting();
          auto r = s.receivers.SetSiteRouting(*body);
          if (!r) return SendError(res, r.error());
          AuditChange(s, req, "routing.update", "routing", "site", before, *r);
          SendJson(res, 200, *r);
        });

  // A project's own anonymization options: they replace the receiver's for data filed there.
  r.Get("/api/projects/{project}/anonymization", Access::kReadOnly,
        [&s](const httplib::Request& req, httplib::Response& res) {
          auto a = s.receivers.ProjectAnonymization(req.matches[1]);
          SendJson(
              res, 200,
              {{"project", req.matches[1]}, {"anonymization", a ? AnonymizationToJson(*a) : nlohmann::json(nullptr)}});
        });
  r.Put("/api/projects/{project}/anonymization", Access::kAdmin,
        [&s](const httplib::Request& req, httplib::Response& res, const std::string& raw) {
          const std::string project = req.matches[1];
          if (CleanLabel(project) != project) {
            return SendError(res, 400, "a project is a label of letters, digits, _ and - (at most 64)", "project");
          }
          auto body = ParseBody(raw, res);
          if (!body) return;
          auto a = AnonymizationFromJson(*body, "anonymization");
          if (!a) return SendError(res, a.error());
          auto old = s.receivers.ProjectAnonymization(project);
          if (auto r = s.receivers.SetProjectAnonymization(project, *a); !r) return SendError(res, r.error());
          AuditChange(s, req, "project.anonymization", "project", project,
                      old ? AnonymizationToJson(*old) : nlohmann::json(nullptr), AnonymizationToJson(*a));
          SendJson(res, 200, {{"project", project}, {"anonymization", AnonymizationToJson(*a)}});
        });
  r.Delete("/api/projects/{project}/anonymization", Access::kAdmin,
           [&s](const httplib::Request& req, httplib::Response& res) {
             auto old = s.receivers.ProjectAnonymization(req.matches[1]);
             if (auto r = s.receivers.SetProjectAnonymization(req.matches[1], std::nullopt); !r)
               return SendError(res, r.error());
             if (old)
               AuditChange(s, req, "project.anonymization", "project", req.matches[1], AnonymizationToJson(*old),
                           nullptr);
             res.status = 204;
           });

  r.Get("/api/staging", Access::kReadOnly, [&s](const httplib::Request&, httplib::Response& res) {
    auto rows = s.staging.List();
    if (!rows) return SendError(res, rows.error());
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : *rows) out.push_back(StagedJson(r, s.receivers, s.staging));
    SendJson(res, 200, out);
  });
  r.Get("/api/staging/{id}", Access::kReadOnly, [&s](const httplib::Request& req, httplib::Response& res) {
    int64_t id = 0;
    if (!ParseId(req.matches[1], id))
      return SendError(res, 404, "no staged session '" + std::string(req.matches[1]) + "'", "id");
    auto row = s.staging.Get(id);
    if (!row) return SendError(res, row.error());
    if (!*row) return SendError(res, 404, "no staged session " + std::to_string(id), "id");
    SendJson(res, 200, StagedJson(**row, s.receivers, s.staging));
  });
  r.Post("/api/staging/{id}/archive", Access::kUser,
         [&s](const httplib::Request& req, httplib::Response& res, const std::string&) {
           int64_t id = 0;
           if (!ParseId(req.matches[1], id))
             return SendError(res, 404, "no staged session '" + std::string(req.matches[1]) + "'", "id");
           // Where it goes, said before it goes (the plan reads the staged rows).
           auto before = s.staging.Get(id);
           if (!before) return SendError(res, before.error());
           std::optional<nlohmann::json> planned;
           if (*before) planned = StagedJson(**before, s.receivers, s.staging);
           auto r = s.staging.Archive(id);
           if (!r) return SendError(res, r.error());
           nlohmann::json j = planned ? *planned : StagedJson(r->session, s.receivers, s.staging);
           j["archived"] = r->archived;
           j["failed"] = r->failed;
           if (!r->error.empty()) j["error"] = r->error;
           SendJson(res, r->failed > 0 ? 500 : 200, j);
         });
  r.Delete("/api/staging/{id}", Access::kUser, [&s](const httplib::Request& req, httplib::Response& res) {
    int64_t id = 0;
    if (!ParseId(req.matches[1], id))
      return SendError(res, 404, "no staged session '" + std::string(req.matches[1]) + "'", "id");
    auto r = s.staging.Discard(id);
    if (!r) return SendError(res, r.error());
    res.status = 204;
  });
}

}  // namespace pb::http
