// Database: the jobs table, node run-time state, and instance presence checks.
#include <algorithm>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <soci/soci.h>

#include "archive/database_impl.h"
#include "core/thread_annotations.h"

namespace pb {

using db::DbError;
using db::Int;
using db::NowIso;
using db::Str;

namespace {

const char* const kJobColumns =
    "id, type, state, node, params, progress, result, error, interrupted, priority, attempts, "
    "COALESCE(retry_of, 0), created_at, started_at, finished_at, updated_at, history, paused, "
    "queue_order, not_before, wait_reason, parent_id, owner, lease_until, requested";

JobRow ToJob(const soci::row& r) {
  JobRow j;
  j.id = Int(r, 0);
  j.type = Str(r, 1);
  j.state = Str(r, 2);
  j.node = Str(r, 3);
  j.params = Str(r, 4);
  j.progress = Str(r, 5);
  j.result = Str(r, 6);
  j.error = Str(r, 7);
  j.interrupted = Int(r, 8) != 0;
  j.priority = static_cast<int>(Int(r, 9));
  j.attempts = static_cast<int>(Int(r, 10));
  j.retry_of = Int(r, 11);
  j.created_at = Str(r, 12);
  j.started_at = Str(r, 13);
  j.finished_at = Str(r, 14);
  j.updated_at = Str(r, 15);
  j.history = Str(r, 16);
  j.paused = Int(r, 17) != 0;
  j.queue_order = Int(r, 18);
  j.not_before = Str(r, 19);
  j.wait_reason = Str(r, 20);
  j.parent_id = Int(r, 21);
  j.owner = Str(r, 22);
  j.lease_until = Str(r, 23);
  j.requested = Str(r, 24);
  return j;
}

}  // namespace

Result<std::vector<std::string>> Database::PresentInstances(const std::vector<std::string>& sop_uids) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::vector<std::string> out;
    std::string uid;
    int found = 0;
    soci::statement st =
        (s.prepare << "SELECT COUNT(*) FROM instances WHERE sop_uid = :u", soci::use(uid), soci::into(found));
    for (const auto& u : sop_uids) {
      uid = u;
      st.execute(true);
      if (found > 0) out.push_back(u);
    }
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "checking instances"));
  }
}

Result<int64_t> Database::InsertJob(const JobRow& j) {
  db::WriterLock lock(*impl_);
  try {
    std::string now = NowIso();
    int interrupted = j.interrupted ? 1 : 0;
    long long retry_of = j.retry_of;
    soci::indicator retry_ind = j.retry_of ? soci::i_ok : soci::i_null;
    long long id = 0;
    int paused = j.paused ? 1 : 0;
    long long parent = j.parent_id;
    impl_->writer << "INSERT INTO jobs(type, state, node, params, progress, result, error, "
                     "interrupted, priority, attempts, retry_of, created_at, updated_at, history, "
                     "paused, queue_order, not_before, parent_id) "
                     "VALUES(:t, :s, :n, :p, :g, :r, :e, :i, :pr, :a, :ro, :c, :u, :h, :pa, "
                     "(SELECT COALESCE(MAX(queue_order), 0) + 1 FROM jobs), :nb, :pi) RETURNING id",
        soci::use(j.type), soci::use(j.state), soci::use(j.node), soci::use(j.params), soci::use(j.progress),
        soci::use(j.result), soci::use(j.error), soci::use(interrupted), soci::use(j.priority), soci::use(j.attempts),
        soci::use(retry_of, retry_ind), soci::use(now), soci::use(now), soci::use(j.history), soci::use(paused),
        soci::use(j.not_before), soci::use(parent), soci::into(id);
    return static_cast<int64_t>(id);
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "creating a job"));
  }
}

Result<void> Database::UpdateJob(const JobRow& j) {
  auto r = UpdateJobIf(j, {});
  if (!r) return tl::unexpected(r.error());
  return {};
}

