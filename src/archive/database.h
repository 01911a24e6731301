#pragma once
// The index database (SQLite in WAL mode, or PostgreSQL, through SOCI). Thread-safe: readers take a connection
// from a small pool; all writes of the index go through one writer connection, used by one
// thread at a time (the ingest indexer), so they can be grouped into one transaction.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "archive/index_query.h"
#include "archive/records.h"
#include "core/result.h"

namespace pb {

class Database {
 public:
  // Opens (creating if needed) and migrates the database. `full_sync` makes every commit durable
  // against power loss (synchronous=FULL), otherwise against process crashes (NORMAL).
  [[nodiscard]] static Result<std::unique_ptr<Database>> Open(const std::filesystem::path& file, bool full_sync);
  // Opens (creating the schema if needed) a PostgreSQL database by its URL
  // (postgresql://user:password@host:port/database?params, as libpq reads it).
  [[nodiscard]] static Result<std::unique_ptr<Database>> OpenPostgres(const std::string& url);
  static bool IsPostgresUrl(std::string_view url);
  // The URL as logs and errors may show it: the password replaced by "***".
  static std::string RedactedUrl(std::string_view url);
  // Whether the database behind this is PostgreSQL (else SQLite).
  bool IsPostgres() const;
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // How the connections are used, since the start (GET /metrics): the read pool and the writer.
  struct ConnectionUse {
    int size = 0;               // connections
    int in_use = 0;             // held now
    int waiting = 0;            // asked for now, none free
    uint64_t acquisitions = 0;  // times one was taken
    double wait_seconds = 0;    // time spent waiting for one, in all
  };
  struct PoolStatistics {
    ConnectionUse read, write;
  };
  PoolStatistics Pools() const;

  // Nodes, as JSON text by name.
  [[nodiscard]] Result<std::vector<std::pair<std::string, std::string>>> LoadNodes();
  // Writes `name`'s body; when `replaces` names another row (a rename), removes it atomically
  // and carries the node's jobs and run-time state over to the new name, so that jobs always
  // show (and retry against) the node's current name.
  [[nodiscard]] Result<void> SaveNode(const std::string& name, const std::string& body,
                                      const std::string& replaces = {});
  [[nodiscard]] Result<void> DeleteNode(const std::string& name);

  // Index reads.
  [[nodiscard]] Result<std::vector<StudyRow>> FindStudies(const StudyFilter& filter);
  // `projects`, when not empty: only series filed in one of them (an account's limit).
  [[nodiscard]] Result<std::vector<SeriesRow>> ListSeries(const std::string& study_uid,
                                                          const std::vector<std::string>& projects = {});
  [[nodiscard]] Result<std::vector<InstanceRow>> ListInstances(const std::string& series_uid,
                                                               const std::vector<std::string>& projects = {});
  [[nodiscard]] Result<std::optional<InstanceRow>> GetInstance(const std::string& sop_uid,
                                                               const std::vector<std::string>& projects = {});
  [[nodiscard]] Result<bool> StudyExists(const std::string& study_uid);
  [[nodiscard]] Result<bool> SeriesExists(const std::string& series_uid);

  // The index queried in DICOM terms (index_query.h: C-FIND and QIDO-RS over the archive).
  [[nodiscard]] Result<std::vector<IndexAnswer>> QueryIndex(const IndexQuery& query);
  // The instances a query selects, as the index holds them (files, classes, syntaxes), whatever
  // its level: what a C-GET or C-MOVE sends.
  [[nodiscard]] Result<std::vector<InstanceRow>> QueryInstances(const IndexQuery& query);

  // The instances a query selects with their metadata (json empty where none is written yet),
  // in the index's order.
  [[nodiscard]] Result<std::vector<MetadataRow>> QueryMetadata(const IndexQuery& query);
  // Up to `limit` instances with a key above `after_pk` that have no metadata yet, oldest first.
  [[nodiscard]] Result<std::vector<MetadataRow>> InstancesWithoutMetadata(int limit, int64_t after_pk = 0);
  // Writes metadata rows, each only if its instance still has the file it was made from (the
  // same file_path, received_at and version): a replaced instance is not given its old file's
  // metadata.
  [[nodiscard]] Result<void> PutMetadata(const std::vector<MetadataRow>& rows);

