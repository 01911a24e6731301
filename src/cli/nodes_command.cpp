#include <algorithm>
#include <fstream>
#include <iostream>
#include <optional>
#include <tuple>

#include "cli/client.h"
#include "cli/commands.h"

namespace pb::cli {
namespace {

// The first line of a file ("-": standard input), for secrets kept off the command line, where
// every user of the machine sees them (ps, shell history).
std::optional<std::string> ReadFirstLine(const std::string& file, int& exit_code) {
  std::string line;
  if (file == "-") {
    std::getline(std::cin, line);
  } else {
    std::ifstream in(file);
    if (!in) {
      std::cerr << "cannot read " << file << "\n";
      exit_code = 1;
      return std::nullopt;
    }
    std::getline(in, line);
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

// "Name: value" of --header; the server checks the name and the value.
std::optional<nlohmann::json> ParseHeader(const std::string& arg, int& exit_code) {
  size_t colon = arg.find(':');
  if (colon == std::string::npos) {
    std::cerr << "--header '" << arg << "' is not \"Name: value\" (e.g. --header \"X-Api-Key: 123\")\n";
    exit_code = 1;
    return std::nullopt;
  }
  auto trim = [](std::string s) {
    s.erase(0, s.find_first_not_of(" \t"));
    s.erase(s.find_last_not_of(" \t") + 1);
    return s;
  };
  return nlohmann::json{{"name", trim(arg.substr(0, colon))}, {"value", trim(arg.substr(colon + 1))}};
}

// "mon-fri 08:00-18:00" or "sat,sun 22:00-06:00" → {"days", "start", "end"}; day names are
// checked by the server (which names the window in its error).
std::optional<nlohmann::json> ParseWindow(const std::string& text) {
  static const std::vector<std::string> kDays{"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
  const auto space = text.find(' ');
  if (space == std::string::npos) return std::nullopt;
  const std::string days = text.substr(0, space), hours = text.substr(space + 1);
  const auto dash = hours.find('-');
  if (dash == std::string::npos) return std::nullopt;
  nlohmann::json out{
      {"days", nlohmann::json::array()}, {"start", hours.substr(0, dash)}, {"end", hours.substr(dash + 1)}};
  size_t from = 0;
  while (from <= days.size()) {
    size_t comma = days.find(',', from);
    if (comma == std::string::npos) comma = days.size();
    const std::string item = days.substr(from, comma - from);
    const auto range = item.find('-');
    if (range == std::string::npos) {
      out["days"].push_back(item);
    } else {
      auto a = std::find(kDays.begin(), kDays.end(), item.substr(0, range));
      auto b = std::find(kDays.begin(), kDays.end(), item.substr(range + 1));
      if (a == kDays.end() || b == kDays.end()) return std::nullopt;
      for (size_t d = a - kDays.begin();; d = (d + 1) % 7) {  // "fri-mon" wraps over the weekend
        out["days"].push_back(kDays[d]);
        if (d == static_cast<size_t>(b - kDays.begin())) break;
      }
    }
    from = comma + 1;
  }
  return out;
}

// The node fields settable from the command line; only those given are sent (an update merges
// them, `tls` and `auth` field by field; secrets not given stay as stored).
struct NodeFlags {
  std::optional<std::string> aet, host, description, calling_aet, move_destination, retrieve_method, type, url,
      transfer_syntax, qido_root, wado_root, stow_root, calling_ae_header, called_ae_header, proxy;
  std::optional<std::string> auth_type, username, password, token, token_url, client_id, client_secret, scope,
      password_file, token_file, client_secret_file;
  std::optional<std::string> tls_ca_file, tls_cert_file, tls_key_file;
  std::optional<int64_t> max_bytes_per_second;
  std::optional<int> port, timeout, max_associations, max_results, stow_batch_instances, stow_batch_mb, query_timeout,
      retrieve_timeout, max_parallel_retrieves, retry_attempts, retry_first_delay, retry_max_delay, utilization;
  std::optional<bool> queryable, storable, default_qr, default_storage, qido, wado, stow, stow_multipart,
      allow_redirects, tls, tls_verify_peer, tls_verify_hostname, mwl, mpps;
  std::optional<std::string> mwl_charset;
  std::vector<std::string> headers;
  bool no_headers = false;
  std::vector<std::string> windows;
  std::optional<std::string> timezone;
  bool no_schedule = false;

  void Add(CLI::App* cmd) {
    cmd->add_option("--type", type, "dimse (default) or dicomweb");
    cmd->add_option("--aet", aet, "the node's AE title (case matters; DICOMweb: optional, for --called-ae-header)");
    cmd->add_option("--host", host, "host name or IP address (no scheme, no path)");
    cmd->add_option("--port", port, "DICOM port");
    cmd->add_option("--url", url,
                    "DICOMweb root URL, e.g. http://host:8042/dicom-web/ (Orthanc), "
                    "http://host:8080/dcm4chee-arc/aets/DCM4CHEE/rs/ (dcm4chee)");
    cmd->add_option("--description", description, "free text");
    cmd->add_option("--calling-aet", calling_aet, "our AE title towards this node");
    cmd->add_option("--move-destination", move_destination, "our AE title known to the PACS");
    cmd->add_option("--retrieve-method", retrieve_method, "auto, c-get or c-move");
    cmd->add_option("--timeout", timeout, "seconds");
    cmd->add_option("--queryable", queryable, "true/false");
    cmd->add_option("--storable", storable, "true/false");
    cmd->add_option("--default-query-retrieve", default_qr, "true/false");
    cmd->add_option("--mwl", mwl, "true/false: the node answers Modality Worklist queries");
    cmd->add_option("--mwl-charset", mwl_charset,
                    "the worklist's character set, e.g. \"ISO_IR 100\", \"ISO 2022 IR 87\" (also assumed for "
                    "answers that declare none)");
    cmd->add_option("--mpps", mpps, "true/false: the node accepts MPPS N-CREATE/N-SET");
    cmd->add_option("--default-storage", default_storage, "true/false");
    cmd->add_option("--transfer-syntax", transfer_syntax,
                    "preferred transfer syntax: UID, keyword or DCMTK name (DICOMweb: asked of WADO-RS)");
    cmd->add_option("--max-associations", max_associations, "1-64: parallel associations (DICOMweb: connections)");
    cmd->add_option("--max-results", max_results, "1-100000: answers kept per query");
    cmd->add_option("--max-bytes-per-second", max_bytes_per_second,
                    "0 (unlimited) or bytes per second shared by every retrieve and send to the node");
    cmd->add_option("--max-parallel-retrieves", max_parallel_retrieves,
                    "1-64: retrieve jobs from the node at once (default: 1 DIMSE, 2 DICOMweb)");
    cmd->add_option("--utilization", utilization,
                    "1-100 (default 100: no limit): the percent of each minute the node may be busy with our jobs "
                    "(connection time)");
    cmd->add_option("--retry-attempts", retry_attempts,
                    "1-100 (default 5): runs of a job that meets transient faults, the first included");
    cmd->add_option("--retry-first-delay", retry_first_delay, "seconds (default 30) before the first automatic retry");
    cmd->add_option("--retry-max-delay", retry_max_delay, "seconds (default 1800): the doubling delays stop here");
    // DICOMweb
    cmd->add_option("--qido-root", qido_root, "DICOMweb: QIDO-RS root when not --url (\"\": --url)");
    cmd->add_option("--wado-root", wado_root, "DICOMweb: WADO-RS root when not --url");
    cmd->add_option("--stow-root", stow_root, "DICOMweb: STOW-RS root when not --url");
    cmd->add_option("--qido", qido, "true/false: DICOMweb: the server answers QIDO-RS queries");
    cmd->add_option("--wado", wado, "true/false: DICOMweb: the server answers WADO-RS retrieves");
    cmd->add_option("--stow", stow, "true/false: DICOMweb: the server takes STOW-RS uploads");
    cmd->add_option("--stow-multipart", stow_multipart,
                    "true/false: DICOMweb: many instances per STOW-RS request (false: one per request)");
    cmd->add_option("--stow-batch-instances", stow_batch_instances,
                    "1-10000 (default 100): instances per STOW-RS request");
    cmd->add_option("--stow-batch-mb", stow_batch_mb, "1-4096 (default 64): MB per STOW-RS request");
    cmd->add_option("--auth-type", auth_type, "DICOMweb: none, basic, bearer or oauth2");
    cmd->add_option("--username", username, "basic: the user name");
    cmd->add_option("--auth-password", password,
                    "basic: the password (seen by every user of this machine: prefer --auth-password-file)");
    cmd->add_option("--auth-password-file", password_file,
                    "basic: read the password from the file's first line ('-': stdin)");
    cmd->add_option("--auth-token", token,
                    "bearer: the token (seen by every user of this machine: prefer --token-file)");
    cmd->add_option("--token-file", token_file, "bearer: read the token from the file's first line ('-': stdin)");
    cmd->add_option("--token-url", token_url, "oauth2: the token endpoint (client credentials grant)");
    cmd->add_option("--client-id", client_id, "oauth2: the client id");
    cmd->add_option("--client-secret", client_secret,
                    "oauth2: the client secret (seen by every user of this machine: prefer --client-secret-file)");
    cmd->add_option("--client-secret-file", client_secret_file,
                    "oauth2: read the client secret from the file's first line ('-': stdin)");
    cmd->add_option("--scope", scope, "oauth2: the scope asked for (optional)");
    cmd->add_option("--header", headers, "\"Name: value\" sent on every request (repeat it; replaces the list)");
    cmd->add_flag("--no-headers", no_headers, "remove every extra header");
    cmd->add_option("--window", windows,
                    "availability window \"DAYS HH:MM-HH:MM\", e.g. \"mon-fri 08:00-18:00\" or \"sat,sun 22:00-06:00\" "
                    "(repeat it; replaces the list; outside its windows the node is not used)");
    cmd->add_option("--timezone", timezone, "the windows' time zone, e.g. Europe/Paris (default: the server's)");
    cmd->add_flag("--no-schedule", no_schedule, "remove the schedule: always available");
    cmd->add_option("--calling-ae-header", calling_ae_header, "header carrying our calling AE title (\"\": none)");
    cmd->add_option("--called-ae-header", called_ae_header, "header carrying the node's --aet (\"\": none)");
    cmd->add_option("--query-timeout", query_timeout, "1-3600 s (default 30): a whole QIDO-RS request");
    cmd->add_option("--retrieve-timeout", retrieve_timeout,
                    "1-3600 s (default 120): WADO-RS/STOW-RS give up after this long without a byte");
    cmd->add_option("--proxy", proxy, "http://, https://, socks5:// or socks5h:// proxy (\"\": none)");
    cmd->add_option("--allow-redirects", allow_redirects, "true/false: follow a redirect to another host");
    // TLS (DIMSE: the association; DICOMweb: https)
    cmd->add_option("--tls", tls, "true/false: DIMSE: TLS on the association");
    cmd->add_option("--tls-verify-peer", tls_verify_peer, "true/false (default true)");
    cmd->add_option("--tls-verify-hostname", tls_verify_hostname, "true/false (default true)");
    cmd->add_option("--tls-ca-file", tls_ca_file, "CA certificates to trust (default: the system's)");
    cmd->add_option("--tls-cert-file", tls_cert_file, "our client certificate (PEM)");
    cmd->add_option("--tls-key-file", tls_key_file, "its private key (PEM, readable by us only)");
  }

  std::optional<nlohmann::json> Json(int& exit_code) const {
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
    put("mwl", mwl);
    put("mwl_charset", mwl_charset);
    put("mpps", mpps);
    put("default_storage", default_storage);
    put("preferred_transfer_syntax", transfer_syntax);
    put("max_associations", max_associations);
    put("max_results", max_results);
    put("max_parallel_retrieves", max_parallel_retrieves);
    put("max_bytes_per_second", max_bytes_per_second);
    put("utilization_percent", utilization);
    if (retry_attempts) j["retry"]["attempts"] = *retry_attempts;
    if (retry_first_delay) j["retry"]["first_delay_seconds"] = *retry_first_delay;
    if (retry_max_delay) j["retry"]["max_delay_seconds"] = *retry_max_delay;
    put("qido_root", qido_root);
    put("wado_root", wado_root);
    put("stow_root", stow_root);
    put("qido", qido);
    put("wado", wado);
    put("stow", stow);
    put("stow_multipart", stow_multipart);
    put("stow_batch_instances", stow_batch_instances);
    put("stow_batch_mb", stow_batch_mb);
    put("calling_ae_header", calling_ae_header);
    put("called_ae_header", called_ae_header);
    put("query_timeout_seconds", query_timeout);
    put("retrieve_timeout_seconds", retrieve_timeout);
    put("proxy", proxy);
    put("allow_redirects", allow_redirects);
    for (auto [key, value] :
         {std::pair{"type", &auth_type}, std::pair{"username", &username}, std::pair{"password", &password},
          std::pair{"token", &token}, std::pair{"token_url", &token_url}, std::pair{"client_id", &client_id},
          std::pair{"client_secret", &client_secret}, std::pair{"scope", &scope}}) {
      if (*value) j["auth"][key] = **value;
    }
    for (auto [key, file, flag] :
         {std::tuple{"password", &password_file, &password}, std::tuple{"token", &token_file, &token},
          std::tuple{"client_secret", &client_secret_file, &client_secret}}) {
      if (!*file) continue;
      if (*flag) {
        std::cerr << "give the " << key << " once: on the command line or in a file, not both\n";
        exit_code = 1;
        return std::nullopt;
      }
      auto secret = ReadFirstLine(**file, exit_code);
      if (!secret) return std::nullopt;
      j["auth"][key] = *secret;
    }
    if (no_headers || !headers.empty()) {
      j["headers"] = nlohmann::json::array();
      for (const auto& h : headers) {
        auto parsed = ParseHeader(h, exit_code);
        if (!parsed) return std::nullopt;
        j["headers"].push_back(*parsed);
      }
    }
    if (no_schedule) {
      j["schedule"] = nullptr;
    } else if (!windows.empty() || timezone) {
      if (timezone) j["schedule"]["timezone"] = *timezone;
      if (!windows.empty()) {
        j["schedule"]["windows"] = nlohmann::json::array();
        for (const auto& w : windows) {
          auto parsed = ParseWindow(w);
          if (!parsed) {
            std::cerr << "--window '" << w << "': give days and hours, e.g. \"mon-fri 08:00-18:00\"\n";
            exit_code = 2;
            return std::nullopt;
          }
          j["schedule"]["windows"].push_back(*parsed);
        }
      }
    }
    for (auto [key, value] : {std::pair{"enabled", &tls}, std::pair{"verify_peer", &tls_verify_peer},
                              std::pair{"verify_hostname", &tls_verify_hostname}}) {
      if (*value) j["tls"][key] = **value;
    }
    for (auto [key, value] : {std::pair{"ca_file", &tls_ca_file}, std::pair{"cert_file", &tls_cert_file},
                              std::pair{"key_file", &tls_key_file}}) {
      if (*value) j["tls"][key] = **value;
    }
    return j;
  }
};

std::string Yes(const nlohmann::json& n, const char* k) { return n.value(k, false) ? "yes" : "-"; }

// "ok 2026-12-03T07:40:12Z" / "FAILED ..." / "-" (never tested).
std::string LastTest(const nlohmann::json& n) {
  auto it = n.find("last_test");
  if (it == n.end() || !it->is_object()) return "-";
  return std::string(it->value("ok", false) ? "ok " : "FAILED ") + it->value("at", "");
}

void PrintNodes(const nlohmann::json& list) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& n : list) {
    std::string address = n.value("type", "dimse") == "dimse" ? n.value("ae_title", "") + "@" + n.value("host", "") +
                                                                    ":" + std::to_string(n.value("port", 0))
                                                              : n.value("url", "");
    std::string flags;
    if (n.value("default_query_retrieve", false)) flags += "default-qr ";
    if (n.value("default_storage", false)) flags += "default-store ";
    if (n.value("mwl", false)) flags += "mwl ";
    if (n.value("mpps", false)) flags += "mpps ";
    if (n.value("locked", false)) flags += "locked";
    while (!flags.empty() && flags.back() == ' ') flags.pop_back();
    std::string type = n.value("type", "");
    if (!n.value("available", true)) type += " (not yet supported)";
    rows.push_back({n.value("name", ""), type, address, Yes(n, "queryable"), Yes(n, "storable"), LastTest(n), flags});
  }
  PrintTable({"NAME", "TYPE", "ADDRESS", "QUERY", "STORE", "LAST TEST", "FLAGS"}, rows);
}

// One line per field; the AE titles show the value actually used and where it comes from,
// derived fields (effective_*) are folded into them. `tls` and `auth` get a line per field,
// secrets as "set" or "not set" (the API never returns them); headers one line each.
void PrintNode(const nlohmann::json& n) {
  auto text = [](const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
  for (auto it = n.begin(); it != n.end(); ++it) {
    const std::string& key = it.key();
    if (key.rfind("effective_", 0) == 0) continue;
    if ((key == "auth" || key == "tls") && it->is_object()) {
      for (auto f = it->begin(); f != it->end(); ++f) {
        if (f.key().rfind("has_", 0) == 0) {
          std::cout << key << "." << f.key().substr(4) << ": " << (f->get<bool>() ? "set" : "not set") << "\n";
        } else {
          std::cout << key << "." << f.key() << ": " << text(*f) << "\n";
        }
      }
      continue;
    }
    if (key == "last_test") {
      if (!it->is_object()) {
        std::cout << "last_test: never\n";
      } else {
        std::cout << "last_test: " << LastTest(n) << " (" << it->value("latency_ms", 0) << " ms) "
                  << it->value("message", "") << "\n";
      }
      continue;
    }
    if (key == "headers" && it->is_array()) {
      if (it->empty()) std::cout << "headers: (none)\n";
      for (const auto& h : *it) std::cout << "header: " << h.value("name", "") << ": " << h.value("value", "") << "\n";
      continue;
    }
    std::string value = text(*it);
    if (key == "calling_ae_title" && n.contains("effective_calling_ae_title")) {
      value.append(value.empty() ? text(n["effective_calling_ae_title"]).append(" (server default, [server] ae_title)")
                                 : " (this node's setting)");
    } else if (key == "move_destination" && n.contains("effective_move_destination")) {
      value.append(value.empty() ? text(n["effective_move_destination"]).append(" (default: the calling AE title)")
                                 : " (this node's setting)");
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
  add->footer(
      "DICOMweb: nodes add web --type dicomweb --url http://host:8042/dicom-web/ --queryable true\n"
      "  --auth-type basic --username u --auth-password-file pw.txt\n"
      "Secrets given as flags are seen by every user of this machine (ps, shell history): prefer\n"
      "--auth-password-file, --token-file and --client-secret-file (first line of the file, '-': stdin).");
  add->callback([=, &exit_code] {
    auto flags = add_flags->Json(exit_code);
    if (!flags) return;
    nlohmann::json body = *flags;
    body["name"] = *name;
    exit_code = RunAndPrint(*s, "POST", "/api/nodes", &body, 201,
                            [](const nlohmann::json& n) { PrintNodes(nlohmann::json::array({n})); });
  });

  auto* show = nodes->add_subcommand("show", "show one node with all its fields");
  show->add_option("name", *name)->required();
  AddServerFlags(show, *s);
  show->callback([=, &exit_code] { exit_code = RunAndPrint(*s, "GET", NodePath(*name), nullptr, 200, PrintNode); });

  auto upd_flags = std::make_shared<NodeFlags>();
  auto new_name = std::make_shared<std::optional<std::string>>();
  auto* update = nodes->add_subcommand("update", "change some fields of a node");
  update->add_option("name", *name)->required();
  update->add_option("--name", *new_name, "rename the node");
  upd_flags->Add(update);
  AddServerFlags(update, *s);
  update->footer(
      "Only the fields given change; a secret not given stays as stored. Prefer the *-file options for\n"
      "secrets: flags are seen by every user of this machine (ps, shell history).");
  update->callback([=, &exit_code] {
    auto flags = upd_flags->Json(exit_code);
    if (!flags) return;
    nlohmann::json body = *flags;
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

  auto* echo =
      nodes->add_subcommand("echo",
                            "test the connection to a node: C-ECHO, then (queryable nodes) a C-FIND that cannot match; "
                            "DICOMweb: a QIDO-RS search with limit=1 (also: nodes test)");
  echo->alias("test");
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
      if (ok)
        std::cout << b.value("message", "") << " (" << b.value("latency_ms", 0) << " ms)\n";
      else
        std::cerr << b.value("message", "") << "\n";
    }
    exit_code = ok ? 0 : 1;
  });

  auto* move_check =
      nodes->add_subcommand("move-check",
                            "does the PACS know us? moves one instance it holds to our receiver (discarded there) and "
                            "says whether it arrived; exit status 0 yes, 1 no, 2 cannot tell");
  move_check->add_option("name", *name)->required();
  AddServerFlags(move_check, *s);
  move_check->callback([=, &exit_code] {
    nlohmann::json b;
    if ((exit_code = CallAndReport(s->server, "POST", NodePath(*name) + "/move-check", nullptr, 200, b))) return;
    const nlohmann::json ok = b.value("ok", nlohmann::json(nullptr));
    exit_code = ok.is_boolean() ? (ok.get<bool>() ? 0 : 1) : 2;
    if (s->json) {
      std::cout << b.dump(2) << "\n";
      return;
    }
    auto text = [](const nlohmann::json& v) {
      return v.is_null() ? std::string("-") : v.is_string() ? v.get<std::string>() : v.dump();
    };
    const nlohmann::json d = b.value("destination", nlohmann::json::object());
    std::string where = text(d.value("ae_title", nlohmann::json()));
    if (d.value("port", nlohmann::json()).is_number()) {
      where += " at " + text(d.value("host", nlohmann::json())) + ":" + text(d["port"]);
    }
    PrintTable({"RESULT", "OUTCOME", "DESTINATION", "STATUS", "COMPLETED", "FAILED", "WARNING", "ARRIVED", "MS"},
               {{ok.is_boolean() ? (ok.get<bool>() ? "ok" : "FAILED") : "cannot tell",
                 text(b.value("outcome", nlohmann::json())), where, text(b.value("status", nlohmann::json())),
                 text(b.value("completed", nlohmann::json())), text(b.value("failed", nlohmann::json())),
                 text(b.value("warning", nlohmann::json())), b.value("instance_arrived", false) ? "yes" : "no",
                 text(b.value("latency_ms", nlohmann::json()))}});
    (exit_code == 0 ? std::cout : std::cerr) << b.value("message", "") << "\n";
  });

  auto* tests = nodes->add_subcommand("tests", "the node's connection tests, newest first (kept by the server)");
  tests->add_option("name", *name)->required();
  auto limit = std::make_shared<int>(20);
  tests->add_option("--limit", *limit, "how many (1 to 200)")->check(CLI::Range(1, 200));
  AddServerFlags(tests, *s);
  tests->callback([=, &exit_code] {
    exit_code = RunAndPrint(*s, "GET", NodePath(*name) + "/tests?limit=" + std::to_string(*limit), nullptr, 200,
                            [](const nlohmann::json& list) {
                              std::vector<std::vector<std::string>> rows;
                              for (const auto& t : list) {
                                rows.push_back({t.value("at", ""), t.value("ok", false) ? "ok" : "FAILED",
                                                std::to_string(t.value("latency_ms", 0)), t.value("message", "")});
                              }
                              if (rows.empty())
                                std::cout << "no connection test yet\n";
                              else
                                PrintTable({"AT (UTC)", "RESULT", "MS", "MESSAGE"}, rows);
                            });
  });
}

}  // namespace pb::cli
