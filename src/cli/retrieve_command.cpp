// pacsbridge retrieve NODE --study UID [--series UID] [--instance UID] [--method M] [--follow]
#include <iostream>

#include "cli/client.h"
#include "cli/commands.h"

namespace pb::cli {

void AddRetrieveCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "retrieve", "fetch studies, series or instances from a node (C-GET or C-MOVE), as a job");
  auto node = std::make_shared<std::string>();
  auto studies = std::make_shared<std::vector<std::string>>();
  auto series = std::make_shared<std::vector<std::string>>();
  auto instances = std::make_shared<std::vector<std::string>>();
  auto method = std::make_shared<std::string>();
  auto follow = std::make_shared<bool>(false);
  auto json = std::make_shared<bool>(false);
  auto server = std::make_shared<ServerOptions>();
  cmd->add_option("node", *node, "the node's name (default: the default query/retrieve node)");
  cmd->add_option("--study", *studies, "Study Instance UID (several: repeat)");
  cmd->add_option("--series", *series, "Series Instance UID (several: repeat; with --study: its study)");
  cmd->add_option("--instance", *instances, "SOP Instance UID (needs one --study and one --series)");
  cmd->add_option("--method", *method, "auto, c-get or c-move (default: the node's retrieve_method)")
      ->check(CLI::IsMember({"auto", "c-get", "c-move"}));
  cmd->add_flag("--follow", *follow, "wait until the job ends, showing progress; exit 0 only if it succeeded");
  cmd->add_flag("--json", *json, "print JSON");
  cmd->add_option("--server", server->url, "server URL")->capture_default_str();
  cmd->add_option("--password", server->password, "admin password (or $PACSBRIDGE_PASSWORD)");
  cmd->callback([=, &exit_code] {
    nlohmann::json body;
    if (!node->empty()) body["node"] = *node;
    if (!instances->empty()) {
      if (studies->size() != 1 || series->size() != 1) {
        std::cerr << "--instance needs exactly one --study and one --series\n";
        exit_code = 2;
        return;
      }
      body["level"] = "IMAGE";
      body["uids"] = *instances;
      body["study_uid"] = studies->front();
      body["series_uid"] = series->front();
    } else if (!series->empty()) {
      if (studies->size() > 1) {
        std::cerr << "with --series, give at most one --study (the series' study)\n";
        exit_code = 2;
        return;
      }
      body["level"] = "SERIES";
      body["uids"] = *series;
      if (!studies->empty()) body["study_uid"] = studies->front();
    } else if (!studies->empty()) {
      body["level"] = "STUDY";
      body["uids"] = *studies;
    } else {
      std::cerr << "say what to retrieve: --study, --series or --instance\n";
      exit_code = 2;
      return;
    }
    if (!method->empty()) body["method"] = *method;
    nlohmann::json job;
    if ((exit_code = CallAndReport(*server, "POST", "/api/retrieve", &body, 202, job))) return;
    std::string id = job.value("job_id", "");
    if (*follow) {
      exit_code = FollowJob(*server, id, *json);
      return;
    }
    if (*json) std::cout << job.dump(2) << "\n";
    else std::cout << "job " << id << " queued (follow it: pacsbridge jobs show " << id << ")\n";
  });
}

}  // namespace pb::cli
