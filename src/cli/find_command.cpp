#include <iostream>
#include <set>

#include "cli/client.h"
#include "cli/commands.h"

namespace pb::cli {

void AddFindCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("find", "query a node (C-FIND): pacsbridge find NODE PatientName='DOE*'");
  auto node = std::make_shared<std::string>();
  auto level = std::make_shared<std::string>("study");
  auto keys = std::make_shared<std::vector<std::string>>();
  auto limit = std::make_shared<int>(0);
  auto server = std::make_shared<ServerOptions>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("node", *node, "the node's name")->required();
  cmd->add_option("keys", *keys, "KEYWORD=VALUE matching keys (* and ? wildcards, date ranges)");
  cmd->add_option("--level", *level, "patient, study, series or image")->capture_default_str();
  cmd->add_option("--limit", *limit, "at most this many results");
  AddServerOptions(cmd, *server);
  cmd->add_flag("--json", *json, "print JSON instead of a table");
  cmd->callback([=, &exit_code] {
    auto pairs = ParseKeyValues(*keys);
    if (!pairs) {
      std::cerr << "matching key " << pairs.error().message << "\n";
      exit_code = 2;
      return;
    }
    nlohmann::json body{{"level", *level}, {"query", nlohmann::json::object()}};
    for (const auto& [k, v] : *pairs) body["query"][k] = v;
    if (*limit > 0) body["limit"] = *limit;
    nlohmann::json answer;
    if ((exit_code = CallAndReport(*server, "POST", "/api/nodes/" + *node + "/find", &body, 200, answer))) return;
    if (*json) {
      std::cout << answer.dump(2) << "\n";
      return;
    }
    // Columns: the keys present in the answers, identifying ones first.
    static const std::vector<std::string> kFirst{"PatientName", "PatientID", "StudyDate", "Modality",
                                                 "ModalitiesInStudy", "SeriesNumber", "InstanceNumber"};
    std::set<std::string> present;
    for (const auto& r : answer["results"])
      for (auto it = r.begin(); it != r.end(); ++it)
        if (!it->get<std::string>().empty()) present.insert(it.key());
    std::vector<std::string> columns;
    for (const auto& c : kFirst) if (present.erase(c)) columns.push_back(c);
    for (const auto& c : present) columns.push_back(c);
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : answer["results"]) {
      std::vector<std::string> row;
      for (const auto& c : columns) row.push_back(r.value(c, ""));
      rows.push_back(std::move(row));
    }
    PrintTable(columns, rows);
    std::cout << answer["results"].size() << " result(s)"
              << (answer.value("truncated", false) ? " (truncated: more matched; narrow the query or raise --limit)" : "")
              << "\n";
  });
}

}  // namespace pb::cli
