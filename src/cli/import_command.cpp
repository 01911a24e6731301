// pacsbridge import FILE [--node N] [--project P] [--several ask|all|none] [--method M]
//                        [--priority P] [--yes] [--follow] [--json]
// pacsbridge import show ID [--json]
// pacsbridge import confirm ID [--several all|none] [--take LINE]... [--skip LINE]... [--follow]
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "cli/client.h"
#include "cli/commands.h"
#include "core/validate.h"

namespace pb::cli {
namespace {

using json = nlohmann::json;

std::string Str(const json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

// "Doe^John  P1  20240102  ACC1  CT" for one match; "3 studies: ACC1, ACC2, ACC3" for several.
std::string MatchText(const json& row) {
  const json& m = row.value("matches", json::array());
  if (m.empty()) return Str(row, "error").empty() ? "-" : Str(row, "error");
  if (m.size() == 1) {
    std::string out;
    for (const char* k : {"PatientName", "PatientID", "StudyDate", "AccessionNumber", "ModalitiesInStudy"}) {
      std::string v = Str(m[0], k);
      if (!v.empty()) out += (out.empty() ? "" : "  ") + v;
    }
    return out;
  }
  std::string out = fmt::format("{} studies:", m.size());
  for (size_t i = 0; i < m.size() && i < 4; ++i) {
    std::string v = Str(m[i], "AccessionNumber");
    if (v.empty()) v = Str(m[i], "StudyDate");
    out += (i ? ", " : " ") + (v.empty() ? Str(m[i], "StudyInstanceUID") : v);
  }
  return m.size() > 4 ? out + ", …" : out;
}

void PrintImport(const json& view) {
  const json& s = view.value("summary", json::object());
  std::cout << fmt::format(
      "import {} on node {}: {} ({}), {} row(s): {} one match, {} several, {} no match, {} error\n", Str(view, "id"),
      Str(view, "node"), Str(view, "state"), Str(view, "phase"), s.value("rows", 0), s.value("one_match", 0),
      s.value("several_matches", 0), s.value("no_match", 0), s.value("error", 0));
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : view.value("rows", json::array())) {
    std::string labels;
    for (const char* k : {"project", "subject", "session"}) {
      const std::string value = Str(r, k);
      if (!labels.empty()) labels += '/';
      labels += value.empty() ? "-" : value;
    }
    std::string job = "-";
    if (r.contains("job") && r["job"].is_object()) job = Str(r["job"], "id") + " " + Str(r["job"], "state");
    rows.push_back({std::to_string(r.value("line", 0)), Str(r, "state"),
                    Str(r, "choice").empty() ? "-" : Str(r, "choice"), labels, job, MatchText(r)});
  }
  PrintTable({"LINE", "STATE", "CHOICE", "LABELS", "JOB", "MATCHES"}, rows, "  ");
  if (!Str(view, "error").empty()) std::cout << "  " << Str(view, "error") << "\n";
}

// Polls the import until its rows are all answered (or it ended); 0 with the view in `view`.
int WaitForQueries(const ServerOptions& server, const std::string& id, json& view) {
  for (;;) {
    if (int rc = CallAndReport(server, "GET", "/api/imports/" + id, nullptr, 200, view)) return rc;
    const std::string phase = Str(view, "phase");
    if (phase != "query") return 0;
    if (Str(view, "state") == "waiting") return 0;  // paused, or waiting for a retry or its node's window
    const json& s = view.value("summary", json::object());
    std::cerr << fmt::format("\rquerying rows: {} of {}", s.value("rows", 0) - s.value("pending", 0),
                             view.value("rows_total", 0))
              << std::flush;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

int AfterConfirmation(const ServerOptions& server, const std::string& id, const json& view, bool follow, bool as_json) {
  if (follow) return FollowJob(server, id, as_json);
  if (as_json)
    std::cout << view.dump(2) << "\n";
  else
    PrintImport(view);
  if (Str(view, "phase") == "confirmation") {
    std::cout << fmt::format(
        "the rows wait for a confirmation: pacsbridge import confirm {} [--several all|none] "
        "[--take LINE] [--skip LINE]\n",
        id);
  } else if (Str(view, "phase") != "done") {
    std::cout << fmt::format("retrieving; follow it: {}\n", FollowCommand(server, id));
  }
  return 0;
}

struct ImportOptions {
  std::string file, node, project, several, method, priority;
  bool yes = false, follow = false, json = false;
  ServerOptions server;
  // show / confirm
  std::string id;
  std::vector<int> take, skip;
};

}  // namespace

void AddImportCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "import",
      "retrieve the studies a CSV spreadsheet lists: each row is found on the node, confirmed, then retrieved");
  auto o = std::make_shared<ImportOptions>();
  cmd->add_option("file", o->file,
                  "the CSV (- for standard input): columns Accession Number, Patient ID, Study Instance UID, Study "
                  "Date, Modality, Patient Name to find studies; Project, Subject, Session to label them");
  cmd->add_option("--node", o->node, "the node to query and retrieve from (default: the default query/retrieve node)");
  cmd->add_option("--project", o->project, "the project of rows that name none");
  cmd->add_option("--several", o->several, "rows that match several studies: ask (default), all or none")
      ->check(CLI::IsMember({"ask", "all", "none"}));
  cmd->add_option("--method", o->method, "auto, c-get or c-move")->check(CLI::IsMember({"auto", "c-get", "c-move"}));
  cmd->add_option("--priority", o->priority, "high, normal (default) or low")
      ->check(CLI::IsMember({"high", "normal", "low"}));
  cmd->add_flag("--yes", o->yes, "take every matched row without asking (several matches: as --several says)");
  cmd->add_flag("--follow", o->follow, "wait until the import ends; exit 0 only if it succeeded");
  cmd->add_flag("--json", o->json, "print JSON");
  AddServerOptions(cmd, o->server);