  // Which of these SOP Instance UIDs the index holds.
  [[nodiscard]] Result<std::vector<std::string>> PresentInstances(const std::vector<std::string>& sop_uids);

  // Jobs (job_table.cpp). Insert returns the new id; Update writes every mutable column.
  [[nodiscard]] Result<int64_t> InsertJob(const JobRow& job);
  [[nodiscard]] Result<void> UpdateJob(const JobRow& job);
  [[nodiscard]] Result<std::optional<JobRow>> GetJob(int64_t id);
  [[nodiscard]] Result<std::vector<JobRow>> ListJobs(const JobFilter& filter);  // newest first
  // Writes `job` only while the stored row is in one of `states` (a cancel, a claim and a pause
  // cannot overwrite each other); false when it was not.
  // With `unpaused`, only while the stored row is not paused either (a claim never undoes a
  // pause that reached the table first).
  // With `owned_by`, only while the stored row's owner is that instance (a run whose job was
  // taken over by another instance cannot write it any more).
  // With `attempts_before` (>= 0), only while the stored row's attempts are still that many: a
  // claim from a read that another instance's claim, run and requeue overtook fails rather than
  // writing the older read's progress and history.
  // With `limit` (a claim when instances share the database), only while the running jobs of
  // the node hold fewer connections than its maximum; the job then holds one. PostgreSQL: the
  // node is locked for the check and the write, so that instances claiming at once count each
  // other's claims.
  [[nodiscard]] Result<bool> UpdateJobIf(const JobRow& job, const std::vector<std::string>& states,
                                         bool unpaused = false, const std::string& owned_by = {},
                                         int attempts_before = -1, const NodeConnectionLimit* limit = nullptr);
  // More connections for running job `id` on its node (`wanted` > 0): as many as keep the node's
  // running jobs within `limit` (locked as for a claim), up to `wanted`; returns how many. Fewer
  // (`wanted` < 0: gives back -wanted, keeping one): returns -(how many were given back).
  // Only while `owner` runs the job (0 otherwise).
  [[nodiscard]] Result<int> TakeNodeConnections(int64_t id, const std::string& owner, const NodeConnectionLimit& limit,
                                                int wanted);
  // Several instances: the running jobs `ids` of `owner` (its runs under way) are held until
  // `until`; returns the ids renewed (those still running and its own).
  [[nodiscard]] Result<std::vector<int64_t>> RenewJobLeases(const std::string& owner, const std::string& until,
                                                            const std::vector<int64_t>& ids);
  // The database server's clock, in microseconds since 1970 (UTC): leases are measured on it, so
  // that instances on hosts whose clocks differ agree on when one runs out.
  [[nodiscard]] Result<int64_t> ServerTimeMicros();
  // Several instances: for each node, the instances that transfer to it at `lease_now`: those
  // running a retrieve or a send to it whose lease has not ended, and those whose published
  // transfers (PublishTransfers) name it and have not run out.
  [[nodiscard]] Result<std::map<std::string, std::vector<std::string>>> InstancesTransferring(
      const std::string& lease_now);
  // Several instances: `change` reads and changes `node`'s utilization share (empty when never
  // saved) under the node's lock, told how many of the node's jobs run on any instance (leases
  // not ended at `lease_now`) other than job `job` run by `owner`; what it leaves is saved.
  [[nodiscard]] Result<void> UpdateNodeDuty(const std::string& node, const std::string& lease_now, int64_t job,
                                            const std::string& owner,
                                            const std::function<void(NodeDutyRecord&, int running)>& change);
  // Several instances: the nodes `instance` transfers to now by any path (its jobs, the C-MOVEs
  // it serves, DICOMweb), held until `until`; replaces what it published before (none: it
  // transfers to no node).
  [[nodiscard]] Result<void> PublishTransfers(const std::string& instance, const std::vector<std::string>& nodes,
                                              const std::string& until);
  // Running jobs whose lease ended before `now_iso` (their instance stopped renewing it).
  [[nodiscard]] Result<std::vector<JobRow>> ExpiredJobLeases(const std::string& now_iso);
  // Writes state, history, interrupted, error, finished_at, paused and owner of `job` (lease and
  // request cleared) only while it is still running under the expired lease read (its owner did
  // not renew it meanwhile).
  [[nodiscard]] Result<bool> TakeOverJob(const JobRow& job, const std::string& expired_owner,
                                         const std::string& expired_lease);
  // Leaves a request ("cancel", "pause") for the instance that runs job `id`; false when the job
  // does not run (any more).
  [[nodiscard]] Result<bool> RequestJob(int64_t id, const std::string& what);
  // The requests left for the jobs `owner` ran last (running or not any more), taken (cleared):
  // (id, what).
  [[nodiscard]] Result<std::vector<std::pair<int64_t, std::string>>> TakeJobRequests(const std::string& owner);
  // Targeted changes of a queued or waiting job, each one UPDATE that touches only its own
  // columns (a pause, a resume, a reorder and a cancel cannot undo each other); false when the
  // job was not in a state that allows it.
  [[nodiscard]] Result<bool> PauseJob(int64_t id);
  [[nodiscard]] Result<bool> ResumeJob(int64_t id);
  [[nodiscard]] Result<bool> ReorderJob(int64_t id, int priority, int64_t queue_order);
  [[nodiscard]] Result<bool> CancelPendingJob(int64_t id, const std::string& error, const std::string& finished_at);
  // Jobs a worker may start at `now_iso`, in the order they should run: queued ones and waiting
  // ones whose next attempt is due, not paused; by priority, then queue order.
  [[nodiscard]] Result<std::vector<JobRow>> RunnableJobs(const std::string& now_iso, int limit, int offset = 0);
  // The earliest next attempt of a waiting job ("" when none waits for a time).
  [[nodiscard]] Result<std::string> NextJobAttempt();
  [[nodiscard]] Result<std::map<std::string, int64_t>> CountJobsByState();  // states with no job absent
  // A queue position at the front or the back of the queued jobs of a priority.
  [[nodiscard]] Result<int64_t> JobQueueEdge(int priority, bool front);
  // Per-instance facts of a job (a send's confirmations): added in one transaction; read back.
  [[nodiscard]] Result<void> AddJobItems(int64_t job_id, const std::vector<std::pair<std::string, std::string>>& items);
  [[nodiscard]] Result<std::map<std::string, std::string>> JobItems(int64_t job_id);
  // Jobs of a node waiting for its availability window go back to the queue (its schedule
  // changed). Returns how many.
  [[nodiscard]] Result<int> RequeueScheduleWaits(const std::string& node);
  // Deletes jobs that ended before `before_iso`, with their items. Returns how many.
  [[nodiscard]] Result<int> PruneJobs(const std::string& before_iso);
  // A job waiting for the jobs it is made of goes back to the queue once none of them is queued,
  // waiting or running any more. Returns whether it did.
  [[nodiscard]] Result<bool> WakeParentJob(int64_t parent_id);

