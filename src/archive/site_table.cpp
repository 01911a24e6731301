// Database: receivers created through the API, site-wide settings, the archive by labels
// (project / subject / session), and the staging area's bookkeeping.
#include <fmt/format.h>
#include <soci/soci.h>

#include "archive/database_impl.h"
#include "core/thread_annotations.h"

namespace pb {

using db::DbError;
using db::Int;
using db::NowIso;
using db::Str;

Result<std::vector<std::pair<int64_t, std::string>>> Database::LoadReceivers() {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::vector<std::pair<int64_t, std::string>> out;
    soci::rowset<soci::row> rs = (s.prepare << "SELECT id, body FROM receivers ORDER BY id");
    for (const auto& r : rs) out.emplace_back(Int(r, 0), Str(r, 1));
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "loading receivers"));
  }
}

Result<int64_t> Database::InsertReceiver(const std::string& body) {
  db::WriterLock lock(*impl_);
  try {
    long long id = 0;
    impl_->writer << "INSERT INTO receivers(body) VALUES(:b) RETURNING id", soci::use(body), soci::into(id);
    return static_cast<int64_t>(id);
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "saving a receiver"));
  }
}

Result<void> Database::UpdateReceiver(int64_t id, const std::string& body) {
  db::WriterLock lock(*impl_);
  try {
    long long key = id;
    impl_->writer << "UPDATE receivers SET body = :b WHERE id = :i", soci::use(body), soci::use(key);
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("saving receiver {}", id)));
  }
}

Result<void> Database::DeleteReceiver(int64_t id) {
  db::WriterLock lock(*impl_);
  try {
    long long key = id;
    impl_->writer << "DELETE FROM receivers WHERE id = :i", soci::use(key);
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("deleting receiver {}", id)));
  }
}

Result<std::map<std::string, FiledSeries>> Database::GetFiledSeries(const std::vector<std::string>& series_uids) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::map<std::string, FiledSeries> out;
    for (const auto& uid : series_uids) {
      FiledSeries f;
      long long count = 0;
      s << "SELECT se.project, se.subject, se.session, (SELECT count(*) FROM instances i WHERE i.series_pk = se.pk) "
           "FROM series se WHERE se.series_uid = :u",
          soci::use(uid), soci::into(f.project), soci::into(f.subject), soci::into(f.session), soci::into(count);
      if (!s.got_data()) continue;
      f.instance_count = count;
      out[uid] = f;
    }
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "reading the labels of filed series"));
  }
}

Result<void> Database::Ping() {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    int n = 0;
    s << "SELECT count(*) FROM site_settings", soci::into(n);
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "reading the index database"));
  }
}

Result<std::string> Database::GetSetting(const std::string& key) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::string value;
    soci::indicator ind = soci::i_null;
    s << "SELECT value FROM site_settings WHERE key = :k", soci::use(key), soci::into(value, ind);
    return s.got_data() && ind == soci::i_ok ? value : std::string();
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("reading setting '{}'", key)));
  }
}

Result<void> Database::SetSetting(const std::string& key, const std::string& value) {
  db::WriterLock lock(*impl_);
  try {
    impl_->writer << "INSERT INTO site_settings(key, value) VALUES(:k, :v) "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        soci::use(key), soci::use(value);
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("saving setting '{}'", key)));
  }
}

Result<std::string> Database::CreateSetting(const std::string& key, const std::string& value) {
  db::WriterLock lock(*impl_);
  try {
    impl_->writer << "INSERT INTO site_settings(key, value) VALUES(:k, :v) ON CONFLICT(key) DO NOTHING", soci::use(key),
        soci::use(value);
    std::string stored;
    impl_->writer << "SELECT value FROM site_settings WHERE key = :k", soci::use(key), soci::into(stored);
    return stored;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("saving setting '{}'", key)));
  }
}

namespace {

// The counts of a group of series; `same_group` selects the group's series as s2.
std::string Counts(Engine e, std::string_view same_group) {
  return fmt::format(
      "COUNT(DISTINCT se.subject), COUNT(DISTINCT se.subject || '/' || se.session), "
      "COUNT(DISTINCT se.study_pk), COUNT(DISTINCT se.pk), "
      "(SELECT COUNT(*) FROM instances i JOIN series s2 ON i.series_pk = s2.pk WHERE {}), {}",
      same_group, db::GroupConcatDistinct(e, "se.modality"));
}

std::vector<LabelCount> Labels(soci::session& s, const std::string& sql, const std::vector<std::string>& args) {
  std::vector<LabelCount> out;
  soci::statement st(s);
  soci::row r;
  std::vector<std::string> bound = args;
  st.alloc();
  st.prepare(db::NumberPlaceholders(sql));
  for (auto& a : bound) st.exchange(soci::use(a));
  st.exchange(soci::into(r));
  st.define_and_bind();
  st.execute(false);
  while (st.fetch()) {
    LabelCount c;
    c.name = Str(r, 0);
    c.subjects = Int(r, 1);
    c.sessions = Int(r, 2);
    c.studies = Int(r, 3);
    c.series = Int(r, 4);
    c.instances = Int(r, 5);
    c.modalities = Str(r, 6);
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace

Result<std::vector<LabelCount>> Database::ListProjects() {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    return Labels(s,
                  fmt::format("SELECT se.project, {} FROM series se WHERE se.project <> '' "
                              "GROUP BY se.project ORDER BY se.project",
                              Counts(impl_->engine, "s2.project = se.project")),
                  {});
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "listing projects"));
  }
}

