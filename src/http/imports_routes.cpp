// Bulk imports from a spreadsheet: POST /api/imports (a CSV body, or JSON with "csv"),
// GET /api/imports(/id) and POST /api/imports/{id}/confirm. The import is a job (type
// "import"): cancel, pause, resume and retry are the jobs' routes.
#include <httplib.h>

#include <fmt/format.h>

#include "http/api.h"
#include "http/errors.h"
#include "http/router.h"
#include "jobs/import_sheet.h"

namespace pb::http {
namespace {

std::optional<int64_t> ImportId(const std::string& text) {
  if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  return std::stoll(text);
}

bool IsCsv(const httplib::Request& req) {
  std::string type = req.get_header_value("Content-Type");
  for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return type.rfind("text/csv", 0) == 0 || type.rfind("text/plain", 0) == 0 || type.rfind("application/csv", 0) == 0;
}

}  // namespace

void AddImportRoutes(Router& r, Services& s) {
  r.Post(
      "/api/imports", Access::kUser, [&s](const httplib::Request& req, httplib::Response& res, const std::string& raw) {
        nlohmann::json rq = nlohmann::json::object();
        if (IsCsv(req)) {
          // The sheet is the body; the options are query parameters.
          rq["csv"] = raw;
          for (const char* key : {"node", "project", "several", "method", "priority"}) {
            if (req.has_param(key)) rq[key] = req.get_param_value(key);
          }
          if (req.has_param("confirm")) {
            const std::string c = req.get_param_value("confirm");
            if (c != "true" && c != "false") return SendError(res, 400, "confirm must be true or false", "confirm");
            rq["confirm"] = c == "true";
          }
        } else {
          auto body = ParseBody(raw, res);
          if (!body) return;
          if (!body->is_object()) {
            return SendError(res, 400, "the body must be a CSV (Content-Type: text/csv) or a JSON object with \"csv\"");
          }
          rq = std::move(*body);
          for (const char* internal : {"_sheet", "_rows_from", "retry_of", "rows_total"}) {
            if (rq.contains(internal))
              return SendError(res, 400, fmt::format("unknown field '{}'", internal), internal);
          }
        }
        if (!rq.contains("csv") || !rq["csv"].is_string()) {
          return SendError(res, 400, "csv must be the text of the spreadsheet", "csv");
        }
        // The sheet's own errors carry their place, for editors that jump to it.
        auto sheet = ParseImportSheet(rq["csv"].get<std::string>());
        if (!sheet) {
          return SendJson(res, 400,
                          {{"error", sheet.error().message},
                           {"field", "csv"},
                           {"line", sheet.error().line},
                           {"column", sheet.error().column}});
        }
        auto job = s.jobs.Submit("import", rq);
        if (!job) return SendError(res, job.error());
        auto view = s.imports.View(std::stoll((*job)["id"].get<std::string>()));
        if (!view) return SendError(res, view.error());
        SendJson(res, 202, *view);
      });
  r.Get("/api/imports", Access::kReadOnly, [&s](const httplib::Request& req, httplib::Response& res) {
    JobFilter f;
    f.type = "import";
    f.state = req.get_param_value("state");
    auto list = s.jobs.List(f);
    if (!list) return SendError(res, list.error());
    SendJson(res, 200, *list);
  });
  r.Get("/api/imports/{id}", Access::kReadOnly, [&s](const httplib::Request& req, httplib::Response& res) {
    auto id = ImportId(req.matches[1]);
    if (!id) return SendError(res, 404, fmt::format("no import '{}'", req.matches[1].str()), "id");
    auto view = s.imports.View(*id);
    if (!view) return SendError(res, view.error());
    SendJson(res, 200, *view);
  });
  r.Post("/api/imports/{id}/confirm", Access::kUser,
         [&s](const httplib::Request& req, httplib::Response& res, const std::string& raw) {
           auto id = ImportId(req.matches[1]);
           if (!id) return SendError(res, 404, fmt::format("no import '{}'", req.matches[1].str()), "id");
           nlohmann::json body = nlohmann::json::object();
           if (!raw.empty()) {
             auto parsed = ParseBody(raw, res);
             if (!parsed) return;
             body = std::move(*parsed);
           }
           auto view = s.imports.Confirm(*id, body);
           if (!view) return SendError(res, view.error());
           SendJson(res, 200, *view);
         });
}

}  // namespace pb::http
