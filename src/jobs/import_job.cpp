#include "jobs/import_job.h"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "ingest/routing.h"
#include "jobs/import_sheet.h"
#include "jobs/job_request.h"
#include "jobs/job_text.h"

namespace pb {
namespace {

using jobs_text::Dump;
using jobs_text::Finished;
using jobs_text::ParseOr;

using json = nlohmann::json;

// What a row's find asks back, besides its own keys.
const std::vector<std::string> kReturnKeys{"StudyInstanceUID",  "PatientName",      "PatientID",
                                           "StudyDate",         "StudyTime",        "AccessionNumber",
                                           "ModalitiesInStudy", "StudyDescription", "NumberOfStudyRelatedInstances"};

bool Matched(const ImportRowRecord& r) { return r.state == "one_match" || r.state == "several_matches"; }

std::string Lines(const std::vector<int>& lines) {
  return fmt::format("{} {}", lines.size() == 1 ? "line" : "lines", fmt::join(lines, ", "));
}

// The retrieve jobs of an import, by the line of their row.
[[nodiscard]] Result<std::map<int, JobRow>> ChildrenByLine(Database& db, int64_t id) {
  JobFilter f;
  f.parent = id;
  f.limit = 1000000;
  std::map<int, JobRow> out;
  auto children = db.ListJobs(f);
  if (!children) return tl::unexpected(children.error());
  for (JobRow& c : *children) {
    const int line = ParseOr(c.params, json::object()).value("import_row", 0);
    auto it = out.find(line);
    if (it == out.end() || c.id > it->second.id) out[line] = std::move(c);  // a retry by hand is newer
  }
  return out;
}

}  // namespace

Result<std::pair<json, std::string>> ImportRunner::Prepare(const json& rq) {
  if (auto r = RefuseUnknownFields(rq, {"csv", "_sheet", "node", "project", "several", "confirm", "method", "retry_of",
                                        "rows_total", "_rows_from"});
      !r) {
    return tl::unexpected(r.error());
  }
  auto node = ChooseNode(nodes_, rq, NodeRole::kQueryRetrieve);
  if (!node) return tl::unexpected(node.error());
  std::string text;
  for (const char* key : {"csv", "_sheet"}) {
    if (rq.contains(key) && rq[key].is_string()) text = rq[key].get<std::string>();
  }
  if (text.empty()) return Fail(Code::kInvalidArgument, "csv must be the text of the spreadsheet", "csv");
  auto sheet = ParseImportSheet(text);
  if (!sheet) return Fail(Code::kInvalidArgument, sheet.error().message, "csv");
  json params{{"node", node->name}, {"rows_total", sheet->rows.size()}, {"_sheet", text}};
  auto project = OptionalString(rq, "project");
  if (!project) return tl::unexpected(project.error());
  if (!project->empty()) {
    if (CleanLabel(*project) != *project) {
      return Fail(Code::kInvalidArgument, "project must be a label of letters, digits, _ and - (at most 64)",
                  "project");
    }
    params["project"] = *project;
  }
  auto several = OptionalString(rq, "several");
  if (!several) return tl::unexpected(several.error());
  if (!several->empty() && *several != "ask" && *several != "all" && *several != "none") {
    return Fail(Code::kInvalidArgument, "several must be \"ask\", \"all\" or \"none\"", "several");
  }
  params["several"] = several->empty() ? "ask" : *several;
  if (rq.contains("confirm") && !rq["confirm"].is_boolean()) {
    return Fail(Code::kInvalidArgument, "confirm must be true or false", "confirm");
  }
  params["confirm"] = rq.value("confirm", false);
  auto method = OptionalString(rq, "method");
  if (!method) return tl::unexpected(method.error());
  if (!method->empty()) {
    if (*method != "auto" && *method != "c-get" && *method != "c-move") {
      return Fail(Code::kInvalidArgument, "method must be auto, c-get or c-move", "method");
    }
    if (node->type == NodeType::kDicomWeb && *method != "auto") {
      return Fail(
          Code::kInvalidArgument,
          fmt::format("method {} applies to DIMSE nodes; node '{}' is retrieved from by WADO-RS", *method, node->name),
          "method");
    }
    params["method"] = *method;
  }
  // A retry by hand starts from the rows, answers and choices of the import it retries.
  if (rq.contains("retry_of") && rq["retry_of"].is_number_integer()) params["_rows_from"] = rq["retry_of"];
  return std::pair{params, node->name};
}

JobOutcome ImportRunner::Run(JobContext& job) {
  const json& params = job.params();
  const int64_t id = job.id();
  auto rows = db_.ImportRows(id);
  if (!rows) return {"failed", rows.error().message, nullptr, {}, true};
  if (rows->empty()) {
    // The first run: the sheet's rows (or those of the import this one retries) become rows of
    // the table, so that every later run knows what was answered and chosen.
    std::vector<ImportRowRecord> fresh;
    const int64_t from = params.value("_rows_from", int64_t{0});
    if (from) {
      auto old = db_.ImportRows(from);
      if (!old) return {"failed", old.error().message, nullptr, {}, true};
      for (ImportRowRecord r : *old) {
        r.job_id = id;
        fresh.push_back(std::move(r));
      }
    }
    if (fresh.empty()) {
      auto sheet = ParseImportSheet(params.value("_sheet", ""));
      if (!sheet) return {"failed", sheet.error().message, nullptr, {}};
      for (const ImportRow& r : sheet->rows) {
        ImportRowRecord rec;
        rec.job_id = id;
        rec.line = r.line;
        json q = json::object();
        for (const auto& [k, v] : r.keys) q[k] = v;
        rec.query = Dump(q);
        rec.project = r.project;
        rec.subject = r.subject;
        rec.session = r.session;
        fresh.push_back(std::move(rec));
      }
    }
    if (auto w = db_.InsertImportRows(fresh); !w) return {"failed", w.error().message, nullptr, {}, true};
    rows = db_.ImportRows(id);
    if (!rows) return {"failed", rows.error().message, nullptr, {}, true};
  }
  // Rows per state, kept as rows change (a sheet of 10 000 rows is not counted again per row).
  std::map<std::string, int64_t> states{
      {"pending", 0}, {"no_match", 0}, {"one_match", 0}, {"several_matches", 0}, {"error", 0}};
  for (const auto& r : *rows) ++states[r.state];
  auto restate = [&](ImportRowRecord& r, std::string state) {
    --states[r.state];
    r.state = std::move(state);
    ++states[r.state];
  };
  auto progress = [&](const char* phase) {
    json counts{{"phase", phase}, {"rows", rows->size()}};
    for (const auto& [state, n] : states) counts[state] = n;
    counts["queried"] = static_cast<int64_t>(rows->size()) - states["pending"];
    return counts;
  };

  // 1. Query the rows not answered yet.
  const std::string node_name = params.value("node", "");
  auto node = nodes_.Get(node_name);
  if (!node) return {"failed", fmt::format("node '{}' no longer exists", node_name), progress("query"), {}};
  std::unique_ptr<Transport> link;
  for (ImportRowRecord& r : *rows) {
    if (r.state != "pending") continue;
    if (job.StopRequested()) return {"failed", "stopped before every row was queried", progress("query"), {}};
    if (!link) {
      auto t = TransportFor(*node, transport_context_);
      if (!t) return {"failed", t.error().message, progress("query"), {}};
      link = std::move(*t);
    }
    FindQuery q;
    q.level = "STUDY";
    const json keys = ParseOr(r.query, json::object());
    for (auto it = keys.begin(); it != keys.end(); ++it) q.keys.emplace_back(it.key(), it->get<std::string>());
    for (const std::string& k : kReturnKeys) {
      if (!keys.contains(k)) q.keys.emplace_back(k, "");
    }
    auto found = link->Find(q);
    if (!found) {
      if (IsTransient(found.error().code)) {
        JobOutcome out{"failed",
                       fmt::format("line {}: the find failed: {}", r.line, found.error().message),
                       progress("query"),
                       {}};
        out.transient = true;
        return out;
      }
      restate(r, "error");
      r.error = fmt::format("the node refused the find: {}", found.error().message);
    } else if (found->truncated) {
      restate(r, "error");
      r.error = fmt::format("more than {} studies match; narrow the row", found->rows.size());
    } else {
      json matches = json::array();
      std::set<std::string> seen;
      for (const auto& answer : found->rows) {
        auto uid = answer.find("StudyInstanceUID");
        if (uid == answer.end() || uid->second.empty() || !seen.insert(uid->second).second) continue;
        json m = json::object();
        for (const std::string& k : kReturnKeys) {
          auto v = answer.find(k);
          m[k] = v == answer.end() ? "" : v->second;
        }
        matches.push_back(std::move(m));
      }
      r.matches = Dump(matches);
      restate(r, matches.empty() ? "no_match" : matches.size() == 1 ? "one_match" : "several_matches");
      r.error.clear();
    }
    if (auto w = db_.UpdateImportRow(r); !w) return {"failed", w.error().message, progress("query"), {}, true};
    job.Progress(progress("query"));
  }

  // 2. The choices: made by a person, or by the request when it asked for no confirmation.
  auto undecided = [&] {
    std::vector<int> lines;
    for (const auto& r : *rows) {
      if (Matched(r) && r.choice.empty()) lines.push_back(r.line);
    }
    return lines;
  };
  if (!undecided().empty() && params.value("confirm", false)) {
    const std::string several = params.value("several", "ask");
    for (ImportRowRecord& r : *rows) {
      if (!r.choice.empty() || !Matched(r)) continue;
      if (r.state == "one_match")
        r.choice = "all";
      else if (several == "all" || several == "none")
        r.choice = several;
      else
        continue;
      if (auto w = db_.UpdateImportRow(r); !w) return {"failed", w.error().message, progress("confirmation"), {}, true};
    }
  }
  if (!undecided().empty()) {
    JobOutcome out{"waiting", "", progress("confirmation"), {}};
    out.wait_for = "confirmation";
    return out;
  }

  // 3. One retrieve job per taken row, then wait for them.
  auto me = db_.GetJob(id);
  const int priority = me && *me ? (*me)->priority : 0;
  auto children = ChildrenByLine(db_, id);
  if (!children) return {"failed", children.error().message, progress("retrieve"), {}, true};
  for (ImportRowRecord& r : *rows) {
    if (r.choice != "all" || r.state == "error" || children->count(r.line)) continue;
    if (job.StopRequested())
      return {"failed", "stopped while it started its rows' retrieves", progress("retrieve"), {}};
    if (!jobs_) return {"failed", "internal error: imports are not connected to the job queue", nullptr, {}};
    json uids = json::array();
    for (const auto& m : ParseOr(r.matches, json::array())) uids.push_back(m.value("StudyInstanceUID", ""));
    json rq{{"node", node_name},
            {"level", "STUDY"},
            {"uids", uids},
            {"import_row", r.line},
            {"priority", JobService::PriorityName(priority)}};
    if (params.contains("method")) rq["method"] = params["method"];
    const std::string project = r.project.empty() ? params.value("project", "") : r.project;
    if (!project.empty()) rq["project"] = project;
    if (!r.subject.empty()) {
      rq["subject"] = r.subject;
      rq["relabel_patient"] = true;
    }
    if (!r.session.empty()) rq["session"] = r.session;
    if (rq.contains("project") || rq.contains("subject") || rq.contains("session")) rq["impose_labels"] = true;
    auto child = jobs_->Submit("retrieve", rq, id);
    if (!child && (IsTransient(child.error().code) || child.error().code == Code::kInternal)) {
      return {"failed",
              fmt::format("line {}: its retrieve could not be queued: {}", r.line, child.error().message),
              progress("retrieve"),
              {},
              true};
    }
    if (!child) {
      restate(r, "error");
      r.error = fmt::format("its retrieve was refused: {}", child.error().message);
      if (auto w = db_.UpdateImportRow(r); !w) return {"failed", w.error().message, nullptr, {}, true};
    }
  }
  children = ChildrenByLine(db_, id);
  if (!children) return {"failed", children.error().message, progress("retrieve"), {}, true};
  for (const auto& [line, c] : *children) {
    if (!Finished(c.state)) {
      JobOutcome out{"waiting", "", progress("retrieve"), {}};
      out.wait_for = "children";
      return out;
    }
  }

  // 4. Every retrieve ended: so does the import.
  std::vector<int> failed_rows, error_rows, no_match_rows;
  int taken = 0, succeeded = 0, declined = 0;
  for (const auto& r : *rows) {
    if (r.state == "error") error_rows.push_back(r.line);
    if (r.state == "no_match") no_match_rows.push_back(r.line);
    if (r.choice == "none") ++declined;
    if (r.choice != "all" || r.state == "error") continue;
    ++taken;
    auto c = children->find(r.line);
    if (c != children->end() && c->second.state == "succeeded")
      ++succeeded;
    else
      failed_rows.push_back(r.line);
  }
  json result{{"summary",
               {{"rows", rows->size()},
                {"taken", taken},
                {"declined", declined},
                {"succeeded", succeeded},
                {"no_match", no_match_rows.size()},
                {"error", error_rows.size()}}}};
  std::vector<std::string> problems;
  if (!failed_rows.empty()) problems.push_back(Lines(failed_rows) + ": the retrieve did not succeed");
  if (!error_rows.empty()) problems.push_back(Lines(error_rows) + ": see the row's error");
  if (!no_match_rows.empty()) problems.push_back(Lines(no_match_rows) + ": no study matched");
  std::string state;
  if (taken == 0 && error_rows.empty() && declined == 0) {
    state = "failed";
    problems.insert(problems.begin(), fmt::format("no row matched a study on node '{}'", node_name));
  } else if (failed_rows.empty() && error_rows.empty()) {
    state = "succeeded";
  } else {
    state = succeeded > 0 ? "partial" : "failed";
  }
  return {state, fmt::format("{}", fmt::join(problems, "; ")), progress("done"), result};
}

Result<JobRow> ImportRunner::ImportJob(int64_t id) {
  auto row = db_.GetJob(id);
  if (!row) return tl::unexpected(row.error());
  if (!*row || (*row)->type != "import") return Fail(Code::kNotFound, fmt::format("no import {}", id), "id");
  return **row;
}

Result<json> ImportRunner::View(int64_t id) {
  auto row = ImportJob(id);
  if (!row) return tl::unexpected(row.error());
  if (!jobs_) return Fail(Code::kInternal, "imports are not connected to the job queue");
  auto job = jobs_->Get(id);
  if (!job) return tl::unexpected(job.error());
  auto rows = db_.ImportRows(id);
  if (!rows) return tl::unexpected(rows.error());
  auto children = ChildrenByLine(db_, id);
  if (!children) return tl::unexpected(children.error());
  json out = *job;
  json list = json::array();
  json summary{{"rows", 0},  {"pending", 0}, {"no_match", 0}, {"one_match", 0}, {"several_matches", 0},
               {"error", 0}, {"taken", 0},   {"declined", 0}};
  bool pending = rows->empty(), undecided = false;
  for (const auto& r : *rows) {
    auto nullable = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
    json item{{"line", r.line},
              {"query", ParseOr(r.query, json::object())},
              {"project", nullable(r.project)},
              {"subject", nullable(r.subject)},
              {"session", nullable(r.session)},
              {"state", r.state},
              {"error", nullable(r.error)},
              {"matches", ParseOr(r.matches, json::array())},
              {"choice", nullable(r.choice)},
              {"job", nullptr}};
    if (auto c = children->find(r.line); c != children->end()) {
      item["job"] = {{"id", std::to_string(c->second.id)},
                     {"state", c->second.state},
                     {"progress", ParseOr(c->second.progress, json::object())},
                     {"error", nullable(c->second.error)}};
      if (auto live = jobs_->Get(c->second.id, false); live && c->second.state == "running") {
        item["job"]["progress"] = (*live)["progress"];
      }
      const json& p = item["job"]["progress"];
      if (c->second.state == "succeeded" && p.value("arrived", 0) == 0 && p.value("already_present", 0) > 0) {
        // Nothing was fetched: the archive had the study, filed and identified as it was then.
        item["note"] = "already in the archive: kept its labels and patient data";
      }
    }
    summary["rows"] = summary["rows"].get<int>() + 1;
    summary[r.state] = summary.value(r.state, 0) + 1;
    if (r.choice == "all" && r.state != "error") summary["taken"] = summary["taken"].get<int>() + 1;
    if (r.choice == "none") summary["declined"] = summary["declined"].get<int>() + 1;
    pending = pending || r.state == "pending";
    undecided = undecided || (Matched(r) && r.choice.empty());
    list.push_back(std::move(item));
  }
  const std::string state = out.value("state", "");
  // "confirmation" once the import waits for it (until then its query run is still ending).
  out["phase"] = Finished(state) ? "done"
                 : pending       ? "query"
                 : undecided     ? (state == "waiting" ? "confirmation" : "query")
                                 : "retrieve";
  out["rows"] = list;
  out["summary"] = summary;
  out["job_id"] = out["id"];
  return out;
}

Result<json> ImportRunner::Confirm(int64_t id, const json& body) {
  auto row = ImportJob(id);
  if (!row) return tl::unexpected(row.error());
  if (!body.is_object()) return Fail(Code::kInvalidArgument, "the body must be a JSON object");
  if (auto r = RefuseUnknownFields(body, {"several", "rows"}); !r) return tl::unexpected(r.error());
  if (row->state != "waiting" || row->wait_reason != "confirmation") {
    return Fail(Code::kConflict,
                fmt::format("import {} is not waiting for a confirmation ({}{})", id, row->state,
                            row->wait_reason.empty() ? "" : ", waiting for " + row->wait_reason),
                "id");
  }
  std::string several = ParseOr(row->params, json::object()).value("several", "ask");
  if (body.contains("several")) {
    if (!body["several"].is_string() || (body["several"] != "all" && body["several"] != "none")) {
      return Fail(Code::kInvalidArgument, "several must be \"all\" or \"none\"", "several");
    }
    several = body["several"].get<std::string>();
  }
  auto rows = db_.ImportRows(id);
  if (!rows) return tl::unexpected(rows.error());
  std::map<int, std::string> asked;
  if (body.contains("rows")) {
    if (!body["rows"].is_object()) {
      return Fail(Code::kInvalidArgument, "rows must be an object of line: \"all\" or \"none\"", "rows");
    }
    for (auto it = body["rows"].begin(); it != body["rows"].end(); ++it) {
      const std::string field = "rows." + it.key();
      int line = 0;
      try {
        size_t used = 0;
        line = std::stoi(it.key(), &used);
        if (used != it.key().size()) line = 0;
      } catch (...) {
        line = 0;
      }
      auto r = std::find_if(rows->begin(), rows->end(), [&](const ImportRowRecord& x) { return x.line == line; });
      if (r == rows->end()) {
        return Fail(Code::kInvalidArgument, fmt::format("no row of the sheet is on line '{}'", it.key()), field);
      }
      if (!it->is_string() || (*it != "all" && *it != "none")) {
        return Fail(Code::kInvalidArgument, "a row's choice is \"all\" or \"none\"", field);
      }
      if (!Matched(*r)) {
        return Fail(Code::kInvalidArgument,
                    fmt::format("line {} has nothing to take ({})", line, r->state == "error" ? r->error : "no match"),
                    field);
      }
      asked[line] = it->get<std::string>();
    }
  }
  std::map<int, std::string> choices;
  std::vector<int> open;
  for (const auto& r : *rows) {
    if (!Matched(r)) continue;
    if (auto a = asked.find(r.line); a != asked.end())
      choices[r.line] = a->second;
    else if (!r.choice.empty())
      choices[r.line] = r.choice;
    else if (r.state == "one_match")
      choices[r.line] = "all";
    else if (several == "all" || several == "none")
      choices[r.line] = several;
    else
      open.push_back(r.line);
  }
  if (!open.empty()) {
    return Fail(Code::kConflict,
                fmt::format("{} matched several studies: take all or none of them (\"several\", or \"rows\": "
                            "{{\"{}\": \"all\"}})",
                            Lines(open), open.front()),
                "rows");
  }
  auto done = db_.ConfirmImport(id, choices);
  if (!done) return tl::unexpected(done.error());
  if (!*done) return Fail(Code::kConflict, fmt::format("import {} is no longer waiting for a confirmation", id), "id");
  spdlog::info("import {}: confirmed ({} row(s) taken)", id,
               std::count_if(choices.begin(), choices.end(), [](const auto& c) { return c.second == "all"; }));
  jobs_->Poke();
  return View(id);
}

}  // namespace pb
