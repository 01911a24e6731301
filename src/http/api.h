#pragma once
// The HTTP server of the REST API (/api/...). Owns the listening socket and its threads.
#include <memory>
#include <string>
#include <thread>

#include "archive/blob_store.h"
#include "archive/database.h"
#include "config/settings.h"
#include "core/result.h"
#include "ingest/pipeline.h"
#include "jobs/job_service.h"
#include "nodes/registry.h"
#include "ingest/staging.h"
#include "receivers/receiver_service.h"

namespace httplib {
class Server;
}

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
};

class HttpApi {
 public:
  explicit HttpApi(Services services);
  ~HttpApi();
  // Binds (errors name the address) and serves in a background thread.
  Result<int> Start(const std::string& host, int port);
  void Stop();

 private:
  Services s_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

// Route tables, one per resource.
void AddSystemRoutes(httplib::Server& srv, Services& s);
void AddNodeRoutes(httplib::Server& srv, Services& s);
void AddFindRoute(httplib::Server& srv, Services& s);
void AddArchiveRoutes(httplib::Server& srv, Services& s);
void AddJobRoutes(httplib::Server& srv, Services& s);
void AddReceiverRoutes(httplib::Server& srv, Services& s);

}  // namespace pb::http
