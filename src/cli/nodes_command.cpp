#include <iostream>
#include <optional>

#include "cli/client.h"
#include "cli/commands.h"

namespace pb::cli {
namespace {

// The node fields settable from the command line; only those given are sent.
struct NodeFlags {
  std::optional<std::string> aet, host, description, calling_aet, move_destination,
      retrieve_method, type, url;
  std::optional<int> port, timeout;
  std::optional<bool> queryable, storable, default_qr, default_storage;

  void Add(CLI::App* cmd) {
    cmd->add_option("--type", type, "dimse (default) or dicomweb");
    cmd->add_option("--aet", aet, "the node's AE title (case matters)");
    cmd->add_option("--host", host, "host name or IP address (no scheme, no path)");
    cmd->add_option("--port", port, "DICOM port");
    cmd->add_option("--url", url, "DICOMweb root URL");
    cmd->add_option("--description", description, "free text");
    cmd->add_option("--calling-aet", calling_aet, "our AE title towards this node");
    cmd->add_option("--move-destination", move_destination, "our AE title known to the PACS");
    cmd->add_option("--retrieve-method", retrieve_method, "auto, c-get or c-move");
    cmd->add_option("--timeout", timeout, "seconds");
    cmd->add_option("--queryable", queryable, "true/false");
    cmd->add_option("--storable", storable, "true/false");
    cmd->add_option("--default-query-retrieve", default_qr, "true/false");
    cmd->add_option("--default-storage", default_storage, "true/false");
  }
  nlohmann::json Json() const {
    nlohmann::json j = nlohmann::json::object();
    auto put = [&](const char* k, const auto& v) {
      if (v) j[k] = *v;
    };
    put("type", type);
    put("ae_title", aet);
    put("host", host);
    put("port", port);
    put("url", url);
    put("description", description);
    put("calling_ae_title", calling_aet);
    put("move_destination", move_destination);
    put("retrieve_method", retrieve_method);
    put("timeout_seconds", timeout);
    put("queryable", queryable);
    put("storable", storable);
    put("default_query_retrieve", default_qr);
    put("default_storage", default_storage);
    return j;
  }
};

std::string Yes(const nlohmann::json& n, const char* k) { return n.value(k, false) ? "yes" : "-"; }

void PrintNodes(const nlohmann::json& list) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& n : list) {
    std::string address = n.value("type", "dimse") == "dimse"
                              ? n.value("ae_title", "") + "@" + n.value("host", "") + ":" +
                                    std::to_string(n.value("port", 0))
                              : n.value("url", "");
    std::string flags;
    if (n.value("default_query_retrieve", false)) flags += "default-qr ";
    if (n.value("default_storage", false)) flags += "default-store ";
    if (n.value("locked", false)) flags += "locked";
    std::string type = n.value("type", "");
    if (!n.value("available", true)) type += " (not yet supported)";
    rows.push_back({n.value("name", ""), type, address, Yes(n, "queryable"),
                    Yes(n, "storable"), flags});
  }
  PrintTable({"NAME", "TYPE", "ADDRESS", "QUERY", "STORE", "FLAGS"}, rows);
}

// One line per field; the AE titles show the value actually used and where it comes from,
// derived fields (effective_*) are folded into them.
void PrintNode(const nlohmann::json& n) {
  auto text = [](const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
  for (auto it = n.begin(); it != n.end(); ++it) {
    const std::string& key = it.key();
    if (key.rfind("effective_", 0) == 0) continue;
    std::string value = text(*it);
    if (key == "calling_ae_title" && n.contains("effective_calling_ae_title")) {
      value = value.empty() ? text(n["effective_calling_ae_title"]) + " (server default, [server] ae_title)"
                            : value + " (this node's setting)";
    } else if (key == "move_destination" && n.contains("effective_move_destination")) {
      value = value.empty() ? text(n["effective_move_destination"]) + " (default: the calling AE title)"
                            : value + " (this node's setting)";
    }
    std::cout << key << ": " << value << "\n";
  }
}

std::string NodePath(const std::string& name) { return "/api/nodes/" + name; }

}  // namespace

