// `pacsbridge receivers`, `routing`, `projects` and `staging`: clients of /api/receivers,
// /api/routing, /api/projects and /api/staging.
#include <array>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "cli/client.h"
#include "cli/commands.h"

namespace pb::cli {
namespace {

// Text from a file ("-": standard input); rules and whitelists are one entry per line.
std::optional<std::string> ReadText(const std::string& file, int& exit_code) {
  std::stringstream buf;
  if (file == "-") {
    buf << std::cin.rdbuf();
    return buf.str();
  }
  std::ifstream in(file);
  if (!in) {
    std::cerr << "cannot read " << file << "\n";
    exit_code = 1;
    return std::nullopt;
  }
  buf << in.rdbuf();
  return buf.str();
}

// The receiver fields settable from the command line; only those given are sent.
struct ReceiverFlags {
  std::optional<std::string> bind, whitelist_file, project_rules, subject_rules, session_rules, default_project,
      identification, body_file, mpps_forward;
  std::optional<int> port, idle;
  std::optional<bool> enabled, whitelist_enabled, anonymize, direct_archive, retain_dates, retain_device, retain_uids,
      mpps, query_retrieve, names_ignore_case;
  std::optional<std::vector<std::string>> qr_projects;

  void Add(CLI::App* cmd) {
    cmd->add_option("--port", port, "TCP port (1024 to 49151; default 8104)");
    cmd->add_option("--bind", bind, "listen address (0.0.0.0 or :: for all)");
    cmd->add_option("--enabled", enabled, "true/false");
    cmd->add_option("--whitelist-enabled", whitelist_enabled, "true/false: only listed senders may send");
    cmd->add_option("--whitelist-file", whitelist_file,
                    "file with one entry per line: AE, address, AE@address, CIDR block ('-': stdin)");
    cmd->add_option("--project-rules", project_rules, "file of (gggg,eeee):regex[:group] rules for the project");
    cmd->add_option("--subject-rules", subject_rules, "file of rules for the subject");
    cmd->add_option("--session-rules", session_rules, "file of rules for the session");
    cmd->add_option("--default-project", default_project, "project when no rule or comment names one");
    cmd->add_option("--identification", identification, "rules or jobs");
    cmd->add_option("--anonymize", anonymize, "true/false (new receivers: true)");
    cmd->add_option("--retain-dates", retain_dates, "true/false: keep dates, shifted per patient");
    cmd->add_option("--retain-device-identity", retain_device, "true/false");
    cmd->add_option("--retain-uids", retain_uids, "true/false");
    cmd->add_option("--direct-archive", direct_archive, "true/false: false collects sessions in staging first");
    cmd->add_option("--staging-idle-seconds", idle, "a staged session is complete after this quiet time");
    cmd->add_option("--mpps", mpps, "true/false: modalities may report MPPS (N-CREATE/N-SET) here");
    cmd->add_option("--mpps-forward", mpps_forward, "a node (mpps on) each accepted MPPS request is passed on to");
    cmd->add_option("--query-retrieve", query_retrieve,
                    "true/false: also answer C-FIND, C-GET and C-MOVE over the archive");
    cmd->add_option("--query-retrieve-projects", qr_projects,
                    "only these projects are seen through Query/Retrieve (repeat or comma-separate; '' for all)")
        ->delimiter(',');
    cmd->add_option("--query-names-ignore-case", names_ignore_case,
                    "true/false: Query/Retrieve matches person names ignoring case");
    cmd->add_option("--body", body_file, "a JSON file with any receiver fields (e.g. processors); flags win");
  }