namespace {

// The first key of the advisory locks on nodes (the second: the node's name hashed); a space of
// its own, apart from the migrations' one-key lock.
constexpr int kNodeLockSpace = 0x50424e44;  // "PBND"

// Locks `node` for the writer's open transaction (PostgreSQL; SQLite's writer is one connection,
// its transactions one after another). The lock is held for milliseconds; a wait longer than
// kNodeLockWait (its holder's host gone between the lock and the commit) fails the statement,
// and the caller takes the node as busy.
constexpr const char* kNodeLockWait = "2s";
void LockNode(Database::Impl& impl, const std::string& node) REQUIRES(impl.writer_mu) {
  if (impl.engine != Engine::kPostgres) return;
  impl.writer << std::string("SET LOCAL lock_timeout = '") + kNodeLockWait + "'";
  impl.writer << "SELECT pg_advisory_xact_lock(" + std::to_string(kNodeLockSpace) + ", hashtext(:n))", soci::use(node);
}

// The connections the node's running jobs other than :lid hold, unless their lease ended.
constexpr const char* kNodeConnectionsHeld =
    "(SELECT COALESCE(SUM(connections), 0) FROM jobs WHERE node = :ln AND state = 'running' AND lease_until > :lnow "
    "AND id <> :lid)";

// The node's running retrieves other than :rid, unless their lease ended.
constexpr const char* kNodeRetrievesRunning =
    "(SELECT COUNT(*) FROM jobs WHERE node = :rn AND type = 'retrieve' AND state = 'running' AND lease_until > :rnow "
    "AND id <> :rid)";

}  // namespace

Result<bool> Database::UpdateJobIf(const JobRow& j, const std::vector<std::string>& states, bool unpaused,
                                   const std::string& owned_by, int attempts_before, const NodeConnectionLimit* limit) {
  db::WriterLock lock(*impl_);
  try {
    std::optional<soci::transaction> tx;
    if (limit) {
      tx.emplace(impl_->writer);
      LockNode(*impl_, limit->node);
    }
    const std::string now = NowIso();
    int interrupted = j.interrupted ? 1 : 0;
    int paused = j.paused ? 1 : 0;
    long long id = j.id;
    long long order = j.queue_order;
    std::string only;
    for (const auto& st : states) only += fmt::format("{}'{}'", only.empty() ? "" : ", ", st);  // our own constants
    const std::string sql =
        std::string(
            "UPDATE jobs SET state = :s, progress = :g, result = :r, error = :e, "
            "interrupted = :i, attempts = :a, started_at = :sa, finished_at = :f, "
            "updated_at = :u, history = :h, paused = :pa, priority = :pr, "
            "queue_order = :q, not_before = :nb, wait_reason = :w, owner = :o, "
            // A lease only moves forward: a progress write carries the claim's,
            // older than the heartbeat's renewals. "" ends it.
            "lease_until = CASE WHEN :l1 = '' THEN '' WHEN lease_until > :l2 THEN lease_until "
            "ELSE :l3 END") +
        // A claim under a limit starts with the job's one connection.
        (limit ? ", connections = 1" : "") + " WHERE id = :id" +
        (only.empty() ? std::string() : " AND state IN (" + only + ")") + (unpaused ? " AND paused = 0" : "") +
        " AND (:ob1 = '' OR owner = :ob2)" +
        (attempts_before >= 0 ? fmt::format(" AND attempts = {}", attempts_before) : "") +
        (limit ? std::string(" AND ") + kNodeConnectionsHeld + " < :lmax" : "") +
        (limit && limit->max_retrieves > 0 ? std::string(" AND ") + kNodeRetrievesRunning + " < :rmax" : std::string());
    soci::statement st(impl_->writer);
    for (auto* v : {&j.state, &j.progress, &j.result, &j.error}) st.exchange(soci::use(*v));
    st.exchange(soci::use(interrupted));
    st.exchange(soci::use(j.attempts));
    for (auto* v : {&j.started_at, &j.finished_at, &now, &j.history}) st.exchange(soci::use(*v));
    st.exchange(soci::use(paused));
    st.exchange(soci::use(j.priority));
    st.exchange(soci::use(order));
    for (auto* v : {&j.not_before, &j.wait_reason, &j.owner, &j.lease_until, &j.lease_until, &j.lease_until}) {
      st.exchange(soci::use(*v));
    }
    st.exchange(soci::use(id));
    st.exchange(soci::use(owned_by));
    st.exchange(soci::use(owned_by));
    if (limit) {
      st.exchange(soci::use(limit->node));
      st.exchange(soci::use(limit->lease_now));
      st.exchange(soci::use(id));
      st.exchange(soci::use(limit->max));
      if (limit->max_retrieves > 0) {
        st.exchange(soci::use(limit->node));
        st.exchange(soci::use(limit->lease_now));
        st.exchange(soci::use(id));
        st.exchange(soci::use(limit->max_retrieves));
      }
    }
    st.alloc();
    // Run once, not kept: one round trip, and nothing left prepared on the server when the
    // transaction fails.
    st.prepare(sql, soci::details::st_one_time_query);
    st.define_and_bind();
    st.execute(true);
    const bool written = st.get_affected_rows() > 0;
    if (tx) tx->commit();
    return written;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("saving job {}", j.id)));
  }
}

