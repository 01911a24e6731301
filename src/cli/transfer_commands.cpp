// pacsbridge retrieve NODE --study UID [--series UID] [--instance UID] [--method M] [--priority P] [--follow]
// pacsbridge send NODE --study UID [--series UID] [--instance UID] [--priority P] [--follow]
#include <iostream>

#include "cli/client.h"
#include "cli/commands.h"

namespace pb::cli {
namespace {

struct TransferOptions {
  std::string node;
  std::vector<std::string> studies, series, instances;
  std::string method, priority;
  bool follow = false, json = false;
  ServerOptions server;
};

// The job request's level and UIDs from --study/--series/--instance; 2 (usage) on a bad mix.
int AddTarget(const TransferOptions& o, nlohmann::json& body) {
  if (!o.instances.empty()) {
    if (o.studies.size() != 1 || o.series.size() != 1) {
      std::cerr << "--instance needs exactly one --study and one --series\n";
      return 2;
    }
    body["level"] = "IMAGE";
    body["uids"] = o.instances;
    body["study_uid"] = o.studies.front();
    body["series_uid"] = o.series.front();
  } else if (!o.series.empty()) {
    if (o.studies.size() > 1) {
      std::cerr << "with --series, give at most one --study (the series' study)\n";
      return 2;
    }
    body["level"] = "SERIES";
    body["uids"] = o.series;
    if (!o.studies.empty()) body["study_uid"] = o.studies.front();
  } else if (!o.studies.empty()) {
    body["level"] = "STUDY";
    body["uids"] = o.studies;
  } else {
    std::cerr << "say what to transfer: --study, --series or --instance\n";
    return 2;
  }
  return 0;
}

CLI::App* AddTransferCommand(CLI::App& app, int& exit_code, const std::string& type, const std::string& help,
                             const std::string& node_help) {
  auto* cmd = app.add_subcommand(type, help);
  auto o = std::make_shared<TransferOptions>();
  cmd->add_option("node", o->node, node_help);
  cmd->add_option("--study", o->studies, "Study Instance UID (several: repeat)");
  cmd->add_option("--series", o->series, "Series Instance UID (several: repeat; with --study: its study)");
  cmd->add_option("--instance", o->instances, "SOP Instance UID (needs one --study and one --series)");
  if (type == "retrieve") {
    cmd->add_option("--method", o->method, "auto, c-get or c-move (default: the node's retrieve_method)")
        ->check(CLI::IsMember({"auto", "c-get", "c-move"}));
  }
  cmd->add_option("--priority", o->priority, "high, normal (default) or low: queued jobs run by priority")
      ->check(CLI::IsMember({"high", "normal", "low"}));
  cmd->add_flag("--follow", o->follow, "wait until the job ends, showing progress; exit 0 only if it succeeded");
  cmd->add_flag("--json", o->json, "print JSON");
  AddServerOptions(cmd, o->server);
  cmd->callback([o, type, &exit_code] {
    nlohmann::json body;
    if (!o->node.empty()) body["node"] = o->node;
    if ((exit_code = AddTarget(*o, body))) return;
    if (!o->method.empty()) body["method"] = o->method;
    if (!o->priority.empty()) body["priority"] = o->priority;
    nlohmann::json job;
    if ((exit_code = CallAndReport(o->server, "POST", "/api/" + type, &body, 202, job))) return;
    std::string id = job.value("job_id", "");
    if (o->follow) {
      exit_code = FollowJob(o->server, id, o->json);
      return;
    }
    if (o->json)
      std::cout << job.dump(2) << "\n";
    else
      std::cout << "job " << id << " queued (follow it: " << FollowCommand(o->server, id) << ")\n";
  });
  return cmd;
}

}  // namespace

void AddRetrieveCommand(CLI::App& app, int& exit_code) {
  AddTransferCommand(app, exit_code, "retrieve",
                     "fetch studies, series or instances from a node (C-GET, C-MOVE or WADO-RS), as a job",
                     "the node's name (default: the default query/retrieve node)");
}

void AddSendCommand(CLI::App& app, int& exit_code) {
  AddTransferCommand(app, exit_code, "send",
                     "send studies, series or instances of the archive to a node (C-STORE or STOW-RS), as a job",
                     "the node's name (default: the default storage node)");
}

}  // namespace pb::cli