  std::optional<nlohmann::json> Json(int& exit_code) const {
    nlohmann::json j = nlohmann::json::object();
    if (body_file) {
      auto text = ReadText(*body_file, exit_code);
      if (!text) return std::nullopt;
      j = nlohmann::json::parse(*text, nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        std::cerr << *body_file << " is not a JSON object\n";
        exit_code = 1;
        return std::nullopt;
      }
    }
    auto put = [&](const char* k, const auto& v) {
      if (v) j[k] = *v;
    };
    put("port", port);
    put("bind", bind);
    put("enabled", enabled);
    put("whitelist_enabled", whitelist_enabled);
    put("default_project", default_project);
    put("identification", identification);
    put("anonymize", anonymize);
    put("direct_archive", direct_archive);
    put("staging_idle_seconds", idle);
    put("mpps", mpps);
    put("mpps_forward", mpps_forward);
    put("query_retrieve", query_retrieve);
    put("query_names_ignore_case", names_ignore_case);
    if (qr_projects) {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& p : *qr_projects) {
        if (!p.empty()) list.push_back(p);
      }
      j["query_retrieve_projects"] = list;
    }
    if (retain_dates) j["anonymization"]["retain_dates"] = *retain_dates;
    if (retain_device) j["anonymization"]["retain_device_identity"] = *retain_device;
    if (retain_uids) j["anonymization"]["retain_uids"] = *retain_uids;
    for (auto [key, file] : {std::pair{"whitelist", &whitelist_file}}) {
      if (!*file) continue;
      auto text = ReadText(**file, exit_code);
      if (!text) return std::nullopt;
      j[key] = *text;
    }
    for (auto [key, file] : {std::pair{"project", &project_rules}, std::pair{"subject", &subject_rules},
                             std::pair{"session", &session_rules}}) {
      if (!*file) continue;
      auto text = ReadText(**file, exit_code);
      if (!text) return std::nullopt;
      j["routing"][key] = *text;
    }
    return j;
  }
};

void PrintReceivers(const nlohmann::json& list) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : list) {
    std::string handling;
    if (r.value("whitelist_enabled", false)) handling += "whitelist ";
    if (r.value("anonymize", false)) handling += "anonymize ";
    handling += r.value("direct_archive", true) ? "archive" : "staging";
    if (r.value("mpps", false)) handling += " mpps";
    if (r.value("query_retrieve", false)) handling += " query/retrieve";
    if (r.value("locked", false)) handling += " locked";
    rows.push_back({r.value("id", ""), r.value("ae_title", ""),
                    r.value("bind", "") + ":" + std::to_string(r.value("port", 0)), r.value("status", ""), handling});
  }
  PrintTable({"ID", "AE TITLE", "LISTEN", "STATUS", "HANDLING"}, rows);
}

void PrintFields(const nlohmann::json& r) {
  for (auto it = r.begin(); it != r.end(); ++it) {
    if (it->is_string() && it->get<std::string>().find('\n') != std::string::npos) {
      std::cout << it.key() << ":\n";
      std::istringstream lines(it->get<std::string>());
      for (std::string line; std::getline(lines, line);) std::cout << "  " << line << "\n";
    } else {
      std::cout << it.key() << ": " << (it->is_string() ? it->get<std::string>() : it->dump()) << "\n";
    }
  }
}

void PrintLabels(const nlohmann::json& list) {
  std::vector<std::vector<std::string>> rows;
  bool subjects = !list.empty() && list[0].contains("subjects");
  bool sessions = !list.empty() && list[0].contains("sessions");
  for (const auto& r : list) {
    std::vector<std::string> row{r.value("name", "")};
    if (subjects) row.push_back(std::to_string(r.value("subjects", 0)));
    if (sessions) row.push_back(std::to_string(r.value("sessions", 0)));
    for (const char* k : {"studies", "series", "instances"}) row.push_back(std::to_string(r.value(k, 0)));
    row.push_back(r.value("modalities", ""));
    rows.push_back(std::move(row));
  }
  std::vector<std::string> header{"NAME"};
  if (subjects) header.push_back("SUBJECTS");
  if (sessions) header.push_back("SESSIONS");
  for (const char* h : {"STUDIES", "SERIES", "INSTANCES", "MODALITIES"}) header.push_back(h);
  PrintTable(header, rows);
}

void PrintSeries(const nlohmann::json& list) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : list) {
    rows.push_back({r.value("SeriesInstanceUID", ""), r.value("Modality", ""), r.value("SeriesNumber", ""),
                    std::to_string(r.value("instance_count", 0)), r.value("SeriesDescription", "")});
  }
  PrintTable({"SERIES UID", "MODALITY", "NUMBER", "INSTANCES", "DESCRIPTION"}, rows);
}

void PrintStaged(const nlohmann::json& list) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : list) {
    std::string ae = r.value("receiver_ae_title", "");
    rows.push_back({std::to_string(r.value("id", 0)), ae.empty() ? r.value("receiver", "") : ae,
                    r.value("project", "") + "/" + r.value("subject", "") + "/" + r.value("session", ""),
                    r.value("state", ""), std::to_string(r.value("instance_count", 0)), r.value("last_at", ""),
                    r.value("note", "")});
  }
  PrintTable({"ID", "RECEIVER", "PROJECT/SUBJECT/SESSION", "STATE", "INSTANCES", "LAST ARRIVAL", "NOTE"}, rows);
}

void PrintOne(const nlohmann::json& r) { PrintReceivers(nlohmann::json::array({r})); }

}  // namespace

void AddReceiversCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("receivers", "list, add, show, update, enable, disable and remove receivers");
  auto s = std::make_shared<CommandOptions>();
  AddServerFlags(cmd, *s);
  cmd->callback([cmd, s, &exit_code] {
    if (cmd->get_subcommands().empty())
      exit_code = RunAndPrint(*s, "GET", "/api/receivers", nullptr, 200, PrintReceivers);
  });
  auto id = std::make_shared<std::string>();

  auto* list = cmd->add_subcommand("list", "list the receivers with their status");
  AddServerFlags(list, *s);
  list->callback(
      [s, &exit_code] { exit_code = RunAndPrint(*s, "GET", "/api/receivers", nullptr, 200, PrintReceivers); });

  auto* show = cmd->add_subcommand("show", "show one receiver with all its fields");
  show->add_option("id", *id, "id, AE@port, or AE title")->required();
  AddServerFlags(show, *s);
  show->callback(
      [=, &exit_code] { exit_code = RunAndPrint(*s, "GET", "/api/receivers/" + *id, nullptr, 200, PrintFields); });

  auto ae = std::make_shared<std::string>();
  auto add_flags = std::make_shared<ReceiverFlags>();
  auto* add = cmd->add_subcommand("add", "create a receiver (anonymizing unless --anonymize false)");
  add->add_option("ae_title", *ae, "its AE title (1 to 16 characters)")->required();
  add_flags->Add(add);
  AddServerFlags(add, *s);
  add->callback([=, &exit_code] {
    auto body = add_flags->Json(exit_code);
    if (!body) return;
    (*body)["ae_title"] = *ae;
    exit_code = RunAndPrint(*s, "POST", "/api/receivers", &*body, 201, PrintOne);
  });

  auto upd_flags = std::make_shared<ReceiverFlags>();
  auto new_ae = std::make_shared<std::optional<std::string>>();
  auto* update = cmd->add_subcommand("update", "change some fields of a receiver (at once, no restart)");
  update->add_option("id", *id)->required();
  update->add_option("--ae-title", *new_ae, "a new AE title");
  upd_flags->Add(update);
  AddServerFlags(update, *s);
  update->callback([=, &exit_code] {
    auto body = upd_flags->Json(exit_code);
    if (!body) return;
    if (*new_ae) (*body)["ae_title"] = **new_ae;
    exit_code = RunAndPrint(*s, "PUT", "/api/receivers/" + *id, &*body, 200, PrintOne);
  });

  for (bool enable : {true, false}) {
    auto* sub = cmd->add_subcommand(enable ? "enable" : "disable", enable ? "start listening" : "stop listening");
    sub->add_option("id", *id)->required();
    AddServerFlags(sub, *s);
    sub->callback([=, &exit_code] {
      nlohmann::json body{{"enabled", enable}};
      exit_code = RunAndPrint(*s, "PUT", "/api/receivers/" + *id, &body, 200, PrintOne);
    });
  }

  auto* remove = cmd->add_subcommand("remove", "delete a receiver");
  remove->add_option("id", *id)->required();
  AddServerFlags(remove, *s);
  remove->callback([=, &exit_code] {
    exit_code = RunAndPrint(*s, "DELETE", "/api/receivers/" + *id, nullptr, 204, nullptr);
    if (exit_code == 0 && !s->json) std::cout << "removed receiver " << *id << "\n";
  });

  auto* routing = app.add_subcommand("routing", "show or set the site-wide routing rules");
  auto rs = std::make_shared<CommandOptions>();
  auto files = std::make_shared<std::array<std::optional<std::string>, 3>>();
  routing->add_option("--project-rules", (*files)[0], "file of (gggg,eeee):regex[:group] rules ('-': stdin)");
  routing->add_option("--subject-rules", (*files)[1], "file of rules for the subject");
  routing->add_option("--session-rules", (*files)[2], "file of rules for the session");
  AddServerFlags(routing, *rs);
  routing->callback([rs, files, &exit_code] {
    if (!(*files)[0] && !(*files)[1] && !(*files)[2]) {
      exit_code = RunAndPrint(*rs, "GET", "/api/routing", nullptr, 200, PrintFields);
      return;
    }
    nlohmann::json current;
    if ((exit_code = CallAndReport(rs->server, "GET", "/api/routing", nullptr, 200, current))) return;
    const char* keys[] = {"project", "subject", "session"};
    for (int i = 0; i < 3; ++i) {
      if (!(*files)[i]) continue;
      auto text = ReadText(*(*files)[i], exit_code);
      if (!text) return;
      current[keys[i]] = *text;
    }
    exit_code = RunAndPrint(*rs, "PUT", "/api/routing", &current, 200, PrintFields);
  });
}

void AddProjectsCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("projects", "browse the archive by project, subject, session and series");
  auto s = std::make_shared<CommandOptions>();
  auto path = std::make_shared<std::vector<std::string>>();
  struct Anon {
    bool show = false, reset = false;
    std::optional<bool> retain_dates, retain_device, retain_uids, keep_private;
  };
  auto anon = std::make_shared<Anon>();
  cmd->add_option("labels", *path, "PROJECT [SUBJECT [SESSION]]: list what is below");
  cmd->add_flag("--anonymization", anon->show, "show PROJECT's own anonymization options");
  cmd->add_option("--retain-dates", anon->retain_dates, "true/false: PROJECT's own option (replaces the receiver's)");
  cmd->add_option("--retain-device-identity", anon->retain_device, "true/false: PROJECT's own option");
  cmd->add_option("--retain-uids", anon->retain_uids, "true/false: PROJECT's own option");
  cmd->add_option("--keep-private-tags", anon->keep_private, "true/false: PROJECT's own option");
  cmd->add_flag("--reset-anonymization", anon->reset, "PROJECT uses the receivers' options again");
  AddServerFlags(cmd, *s);
  cmd->callback([s, path, anon, &exit_code] {
    bool set = anon->retain_dates || anon->retain_device || anon->retain_uids || anon->keep_private;
    if (anon->show || anon->reset || set) {
      if (path->size() != 1) {
        std::cerr << "the anonymization options belong to one PROJECT: give exactly one\n";
        exit_code = 1;
        return;
      }
      const std::string url = "/api/projects/" + (*path)[0] + "/anonymization";
      if (anon->reset) {
        exit_code = RunAndPrint(*s, "DELETE", url, nullptr, 204, nullptr);
        if (exit_code == 0 && !s->json) std::cout << (*path)[0] << " uses the receivers' options again\n";
        return;
      }
      nlohmann::json current;
      if ((exit_code = CallAndReport(s->server, "GET", url, nullptr, 200, current))) return;
      nlohmann::json body = current["anonymization"].is_object() ? current["anonymization"] : nlohmann::json::object();
      if (set) {
        auto put = [&](const char* k, const std::optional<bool>& v) {
          if (v) body[k] = *v;
        };
        put("retain_dates", anon->retain_dates);
        put("retain_device_identity", anon->retain_device);
        put("retain_uids", anon->retain_uids);
        put("keep_private_tags", anon->keep_private);
        exit_code = RunAndPrint(*s, "PUT", url, &body, 200, PrintFields);
      } else {
        if (s->json)
          std::cout << current.dump(2) << "\n";
        else if (current["anonymization"].is_null())
          std::cout << (*path)[0] << ": the receivers' options apply\n";
        else
          PrintFields(current["anonymization"]);
      }
      return;
    }
    if (path->size() > 3) {
      std::cerr << "give at most PROJECT SUBJECT SESSION\n";
      exit_code = 1;
      return;
    }
    std::string url = "/api/projects";
    const char* below[] = {"/subjects", "/sessions", "/series"};
    for (size_t i = 0; i < path->size(); ++i) url += "/" + (*path)[i] + below[i];
    exit_code = RunAndPrint(*s, "GET", url, nullptr, 200, path->size() == 3 ? PrintSeries : PrintLabels);
  });
}

void AddStagingCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("staging", "list staged sessions; archive or discard one");
  auto s = std::make_shared<CommandOptions>();
  AddServerFlags(cmd, *s);
  cmd->callback([cmd, s, &exit_code] {
    if (cmd->get_subcommands().empty()) exit_code = RunAndPrint(*s, "GET", "/api/staging", nullptr, 200, PrintStaged);
  });
  auto id = std::make_shared<std::string>();
  auto* archive = cmd->add_subcommand("archive", "archive a staged session now");
  archive->add_option("id", *id)->required();
  AddServerFlags(archive, *s);
  archive->callback([=, &exit_code] {
    exit_code = RunAndPrint(*s, "POST", "/api/staging/" + *id + "/archive", nullptr, 200, [](const nlohmann::json& r) {
      std::cout << "archived " << r.value("archived", 0) << " instance(s) into " << r.value("project", "") << "/"
                << r.value("subject", "") << "/" << r.value("session", "") << "\n";
      if (!r.value("note", "").empty()) std::cout << r.value("note", "") << "\n";
    });
  });
  auto* discard = cmd->add_subcommand("discard", "delete a staged session and its files");
  discard->add_option("id", *id)->required();
  AddServerFlags(discard, *s);
  discard->callback([=, &exit_code] {
    exit_code = RunAndPrint(*s, "DELETE", "/api/staging/" + *id, nullptr, 204, nullptr);
    if (exit_code == 0 && !s->json) std::cout << "discarded staged session " << *id << "\n";
  });
}

}  // namespace pb::cli