Result<std::vector<LabelCount>> Database::ListSubjects(const std::string& project) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    return Labels(s,
                  // Grouped by the project too (one value here), which the count's subquery names.
                  fmt::format("SELECT se.subject, {} FROM series se WHERE se.project = ? "
                              "GROUP BY se.project, se.subject ORDER BY se.subject",
                              Counts(impl_->engine, "s2.project = se.project AND s2.subject = se.subject")),
                  {project});
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "listing subjects"));
  }
}

Result<std::vector<LabelCount>> Database::ListSessions(const std::string& project, const std::string& subject) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    return Labels(s,
                  fmt::format("SELECT se.session, {} FROM series se WHERE se.project = ? AND "
                              "se.subject = ? GROUP BY se.project, se.subject, se.session ORDER BY se.session",
                              Counts(impl_->engine,
                                     "s2.project = se.project AND s2.subject = se.subject "
                                     "AND s2.session = se.session")),
                  {project, subject});
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "listing sessions"));
  }
}

Result<std::vector<SeriesRow>> Database::ListSessionSeries(const std::string& project, const std::string& subject,
                                                           const std::string& session) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::vector<SeriesRow> out;
    std::string p = project, su = subject, se = session;
    soci::rowset<soci::row> rs =
        (s.prepare << "SELECT se.series_uid, st.study_uid, se.modality, se.series_number, "
                      "se.description, se.body_part, (SELECT COUNT(*) FROM instances i WHERE "
                      "i.series_pk = se.pk) FROM series se JOIN studies st ON se.study_pk = st.pk "
                      "WHERE se.project = :p AND se.subject = :s AND se.session = :e "
                      "ORDER BY st.study_uid, " +
                          db::AsInteger(impl_->engine, "se.series_number") + ", se.pk",
         soci::use(p), soci::use(su), soci::use(se));
    for (const auto& r : rs) {
      out.push_back(SeriesRow{Str(r, 0), Str(r, 1), Str(r, 2), Str(r, 3), Str(r, 4), Str(r, 5), Int(r, 6)});
    }
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "listing a session's series"));
  }
}

namespace {

const char* const kStagedColumns =
    "id, receiver, project, subject, session, state, first_at, last_at, instance_count, bytes, owner";

StagedSession ToStaged(const soci::row& r) {
  StagedSession s;
  s.id = Int(r, 0);
  s.receiver = Str(r, 1);
  s.project = Str(r, 2);
  s.subject = Str(r, 3);
  s.session = Str(r, 4);
  s.state = Str(r, 5);
  s.first_at = Str(r, 6);
  s.last_at = Str(r, 7);
  s.instance_count = Int(r, 8);
  s.bytes = Int(r, 9);
  s.owner = Str(r, 10);
  return s;
}

}  // namespace

Result<StagedSession> Database::OpenStagedSession(const std::string& receiver, const std::string& project,
                                                  const std::string& subject, const std::string& session,
                                                  const std::string& owner) {
  db::WriterLock lock(*impl_);
  try {
    soci::transaction tx(impl_->writer);
    soci::row r;
    impl_->writer << fmt::format(
        "SELECT {} FROM staged_sessions WHERE receiver = :r AND project = :p AND "
        "subject = :s AND session = :e AND state = 'open' AND owner = :o",
        kStagedColumns),
        soci::use(receiver), soci::use(project), soci::use(subject), soci::use(session), soci::use(owner),
        soci::into(r);
    if (impl_->writer.got_data()) {
      tx.commit();
      return ToStaged(r);
    }
    std::string now = NowIso();
    long long id = 0;
    impl_->writer << "INSERT INTO staged_sessions(receiver, project, subject, session, first_at, last_at, owner) "
                     "VALUES(:r, :p, :s, :e, :f, :l, :o) RETURNING id",
        soci::use(receiver), soci::use(project), soci::use(subject), soci::use(session), soci::use(now), soci::use(now),
        soci::use(owner), soci::into(id);
    tx.commit();
    StagedSession out;
    out.id = id;
    out.receiver = receiver;
    out.project = project;
    out.subject = subject;
    out.session = session;
    out.state = "open";
    out.first_at = out.last_at = now;
    out.owner = owner;
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "opening a staged session"));
  }
}