void AddNodesCommand(CLI::App& app, int& exit_code) {
  auto* nodes = app.add_subcommand("nodes", "list, add, show, update, remove and test remote nodes");
  nodes->require_subcommand(1);
  auto s = std::make_shared<CommandOptions>();

  auto* list = nodes->add_subcommand("list", "list the nodes");
  AddServerFlags(list, *s);
  list->callback([s, &exit_code] { exit_code = RunAndPrint(*s, "GET", "/api/nodes", nullptr, 200, PrintNodes); });

  auto name = std::make_shared<std::string>();
  auto add_flags = std::make_shared<NodeFlags>();
  auto* add = nodes->add_subcommand("add", "register a node");
  add->add_option("name", *name, "the node's label (unique)")->required();
  add_flags->Add(add);
  AddServerFlags(add, *s);
  add->callback([=, &exit_code] {
    nlohmann::json body = add_flags->Json();
    body["name"] = *name;
    exit_code = RunAndPrint(*s, "POST", "/api/nodes", &body, 201,
                    [](const nlohmann::json& n) { PrintNodes(nlohmann::json::array({n})); });
  });

  auto* show = nodes->add_subcommand("show", "show one node with all its fields");
  show->add_option("name", *name)->required();
  AddServerFlags(show, *s);
  show->callback([=, &exit_code] {
    exit_code = RunAndPrint(*s, "GET", NodePath(*name), nullptr, 200, PrintNode);
  });

  auto upd_flags = std::make_shared<NodeFlags>();
  auto new_name = std::make_shared<std::optional<std::string>>();
  auto* update = nodes->add_subcommand("update", "change some fields of a node");
  update->add_option("name", *name)->required();
  update->add_option("--name", *new_name, "rename the node");
  upd_flags->Add(update);
  AddServerFlags(update, *s);
  update->callback([=, &exit_code] {
    nlohmann::json body = upd_flags->Json();
    if (*new_name) body["name"] = **new_name;
    exit_code = RunAndPrint(*s, "PUT", NodePath(*name), &body, 200,
                    [](const nlohmann::json& n) { PrintNodes(nlohmann::json::array({n})); });
  });

  auto* remove = nodes->add_subcommand("remove", "delete a node");
  remove->add_option("name", *name)->required();
  AddServerFlags(remove, *s);
  remove->callback([=, &exit_code] {
    exit_code = RunAndPrint(*s, "DELETE", NodePath(*name), nullptr, 204, nullptr);
    if (exit_code == 0 && !s->json) std::cout << "removed " << *name << "\n";
  });

  auto* echo = nodes->add_subcommand(
      "echo", "test the connection to a node: C-ECHO, then (queryable nodes) a C-FIND that cannot match");
  echo->add_option("name", *name)->required();
  auto echo_only = std::make_shared<bool>(false);
  echo->add_flag("--echo-only", *echo_only, "only the C-ECHO");
  AddServerFlags(echo, *s);
  echo->callback([=, &exit_code] {
    nlohmann::json b;
    nlohmann::json rq{{"echo_only", *echo_only}};
    if ((exit_code = CallAndReport(s->server, "POST", NodePath(*name) + "/echo", &rq, 200, b))) return;
    if (s->json) std::cout << b.dump(2) << "\n";
    bool ok = b.value("ok", false);
    if (!s->json) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& c : b.value("checks", nlohmann::json::array())) {
        std::string outcome = c.value("outcome", "");
        rows.push_back({c.value("name", ""), outcome == "failed" ? "FAILED" : outcome, c.value("message", "")});
      }
      if (!rows.empty()) PrintTable({"CHECK", "RESULT", "DETAIL"}, rows);
      if (ok) std::cout << b.value("message", "") << " (" << b.value("latency_ms", 0) << " ms)\n";
      else std::cerr << b.value("message", "") << "\n";
    }
    exit_code = ok ? 0 : 1;
  });
}

}  // namespace pb::cli
