// pacsbridge worklist NODE [KEY=VALUE ...] [--date D] [--modality M] [--station AE] [--limit N] [--json]
#include <iostream>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/table.h"

namespace pb::cli {
namespace {

struct WorklistOptions {
  std::string node;
  std::vector<std::string> keys;
  std::string date, modality, station;
  int limit = 0;
  ServerOptions server;
  bool json = false;
};

std::string Text(const nlohmann::json& item, const char* key) {
  auto it = item.find(key);
  return it != item.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// "20261203" → "2026-12-03", "0830" or "083000.00" → "08:30": how a person reads them.
std::string ShowDate(const std::string& d) {
  return d.size() == 8 ? d.substr(0, 4) + "-" + d.substr(4, 2) + "-" + d.substr(6, 2) : d;
}
std::string ShowTime(const std::string& t) { return t.size() >= 4 ? t.substr(0, 2) + ":" + t.substr(2, 2) : t; }

// The item's performed step as a person says it: "", "in progress", "done", "discontinued".
std::string StepState(const nlohmann::json& item) {
  const auto it = item.find("mpps");
  if (it == item.end() || !it->is_object()) return {};
  std::string status = it->value("status", "");
  if (status == "COMPLETED") return "done";
  if (status == "IN PROGRESS") return "in progress";
  if (status == "DISCONTINUED") return "discontinued";
  return status;
}

void PrintItems(const nlohmann::json& answer) {
  const std::vector<TableColumn> header{
      {"Date"},      {"Time"}, {"Modality"}, {"Station"}, {"Patient"}, {"PatientID", true}, {"Accession", true},
      {"Procedure"}, {"MPPS"}};
  std::vector<std::vector<std::string>> cells;
  for (const auto& item : answer["results"]) {
    std::string procedure = Text(item, "RequestedProcedureDescription");
    if (procedure.empty()) procedure = Text(item, "ScheduledProcedureStepDescription");
    cells.push_back({ShowDate(Text(item, "ScheduledProcedureStepStartDate")),
                     ShowTime(Text(item, "ScheduledProcedureStepStartTime")), Text(item, "Modality"),
                     Text(item, "ScheduledStationAETitle"), Text(item, "PatientName"), Text(item, "PatientID"),
                     Text(item, "AccessionNumber"), procedure, StepState(item)});
  }
  PrintQueryTable(header, cells, "item(s)", answer.value("truncated", false));
}

}  // namespace

void AddWorklistCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "worklist",
      "a node's Modality Worklist (today's unless --date says otherwise): pacsbridge worklist NODE --modality CT");
  auto o = std::make_shared<WorklistOptions>();
  cmd->add_option("node", o->node, "the node's name (its mwl setting on)")->required();
  cmd->add_option("keys", o->keys,
                  "KEYWORD=VALUE matching keys, e.g. PatientID=123 AccessionNumber=A1 "
                  "ScheduledPerformingPhysicianName='HOUSE*' (scheduled-step attributes are matched in the step)");
  cmd->add_option("--date", o->date, "scheduled date YYYYMMDD, a range YYYYMMDD-YYYYMMDD, or 'any' (default: today)");
  cmd->add_option("--modality", o->modality, "scheduled modality (CT, MR, ...)");
  cmd->add_option("--station", o->station, "scheduled station AE title");
  cmd->add_option("--limit", o->limit, "at most this many items");
  AddServerOptions(cmd, o->server);
  cmd->add_flag("--json", o->json, "print JSON (with each item's DICOM JSON) instead of a table");
  cmd->callback([o, &exit_code] {
    auto pairs = ParseKeyValues(o->keys);
    if (!pairs) {
      std::cerr << "matching key " << pairs.error().message << "\n";
      exit_code = 2;
      return;
    }
    nlohmann::json body{{"query", nlohmann::json::object()}};
    for (const auto& [k, v] : *pairs) body["query"][k] = v;
    if (!o->date.empty()) body["query"]["ScheduledProcedureStepStartDate"] = o->date == "any" ? "" : o->date;
    if (!o->modality.empty()) body["query"]["Modality"] = o->modality;
    if (!o->station.empty()) body["query"]["ScheduledStationAETitle"] = o->station;
    if (o->limit > 0) body["limit"] = o->limit;
    nlohmann::json answer;
    if ((exit_code = CallAndReport(o->server, "POST", "/api/nodes/" + o->node + "/worklist", &body, 200, answer))) {
      return;
    }
    if (o->json) {
      std::cout << answer.dump(2) << "\n";
      return;
    }
    PrintItems(answer);
  });
}

}  // namespace pb::cli
