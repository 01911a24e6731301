// pacsbridge mpps [list|show|start|complete|discontinue]: Modality Performed Procedure Steps.
#include <iostream>

#include <httplib.h>

#include "cli/client.h"
#include "cli/commands.h"

namespace pb::cli {
namespace {

using json = nlohmann::json;

void PrintSteps(const json& steps) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : steps) {
    const std::string who =
        s.value("direction", "") == "sent" ? "to " + s.value("node", "") : "from " + s.value("calling_ae_title", "");
    rows.push_back({s.value("updated_at", ""), s.value("direction", ""), s.value("status", ""), who,
                    s.value("accession_number", ""), s.value("patient_name", ""), s.value("modality", ""),
                    s.value("sop_instance_uid", "")});
  }
  PrintTable({"UPDATED", "DIRECTION", "STATUS", "PEER", "ACCESSION", "PATIENT", "MODALITY", "STEP UID"}, rows);
}

void PrintStep(const json& s) {
  std::cout << "step      " << s.value("sop_instance_uid", "") << " (" << s.value("direction", "") << ")\n"
            << "status    " << s.value("status", "") << "\n"
            << "patient   " << s.value("patient_name", "") << " (" << s.value("patient_id", "") << ")\n"
            << "accession " << s.value("accession_number", "") << ", step " << s.value("scheduled_step_id", "") << ", "
            << s.value("modality", "") << "\n";
  for (const auto& st : s.value("studies", json::array())) {
    std::cout << "study     " << st.value("StudyInstanceUID", "") << " (" << st.value("instance_count", 0)
              << " instance(s) here)\n";
  }
  for (const auto& h : s.value("history", json::array())) {
    std::cout << "          " << h.value("at", "") << " " << h.value("command", "") << " "
              << (h.contains("to") ? "to " + h.value("to", "") : "from " + h.value("by", "")) << ": "
              << (h.contains("outcome") ? h.value("outcome", "") : h.value("status", "")) << "\n";
  }
}

// The worklist item to start from: by accession number (and scheduled step ID when the
// accession has several steps), any date.
int FindItem(const ServerOptions& server, const std::string& worklist_node, const std::string& accession,
             const std::string& step_id, json& item) {
  json body{{"query", {{"AccessionNumber", accession}, {"ScheduledProcedureStepStartDate", ""}}}};
  if (!step_id.empty()) body["query"]["ScheduledProcedureStepID"] = step_id;
  json answer;
  if (int rc = CallAndReport(server, "POST", "/api/nodes/" + worklist_node + "/worklist", &body, 200, answer))
    return rc;
  const json& results = answer["results"];
  if (results.empty()) {
    std::cerr << "node '" << worklist_node << "' has no worklist item with accession number " << accession << "\n";
    return 1;
  }
  if (results.size() > 1) {
    std::cerr << "accession number " << accession << " has " << results.size()
              << " scheduled steps; choose one with --step-id:";
    for (const auto& r : results) std::cerr << " " << r.value("ScheduledProcedureStepID", "?");
    std::cerr << "\n";
    return 2;
  }
  item = results[0];
  return 0;
}

}  // namespace