  // Imports (job_table.cpp): the rows of an import's sheet. Insert ignores rows already there.
  [[nodiscard]] Result<void> InsertImportRows(const std::vector<ImportRowRecord>& rows);
  [[nodiscard]] Result<std::vector<ImportRowRecord>> ImportRows(int64_t job_id);  // by line
  [[nodiscard]] Result<void> UpdateImportRow(const ImportRowRecord& row);         // state, error, matches, choice
  // Records the choices of a confirmation and queues the import again, only while it waits for
  // one (false otherwise; nothing written). A paused import keeps waiting until it is resumed.
  [[nodiscard]] Result<bool> ConfirmImport(int64_t job_id, const std::map<int, std::string>& choices);

  // The history of a node's connection tests (migration 006), newest first; `keep`: how many
  // of the newest AddNodeTest leaves for the node.
  [[nodiscard]] Result<void> AddNodeTest(const std::string& node, const NodeTestRecord& test, int keep);
  [[nodiscard]] Result<std::vector<NodeTestRecord>> NodeTests(const std::string& node, int limit);
  [[nodiscard]] Result<std::map<std::string, NodeTestRecord>> LatestNodeTests();  // by node name

  // MPPS steps (mpps_table.cpp, migration 008): one row per direction and SOP Instance UID;
  // PutMpps inserts or replaces it. Lists are newest change first (a step sent before the same
  // step received, when both changed in the same second).
  [[nodiscard]] Result<void> PutMpps(const MppsRecord& step);
  [[nodiscard]] Result<std::optional<MppsRecord>> GetMpps(const std::string& direction,
                                                          const std::string& sop_instance_uid);
  [[nodiscard]] Result<std::vector<MppsRecord>> ListMpps(const MppsFilter& filter);