Result<int> Database::TakeNodeConnections(int64_t id, const std::string& owner, const NodeConnectionLimit& limit,
                                          int wanted) {
  db::WriterLock lock(*impl_);
  try {
    soci::transaction tx(impl_->writer);
    LockNode(*impl_, limit.node);
    long long job = id;
    int mine = 0, others = 0;
    soci::indicator ind = soci::i_ok;
    // Only while the job runs here: a run whose job another instance took over changes nothing.
    impl_->writer << "SELECT connections FROM jobs WHERE id = :id AND state = 'running' AND owner = :o", soci::use(job),
        soci::use(owner), soci::into(mine, ind);
    if (!impl_->writer.got_data() || ind != soci::i_ok) return 0;
    impl_->writer << std::string("SELECT ") + kNodeConnectionsHeld, soci::use(limit.node), soci::use(limit.lease_now),
        soci::use(job), soci::into(others);
    const int change = wanted >= 0 ? std::clamp(limit.max - others - mine, 0, wanted)
                                   : -std::min(-wanted, std::max(0, mine - 1));  // its own one stays
    if (change != 0) {
      impl_->writer << "UPDATE jobs SET connections = connections + :c WHERE id = :id", soci::use(change),
          soci::use(job);
    }
    tx.commit();
    return change;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("counting the connections of job {}", id)));
  }
}

Result<std::vector<int64_t>> Database::RenewJobLeases(const std::string& owner, const std::string& until,
                                                      const std::vector<int64_t>& ids) {
  if (ids.empty()) return std::vector<int64_t>{};
  db::WriterLock lock(*impl_);
  try {
    std::vector<int64_t> out;
    std::string in;
    for (int64_t id : ids) in += fmt::format("{}{}", in.empty() ? "" : ", ", id);  // numbers
    soci::rowset<soci::row> rs =
        (impl_->writer.prepare
             << "UPDATE jobs SET lease_until = :l WHERE owner = :o AND state = 'running' AND id IN (" + in +
                    ") RETURNING id",
         soci::use(until), soci::use(owner));
    for (const auto& r : rs) out.push_back(Int(r, 0));
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "renewing the leases of running jobs"));
  }
}

Result<int64_t> Database::ServerTimeMicros() {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    // Text, read the same way on both engines (SOCI's PostgreSQL backend gives a number column as
    // a double or a string depending on its type).
    std::string micros;
    s << (IsPostgres() ? "SELECT CAST(CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT) AS TEXT)"
                       : "SELECT CAST(CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER) AS TEXT)"),
        soci::into(micros);
    return std::stoll(micros);
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "reading the database server's clock"));
  }
}

Result<std::map<std::string, std::vector<std::string>>> Database::InstancesTransferring(const std::string& lease_now) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::map<std::string, std::vector<std::string>> out;
    std::string node, owner;
    soci::statement st = (s.prepare << "SELECT DISTINCT node, owner FROM jobs WHERE state = 'running' AND "
                                       "type IN ('retrieve', 'send') AND lease_until > :n ORDER BY node, owner",
                          soci::use(lease_now), soci::into(node), soci::into(owner));
    st.execute();
    while (st.fetch()) out[node].push_back(owner);
    soci::statement published =
        (s.prepare << "SELECT node, instance_id FROM node_transfers WHERE lease_until > :n ORDER BY node, instance_id",
         soci::use(lease_now), soci::into(node), soci::into(owner));
    published.execute();
    while (published.fetch()) {
      auto& owners = out[node];
      if (std::find(owners.begin(), owners.end(), owner) == owners.end()) owners.push_back(owner);
    }
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "reading which instances transfer to each node"));
  }
}

