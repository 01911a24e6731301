#pragma once
// The HTTP server of the REST API (/api/...). Owns the listening socket and its threads.
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "archive/blob_store.h"
#include "archive/database.h"
#include "auth/accounts.h"
#include "config/settings.h"
#include "core/result.h"
#include "dicomweb/metadata_cache.h"
#include "ingest/pipeline.h"
#include "ingest/staging.h"
#include "jobs/import_job.h"
#include "jobs/job_service.h"
#include "mpps/mpps_steps.h"
#include "nodes/registry.h"
#include "receivers/receiver_service.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace pb::http {

struct Services {
  const Settings& settings;
  NodeRegistry& nodes;
  Database& db;
  BlobStore& blobs;
  ReceiverService& receivers;
  IngestPipeline& pipeline;
  JobService& jobs;
  StagingArea& staging;
  ImportRunner& imports;
  auth::Accounts& accounts;
  MppsSteps& mpps;
  dicomweb::MetadataCache& metadata;
};

class HttpApi {
 public:
  HttpApi();
  ~HttpApi();
  // Serves HTTPS only, with this certificate and key (PEM); before Bind. Errors name the files.
  [[nodiscard]] Result<void> UseHttps(const std::string& cert_file, const std::string& key_file);
  // Takes the port, exclusively: never shared with another process (no SO_REUSEPORT). Called
  // early at start, so a server whose port is taken stops before it touches anything. Errors
  // name the address and, when it can be found, the program that holds the port. Returns the
  // port (the one chosen by the system for port 0).
  [[nodiscard]] Result<int> Bind(const std::string& host, int port);
  // Routes requests to `services` and serves them in a background thread.
  [[nodiscard]] Result<void> Start(Services services);
  void Stop();

 private:
  std::optional<Services> s_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

// A short id, distinct per call, that ties an answer to its server log lines.
std::string NewRequestId();

// The answer to a handler's exception: 500 with a request id; the exception's text goes to the
// log under that id, never to the client.
void AnswerException(const httplib::Request& req, httplib::Response& res, const std::exception_ptr& ep);

// Route tables, one per resource.
class Router;
void AddSystemRoutes(Router& r, Services& s);
void AddAuthRoutes(Router& r, Services& s);
void AddUiRoutes(httplib::Server& srv);  // the web UI's files, outside /api
void AddNodeRoutes(Router& r, Services& s);
void AddFindRoute(Router& r, Services& s);
void AddArchiveRoutes(Router& r, Services& s);
void AddDicomwebRoutes(Router& r, Services& s);  // /dicom-web: QIDO-RS, WADO-RS of instances
void AddWadoRoutes(Router& r, Services& s);      // /dicom-web: WADO-RS metadata, frames, bulk data
void AddStowRoutes(Router& r, Services& s);      // /dicom-web: STOW-RS
void AddJobRoutes(Router& r, Services& s);
void AddImportRoutes(Router& r, Services& s);
void AddReceiverRoutes(Router& r, Services& s);
void AddMppsRoutes(Router& r, Services& s);
void AddRoutingTryRoute(Router& r, Services& s);  // POST /api/routing/try

// The OpenAPI document the API serves (docs/openapi.yaml, as JSON), parsed once.
const nlohmann::json& OpenApiDocument();

}  // namespace pb::http