  // Accounts (account_table.cpp, migration 007). Users are unique by name, case ignored:
  // InsertUser returns false, writing nothing, when the name is taken. Deleting a user deletes
  // its sessions and tokens in the same transaction.
  [[nodiscard]] Result<std::vector<UserRecord>> LoadUsers();
  [[nodiscard]] Result<bool> InsertUser(const UserRecord& user);
  // Role, hash and password_changed_at, by name; with `end_sessions_but` (an id hash, or ""
  // for none kept) the user's other sessions end in the same transaction.
  [[nodiscard]] Result<void> UpdateUser(const UserRecord& user, const std::string* end_sessions_but = nullptr);
  [[nodiscard]] Result<void> SetUserLastLogin(const std::string& username, const std::string& at);
  [[nodiscard]] Result<void> DeleteUser(const std::string& username);
  [[nodiscard]] Result<std::vector<SessionRecord>> LoadSessions();
  [[nodiscard]] Result<void> InsertSession(const SessionRecord& session);
  [[nodiscard]] Result<void> TouchSession(const std::string& id_hash, int64_t last_seen_s);
  [[nodiscard]] Result<void> DeleteSession(const std::string& id_hash);
  [[nodiscard]] Result<void> DeleteSessionsBefore(int64_t expires_s);  // those ended by then
  [[nodiscard]] Result<std::vector<TokenRecord>> LoadTokens();
  [[nodiscard]] Result<void> InsertToken(const TokenRecord& token);
  [[nodiscard]] Result<void> TouchToken(const std::string& id, int64_t last_used_s);
  [[nodiscard]] Result<void> DeleteToken(const std::string& id);
  [[nodiscard]] Result<void> AddAudit(const AuditRecord& entry);
  [[nodiscard]] Result<std::vector<AuditRecord>> ListAudit(const AuditFilter& filter);  // newest first

  // Run-time facts about nodes ("" when unknown).
  [[nodiscard]] Result<std::string> GetNodeState(const std::string& node, const std::string& key);
  [[nodiscard]] Result<void> SetNodeState(const std::string& node, const std::string& key, const std::string& value);

  // Receivers created through the API, as JSON text by id (site_table.cpp).
  [[nodiscard]] Result<std::vector<std::pair<int64_t, std::string>>> LoadReceivers();
  [[nodiscard]] Result<int64_t> InsertReceiver(const std::string& body);
  [[nodiscard]] Result<void> UpdateReceiver(int64_t id, const std::string& body);
  [[nodiscard]] Result<void> DeleteReceiver(int64_t id);