Result<void> Database::UpdateNodeDuty(const std::string& node, const std::string& lease_now, int64_t job,
                                      const std::string& owner,
                                      const std::function<void(NodeDutyRecord&, int running)>& change) {
  db::WriterLock lock(*impl_);
  try {
    soci::transaction tx(impl_->writer);
    LockNode(*impl_, node);
    NodeDutyRecord d;
    long long start = 0, end = 0, minute = 0, used = 0;
    int in_stretch = 0;
    impl_->writer << "SELECT stretch_start_us, stretch_end_us, minute_us, used_us, in_stretch FROM node_duty "
                     "WHERE node = :n",
        soci::use(node), soci::into(start), soci::into(end), soci::into(minute), soci::into(used),
        soci::into(in_stretch);
    if (impl_->writer.got_data()) d = {start, end, minute, used, in_stretch != 0};
    long long id = job;
    int running = 0;
    // The job's run here is left out; a run of it another instance took over is counted.
    impl_->writer << "SELECT COUNT(*) FROM jobs WHERE node = :n AND state = 'running' AND lease_until > :l AND "
                     "NOT (id = :id AND owner = :o)",
        soci::use(node), soci::use(lease_now), soci::use(id), soci::use(owner), soci::into(running);
    change(d, running);
    start = d.stretch_start_us;
    end = d.stretch_end_us;
    minute = d.minute_us;
    used = d.used_us;
    in_stretch = d.in_stretch ? 1 : 0;
    impl_->writer << "INSERT INTO node_duty (node, stretch_start_us, stretch_end_us, minute_us, used_us, in_stretch) "
                     "VALUES (:n, :s, :e, :m, :u, :i) ON CONFLICT (node) DO UPDATE SET "
                     "stretch_start_us = excluded.stretch_start_us, stretch_end_us = excluded.stretch_end_us, "
                     "minute_us = excluded.minute_us, used_us = excluded.used_us, in_stretch = excluded.in_stretch",
        soci::use(node), soci::use(start), soci::use(end), soci::use(minute), soci::use(used), soci::use(in_stretch);
    tx.commit();
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("keeping the utilization share of node '{}'", node)));
  }
}

Result<void> Database::PublishTransfers(const std::string& instance, const std::vector<std::string>& nodes,
                                        const std::string& until) {
  db::WriterLock lock(*impl_);
  try {
    soci::transaction tx(impl_->writer);
    impl_->writer << "DELETE FROM node_transfers WHERE instance_id = :i", soci::use(instance);
    for (const std::string& node : nodes) {
      impl_->writer << "INSERT INTO node_transfers (instance_id, node, lease_until) VALUES (:i, :n, :l)",
          soci::use(instance), soci::use(node), soci::use(until);
    }
    tx.commit();
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "publishing which nodes this instance transfers to"));
  }
}

Result<std::vector<JobRow>> Database::ExpiredJobLeases(const std::string& now_iso) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::vector<JobRow> out;
    soci::rowset<soci::row> rs =
        (s.prepare << fmt::format("SELECT {} FROM jobs WHERE state = 'running' AND lease_until <> '' AND "
                                  "lease_until < :n ORDER BY id",
                                  kJobColumns),
         soci::use(now_iso));
    for (const auto& r : rs) out.push_back(ToJob(r));
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "reading jobs whose lease ran out"));
  }
}

Result<bool> Database::TakeOverJob(const JobRow& j, const std::string& expired_owner,
                                   const std::string& expired_lease) {
  db::WriterLock lock(*impl_);
  try {
    std::string now = NowIso();
    int interrupted = j.interrupted ? 1 : 0;
    int paused = j.paused ? 1 : 0;
    long long id = j.id;
    soci::statement st =
        (impl_->writer.prepare << "UPDATE jobs SET state = :s, history = :h, interrupted = :i, not_before = '', "
                                  "wait_reason = '', owner = :o, lease_until = '', updated_at = :u, error = :e, "
                                  "finished_at = :f, paused = :p, requested = '' WHERE id = :id AND "
                                  "state = 'running' AND owner = :eo AND lease_until = :el",
         soci::use(j.state), soci::use(j.history), soci::use(interrupted), soci::use(j.owner), soci::use(now),
         soci::use(j.error), soci::use(j.finished_at), soci::use(paused), soci::use(id), soci::use(expired_owner),
         soci::use(expired_lease));
    st.execute(true);
    return st.get_affected_rows() > 0;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("taking over job {}", j.id)));
  }
}

Result<bool> Database::RequestJob(int64_t id, const std::string& what) {
  db::WriterLock lock(*impl_);
  try {
    long long key = id;
    soci::statement st = (impl_->writer.prepare << "UPDATE jobs SET requested = :w WHERE id = :i AND state = 'running'",
                          soci::use(what), soci::use(key));
    st.execute(true);
    return st.get_affected_rows() > 0;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("asking for job {} to {}", id, what)));
  }
}

