#pragma once
// Runs the receivers: those of the config file (locked) and those created through the API
// (stored in the index database), created, changed, enabled, disabled and removed at run time
// without a restart. Receivers that share a port share one listener, which admits each
// association by called AE title and whitelist and hands it a sink holding that receiver's
// settings. A port that cannot be opened fails that change alone: other receivers keep
// running. Thread-safe.
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "archive/database.h"
#include "core/config_entry.h"
#include "core/result.h"
#include "core/thread_annotations.h"
#include "dicom/server.h"
#include "ingest/expectations.h"
#include "ingest/origin_sink.h"
#include "ingest/pipeline.h"
#include "ingest/staging.h"
#include "ingest/store_sink.h"
#include "receivers/archive_query.h"
#include "receivers/association_log.h"
#include "receivers/periodic_task.h"
#include "receivers/receiver.h"
#include "receivers/receiver_sink.h"
#include "receivers/retirements.h"

namespace pb {

class ReceiverService {
 public:
  // `secret`: the site's anonymization secret (UID mapping, date shifts, pseudonyms).
  ReceiverService(IngestPipeline& pipeline, Database& db, StagingArea& staging, ExpectationRegistry& expectations,
                  int workers, std::string secret);
  ~ReceiverService();

  // The transfer syntax (UID) to choose first for data from a calling AE title (a node's
  // preferred compression when it sends for a C-MOVE); call before Start().
  void SetPreferredTransferSyntax(std::function<std::string(const std::string&)> f) { preferred_ = std::move(f); }
  // Where MPPS requests go, for receivers with `mpps` on; call before Start().
  void SetMppsSink(std::shared_ptr<dicom::MppsSink> sink) { mpps_ = std::move(sink); }
  // Where a C-MOVE to a receiver with query_retrieve on may send (nodes by AE title); call
  // before Start(). Without it every destination is unknown.
  void SetMoveDestinations(MoveDestinations destinations) { move_destinations_ = std::move(destinations); }
  // Validates the config entries (errors name file and line), loads the stored receivers and
  // site routing, and starts listening. A port that cannot be opened is logged and shown in the
  // receiver's status; the others start.
  [[nodiscard]] Result<void> Start(const std::vector<ConfigEntry>& config);
  void Stop();
  // Reads the stored receivers, site routing and project anonymization again: what other
  // instances on the same index changed (config receivers stay as they are), applied like a
  // change made here. Returns whether anything had changed.
  [[nodiscard]] Result<bool> Reload();

  std::vector<Receiver> List() const;
  // By id, by "AE@port", or by AE title when only one receiver has it.
  [[nodiscard]] Result<Receiver> Get(const std::string& id) const;
  // "listening", "disabled" or "error: <reason>".
  std::string Status(const std::string& id) const;
  nlohmann::json ToJson(const Receiver& r) const;
  // Receivers that should listen and do not (port taken, held back by a conflict), with why:
  // what start-up reports, /api/health shows and /api/ready fails on.
  struct Problem {
    Receiver receiver;
    std::string error;
  };
  std::vector<Problem> NotListening() const;
  // Associations our receivers were asked for since `t`, accepted or refused (newest 256).
  std::vector<AssociationAttempt> AttemptsSince(std::chrono::steady_clock::time_point t) const {
    return attempts_.Since(t);
  }

  // With `dry_run`, every check (fields, conflicts with other receivers) and nothing stored or
  // started: whether the port can be opened is only known when it is.
  [[nodiscard]] Result<Receiver> Create(const nlohmann::json& body, bool dry_run = false);
  [[nodiscard]] Result<Receiver> Update(const std::string& id, const nlohmann::json& patch, bool dry_run = false);
  [[nodiscard]] Result<void> Remove(const std::string& id);

  nlohmann::json SiteRouting() const;
  [[nodiscard]] Result<nlohmann::json> SetSiteRouting(const nlohmann::json& body);
  std::shared_ptr<const RoutingRules> SiteRules() const;

  // A project's anonymization options (nullopt: the receiver's apply). Set nullopt to remove.
  std::optional<AnonymizationChoices> ProjectAnonymization(const std::string& project) const;
  [[nodiscard]] Result<void> SetProjectAnonymization(const std::string& project,
                                                     const std::optional<AnonymizationChoices>& a);

  // What every origin of the ingest path shares (retrieve jobs file their C-GET arrivals with it).
  IngestSite& site() { return site_; }

  // A receiver's staging idle time (60 s when it is gone).
  int IdleSeconds(const std::string& id) const;

 private:
  struct Listener {
    std::string bind;
    dicom::ServerTls tls;
    std::unique_ptr<dicom::AssociationServer> server;
  };
  dicom::Admission Admit(uint16_t port, const std::string& called, const std::string& calling,
                         const std::string& peer);  // Decide, and keep it in attempts_
  dicom::Admission Decide(uint16_t port, const std::string& called, const std::string& calling,
                          const std::string& peer);
  // Starts and stops listeners so that every port of an enabled receiver has one. Returns the
  // error of the first port that cannot be opened among `must_open` (empty: none required).
  [[nodiscard]] Result<void> Reconcile(uint16_t must_open = 0, bool log_failures = true) REQUIRES(change_mu_);
  void RetryFailedPorts();  // Reconcile when an enabled receiver is not listening
  // What the index holds for the receivers, as stored (compared to tell a change).
  struct Stored {
    std::vector<std::pair<int64_t, std::string>> receivers;
    std::string routing, projects;
    bool operator==(const Stored&) const = default;
  };
  [[nodiscard]] Result<Stored> ReadStored();
  // Makes `config` plus the stored receivers the running set (listeners follow at Reconcile).
  void Apply(const Stored& stored, std::vector<std::shared_ptr<const Receiver>> config) REQUIRES(change_mu_);
  [[nodiscard]] Result<void> CheckConflicts(const Receiver& r, const std::string& replacing) const;
  const Receiver* Find(const std::string& id) const REQUIRES(mu_);
  std::string NotFoundMessage(const std::string& id) const REQUIRES(mu_);

  Database& db_;
  int workers_;
  IngestSite site_;
  PipelineSink fallback_;  // required by the listener; every association goes through Admit()
  std::function<std::string(const std::string&)> preferred_;
  std::shared_ptr<dicom::MppsSink> mpps_;
  MoveDestinations move_destinations_;
  AssociationLog attempts_;

  Mutex change_mu_;  // one change (create/update/remove/start/stop) at a time
  mutable Mutex mu_;
  std::vector<std::shared_ptr<const Receiver>> receivers_ GUARDED_BY(mu_);
  std::map<std::string, std::string> errors_ GUARDED_BY(mu_);  // id → why not listening
  std::shared_ptr<const RoutingRules> site_rules_ GUARDED_BY(mu_);
  nlohmann::json site_routing_json_ GUARDED_BY(mu_);
  std::map<std::string, AnonymizationChoices> project_anonymization_ GUARDED_BY(mu_);
  std::map<uint16_t, Listener> listeners_ GUARDED_BY(change_mu_);
  std::vector<std::shared_ptr<const Receiver>> config_receivers_ GUARDED_BY(change_mu_);
  Stored stored_ GUARDED_BY(change_mu_);         // as last read
  Retirements retiring_ GUARDED_BY(change_mu_);  // listeners finishing their associations
  static constexpr std::chrono::seconds kRetryPeriod{10};
  std::unique_ptr<PeriodicTask> retry_;  // from Start() to Stop()
};

}  // namespace pb