void AddMppsCommand(CLI::App& app, int& exit_code) {
  auto* cmd =
      app.add_subcommand("mpps", "Modality Performed Procedure Steps: list, show, start, complete, discontinue");
  auto server = std::make_shared<ServerOptions>();
  auto json_out = std::make_shared<bool>(false);
  auto filter_direction = std::make_shared<std::string>();
  auto filter_status = std::make_shared<std::string>();
  auto filter_accession = std::make_shared<std::string>();
  AddServerOptions(cmd, *server);
  cmd->add_flag("--json", *json_out, "print JSON");
  cmd->add_option("--direction", *filter_direction, "sent or received");
  cmd->add_option("--status", *filter_status, "IN PROGRESS, COMPLETED or DISCONTINUED");
  cmd->add_option("--accession", *filter_accession, "accession number");
  cmd->require_subcommand(0, 1);
  cmd->callback([=, &exit_code] {
    if (!cmd->get_subcommands().empty()) return;
    httplib::Params params;
    if (!filter_direction->empty()) params.emplace("direction", *filter_direction);
    if (!filter_status->empty()) params.emplace("status", *filter_status);
    if (!filter_accession->empty()) params.emplace("accession_number", *filter_accession);
    std::string path = "/api/mpps";
    if (!params.empty()) path += "?" + httplib::detail::params_to_query_str(params);
    json steps;
    if ((exit_code = CallAndReport(*server, "GET", path, nullptr, 200, steps))) return;
    if (*json_out)
      std::cout << steps.dump(2) << "\n";
    else
      PrintSteps(steps);
  });

  auto* show = cmd->add_subcommand("show", "one step: its status, history and the archive studies it is about");
  auto show_uid = std::make_shared<std::string>();
  auto show_direction = std::make_shared<std::string>();
  show->add_option("uid", *show_uid, "the step's SOP Instance UID")->required();
  show->add_option("--direction", *show_direction, "sent or received (when the step was both sent and received here)");
  AddServerOptions(show, *server);
  show->add_flag("--json", *json_out, "print JSON");
  show->callback([=, &exit_code] {
    json step;
    std::string path = "/api/mpps/" + *show_uid;
    if (!show_direction->empty()) path += "?direction=" + *show_direction;
    if ((exit_code = CallAndReport(*server, "GET", path, nullptr, 200, step))) return;
    if (*json_out)
      std::cout << step.dump(2) << "\n";
    else
      PrintStep(step);
  });

  auto* start = cmd->add_subcommand(
      "start", "N-CREATE IN PROGRESS for a worklist item: pacsbridge mpps start NODE --worklist RIS --accession A1");
  auto node = std::make_shared<std::string>();
  auto worklist = std::make_shared<std::string>();
  auto accession = std::make_shared<std::string>();
  auto step_id = std::make_shared<std::string>();
  start->add_option("node", *node, "the node that takes the step (its mpps setting on)")->required();
  start->add_option("--worklist", *worklist, "the node whose worklist holds the item (default: NODE)");
  start->add_option("--accession", *accession, "the item's accession number")->required();
  start->add_option("--step-id", *step_id, "the scheduled step's ID, when the accession has several");
  AddServerOptions(start, *server);
  start->add_flag("--json", *json_out, "print JSON");
  start->callback([=, &exit_code] {
    json item;
    if ((exit_code = FindItem(*server, worklist->empty() ? *node : *worklist, *accession, *step_id, item))) return;
    item.erase("dicom");
    json body{{"node", *node}, {"item", item}}, step;
    if ((exit_code = CallAndReport(*server, "POST", "/api/mpps", &body, 201, step))) return;
    if (*json_out)
      std::cout << step.dump(2) << "\n";
    else
      std::cout << "step " << step.value("sop_instance_uid", "") << " IN PROGRESS at " << *node << "\n";
  });

  auto* complete = cmd->add_subcommand("complete", "N-SET COMPLETED with the series produced (from the archive)");
  auto complete_uid = std::make_shared<std::string>();
  auto series = std::make_shared<std::vector<std::string>>();
  auto study = std::make_shared<std::string>();
  complete->add_option("uid", *complete_uid, "the step's SOP Instance UID")->required();
  complete->add_option("--series", *series, "Series Instance UIDs of the archive (repeat or separate by commas)")
      ->delimiter(',');
  complete->add_option("--study", *study, "every series of this archive study");
  AddServerOptions(complete, *server);
  complete->add_flag("--json", *json_out, "print JSON");
  complete->callback([=, &exit_code] {
    json list = json::array();
    for (const auto& s : *series) list.push_back(s);
    if (!study->empty()) {
      json in_study;
      if ((exit_code = CallAndReport(*server, "GET", "/api/studies/" + *study + "/series", nullptr, 200, in_study)))
        return;
      for (const auto& s : in_study) list.push_back(s.value("SeriesInstanceUID", ""));
    }
    json body{{"status", "COMPLETED"}, {"series", list}}, step;
    if ((exit_code = CallAndReport(*server, "PUT", "/api/mpps/" + *complete_uid, &body, 200, step))) return;
    if (*json_out)
      std::cout << step.dump(2) << "\n";
    else
      std::cout << "step " << *complete_uid << " COMPLETED (" << list.size() << " series)\n";
  });

  auto* discontinue = cmd->add_subcommand("discontinue", "N-SET DISCONTINUED with a reason (PS3.16 CID 9300)");
  auto dis_uid = std::make_shared<std::string>();
  auto reason = std::make_shared<std::string>("110513");
  auto meaning = std::make_shared<std::string>();
  discontinue->add_option("uid", *dis_uid, "the step's SOP Instance UID")->required();
  discontinue->add_option("--reason", *reason, "the reason's code value, scheme DCM (default 110513)");
  discontinue->add_option("--meaning", *meaning,
                          "the reason's code meaning (default for 110513: Discontinued for unspecified reason)");
  AddServerOptions(discontinue, *server);
  discontinue->add_flag("--json", *json_out, "print JSON");
  discontinue->callback([=, &exit_code] {
    std::string text = *meaning;
    if (text.empty() && *reason == "110513") text = "Discontinued for unspecified reason";
    if (text.empty()) {
      std::cerr << "--meaning: say what reason " << *reason << " means (its Code Meaning)\n";
      exit_code = 2;
      return;
    }
    json body{{"status", "DISCONTINUED"},
              {"reason", {{"CodeValue", *reason}, {"CodingSchemeDesignator", "DCM"}, {"CodeMeaning", text}}}},
        step;
    if ((exit_code = CallAndReport(*server, "PUT", "/api/mpps/" + *dis_uid, &body, 200, step))) return;
    if (*json_out)
      std::cout << step.dump(2) << "\n";
    else
      std::cout << "step " << *dis_uid << " DISCONTINUED (" << *reason << " " << text << ")\n";
  });
}

}  // namespace pb::cli