Result<std::vector<std::pair<int64_t, std::string>>> Database::TakeJobRequests(const std::string& owner) {
  db::WriterLock lock(*impl_);
  try {
    std::vector<std::pair<int64_t, std::string>> out, found;
    {
      // Whatever the job's state now: a request stays until its instance takes it (a run may have
      // ended, or been queued again by a restart, since it was asked).
      soci::rowset<soci::row> rs =
          (impl_->writer.prepare << "SELECT id, requested FROM jobs WHERE owner = :o AND requested <> ''",
           soci::use(owner));
      for (const auto& r : rs) found.emplace_back(Int(r, 0), Str(r, 1));
    }
    // Cleared one by one, each only while it is still the request read (RETURNING would give
    // the cleared value): a request is taken once.
    for (const auto& [id, what] : found) {
      long long key = id;
      soci::statement st = (impl_->writer.prepare << "UPDATE jobs SET requested = '' WHERE id = :i AND requested = :w",
                            soci::use(key), soci::use(what));
      st.execute(true);
      if (st.get_affected_rows() > 0) out.emplace_back(id, what);
    }
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "taking the requests for running jobs"));
  }
}

Result<bool> Database::PauseJob(int64_t id) {
  return Change(id, "state = 'waiting', paused = 1", "state IN ('queued', 'waiting')", {});
}

Result<bool> Database::ResumeJob(int64_t id) {
  return Change(id, "state = 'queued', paused = 0, not_before = '', wait_reason = ''",
                "state = 'waiting' AND paused = 1", {});
}

Result<bool> Database::ReorderJob(int64_t id, int priority, int64_t queue_order) {
  return Change(id, fmt::format("priority = {}, queue_order = {}", priority, queue_order),
                "state IN ('queued', 'waiting')", {});
}

Result<bool> Database::CancelPendingJob(int64_t id, const std::string& error, const std::string& finished_at) {
  return Change(id, "state = 'canceled', error = :a, finished_at = :b, not_before = '', wait_reason = ''",
                "state IN ('queued', 'waiting')", {error, finished_at});
}

Result<bool> Database::Change(int64_t id, const std::string& set, const std::string& condition,
                              const std::vector<std::string>& values) {
  db::WriterLock lock(*impl_);
  try {
    std::string now = NowIso();
    long long key = id;
    // `set` and `condition` are this file's constants (numbers formatted from ints); values bound.
    soci::statement st(impl_->writer);
    for (const auto& v : values) st.exchange(soci::use(v));
    st.exchange(soci::use(now));
    st.exchange(soci::use(key));
    st.alloc();
    st.prepare(fmt::format("UPDATE jobs SET {}, updated_at = :u WHERE id = :id AND {}", set, condition));
    st.define_and_bind();
    st.execute(true);
    return st.get_affected_rows() > 0;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("changing job {}", id)));
  }
}

Result<std::vector<JobRow>> Database::RunnableJobs(const std::string& now_iso, int limit, int offset) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    soci::row row;
    soci::statement st = (s.prepare << fmt::format("SELECT {} FROM jobs WHERE paused = 0 AND (state = 'queued' OR "
                                                   "(state = 'waiting' AND not_before != '' AND not_before <= :now)) "
                                                   "ORDER BY priority DESC, queue_order, id LIMIT {} OFFSET {}",
                                                   kJobColumns, std::max(1, limit), std::max(0, offset)),
                          soci::use(now_iso), soci::into(row));
    st.execute(false);
    std::vector<JobRow> out;
    while (st.fetch()) out.push_back(ToJob(row));
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "listing runnable jobs"));
  }
}

Result<std::string> Database::NextJobAttempt() {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::string next;
    soci::indicator ind = soci::i_null;
    s << "SELECT MIN(not_before) FROM jobs WHERE state = 'waiting' AND paused = 0 AND not_before != ''",
        soci::into(next, ind);
    return ind == soci::i_ok ? next : std::string();
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "reading the next job attempt"));
  }
}

Result<std::map<std::string, int64_t>> Database::CountJobsByState() {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::map<std::string, int64_t> out;
    soci::rowset<soci::row> rows = (s.prepare << "SELECT state, COUNT(*) FROM jobs GROUP BY state");
    for (const soci::row& r : rows) out[Str(r, 0)] = Int(r, 1);
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "counting jobs by state"));
  }
}