  auto* show = cmd->add_subcommand("show", "an import's rows, their matches, choices and retrieve jobs");
  show->add_option("id", o->id, "the import's id")->required();
  show->add_flag("--json", o->json, "print JSON");
  AddServerOptions(show, o->server);
  show->callback([o, &exit_code] {
    json view;
    if ((exit_code = CallAndReport(o->server, "GET", "/api/imports/" + o->id, nullptr, 200, view))) return;
    if (o->json)
      std::cout << view.dump(2) << "\n";
    else
      PrintImport(view);
  });

  auto* confirm = cmd->add_subcommand("confirm", "take or decline the matched rows; the retrieves start");
  confirm->add_option("id", o->id, "the import's id")->required();
  confirm->add_option("--several", o->several, "rows that match several studies and are not named: all or none")
      ->check(CLI::IsMember({"all", "none"}));
  confirm->add_option("--take", o->take, "a line to take (all its studies); repeat for more");
  confirm->add_option("--skip", o->skip, "a line to decline; repeat for more");
  confirm->add_flag("--follow", o->follow, "wait until the import ends");
  confirm->add_flag("--json", o->json, "print JSON");
  AddServerOptions(confirm, o->server);
  confirm->callback([o, &exit_code] {
    json body = json::object();
    if (!o->several.empty()) body["several"] = o->several;
    json rows = json::object();
    for (int l : o->take) rows[std::to_string(l)] = "all";
    for (int l : o->skip) rows[std::to_string(l)] = "none";
    if (!rows.empty()) body["rows"] = rows;
    json view;
    if ((exit_code = CallAndReport(o->server, "POST", "/api/imports/" + o->id + "/confirm", &body, 200, view))) return;
    exit_code = AfterConfirmation(o->server, o->id, view, o->follow, o->json);
  });

  cmd->callback([show, confirm, o, &exit_code] {
    if (show->parsed() || confirm->parsed()) return;
    if (o->file.empty()) {
      std::cerr << "give the CSV file (or: import show ID, import confirm ID); see pacsbridge import --help\n";
      exit_code = 2;
      return;
    }
    std::stringstream text;
    if (o->file == "-") {
      text << std::cin.rdbuf();
    } else {
      std::ifstream in(o->file, std::ios::binary);
      if (!in) {
        std::cerr << "cannot read " << o->file << "\n";
        exit_code = 2;
        return;
      }
      text << in.rdbuf();
    }
    // The server reads UTF-8 only; say so here, with the line, rather than send bytes JSON cannot carry.
    const std::string csv = text.str();
    if (!IsValidUtf8(csv)) {
      int line = 1;
      for (size_t start = 0; start < csv.size(); ++line) {
        const size_t nl = std::min(csv.find('\n', start), csv.size());
        if (!IsValidUtf8(std::string_view(csv).substr(start, nl - start))) break;
        start = nl + 1;
      }
      std::cerr << fmt::format("{}: line {}: not UTF-8 text; save the file as \"CSV UTF-8\"\n", o->file, line);
      exit_code = 1;
      return;
    }
    json body{{"csv", csv}, {"confirm", o->yes}};
    if (!o->node.empty()) body["node"] = o->node;
    if (!o->project.empty()) body["project"] = o->project;
    if (!o->several.empty()) body["several"] = o->several;
    if (!o->method.empty()) body["method"] = o->method;
    if (!o->priority.empty()) body["priority"] = o->priority;
    json created;
    if ((exit_code = CallAndReport(o->server, "POST", "/api/imports", &body, 202, created))) return;
    const std::string id = Str(created, "id");
    json view;
    if ((exit_code = WaitForQueries(o->server, id, view))) return;
    std::cerr << "\r";
    if (o->yes && Str(view, "phase") == "confirmation") {
      // Only rows with several matches are left, and --several did not say what to do.
      json answer;
      json none = json::object();
      if ((exit_code = CallAndReport(o->server, "POST", "/api/imports/" + id + "/confirm", &none, 200, answer))) {
        return;
      }
      view = answer;
    }
    exit_code = AfterConfirmation(o->server, id, view, o->follow, o->json);
  });
}

}  // namespace pb::cli
