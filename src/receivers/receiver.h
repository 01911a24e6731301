#pragma once
// Receivers: our own AE title + port listeners. Thread-safe after Start().
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/settings.h"
#include "core/result.h"
#include "dicom/server.h"
#include "ingest/pipeline.h"
#include "ingest/store_sink.h"

namespace pb {

struct Receiver {
  std::string id;
  std::string ae_title;
  uint16_t port = 104;
  std::string bind = "0.0.0.0";
  bool enabled = true;
  bool locked = false;
  dicom::ServerTls tls;
};

Result<Receiver> ReceiverFromJson(const nlohmann::json& j);
nlohmann::json ReceiverToJson(const Receiver& r);

class ReceiverService {
 public:
  ReceiverService(IngestPipeline& pipeline, int workers);
  ~ReceiverService();

  // The transfer syntax (UID) to choose first for data from a calling AE title; call before
  // Start(). Used for a node's preferred compression when it sends for a C-MOVE.
  void SetPreferredTransferSyntax(std::function<std::string(const std::string&)> f) {
    preferred_ = std::move(f);
  }
  // Validates the config entries (errors name file and line) and starts listening on each.
  Result<void> Start(const std::vector<ConfigEntry>& config);
  void Stop();
  std::vector<Receiver> List() const;
  Result<Receiver> Get(const std::string& id) const;

 private:
  IngestPipeline& pipeline_;
  int workers_;
  std::unique_ptr<PipelineSink> sink_;
  std::vector<Receiver> receivers_;
  std::function<std::string(const std::string&)> preferred_;
  std::vector<std::unique_ptr<dicom::AssociationServer>> servers_;
};

}  // namespace pb