Result<int64_t> Database::JobQueueEdge(int priority, bool front) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    long long edge = 0;
    soci::indicator ind = soci::i_null;
    s << fmt::format("SELECT {}(queue_order) FROM jobs WHERE priority = :p AND state IN ('queued', 'waiting')",
                     front ? "MIN" : "MAX"),
        soci::use(priority), soci::into(edge, ind);
    if (ind != soci::i_ok) return int64_t{0};
    return static_cast<int64_t>(front ? edge - 1 : edge + 1);
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "reading the job queue"));
  }
}

Result<void> Database::AddJobItems(int64_t job_id, const std::vector<std::pair<std::string, std::string>>& items) {
  if (items.empty()) return {};
  db::WriterLock lock(*impl_);
  try {
    soci::transaction tx(impl_->writer);
    long long id = job_id;
    std::string sop, state;
    soci::statement st = (impl_->writer.prepare << "INSERT INTO job_items(job_id, sop_uid, state) VALUES(:j, :s, :t) "
                                                   "ON CONFLICT(job_id, sop_uid) DO UPDATE SET state = excluded.state",
                          soci::use(id), soci::use(sop), soci::use(state));
    for (const auto& [u, t] : items) {
      sop = u;
      state = t;
      st.execute(true);
    }
    tx.commit();
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("saving the progress of job {}", job_id)));
  }
}

Result<std::map<std::string, std::string>> Database::JobItems(int64_t job_id) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    long long id = job_id;
    std::string sop, state;
    soci::statement st = (s.prepare << "SELECT sop_uid, state FROM job_items WHERE job_id = :j", soci::use(id),
                          soci::into(sop), soci::into(state));
    st.execute(false);
    std::map<std::string, std::string> out;
    while (st.fetch()) out[sop] = state;
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("reading the progress of job {}", job_id)));
  }
}

Result<int> Database::RequeueScheduleWaits(const std::string& node) {
  db::WriterLock lock(*impl_);
  try {
    std::string now = NowIso();
    soci::statement st =
        (impl_->writer.prepare
             << "UPDATE jobs SET state = 'queued', not_before = '', wait_reason = '', updated_at = :u "
                "WHERE node = :n AND state = 'waiting' AND wait_reason IN ('schedule', 'utilization') AND paused = 0",
         soci::use(now), soci::use(node));
    st.execute(true);
    return static_cast<int>(st.get_affected_rows());
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "requeueing jobs"));
  }
}

Result<int> Database::PruneJobs(const std::string& before_iso) {
  db::WriterLock lock(*impl_);
  try {
    soci::transaction tx(impl_->writer);
    // Not the jobs of a job that has not ended (an import still waiting would submit them again).
    const char* finished =
        "state IN ('succeeded', 'partial', 'failed', 'canceled') AND finished_at != '' "
        "AND finished_at < :b AND (parent_id = 0 OR parent_id NOT IN (SELECT id FROM jobs "
        "WHERE state IN ('queued', 'waiting', 'running')))";
    impl_->writer << fmt::format("DELETE FROM job_items WHERE job_id IN (SELECT id FROM jobs WHERE {})", finished),
        soci::use(before_iso);
    impl_->writer << fmt::format("DELETE FROM import_rows WHERE job_id IN (SELECT id FROM jobs WHERE {})", finished),
        soci::use(before_iso);
    soci::statement st =
        (impl_->writer.prepare << fmt::format("DELETE FROM jobs WHERE {}", finished), soci::use(before_iso));
    st.execute(true);
    const int n = static_cast<int>(st.get_affected_rows());
    tx.commit();
    return n;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "deleting old jobs"));
  }
}

Result<bool> Database::WakeParentJob(int64_t parent_id) {
  return Change(parent_id, "state = 'queued', wait_reason = ''",
                fmt::format("state = 'waiting' AND wait_reason = 'children' AND paused = 0 AND NOT EXISTS "
                            "(SELECT 1 FROM jobs c WHERE c.parent_id = {} AND c.state IN ('queued', 'waiting', "
                            "'running'))",
                            parent_id),
                {});
}

