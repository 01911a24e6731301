#include "config/settings.h"

#include <unistd.h>

#include <cctype>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <libpq-fe.h>
#include <toml++/toml.h>

#include "core/url.h"
#include "core/validate.h"

namespace pb {
namespace {

using Keys = std::set<std::string, std::less<>>;

struct Ctx {
  std::string source;
  Error Err(const toml::node* n, std::string_view key, std::string msg) const {
    int line = n ? static_cast<int>(n->source().begin.line) : 0;
    return Error{
        Code::kInvalidArgument,
        line ? fmt::format("{}:{}: {}: {}", source, line, key, msg) : fmt::format("{}: {}: {}", source, key, msg),
        std::string(key)};
  }
};

[[nodiscard]] Result<void> CheckKeys(const Ctx& ctx, const toml::table& t, std::string_view where,
                                     const Keys& allowed) {
  for (auto&& [k, v] : t) {
    if (!allowed.count(k.str())) {
      return tl::unexpected(ctx.Err(&v, fmt::format("{}.{}", where, k.str()),
                                    "unknown key (check the spelling; see docs/configuration.md)"));
    }
  }
  return {};
}

[[nodiscard]] Result<std::string> GetString(const Ctx& ctx, const toml::table& t, std::string_view where,
                                            std::string_view key, std::string def) {
  const toml::node* n = t.get(key);
  if (!n) return def;
  if (auto s = n->value<std::string>(); s && n->is_string()) return *s;
  return tl::unexpected(ctx.Err(n, fmt::format("{}.{}", where, key), "must be a string"));
}

[[nodiscard]] Result<int64_t> GetInt(const Ctx& ctx, const toml::table& t, std::string_view where, std::string_view key,
                                     int64_t def) {
  const toml::node* n = t.get(key);
  if (!n) return def;
  if (n->is_integer()) return *n->value<int64_t>();
  return tl::unexpected(ctx.Err(n, fmt::format("{}.{}", where, key), "must be an integer"));
}

[[nodiscard]] Result<bool> GetBool(const Ctx& ctx, const toml::table& t, std::string_view where, std::string_view key,
                                   bool def) {
  const toml::node* n = t.get(key);
  if (!n) return def;
  if (n->is_boolean()) return *n->value<bool>();
  return tl::unexpected(ctx.Err(n, fmt::format("{}.{}", where, key), "must be true or false"));
}

[[nodiscard]] Result<std::vector<ConfigEntry>> Entries(const Ctx& ctx, const toml::table& root, std::string_view key) {
  std::vector<ConfigEntry> out;
  const toml::node* n = root.get(key);
  if (!n) return out;
  const toml::array* arr = n->as_array();
  if (!arr) {
    return tl::unexpected(ctx.Err(n, key, fmt::format("must be written as [[{}]] tables", key)));
  }
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::table* t = (*arr)[i].as_table();
    if (!t) return tl::unexpected(ctx.Err(&(*arr)[i], key, "each entry must be a table"));
    ConfigEntry e;
    std::ostringstream js;
    js << toml::json_formatter{*t};
    e.json = nlohmann::json::parse(js.str());
    e.source = fmt::format("{}:{}", ctx.source, t->source().begin.line);
    for (auto&& [k, v] : *t) e.key_lines[std::string(k.str())] = static_cast<int>(v.source().begin.line);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

std::filesystem::path Settings::DatabasePath() const {
  if (database_url.rfind("sqlite:", 0) == 0) return database_url.substr(7);
  return data_dir / "index.db";
}

std::string Settings::InstanceId() const {
  if (!instance_id.empty()) return instance_id;
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || !*host) return "pacsbridge";
  // It names a folder of the data directory too: only what an instance_id may hold.
  std::string id(host, strnlen(host, 64));
  for (char& c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
  }
  if (id == "." || id == "..") return "pacsbridge";
  return id;
}

bool Settings::IsPostgres() const {
  return database_url.rfind("postgresql://", 0) == 0 || database_url.rfind("postgres://", 0) == 0;
}

Settings DefaultSettings() {
  Settings s;
  ConfigEntry r;
  r.json = {{"ae_title", "PACSBRIDGE"}, {"port", 8104}, {"bind", "0.0.0.0"}};
  r.source = "(built-in default receiver)";
  s.receivers.push_back(r);
  return s;
}

[[nodiscard]] Result<std::pair<std::string, int>> ParseListenAddress(std::string_view value, std::string_view field) {
  std::string v(value);
  auto bad = [&](std::string why) {
    return Fail(Code::kInvalidArgument, fmt::format("{} '{}': {}", field, v, why), std::string(field));
  };
  size_t colon = v.rfind(':');
  if (colon == std::string::npos) return bad("expected HOST:PORT, e.g. 127.0.0.1:8080");
  std::string host = v.substr(0, colon);
  std::string port = v.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  int p = 0;
  try {
    size_t used = 0;
    p = std::stoi(port, &used);
    if (used != port.size()) return bad("the port is not a number");
  } catch (...) {
    return bad("the port is not a number");
  }
  if (p < 0 || p > 65535) return bad("the port must be between 0 and 65535");
  if (!IsIpv4Literal(host) && !IsIpv6Literal(host) && host != "localhost") {
    return bad("the host must be an IP address (or localhost)");
  }
  return std::make_pair(host, p);
}

[[nodiscard]] Result<Settings> ParseSettings(std::string_view text, const std::string& source_name) {
  Ctx ctx{source_name};
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    return Fail(Code::kInvalidArgument, fmt::format("{}:{}:{}: invalid TOML: {}", source_name, e.source().begin.line,
                                                    e.source().begin.column, e.description()));
  }
  Settings s;
  s.source = source_name;
  if (auto r =
          CheckKeys(ctx, root, "(top level)", {"server", "database", "auth", "jobs", "dicomweb", "receivers", "nodes"});
      !r) {
    return tl::unexpected(r.error());
  }
  auto table = [&](std::string_view key) -> Result<const toml::table*> {
    const toml::node* n = root.get(key);
    if (!n) return nullptr;
    if (!n->is_table()) return tl::unexpected(ctx.Err(n, key, "must be a [table]"));
    return n->as_table();
  };
#define PB_TRY(var, expr)                               \
  auto var##_r = (expr);                                \
  if (!var##_r) return tl::unexpected(var##_r.error()); \
  auto var = *var##_r  // NOLINT(bugprone-macro-parentheses): `var` names the variable

  PB_TRY(server, table("server"));
  if (server) {
    if (auto r =
            CheckKeys(ctx, *server, "server",
                      {"data_dir", "http_listen", "ae_title", "instance_id", "max_associations", "duplicates", "fsync",
                       "log_level", "log_format", "strict", "min_free_disk_mb", "https_cert_file", "https_key_file"});
        !r) {
      return tl::unexpected(r.error());
    }
    PB_TRY(data_dir, GetString(ctx, *server, "server", "data_dir", "var"));
    s.data_dir = data_dir;
    PB_TRY(listen, GetString(ctx, *server, "server", "http_listen", "127.0.0.1:8080"));
    auto hp = ParseListenAddress(listen, "server.http_listen");
    if (!hp) return tl::unexpected(ctx.Err(server->get("http_listen"), "server.http_listen", hp.error().message));
    s.http_host = hp->first;
    s.http_port = hp->second;
    PB_TRY(ae, GetString(ctx, *server, "server", "ae_title", "PACSBRIDGE"));
    auto aev = ValidateAeTitle(ae, "server.ae_title");
    if (!aev) return tl::unexpected(ctx.Err(server->get("ae_title"), "server.ae_title", aev.error().message));
    s.ae_title = *aev;
    PB_TRY(instance, GetString(ctx, *server, "server", "instance_id", ""));
    if (!instance.empty() && (instance.size() > 64 || instance == "." || instance == ".." ||
                              instance.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklm"
                                                         "nopqrstuvwxyz0123456789._-") != std::string::npos)) {
      return tl::unexpected(ctx.Err(server->get("instance_id"), "server.instance_id",
                                    "must be 1 to 64 letters, digits, '.', '_' or '-' (e.g. \"gateway-2\")"));
    }
    s.instance_id = instance;
    PB_TRY(maxa, GetInt(ctx, *server, "server", "max_associations", 8));
    if (maxa < 1 || maxa > 256) {
      return tl::unexpected(
          ctx.Err(server->get("max_associations"), "server.max_associations", "must be between 1 and 256"));
    }
    s.max_associations = static_cast<int>(maxa);
    PB_TRY(dups, GetString(ctx, *server, "server", "duplicates", "keep"));
    if (dups == "keep")
      s.duplicates = DuplicatePolicy::kKeep;
    else if (dups == "overwrite")
      s.duplicates = DuplicatePolicy::kOverwrite;
    else
      return tl::unexpected(
          ctx.Err(server->get("duplicates"), "server.duplicates", "must be \"keep\" or \"overwrite\""));
    PB_TRY(fs, GetBool(ctx, *server, "server", "fsync", false));
    s.fsync = fs;
    PB_TRY(strict, GetBool(ctx, *server, "server", "strict", false));
    s.strict = strict;
    PB_TRY(min_free, GetInt(ctx, *server, "server", "min_free_disk_mb", 500));
    if (min_free < 0) {
      return tl::unexpected(ctx.Err(server->get("min_free_disk_mb"), "server.min_free_disk_mb", "must be 0 or more"));
    }
    s.min_free_disk_mb = min_free;
    PB_TRY(lvl, GetString(ctx, *server, "server", "log_level", "info"));
    static const Keys kLevels{"trace", "debug", "info", "warn", "error"};
    if (!kLevels.count(lvl)) {
      return tl::unexpected(
          ctx.Err(server->get("log_level"), "server.log_level", "must be one of trace, debug, info, warn, error"));
    }
    s.log_level = lvl;
    PB_TRY(log_format, GetString(ctx, *server, "server", "log_format", "text"));
    if (log_format != "text" && log_format != "json") {
      return tl::unexpected(ctx.Err(server->get("log_format"), "server.log_format", "must be \"text\" or \"json\""));
    }
    s.log_format = log_format;
    PB_TRY(cert, GetString(ctx, *server, "server", "https_cert_file", ""));
    PB_TRY(key, GetString(ctx, *server, "server", "https_key_file", ""));
    if (cert.empty() != key.empty()) {
      const char* missing = cert.empty() ? "https_cert_file" : "https_key_file";
      const char* given = cert.empty() ? "https_key_file" : "https_cert_file";
      return tl::unexpected(ctx.Err(server->get(given), fmt::format("server.{}", missing),
                                    fmt::format("HTTPS needs both server.https_cert_file and server.https_key_file; "
                                                "server.{} is missing",
                                                missing)));
    }
    s.https_cert_file = cert;
    s.https_key_file = key;
  }
  PB_TRY(db, table("database"));
  if (db) {
    if (auto r = CheckKeys(ctx, *db, "database", {"url"}); !r) return tl::unexpected(r.error());
    PB_TRY(url, GetString(ctx, *db, "database", "url", ""));
    if (url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0) {
      // Read as libpq will read it. Its own message is not repeated: it quotes the part it could
      // not read, which may be the password.
      char* err = nullptr;
      PQconninfoOption* opts = PQconninfoParse(url.c_str(), &err);
      if (err) PQfreemem(err);
      if (!opts) {
        return tl::unexpected(ctx.Err(db->get("url"), "database.url",
                                      "is not a PostgreSQL URL libpq can read (a parameter it does not know, or a "
                                      "character to percent-encode, such as % @ : / ? or a space, in the password; "
                                      "e.g. postgresql://pacsbridge:PASSWORD@127.0.0.1:5432/pacsbridge)"));
      }
      PQconninfoFree(opts);
    } else if (!url.empty() && url.rfind("sqlite:", 0) != 0) {
      return tl::unexpected(ctx.Err(db->get("url"), "database.url",
                                    "must start with sqlite: or postgresql:// (e.g. sqlite:var/index.db, "
                                    "postgresql://pacsbridge:PASSWORD@127.0.0.1:5432/pacsbridge)"));
    }
    s.database_url = url;
  }
  PB_TRY(auth, table("auth"));
  if (auth) {
    if (auto r = CheckKeys(ctx, *auth, "auth", {"admin_password", "session_idle_minutes", "session_max_hours"}); !r) {
      return tl::unexpected(r.error());
    }
    PB_TRY(idle, GetInt(ctx, *auth, "auth", "session_idle_minutes", 480));
    if (idle < 1 || idle > 525600) {
      return tl::unexpected(ctx.Err(auth->get("session_idle_minutes"), "auth.session_idle_minutes",
                                    "must be between 1 and 525600 (a year)"));
    }
    s.session_idle_minutes = static_cast<int>(idle);
    PB_TRY(max_hours, GetInt(ctx, *auth, "auth", "session_max_hours", 168));
    if (max_hours < 1 || max_hours > 8760) {
      return tl::unexpected(
          ctx.Err(auth->get("session_max_hours"), "auth.session_max_hours", "must be between 1 and 8760 (a year)"));
    }
    s.session_max_hours = static_cast<int>(max_hours);
    if (auth->get("admin_password")) {
      PB_TRY(pw, GetString(ctx, *auth, "auth", "admin_password", ""));
      if (pw.size() < 8) {
        return tl::unexpected(ctx.Err(auth->get("admin_password"), "auth.admin_password",
                                      "needs at least 8 characters (it opens the admin account)"));
      }
      s.admin_password = pw;
    }
  }
  PB_TRY(jobs, table("jobs"));
  if (jobs) {
    if (auto r = CheckKeys(ctx, *jobs, "jobs", {"workers", "keep_days", "lease_seconds"}); !r)
      return tl::unexpected(r.error());
    PB_TRY(workers, GetInt(ctx, *jobs, "jobs", "workers", 2));
    if (workers < 1 || workers > 32) {
      return tl::unexpected(ctx.Err(jobs->get("workers"), "jobs.workers", "must be between 1 and 32"));
    }
    s.job_workers = static_cast<int>(workers);
    PB_TRY(keep, GetInt(ctx, *jobs, "jobs", "keep_days", 30));
    if (keep < 0 || keep > 36500) {
      return tl::unexpected(
          ctx.Err(jobs->get("keep_days"), "jobs.keep_days", "must be between 0 (keep forever) and 36500"));
    }
    s.job_keep_days = static_cast<int>(keep);
    PB_TRY(lease, GetInt(ctx, *jobs, "jobs", "lease_seconds", 30));
    if (lease < 3 || lease > 3600) {
      return tl::unexpected(ctx.Err(jobs->get("lease_seconds"), "jobs.lease_seconds", "must be between 3 and 3600"));
    }
    s.job_lease_seconds = static_cast<int>(lease);
  }
  PB_TRY(dicomweb, table("dicomweb"));
  if (dicomweb) {
    if (auto r = CheckKeys(ctx, *dicomweb, "dicomweb", {"public_root", "cors_origins", "stow_receiver"}); !r) {
      return tl::unexpected(r.error());
    }
    PB_TRY(root_url, GetString(ctx, *dicomweb, "dicomweb", "public_root", ""));
    if (!root_url.empty()) {
      auto url = ValidateBaseUrl(root_url, "dicomweb.public_root");
      if (!url)
        return tl::unexpected(ctx.Err(dicomweb->get("public_root"), "dicomweb.public_root", url.error().message));
      while (!root_url.empty() && root_url.back() == '/') root_url.pop_back();
      s.dicomweb_public_root = root_url;
    }
    if (const toml::node* n = dicomweb->get("cors_origins")) {
      const toml::array* a = n->as_array();
      if (!a) return tl::unexpected(ctx.Err(n, "dicomweb.cors_origins", "must be a list of origins, such as [\"*\"]"));
      for (const toml::node& o : *a) {
        auto v = o.value<std::string>();
        if (!o.is_string() || !v) return tl::unexpected(ctx.Err(&o, "dicomweb.cors_origins", "must hold strings"));
        if (*v != "*") {
          auto url = ValidateBaseUrl(*v, "dicomweb.cors_origins");
          const bool origin = url && v->find('/', v->find("//") + 2) == std::string::npos;
          if (!origin) {
            return tl::unexpected(ctx.Err(&o, "dicomweb.cors_origins",
                                          fmt::format("'{}' is not \"*\" or an origin such as "
                                                      "\"https://viewer.example:3000\" (scheme, host, port; no path)",
                                                      *v)));
          }
        }
        s.dicomweb_cors_origins.push_back(*v);
      }
    }
    PB_TRY(stow, GetString(ctx, *dicomweb, "dicomweb", "stow_receiver", ""));
    s.dicomweb_stow_receiver = stow;
  }
  PB_TRY(receivers, Entries(ctx, root, "receivers"));
  s.receivers = std::move(receivers);
  PB_TRY(nodes, Entries(ctx, root, "nodes"));
  s.nodes = std::move(nodes);
#undef PB_TRY
  return s;
}

[[nodiscard]] Result<Settings> LoadSettings(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return Fail(Code::kNotFound, fmt::format("cannot read config file {}", file.string()));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseSettings(ss.str(), file.string());
}

}  // namespace pb