  // Site-wide settings by key (JSON text); "" when unset. CreateSetting keeps an existing value
  // and returns whichever value is stored (so concurrent first uses agree).
  [[nodiscard]] Result<std::string> GetSetting(const std::string& key);
  // A cheap read that fails when the database cannot be used (readiness probe).
  [[nodiscard]] Result<void> Ping();
  [[nodiscard]] Result<void> SetSetting(const std::string& key, const std::string& value);
  [[nodiscard]] Result<std::string> CreateSetting(const std::string& key, const std::string& value);

  // The archive by labels: projects, a project's subjects, a subject's sessions, a session's
  // series.
  [[nodiscard]] Result<std::vector<LabelCount>> ListProjects();
  [[nodiscard]] Result<std::vector<LabelCount>> ListSubjects(const std::string& project);
  [[nodiscard]] Result<std::vector<LabelCount>> ListSessions(const std::string& project, const std::string& subject);
  [[nodiscard]] Result<std::vector<SeriesRow>> ListSessionSeries(const std::string& project, const std::string& subject,
                                                                 const std::string& session);
  // Those of `series_uids` the archive has, with their labels (empty project: not filed yet).
  [[nodiscard]] Result<std::map<std::string, FiledSeries>> GetFiledSeries(const std::vector<std::string>& series_uids);

  // The staging area's bookkeeping (the files live under data_dir/staging/<id>/).
  // The open session with these labels for this receiver, opened by this instance (`owner`: its
  // id among servers sharing the data directory, "" otherwise), created when there is none.
  [[nodiscard]] Result<StagedSession> OpenStagedSession(const std::string& receiver, const std::string& project,
                                                        const std::string& subject, const std::string& session,
                                                        const std::string& owner = "");
  // Gives session `id` to instance `to` while it is still `from`'s; whether it was.
  [[nodiscard]] Result<bool> ClaimStagedSession(int64_t id, const std::string& from, const std::string& to);
  // Records an instance (replacing one with the same SOP Instance UID) and updates the
  // session's counts and last arrival. On its own transaction: the start-up scan of the staging
  // area uses it; the ingest indexer writes staged rows in its batches (WriteBatch::PutStaged).
  [[nodiscard]] Result<void> AddStagedInstance(const StagedInstance& inst);
  [[nodiscard]] Result<std::vector<StagedSession>> ListStagedSessions();
  [[nodiscard]] Result<std::optional<StagedSession>> GetStagedSession(int64_t id);
  [[nodiscard]] Result<std::vector<StagedInstance>> ListStagedInstances(int64_t session_id);
  [[nodiscard]] Result<void> SetStagedState(int64_t id, const std::string& state);
  [[nodiscard]] Result<void> DeleteStagedSession(int64_t id);

  // Index writes, for the ingest indexer only (single thread).
  class WriteBatch;
  [[nodiscard]] Result<std::unique_ptr<WriteBatch>> BeginBatch();

  // The engine's state: database_impl.h, internal to src/archive (its helpers take it).
  struct Impl;

 private:
  explicit Database(std::unique_ptr<Impl> impl);
  // UPDATE jobs SET <set> WHERE id = :id AND <condition>; `values` bind the :names of `set`.
  [[nodiscard]] Result<bool> Change(int64_t id, const std::string& set, const std::string& condition,
                                    const std::vector<std::string>& values);
  std::unique_ptr<Impl> impl_;
};

// One transaction of index writes. Destroying it without Commit() rolls back.
class Database::WriteBatch {
 public:
  virtual ~WriteBatch() = default;
  // Inserts or replaces the instance and creates/updates its patient, study and series.
  [[nodiscard]] virtual Result<void> Put(const InstanceRecord& rec) = 0;
  // Records a staged instance like AddStagedInstance (the session's counts are updated at
  // Commit). A row for a session that no longer exists (discarded meanwhile) is skipped.
  [[nodiscard]] virtual Result<void> PutStaged(const StagedInstance& inst) = 0;
  [[nodiscard]] virtual Result<void> Commit() = 0;
};

}  // namespace pb