Result<void> Database::AddStagedInstance(const StagedInstance& in) {
  db::WriterLock lock(*impl_);
  try {
    soci::transaction tx(impl_->writer);
    long long sid = in.session_id, size = in.size;
    std::string now = NowIso();
    impl_->writer << "INSERT INTO staged_instances(session_id, sop_uid, study_uid, series_uid, file, size, "
                     "source_ae, receiver_ae) VALUES(:i, :u, :st, :se, :f, :z, :s, :r) "
                     "ON CONFLICT(session_id, sop_uid) DO UPDATE SET file = excluded.file, size = excluded.size",
        soci::use(sid), soci::use(in.sop_uid), soci::use(in.study_uid), soci::use(in.series_uid), soci::use(in.file),
        soci::use(size), soci::use(in.source_ae), soci::use(in.receiver_ae);
    impl_->writer << "UPDATE staged_sessions SET last_at = :n, instance_count = (SELECT COUNT(*) FROM "
                     "staged_instances WHERE session_id = :i), bytes = (SELECT COALESCE(SUM(size), 0) "
                     "FROM staged_instances WHERE session_id = :i2) WHERE id = :i3",
        soci::use(now), soci::use(sid), soci::use(sid), soci::use(sid);
    tx.commit();
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "recording a staged instance"));
  }
}

Result<std::vector<StagedSession>> Database::ListStagedSessions() {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::vector<StagedSession> out;
    soci::rowset<soci::row> rs =
        (s.prepare << fmt::format("SELECT {} FROM staged_sessions ORDER BY id", kStagedColumns));
    for (const auto& r : rs) out.push_back(ToStaged(r));
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "listing staged sessions"));
  }
}

Result<std::optional<StagedSession>> Database::GetStagedSession(int64_t id) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    long long key = id;
    soci::row r;
    s << fmt::format("SELECT {} FROM staged_sessions WHERE id = :i", kStagedColumns), soci::use(key), soci::into(r);
    if (!s.got_data()) return std::optional<StagedSession>();
    return std::optional<StagedSession>(ToStaged(r));
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "reading a staged session"));
  }
}

Result<std::vector<StagedInstance>> Database::ListStagedInstances(int64_t session_id) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    long long key = session_id;
    std::vector<StagedInstance> out;
    soci::rowset<soci::row> rs =
        (s.prepare << "SELECT session_id, sop_uid, study_uid, series_uid, file, size, source_ae, receiver_ae "
                      "FROM staged_instances WHERE session_id = :i ORDER BY rowid",
         soci::use(key));
    for (const auto& r : rs) {
      StagedInstance i;
      i.session_id = Int(r, 0);
      i.sop_uid = Str(r, 1);
      i.study_uid = Str(r, 2);
      i.series_uid = Str(r, 3);
      i.file = Str(r, 4);
      i.size = Int(r, 5);
      i.source_ae = Str(r, 6);
      i.receiver_ae = Str(r, 7);
      out.push_back(std::move(i));
    }
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "listing staged instances"));
  }
}

Result<bool> Database::ClaimStagedSession(int64_t id, const std::string& from, const std::string& to) {
  db::WriterLock lock(*impl_);
  try {
    long long key = id;
    soci::statement st = (impl_->writer.prepare << "UPDATE staged_sessions SET owner = :t WHERE id = :i AND owner = :f",
                          soci::use(to), soci::use(key), soci::use(from));
    st.execute(true);
    return st.get_affected_rows() > 0;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "taking a staged session over"));
  }
}

Result<void> Database::SetStagedState(int64_t id, const std::string& state) {
  db::WriterLock lock(*impl_);
  try {
    long long key = id;
    impl_->writer << "UPDATE staged_sessions SET state = :s WHERE id = :i", soci::use(state), soci::use(key);
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "updating a staged session"));
  }
}

Result<void> Database::DeleteStagedSession(int64_t id) {
  db::WriterLock lock(*impl_);
  try {
    soci::transaction tx(impl_->writer);
    long long key = id;
    impl_->writer << "DELETE FROM staged_instances WHERE session_id = :i", soci::use(key);
    impl_->writer << "DELETE FROM staged_sessions WHERE id = :i", soci::use(key);
    tx.commit();
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "deleting a staged session"));
  }
}

}  // namespace pb
