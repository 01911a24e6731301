#include <iostream>

#include <httplib.h>

#include "cli/client.h"
#include "cli/commands.h"

namespace pb::cli {

void AddStudiesCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("studies", "list the studies in the local archive");
  auto server = std::make_shared<ServerOptions>();
  auto json = std::make_shared<bool>(false);
  auto filters = std::make_shared<std::vector<std::string>>();
  cmd->add_option("filters", *filters, "KEYWORD=VALUE filters, e.g. PatientName='DOE*'");
  AddServerOptions(cmd, *server);
  cmd->add_flag("--json", *json, "print JSON instead of a table");
  cmd->callback([=, &exit_code] {
    auto pairs = ParseKeyValues(*filters);
    if (!pairs) {
      std::cerr << "filter " << pairs.error().message << "\n";
      exit_code = 2;
      return;
    }
    httplib::Params params(pairs->begin(), pairs->end());
    std::string path = "/api/studies";
    if (!params.empty()) path += "?" + httplib::detail::params_to_query_str(params);
    nlohmann::json studies;
    if ((exit_code = CallAndReport(*server, "GET", path, nullptr, 200, studies))) return;
    if (*json) {
      std::cout << studies.dump(2) << "\n";
    } else {
      std::vector<std::vector<std::string>> rows;
      for (const auto& s : studies) {
        rows.push_back({s.value("StudyDate", ""), s.value("PatientName", ""), s.value("PatientID", ""),
                        s.value("ModalitiesInStudy", ""), std::to_string(s.value("series_count", 0)),
                        std::to_string(s.value("instance_count", 0)), s.value("StudyInstanceUID", "")});
      }
      PrintTable({"DATE", "PATIENT", "ID", "MODALITIES", "SERIES", "INSTANCES", "STUDY UID"}, rows);
    }
    exit_code = 0;
  });
}

}  // namespace pb::cli
