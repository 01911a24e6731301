#include "app/serve.h"

#include <malloc.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include <fmt/format.h>
#include <iostream>

#include <spdlog/spdlog.h>

#include "app/logging.h"
#include "archive/blob_store.h"
#include "archive/database.h"
#include "auth/accounts.h"
#include "config/settings.h"
#include "core/metrics.h"
#include "dicom/mpps.h"
#include "dicom/network.h"
#include "dicom/retrieve.h"
#include "dicomweb/metadata_cache.h"
#include "http/api.h"
#include "ingest/adoption.h"
#include "ingest/expectations.h"
#include "ingest/pipeline.h"
#include "ingest/staging.h"
#include "jobs/import_job.h"
#include "jobs/job_service.h"
#include "jobs/retrieve_job.h"
#include "jobs/send_job.h"
#include "mpps/mpps_steps.h"
#include "nodes/registry.h"
#include "os/data_dir_lock.h"
#include "receivers/periodic_task.h"
#include "receivers/receiver_service.h"

namespace pb {
namespace {

bool IsLoopback(const std::string& host) { return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0; }

// The site's anonymization secret: created once, kept in the index database (shared by every
// process of a site), never logged.
[[nodiscard]] Result<std::string> SiteSecret(Database& db) {
  unsigned char bytes[32];
  std::FILE* f = std::fopen("/dev/urandom", "rb");
  if (!f || std::fread(bytes, 1, sizeof bytes, f) != sizeof bytes) {
    if (f) std::fclose(f);
    return Fail(Code::kIoError, "cannot read /dev/urandom for the anonymization secret");
  }
  std::fclose(f);
  std::string hex;
  for (unsigned char b : bytes) hex += fmt::format("{:02x}", b);
  return db.CreateSetting("anonymization_secret", hex);
}

bool IsInside(const std::filesystem::path& file, const std::filesystem::path& dir) {
  std::error_code ec;
  auto f = std::filesystem::weakly_canonical(file, ec);
  auto d = std::filesystem::weakly_canonical(dir, ec);
  auto rel = f.lexically_relative(d);
  return !rel.empty() && *rel.begin() != "..";
}

int Fatal(const std::string& message) {
  if (JsonLogging())
    spdlog::critical("{}", message);
  else
    std::cerr << "pacsbridge: " << message << "\n";
  return 2;
}

// Says which receivers are not listening and why; with `strict`, that is fatal (returns false).
bool ReportReceivers(const ReceiverService& receivers, bool strict) {
  for (const Receiver& r : receivers.List()) {
    if (r.enabled && r.query_retrieve && !r.whitelist_enabled) {
      spdlog::warn(
          "receiver {}@{}: Query/Retrieve is on without a whitelist: any caller that reaches port {} may "
          "search the archive and move it to any registered node",
          r.ae_title, r.port, r.port);
    }
  }
  auto problems = receivers.NotListening();
  for (const auto& p : problems) {
    spdlog::error("receiver {}@{} (id {}) did not start: {}", p.receiver.ae_title, p.receiver.port, p.receiver.id,
                  p.error);
  }
  if (problems.empty() || !strict) return true;
  std::string list;
  for (const auto& p : problems)
    list += fmt::format("{}{}@{}: {}", list.empty() ? "" : "; ", p.receiver.ae_title, p.receiver.port, p.error);
  std::cerr << "pacsbridge: " << problems.size() << " receiver(s) did not start (strict mode): " << list << "\n";
  return false;
}

}  // namespace

int Serve(const std::string& config_file, bool strict_flag) {
  // Signals are taken synchronously by this thread; every thread started below inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  // Blocks of 1 MiB and more come from their own mappings and go back to the system when freed:
  // glibc otherwise raises this threshold to the largest block freed so far, and the next
  // password check's 19 MiB of Argon2 memory (and any big buffer) then stays resident.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  // Setting that threshold also fixes the trim threshold at 128 KiB: every buffer of a few
  // hundred KB freed at the top of the heap would go back to the system and fault in again on
  // the next part of an answer (measured: a 500-instance WADO-RS series 2.5 s instead of 0.13 s).
  // Up to 32 MiB of such free memory is kept.
  mallopt(M_TRIM_THRESHOLD, 32 << 20);

  auto settings = config_file.empty() ? Result<Settings>(DefaultSettings()) : LoadSettings(config_file);
  if (!settings) return Fatal(settings.error().message);
  const Settings& cfg = *settings;

  ConfigureLogging(cfg.log_level, cfg.log_format, cfg.instance_id);
  dicom::InitializeDicomNetwork(cfg.log_level);
  if (!dicom::LoadDataDictionary()) {
    spdlog::warn(
        "DCMTK's data dictionary could not be loaded (see DCMDICTPATH): DICOM keywords and "
        "value representations are unknown");
  }

  // Before anything reads, cleans or replays the data directory: one process owns it, or, on a
  // PostgreSQL index, several instances share it, each owning its own folder in it.
  const bool shared_dir = cfg.IsPostgres();
  const std::string instance_id = cfg.InstanceId();
  auto dir_lock = shared_dir ? DataDirLock::AcquireShared(cfg.data_dir) : DataDirLock::Acquire(cfg.data_dir);
  if (!dir_lock) return Fatal(dir_lock.error().message);
  std::optional<DataDirLock> instance_lock;
  if (shared_dir) {
    auto l = DataDirLock::AcquireInstance(cfg.data_dir, instance_id, std::chrono::seconds(60));
    if (!l) return Fatal(l.error().message);
    instance_lock.emplace(std::move(*l));
  }
  // An SQLite index outside the data directory is owned the same way (two servers with their own
  // data directories must not share one index either).
  std::optional<DataDirLock> db_lock;
  if (!cfg.IsPostgres() && !IsInside(cfg.DatabasePath(), cfg.data_dir)) {
    auto l = DataDirLock::AcquireFile(cfg.DatabasePath().string() + ".lock",
                                      "the index database " + cfg.DatabasePath().string(), "database.url");
    if (!l) return Fatal(l.error().message);
    db_lock.emplace(std::move(*l));
  }
  // The HTTP port next, exclusively: a server that cannot serve its API starts nothing.
  http::HttpApi api;
  if (!cfg.https_cert_file.empty()) {
    if (auto https = api.UseHttps(cfg.https_cert_file, cfg.https_key_file); !https) return Fatal(https.error().message);
  } else if (!IsLoopback(cfg.http_host)) {
    spdlog::warn(
        "HTTP listens on {}, beyond this machine, without HTTPS: passwords, tokens and session cookies "
        "cross the network in clear text (set server.https_cert_file and server.https_key_file)",
        cfg.http_host);
  }
  auto port = api.Bind(cfg.http_host, cfg.http_port);
  if (!port) return Fatal(port.error().message);

  BlobStore blobs(cfg.data_dir, shared_dir ? instance_id : "");
  auto cleaned = blobs.Prepare();
  if (!cleaned) return Fatal(cleaned.error().message);
  if (*cleaned > 0) spdlog::info("removed {} unfinished temp file(s) of an earlier run", *cleaned);
  auto db = cfg.IsPostgres() ? Database::OpenPostgres(cfg.database_url) : Database::Open(cfg.DatabasePath(), cfg.fsync);
  // A PostgreSQL server that cannot be reached yet (both starting at boot) or is down: wait for
  // it, saying so, until it answers or a signal asks us to stop. Anything else ends the start.
  for (int delay_s = 1; !db && db.error().code == Code::kUnavailable; delay_s = std::min(delay_s * 2, 30)) {
    spdlog::warn("{}: trying again in {} s", db.error().message, delay_s);
    timespec wait{delay_s, 0};
    if (sigtimedwait(&signals, nullptr, &wait) > 0) return 0;  // stopped before anything ran
    db = Database::OpenPostgres(cfg.database_url);
  }
  if (!db) return Fatal(db.error().message);
  if (cfg.IsPostgres()) spdlog::info("index database: {}", Database::RedactedUrl(cfg.database_url));
  if (shared_dir) {
    // Servers on one database share one data directory: the index names files in it. The first
    // start records the directory's id in the index; a server on another directory is refused.
    auto dir_id = DataDirLock::DirectoryId(cfg.data_dir);
    if (!dir_id) return Fatal(dir_id.error().message);
    auto recorded = (*db)->CreateSetting("data_directory_id", *dir_id);
    if (!recorded) return Fatal(recorded.error().message);
    if (*recorded != *dir_id) {
      return Fatal(
          fmt::format("the index database {} belongs to another data directory (id {}; {} holds id {}): servers on one "
                      "database share one data directory, where the index's files are (mount it here and set [server] "
                      "data_dir to it)",
                      Database::RedactedUrl(cfg.database_url), *recorded, cfg.data_dir.string(), *dir_id));
    }
  }
  // Accounts: the first start makes "admin" (with [auth] admin_password, or a random password
  // shown once here and kept in a file only the service's user can read until it is changed).
  auth::AccountSettings account_settings;
  account_settings.session_idle = std::chrono::minutes(cfg.session_idle_minutes);
  account_settings.session_max = std::chrono::hours(cfg.session_max_hours);
  account_settings.initial_password_file = cfg.data_dir / "initial-admin-password";
  auth::Accounts accounts(**db, SystemClock(), account_settings);
  if (auto loaded = accounts.Load(); !loaded) return Fatal(loaded.error().message);
  bool initial_opens = true;
  auto made = accounts.Bootstrap(cfg.admin_password, &initial_opens);
  if (!made) return Fatal(made.error().message);
  // A JSON log goes to a log shipper, and under systemd stderr goes to the journal
  // (JOURNAL_STREAM names it): neither is a person at a console, so the password stays in its file.
  if (*made && (JsonLogging() || std::getenv("JOURNAL_STREAM") != nullptr)) {
    spdlog::warn(
        "created the account \"admin\" with a random password, kept in {} (readable by this user only) "
        "until it is changed: change it after logging in",
        account_settings.initial_password_file.string());
  } else if (*made) {
    // Straight to the console, not through the log: shown once, never in a log file.
    std::fprintf(stderr,
                 "\nPACS Bridge: created the account \"admin\" with the password %s (shown once: change it after "
                 "logging in; until then it is also in %s, readable by this user only)\n\n",
                 (*made)->c_str(), account_settings.initial_password_file.c_str());
  } else if (cfg.admin_password && !initial_opens) {
    spdlog::warn(
        "[auth] admin_password is only the initial password: it no longer opens the account \"admin\" "
        "(changed since, or the account was removed); the accounts are kept in the index");
  }
  auto nodes = NodeRegistry::Create(**db, cfg.nodes);
  if (!nodes) return Fatal(nodes.error().message);

  // WADO-RS metadata is written ahead, after indexing (it outlives the pipeline, which pokes it).
  dicomweb::MetadataCache metadata(**db, blobs);
  IngestOptions ingest_options{cfg.duplicates, cfg.fsync};
  if (const char* delay = std::getenv("PACSBRIDGE_TEST_INDEX_DELAY_MS")) {
    ingest_options.test_index_delay = std::chrono::milliseconds(std::atol(delay));
    spdlog::warn("PACSBRIDGE_TEST_INDEX_DELAY_MS: the indexer waits {} ms before each batch (tests only)",
                 ingest_options.test_index_delay.count());
  }
  IngestPipeline pipeline(blobs, **db, ingest_options);
  pipeline.SetIndexedListener([&metadata] { metadata.Poke(); });
  auto recovered = pipeline.Recover();
  if (!recovered) return Fatal("cannot index the instances of the last run's journal: " + recovered.error().message);
  if (*recovered > 0) spdlog::info("indexed {} instance(s) stored just before the last stop", *recovered);
  // What instances sharing the directory left journaled when they stopped: now, then every 10 s
  // (an instance killed while this one runs is taken over without a restart).
  std::optional<PeriodicTask> adoption;
  if (shared_dir) {
    (void)AdoptStoppedInstances(cfg.data_dir, instance_id, pipeline);
    adoption.emplace(std::chrono::seconds(10), [&cfg, &instance_id, &pipeline] {
      (void)AdoptStoppedInstances(cfg.data_dir, instance_id, pipeline);
    });
  }
  auto secret = SiteSecret(**db);
  if (!secret) return Fatal(secret.error().message);
  ExpectationRegistry expectations;
  ReceiverService* receivers_ptr = nullptr;
  StagingArea staging(pipeline, **db, blobs, [&receivers_ptr](const std::string& id) {
    return receivers_ptr ? receivers_ptr->IdleSeconds(id) : 60;
  });
  if (shared_dir) {
    // A session belongs to the instance that opened it while that instance runs (its folder's
    // lock is held); one that stopped has its journals indexed before its sessions are taken.
    staging.ShareWith(
        instance_id, [&cfg, &instance_id, &pipeline](const std::string& other, const std::function<void()>& claim) {
          // Unknown counts as running: nothing is taken over early.
          return AdoptInstance(cfg.data_dir, other, instance_id, pipeline, nullptr, claim) == Takeover::kStopped;
        });
  }
  auto staged = staging.Recover();
  if (!staged) return Fatal("cannot read the staging area: " + staged.error().message);
  if (*staged > 0) spdlog::info("{} staged session(s) waiting to be archived", *staged);
  ReceiverService receivers(pipeline, **db, staging, expectations, cfg.max_associations, *secret);
  receivers_ptr = &receivers;
  NodeRegistry& registry = **nodes;
  receivers.SetPreferredTransferSyntax([&registry](const std::string& calling_ae) {
    for (const Node& n : registry.List()) {
      if (n.ae_title == calling_ae && !n.preferred_transfer_syntax.empty()) {
        return dicom::TransferSyntaxUid(n.preferred_transfer_syntax);
      }
    }
    return std::string();
  });
  auto mpps = std::make_shared<MppsSteps>(**db, SystemClock());
  // The MPPS manager role: what a receiver with mpps_forward accepts goes on to that node.
  mpps->StartForwarding([&registry, ae = cfg.ae_title](const std::string& name, bool create, const std::string& uid,
                                                       const dicom::FlatItem& attributes) -> Result<dicom::NAnswer> {
    auto n = registry.Get(name);
    if (!n) return Fail(Code::kNotFound, fmt::format("no node '{}'", name));
    if (n->type != NodeType::kDimse || !n->mpps) {
      return Fail(Code::kConflict, fmt::format("node '{}' does not accept MPPS (mpps off)", name));
    }
    return dicom::SendMpps(ToPeerRequest(*n, ae), create, uid, attributes, n->mwl_charset);
  });
  receivers.SetMppsSink(mpps);
  // Query/Retrieve: a C-MOVE goes to the DIMSE node with the Move Destination's AE title.
  receivers.SetMoveDestinations([&registry](const std::string& ae,
                                            const std::string& our_ae) -> Result<dicom::MoveTarget> {
    std::string why;
    for (const Node& n : registry.List()) {
      if (n.ae_title != ae) continue;
      if (n.type != NodeType::kDimse) {
        why = fmt::format("node '{}' has AE title {} but is a DICOMweb node: C-MOVE sends to DIMSE nodes", n.name, ae);
      } else {
        dicom::PeerRequest peer = ToPeerRequest(n, our_ae);
        peer.limiter = NodeRateLimiter(n.name, n.max_bytes_per_second);  // the node's throttle holds here too
        return dicom::MoveTarget{std::move(peer), dicom::TransferSyntaxUid(n.preferred_transfer_syntax),
                                 n.allow_lossy_compression};
      }
    }
    if (why.empty()) {
      why = fmt::format(
          "move destination '{}' is not a node here: register it as a node with AE title {} and its "
          "host and port",
          ae, ae);
    }
    return Fail(Code::kNotFound, why);
  });
  if (auto r = receivers.Start(cfg.receivers); !r) return Fatal(r.error().message);
  if (!ReportReceivers(receivers, strict_flag || cfg.strict)) {
    receivers.Stop();
    return 2;
  }
  staging.StartTicker();
  // On a shared index, what other instances change in nodes and receivers applies here too,
  // within two seconds (read again when what is stored differs from what was last read).
  std::optional<PeriodicTask> site_watch;
  if (shared_dir) {
    site_watch.emplace(std::chrono::seconds(2), [&registry, &receivers, failing = false]() mutable {
      auto nodes_changed = registry.Reload();
      auto receivers_changed = receivers.Reload();
      if (!nodes_changed || !receivers_changed) {
        if (!failing) {
          spdlog::warn("cannot read nodes and receivers changed by other instances: {}",
                       (!nodes_changed ? nodes_changed : receivers_changed).error().message);
        }
        failing = true;
        return;
      }
      if (failing) spdlog::info("nodes and receivers are read from the index again");
      failing = false;
      if (*nodes_changed) spdlog::info("nodes changed in the index: read again");
      if (*receivers_changed) spdlog::info("receivers or routing changed in the index: read again");
    });
  }
  JobServiceOptions job_options;
  job_options.workers = cfg.job_workers;
  job_options.instance_id = instance_id;
  job_options.lease = std::chrono::seconds(cfg.job_lease_seconds);
  job_options.shared = shared_dir;
  job_options.policy = [&registry](const std::string& name) {
    NodeJobPolicy p;
    if (auto n = registry.Get(name)) {
      p.max_connections = n->max_associations;
      p.max_parallel_retrieves = n->max_parallel_retrieves;
      p.utilization_percent = n->utilization_percent;
      p.attempts = n->retry.attempts;
      p.first_delay_seconds = n->retry.first_delay_seconds;
      p.max_delay_seconds = n->retry.max_delay_seconds;
      if (!n->schedule.is_null()) {
        if (auto parsed = Schedule::Parse(n->schedule))
          p.schedule = std::make_shared<const Schedule>(std::move(*parsed));
      }
    }
    return p;
  };
  JobService jobs(**db, job_options);
  RetrieveRunner retrieve(
      registry, pipeline, **db, cfg.ae_title, [&receivers] { return receivers.List(); }, expectations, receivers.site(),
      [&receivers](auto since) { return receivers.AttemptsSince(since); });
  jobs.Register("retrieve", retrieve);
  SendRunner send(registry, pipeline, **db, blobs, cfg.ae_title);
  jobs.Register("send", send);
  ImportRunner import(registry, **db, TransportContext{cfg.ae_title, {}, {}});
  import.SetJobs(jobs);
  jobs.Register("import", import);
  auto interrupted = jobs.Start();
  if (!interrupted) return Fatal(interrupted.error().message);
  if (*interrupted > 0) {
    spdlog::warn("{} job(s) were running when the server last stopped: they resume where they were", *interrupted);
  }
  // Finished jobs older than [jobs] keep_days go, once at start and then every hour.
  auto prune = [&jobs, days = cfg.job_keep_days] {
    auto n = jobs.Prune(days);
    if (!n)
      spdlog::warn("cannot delete old jobs: {}", n.error().message);
    else if (*n > 0)
      spdlog::info("{} job(s) finished more than {} day(s) ago were deleted", *n, days);
  };
  prune();
  PeriodicTask pruning(std::chrono::hours(1), prune);
  // GET /metrics: what is read when scraped (registered before the API serves, gone before
  // what they read).
  auto queue_metric = metrics::Default().AddCollector(
      "pacsbridge_index_queue_depth", "Instances stored and journaled, not yet in the index.", {}, [&pipeline] {
        return metrics::Samples{{{}, static_cast<double>(pipeline.QueueDepth())}};
      });
  auto jobs_metric = metrics::Default().AddCollector(
      "pacsbridge_jobs", "Jobs by state (finished ones until they are pruned).", {"state"}, [&db] {
        metrics::Samples out;
        auto counts = (*db)->CountJobsByState();
        if (!counts) return out;  // no value rather than a wrong one
        for (const char* state : {"queued", "waiting", "running", "succeeded", "partial", "failed", "canceled"}) {
          const auto it = counts->find(state);
          out.push_back({{state}, it != counts->end() ? static_cast<double>(it->second) : 0.0});
        }
        return out;
      });
  // The index's connections: the read pool and the one writer (size, held now, taken, waited).
  auto pool_samples = [&db](auto field) {
    const Database::PoolStatistics p = (*db)->Pools();
    return metrics::Samples{{{"read"}, field(p.read)}, {{"write"}, field(p.write)}};
  };
  using Use = Database::ConnectionUse;
  auto pool_size_metric = metrics::Default().AddCollector(
      "pacsbridge_db_connections", "Index database connections, by pool (read: readers; write: the writer).", {"pool"},
      [pool_samples] { return pool_samples([](const Use& u) { return double(u.size); }); });
  auto pool_in_use_metric = metrics::Default().AddCollector(
      "pacsbridge_db_connections_in_use", "Index database connections held now, by pool.", {"pool"},
      [pool_samples] { return pool_samples([](const Use& u) { return double(u.in_use); }); });
  auto pool_waiting_metric = metrics::Default().AddCollector(
      "pacsbridge_db_connections_waiting", "Connections asked for now while none was free, by pool.", {"pool"},
      [pool_samples] { return pool_samples([](const Use& u) { return double(u.waiting); }); });
  auto pool_taken_metric = metrics::Default().AddCollector(
      "pacsbridge_db_connection_acquisitions_total", "Index database connections taken, by pool.", {"pool"},
      [pool_samples] { return pool_samples([](const Use& u) { return double(u.acquisitions); }); }, "counter");
  auto pool_wait_metric = metrics::Default().AddCollector(
      "pacsbridge_db_connection_wait_seconds_total",
      "Time spent waiting for an index database connection (all were held), by pool.", {"pool"},
      [pool_samples] { return pool_samples([](const Use& u) { return u.wait_seconds; }); }, "counter");
  if (auto started = api.Start(http::Services{cfg, registry, **db, blobs, receivers, pipeline, jobs, staging, import,
                                              accounts, *mpps, metadata});
      !started) {
    return Fatal(started.error().message);
  }
  metadata.Start();
  if (!cfg.dicomweb_stow_receiver.empty() && !receivers.Get(cfg.dicomweb_stow_receiver)) {
    spdlog::warn(
        "[dicomweb] stow_receiver '{}' is not a receiver: STOW-RS answers 503 until one with that name "
        "(or AE title) exists",
        cfg.dicomweb_stow_receiver);
  }
  if (auto problems = receivers.NotListening(); !problems.empty()) {
    spdlog::warn(
        "PACS Bridge running, NOT ready: {} receiver(s) not listening (see above; /api/health lists them): "
        "HTTP on {}:{}, AE title {}, data in {}",
        problems.size(), cfg.http_host, *port, cfg.ae_title, cfg.data_dir.string());
  } else {
    spdlog::info("PACS Bridge ready: HTTP on {}:{}, AE title {}, data in {}, instance {}", cfg.http_host, *port,
                 cfg.ae_title, cfg.data_dir.string(), instance_id);
  }

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("{} received: stopping (finishing in-flight transfers)", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  jobs.ReleaseWaiters();  // a GET /api/jobs/{id}?wait= in progress answers now
  api.Stop();
  pruning.Stop();
  if (adoption) adoption->Stop();
  if (site_watch) site_watch->Stop();
  jobs.Stop();  // running jobs stop between instances and resume at the next start
  receivers.Stop();
  mpps->StopForwarding();  // what modalities reported is passed on before we go
  staging.Stop();
  spdlog::info("stopped");
  return 0;
}

}  // namespace pb
