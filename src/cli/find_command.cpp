// pacsbridge find NODE [--level L] KEY=VALUE ... [--columns A,B] [--limit N] [--json]
#include <iostream>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/find_table.h"
#include "dicom/find.h"

namespace pb::cli {
namespace {

struct FindOptions {
  std::string node;
  std::string level = "study";
  std::vector<std::string> keys;
  std::string columns;
  int limit = 0;
  ServerOptions server;
  bool json = false;
};

void PrintResults(const FindOptions& o, const std::vector<FindColumn>* chosen, const nlohmann::json& answer) {
  std::vector<std::map<std::string, std::string>> rows;
  for (const auto& r : answer["results"]) {
    std::map<std::string, std::string> row;
    for (auto it = r.begin(); it != r.end(); ++it)
      row[it.key()] = it->is_string() ? it->get<std::string>() : it->dump();
    rows.push_back(std::move(row));
  }
  const std::vector<FindColumn> columns = chosen ? *chosen : DefaultFindColumns(o.level, rows);
  std::vector<TableColumn> header;
  for (const auto& c : columns) header.push_back(c.column);
  std::vector<std::vector<std::string>> cells;
  for (const auto& row : rows) cells.push_back(FindCells(columns, row));
  PrintQueryTable(header, cells, "result(s)", answer.value("truncated", false));
}

}  // namespace

void AddFindCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("find", "query a node (C-FIND or QIDO-RS): pacsbridge find NODE PatientName='DOE*'");
  auto o = std::make_shared<FindOptions>();
  cmd->add_option("node", o->node, "the node's name")->required();
  cmd->add_option("keys", o->keys,
                  "KEYWORD=VALUE matching keys (* and ? wildcards in names and texts; dates YYYYMMDD or "
                  "ranges YYYYMMDD-YYYYMMDD; UIDs exact)");
  cmd->add_option("--level", o->level, "patient, study, series or image")->capture_default_str();
  cmd->add_option("--columns", o->columns,
                  "the table's columns, DICOM keywords separated by commas (e.g. StudyDate,PatientName,"
                  "StudyInstanceUID); they are asked from the node too");
  cmd->add_option("--limit", o->limit, "at most this many results");
  AddServerOptions(cmd, o->server);
  cmd->add_flag("--json", o->json, "print JSON instead of a table");
  cmd->callback([o, &exit_code] {
    auto pairs = ParseKeyValues(o->keys);
    if (!pairs) {
      std::cerr << "matching key " << pairs.error().message << "\n";
      exit_code = 2;
      return;
    }
    std::optional<std::vector<FindColumn>> chosen;
    if (!o->columns.empty()) {
      auto c = ExplicitFindColumns(o->columns, [](const std::string& k) { return dicom::IsKeyword(k); });
      if (!c) {
        std::cerr << c.error().message << "\n";
        exit_code = 2;
        return;
      }
      chosen = std::move(*c);
    }
    nlohmann::json body{{"level", o->level}, {"query", nlohmann::json::object()}};
    // A chosen column is also a return key (an empty value matches everything).
    if (chosen) {
      for (const auto& c : *chosen) body["query"][c.keywords.front()] = "";
    }
    for (const auto& [k, v] : *pairs) body["query"][k] = v;
    if (o->limit > 0) body["limit"] = o->limit;
    nlohmann::json answer;
    if ((exit_code = CallAndReport(o->server, "POST", "/api/nodes/" + o->node + "/find", &body, 200, answer))) return;
    if (o->json) {
      std::cout << answer.dump(2) << "\n";
      return;
    }
    PrintResults(*o, chosen ? &*chosen : nullptr, answer);
  });
}

}  // namespace pb::cli