Result<void> Database::InsertImportRows(const std::vector<ImportRowRecord>& rows) {
  if (rows.empty()) return {};
  db::WriterLock lock(*impl_);
  try {
    soci::transaction tx(impl_->writer);
    ImportRowRecord r;
    long long job = 0;
    soci::statement st =
        (impl_->writer.prepare << "INSERT INTO import_rows(job_id, line, query, project, subject, session, state, "
                                  "error, matches, choice) VALUES(:j, :l, :q, :p, :s, :n, :st, :e, :m, :c) "
                                  "ON CONFLICT(job_id, line) DO NOTHING",
         soci::use(job), soci::use(r.line), soci::use(r.query), soci::use(r.project), soci::use(r.subject),
         soci::use(r.session), soci::use(r.state), soci::use(r.error), soci::use(r.matches), soci::use(r.choice));
    for (const auto& row : rows) {
      r = row;
      job = row.job_id;
      st.execute(true);
    }
    tx.commit();
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "saving the rows of an import"));
  }
}

Result<std::vector<ImportRowRecord>> Database::ImportRows(int64_t job_id) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    long long id = job_id;
    soci::row r;
    soci::statement st = (s.prepare << "SELECT line, query, project, subject, session, state, error, matches, choice "
                                       "FROM import_rows WHERE job_id = :j ORDER BY line",
                          soci::use(id), soci::into(r));
    st.execute(false);
    std::vector<ImportRowRecord> out;
    while (st.fetch()) {
      ImportRowRecord row;
      row.job_id = job_id;
      row.line = static_cast<int>(Int(r, 0));
      row.query = Str(r, 1);
      row.project = Str(r, 2);
      row.subject = Str(r, 3);
      row.session = Str(r, 4);
      row.state = Str(r, 5);
      row.error = Str(r, 6);
      row.matches = Str(r, 7);
      row.choice = Str(r, 8);
      out.push_back(std::move(row));
    }
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("reading the rows of import {}", job_id)));
  }
}

Result<void> Database::UpdateImportRow(const ImportRowRecord& row) {
  db::WriterLock lock(*impl_);
  try {
    long long job = row.job_id;
    impl_->writer << "UPDATE import_rows SET state = :s, error = :e, matches = :m, choice = :c "
                     "WHERE job_id = :j AND line = :l",
        soci::use(row.state), soci::use(row.error), soci::use(row.matches), soci::use(row.choice), soci::use(job),
        soci::use(row.line);
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("saving line {} of import {}", row.line, row.job_id)));
  }
}

Result<bool> Database::ConfirmImport(int64_t job_id, const std::map<int, std::string>& choices) {
  db::WriterLock lock(*impl_);
  try {
    soci::transaction tx(impl_->writer);
    std::string now = NowIso();
    long long id = job_id;
    soci::statement up =
        (impl_->writer.prepare << "UPDATE jobs SET state = CASE paused WHEN 1 THEN 'waiting' ELSE 'queued' END, "
                                  "wait_reason = '', updated_at = :u WHERE id = :id AND state = 'waiting' AND "
                                  "wait_reason = 'confirmation'",
         soci::use(now), soci::use(id));
    up.execute(true);
    if (up.get_affected_rows() == 0) return false;  // the transaction rolls back (nothing written)
    int line = 0;
    std::string choice;
    soci::statement st = (impl_->writer.prepare << "UPDATE import_rows SET choice = :c WHERE job_id = :j AND line = :l",
                          soci::use(choice), soci::use(id), soci::use(line));
    for (const auto& [l, c] : choices) {
      line = l;
      choice = c;
      st.execute(true);
    }
    tx.commit();
    return true;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("confirming import {}", job_id)));
  }
}

Result<std::optional<JobRow>> Database::GetJob(int64_t id) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    long long key = id;
    soci::row r;
    s << fmt::format("SELECT {} FROM jobs WHERE id = :id", kJobColumns), soci::use(key), soci::into(r);
    if (!s.got_data()) return std::optional<JobRow>();
    return std::optional<JobRow>(ToJob(r));
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("reading job {}", id)));
  }
}

