// Database: the jobs table, node run-time state, and instance presence checks.
#include <fmt/format.h>
#include <soci/soci.h>

#include "archive/database_impl.h"

namespace pb {

using db::DbError;
using db::Int;
using db::NowIso;
using db::Str;

namespace {

const char* kJobColumns =
    "id, type, state, node, params, progress, result, error, interrupted, priority, attempts, "
    "COALESCE(retry_of, 0), created_at, started_at, finished_at, updated_at";

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
  return j;
}

}  // namespace

Result<std::vector<std::string>> Database::PresentInstances(const std::vector<std::string>& sop_uids) {
  try {
    soci::session s(impl_->pool);
    std::vector<std::string> out;
    std::string uid;
    int found = 0;
    soci::statement st = (s.prepare << "SELECT COUNT(*) FROM instances WHERE sop_uid = :u",
                          soci::use(uid), soci::into(found));
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
  std::lock_guard lock(impl_->writer_mu);
  try {
    std::string now = NowIso();
    int interrupted = j.interrupted ? 1 : 0;
    long long retry_of = j.retry_of;
    soci::indicator retry_ind = j.retry_of ? soci::i_ok : soci::i_null;
    long long id = 0;
    impl_->writer << "INSERT INTO jobs(type, state, node, params, progress, result, error, "
                     "interrupted, priority, attempts, retry_of, created_at, updated_at) "
                     "VALUES(:t, :s, :n, :p, :g, :r, :e, :i, :pr, :a, :ro, :c, :u) RETURNING id",
        soci::use(j.type), soci::use(j.state), soci::use(j.node), soci::use(j.params),
        soci::use(j.progress), soci::use(j.result), soci::use(j.error), soci::use(interrupted),
        soci::use(j.priority), soci::use(j.attempts), soci::use(retry_of, retry_ind),
        soci::use(now), soci::use(now), soci::into(id);
    return static_cast<int64_t>(id);
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "creating a job"));
  }
}

Result<void> Database::UpdateJob(const JobRow& j) {
  std::lock_guard lock(impl_->writer_mu);
  try {
    std::string now = NowIso();
    int interrupted = j.interrupted ? 1 : 0;
    long long id = j.id;
    impl_->writer << "UPDATE jobs SET state = :s, progress = :g, result = :r, error = :e, "
                     "interrupted = :i, attempts = :a, started_at = :sa, finished_at = :f, "
                     "updated_at = :u WHERE id = :id",
        soci::use(j.state), soci::use(j.progress), soci::use(j.result), soci::use(j.error),
        soci::use(interrupted), soci::use(j.attempts), soci::use(j.started_at),
        soci::use(j.finished_at), soci::use(now), soci::use(id);
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("saving job {}", j.id)));
  }
}

Result<std::optional<JobRow>> Database::GetJob(int64_t id) {
  try {
    soci::session s(impl_->pool);
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
    soci::session s(impl_->pool);
    std::string where = " WHERE 1 = 1";
    if (!f.state.empty()) where += " AND state = :s";
    if (!f.type.empty()) where += " AND type = :t";
    if (!f.node.empty()) where += " AND node = :n";
    soci::row row;
    soci::statement st(s);
    std::string state = f.state, type = f.type, node = f.node;
    if (!f.state.empty()) st.exchange(soci::use(state));
    if (!f.type.empty()) st.exchange(soci::use(type));
    if (!f.node.empty()) st.exchange(soci::use(node));
    st.exchange(soci::into(row));
    st.alloc();
    st.prepare(fmt::format("SELECT {} FROM jobs{} ORDER BY id DESC LIMIT {}", kJobColumns, where,
                           std::max(1, f.limit)));
    st.define_and_bind();
    st.execute(false);
    std::vector<JobRow> out;
    while (st.fetch()) out.push_back(ToJob(row));
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "listing jobs"));
  }
}

Result<int> Database::InterruptRunningJobs(const std::string& error) {
  std::lock_guard lock(impl_->writer_mu);
  try {
    std::string now = NowIso();
    soci::statement st = (impl_->writer.prepare
                              << "UPDATE jobs SET state = CASE WHEN COALESCE(json_extract(progress, "
                                 "'$.arrived'), 0) > 0 THEN 'partial' ELSE 'failed' END, "
                                 "interrupted = 1, error = :e, finished_at = :f, updated_at = :u "
                                 "WHERE state = 'running'",
                          soci::use(error), soci::use(now), soci::use(now));
    st.execute(true);
    return static_cast<int>(st.get_affected_rows());
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "marking interrupted jobs"));
  }
}

Result<std::string> Database::GetNodeState(const std::string& node, const std::string& key) {
  try {
    soci::session s(impl_->pool);
    std::string value;
    soci::indicator ind = soci::i_null;
    s << "SELECT value FROM node_state WHERE node = :n AND key = :k", soci::use(node),
        soci::use(key), soci::into(value, ind);
    return s.got_data() && ind == soci::i_ok ? value : std::string();
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "reading node state"));
  }
}

Result<void> Database::SetNodeState(const std::string& node, const std::string& key,
                                    const std::string& value) {
  std::lock_guard lock(impl_->writer_mu);
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
