#pragma once
// The validated configuration of one server process. Plain values; cheap to copy.
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config_entry.h"
#include "core/result.h"
#include "ingest/duplicate_policy.h"

namespace pb {

struct Settings {
  std::filesystem::path data_dir = "var";
  std::string http_host = "127.0.0.1";
  int http_port = 8080;
  std::string ae_title = "PACSBRIDGE";
  // [server] instance_id: this server among several on one PostgreSQL database (the owner of
  // the jobs it runs, shown in /api/health and the logs); empty: the machine's host name.
  std::string instance_id;
  std::string database_url;                     // empty: sqlite inside data_dir; or postgresql://
  std::optional<std::string> admin_password;    // [auth]: the initial password of "admin"
  int session_idle_minutes = 480;               // [auth]: a UI session ends after this long unused
  int session_max_hours = 168;                  // [auth]: and at the latest this long after log-in
  std::string https_cert_file, https_key_file;  // [server]: both set = the API serves HTTPS only
  int max_associations = 8;                     // receiver worker pool, per receiver
  DuplicatePolicy duplicates = DuplicatePolicy::kKeep;
  bool fsync = false;  // fsync each instance before answering the sender
  std::string log_level = "info";
  std::string log_format = "text";  // "text" (one line, for people) or "json" (one object per line)
  bool strict = false;              // a receiver that cannot listen at start is fatal
  int64_t min_free_disk_mb = 500;   // /api/ready fails below this free space in data_dir
  int job_workers = 2;              // [jobs] workers: jobs running at once
  int job_keep_days = 30;           // [jobs] keep_days: finished jobs kept (0: forever)
  int job_lease_seconds = 30;       // [jobs] lease_seconds: how long another instance waits to take over
  // [dicomweb]: our DICOMweb server (/dicom-web).
  // The root clients reach it by (behind a reverse proxy), without a trailing slash, for the
  // URLs answers carry (RetrieveURL, BulkDataURI); empty: taken from each request's Host.
  std::string dicomweb_public_root;
  // Origins allowed to call it from a browser (CORS): "*" or "https://viewer.example".
  std::vector<std::string> dicomweb_cors_origins;
  // The receiver whose identification, anonymization and staging STOW-RS uses; empty: the
  // archive, with the site's routing rules.
  std::string dicomweb_stow_receiver;
  std::vector<ConfigEntry> receivers;
  std::vector<ConfigEntry> nodes;
  std::string source = "(defaults)";

  std::filesystem::path DatabasePath() const;  // the SQLite index's file
  bool IsPostgres() const;                     // database_url names a PostgreSQL database
  std::string InstanceId() const;              // instance_id, or the host name
};

// Built-in defaults: data in ./var, HTTP on 127.0.0.1:8080, one receiver PACSBRIDGE:8104.
Settings DefaultSettings();

// Parses and validates a TOML file. Errors name the file, the line and the key.
[[nodiscard]] Result<Settings> LoadSettings(const std::filesystem::path& file);
[[nodiscard]] Result<Settings> ParseSettings(std::string_view toml_text, const std::string& source_name);

// "127.0.0.1:8080", "[::1]:8080", ":8080" → host and port.
[[nodiscard]] Result<std::pair<std::string, int>> ParseListenAddress(std::string_view value, std::string_view field);

}  // namespace pb