Result<std::vector<JobRow>> Database::ListJobs(const JobFilter& f) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::string where = " WHERE 1 = 1";
    if (!f.state.empty()) where += " AND state = :s";
    if (!f.type.empty()) where += " AND type = :t";
    if (!f.node.empty()) where += " AND node = :n";
    if (!f.since.empty()) where += " AND created_at >= :since";
    if (!f.until.empty()) where += " AND created_at <= :until";
    if (f.parent) where += fmt::format(" AND parent_id = {}", f.parent);  // a number
    soci::row row;
    soci::statement st(s);
    std::string state = f.state, type = f.type, node = f.node, since = f.since, until = f.until;
    if (!f.state.empty()) st.exchange(soci::use(state));
    if (!f.type.empty()) st.exchange(soci::use(type));
    if (!f.node.empty()) st.exchange(soci::use(node));
    if (!f.since.empty()) st.exchange(soci::use(since));
    if (!f.until.empty()) st.exchange(soci::use(until));
    st.exchange(soci::into(row));
    st.alloc();
    st.prepare(
        fmt::format("SELECT {} FROM jobs{} ORDER BY id DESC LIMIT {}", kJobColumns, where, std::max(1, f.limit)));
    st.define_and_bind();
    st.execute(false);
    std::vector<JobRow> out;
    while (st.fetch()) out.push_back(ToJob(row));
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "listing jobs"));
  }
}

namespace {

NodeTestRecord NodeTestFrom(const soci::row& r) {
  NodeTestRecord t;
  t.id = db::Int(r, 0);
  t.at = db::Str(r, 1);
  t.ok = db::Int(r, 2) != 0;
  t.message = db::Str(r, 3);
  t.latency_ms = db::Int(r, 4);
  t.checks_json = db::Str(r, 5);
  return t;
}

}  // namespace

Result<void> Database::AddNodeTest(const std::string& node, const NodeTestRecord& test, int keep) {
  keep = std::max(keep, 1);  // never the test just written
  db::WriterLock lock(*impl_);
  try {
    soci::transaction tx(impl_->writer);
    const int ok = test.ok ? 1 : 0;
    const long long latency = test.latency_ms;
    impl_->writer << "INSERT INTO node_tests(node, at, ok, message, latency_ms, checks) "
                     "VALUES(:n, :a, :o, :m, :l, :c)",
        soci::use(node), soci::use(test.at), soci::use(ok), soci::use(test.message), soci::use(latency),
        soci::use(test.checks_json);
    impl_->writer << "DELETE FROM node_tests WHERE node = :n AND id NOT IN "
                     "(SELECT id FROM node_tests WHERE node = :n2 ORDER BY id DESC LIMIT :k)",
        soci::use(node), soci::use(node), soci::use(keep);
    tx.commit();
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("saving a connection test of node '{}'", node)));
  }
}

Result<std::vector<NodeTestRecord>> Database::NodeTests(const std::string& node, int limit) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::vector<NodeTestRecord> out;
    soci::rowset<soci::row> rs = (s.prepare << "SELECT id, at, ok, message, latency_ms, checks FROM node_tests "
                                               "WHERE node = :n ORDER BY id DESC LIMIT :l",
                                  soci::use(node), soci::use(limit));
    for (const auto& r : rs) out.push_back(NodeTestFrom(r));
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "reading connection tests"));
  }
}

Result<std::map<std::string, NodeTestRecord>> Database::LatestNodeTests() {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::map<std::string, NodeTestRecord> out;
    soci::rowset<soci::row> rs =
        (s.prepare << "SELECT t.id, t.at, t.ok, t.message, t.latency_ms, t.checks, t.node FROM node_tests t "
                      "JOIN (SELECT MAX(id) AS id FROM node_tests GROUP BY node) m ON t.id = m.id");
    for (const auto& r : rs) out[db::Str(r, 6)] = NodeTestFrom(r);
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "reading connection tests"));
  }
}

Result<std::string> Database::GetNodeState(const std::string& node, const std::string& key) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::string value;
    soci::indicator ind = soci::i_null;
    s << "SELECT value FROM node_state WHERE node = :n AND key = :k", soci::use(node), soci::use(key),
        soci::into(value, ind);
    return s.got_data() && ind == soci::i_ok ? value : std::string();
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "reading node state"));
  }
}

Result<void> Database::SetNodeState(const std::string& node, const std::string& key, const std::string& value) {
  db::WriterLock lock(*impl_);
  try {
    std::string now = NowIso();
    impl_->writer << "INSERT INTO node_state(node, key, value, updated_at) VALUES(:n, :k, :v, :u) "
                     "ON CONFLICT(node, key) DO UPDATE SET value = excluded.value, "
                     "updated_at = excluded.updated_at",
        soci::use(node), soci::use(key), soci::use(value), soci::use(now);
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "saving node state"));
  }
}

}  // namespace pb
