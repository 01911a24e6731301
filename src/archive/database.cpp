#include "archive/database.h"

#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

#include <fmt/format.h>
#include <libpq-fe.h>
#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "archive/database_impl.h"
#include "archive/migrations.h"
#include "core/clock.h"
#include "core/thread_annotations.h"
#include "core/validate.h"

namespace pb {
namespace db {

std::string NowIso() { return UtcNowIso(); }

Error DbError(const std::exception& e, std::string_view what, bool log_statement) {
  // SOCI adds the statement and its bound values (patient names, UIDs) to what(): the error
  // keeps the engine's own message only ("database is locked", "disk I/O error").
  if (log_statement) spdlog::debug("index database: {}: {}", what, e.what());  // whole text, debug only
  const auto* soci_error = dynamic_cast<const soci::soci_error*>(&e);
  std::string msg = soci_error ? soci_error->get_error_message() : std::string("unexpected failure");
  // One line: libpq's messages run over several ("...failed: Connection refused\n\tIs the server
  // running...?\n").
  std::string flat;
  for (char c : msg) {
    const bool blank = c == '\n' || c == '\t' || c == '\r' || c == ' ';
    if (blank && (flat.empty() || flat.back() == ' ')) continue;
    flat += blank ? ' ' : c;
  }
  while (!flat.empty() && flat.back() == ' ') flat.pop_back();
  msg = std::move(flat);
  Code code = Code::kIoError;
  // The engine's code, not its words: SQLITE_FULL (the low byte of an extended code too);
  // PostgreSQL's SQLSTATE class 53 (insufficient resources: disk full, out of memory, too many
  // connections) and 08 (connection exception).
  if (const auto* sqlite_error = dynamic_cast<const soci::sqlite3_soci_error*>(&e)) {
    if ((sqlite_error->result() & 0xff) == SQLITE_FULL) code = Code::kOutOfSpace;
  } else if (const auto* pg_error = dynamic_cast<const soci::postgresql_soci_error*>(&e)) {
    const std::string state = pg_error->sqlstate();
    if (state == "53100") {
      code = Code::kOutOfSpace;
    } else if (state.rfind("53", 0) == 0 || state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0) {
      code = Code::kUnavailable;  // out of resources, a lost connection, the server shutting down
    }
  }
  return Error{code, fmt::format("index database: {}: {}", what, msg), ""};
}

void MakeValidUtf8(std::initializer_list<std::string*> values) {
  for (std::string* v : values) {
    if (!IsValidUtf8(*v)) *v = ToValidUtf8(*v);
  }
}

std::string NumberPlaceholders(std::string_view sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int n = 0;
  bool quoted = false;
  for (char c : sql) {
    if (c == '\'') quoted = !quoted;
    if (c == '?' && !quoted) {
      out += fmt::format(":p{}", ++n);
    } else {
      out += c;
    }
  }
  return out;
}

std::string GroupConcatDistinct(Engine e, std::string_view expr) {
  return e == Engine::kPostgres ? fmt::format("string_agg(DISTINCT {}, ',')", expr)
                                : fmt::format("group_concat(DISTINCT {})", expr);
}

std::string AsInteger(Engine e, std::string_view expr) {
  if (e == Engine::kSqlite) return fmt::format("CAST({} AS INTEGER)", expr);
  // At most 18 digits: always a bigint.
  return fmt::format("COALESCE(CAST(substring({} from '^\\s*([+-]?[0-9]{{1,18}})') AS BIGINT), 0)", expr);
}

std::string LowerAscii(Engine e, std::string_view expr) {
  if (e == Engine::kSqlite) return fmt::format("lower({})", expr);
  return fmt::format("translate({}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')", expr);
}

std::string_view LikeNoCase(Engine e) { return e == Engine::kPostgres ? "ILIKE" : "LIKE"; }

std::string Str(const soci::row& r, std::size_t i) {
  return r.get_indicator(i) == soci::i_null ? std::string() : r.get<std::string>(i);
}

int64_t Int(const soci::row& r, std::size_t i) {
  if (r.get_indicator(i) == soci::i_null) return 0;
  switch (r.get_properties(i).get_data_type()) {
    case soci::dt_long_long:
      return r.get<long long>(i);
    case soci::dt_unsigned_long_long:
      return static_cast<int64_t>(r.get<unsigned long long>(i));
    case soci::dt_integer:
      return r.get<int>(i);
    case soci::dt_double:
      return static_cast<int64_t>(r.get<double>(i));
    default:
      return std::stoll(r.get<std::string>(i));
  }
}

}  // namespace db

using db::DbError;
using db::Int;
using db::NowIso;
using db::Str;

namespace {

// DICOM wildcard matching → SQL LIKE pattern (escape char '\').
std::string ToLike(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '*')
      out += '%';
    else if (c == '?')
      out += '_';
    else if (c == '%' || c == '_' || c == '\\') {
      out += '\\';
      out += c;
    } else
      out += c;
  }
  return out;
}

// A query with a variable number of string parameters.
class Query {
 public:
  explicit Query(std::string sql) : sql_(std::move(sql)) {}
  // `head`: the values of the parameters in `sql` itself, in order.
  Query(std::string sql, std::vector<std::string> head) : sql_(std::move(sql)), params_(std::move(head)) {}
  void Where(const std::string& clause, std::string param) {
    where_ += where_.empty() ? " WHERE " : " AND ";
    where_ += clause;
    params_.push_back(std::move(param));
  }
  void Where(const std::string& clause, std::vector<std::string> params) {
    where_ += where_.empty() ? " WHERE " : " AND ";
    where_ += clause;
    for (auto& v : params) params_.push_back(std::move(v));
  }
  // column IN (?, ?, ...): one parameter per value (at least one).
  void WhereIn(const std::string& column, std::vector<std::string> values) {
    where_ += where_.empty() ? " WHERE " : " AND ";
    where_ += column + " IN (";
    for (size_t i = 0; i < values.size(); ++i) where_ += i ? ", ?" : "?";
    where_ += ")";
    for (auto& v : values) params_.push_back(std::move(v));
  }
  template <typename F>
  void Run(soci::session& sql, const std::string& tail, F&& on_row) {
    soci::row row;
    soci::statement st(sql);
    for (auto& p : params_) st.exchange(soci::use(p));
    st.exchange(soci::into(row));
    st.alloc();
    st.prepare(db::NumberPlaceholders(sql_ + where_ + tail));
    st.define_and_bind();
    st.execute(false);
    while (st.fetch()) on_row(row);
  }

 private:
  std::string sql_, where_;
  std::vector<std::string> params_;
};

// " AND <column> IN (?, ...)" for an account's projects, "" when it sees all of them; the
// values are bound by the caller, in the text's order.
std::string InProjects(const std::string& column, const std::vector<std::string>& projects) {
  if (projects.empty()) return "";
  std::string out = " AND " + column + " IN (";
  for (size_t i = 0; i < projects.size(); ++i) out += i ? ", ?" : "?";
  return out + ")";
}

// `values` once per use, for a text that names the project list `uses` times.
std::vector<std::string> Repeat(const std::vector<std::string>& values, int uses) {
  std::vector<std::string> out;
  for (int k = 0; k < uses; ++k) out.insert(out.end(), values.begin(), values.end());
  return out;
}

void AddMatch(Engine e, Query& q, const std::string& column, const std::string& value) {
  if (value.empty() || value == "*") return;
  if (value.find_first_of("*?") != std::string::npos) {
    q.Where(fmt::format("{} {} ? ESCAPE '\\'", column, db::LikeNoCase(e)), ToLike(value));
  } else {
    q.Where(column + " = ?", value);
  }
}

// A UID attribute's value: one UID, wildcards as AddMatch, or a list "uid1\\uid2" (list of UID
// matching, PS3.4 C.2.2.2.2), at most 1000 UIDs.
void AddUidMatch(Engine e, Query& q, const std::string& column, const std::string& value) {
  if (value.find('\\') == std::string::npos) return AddMatch(e, q, column, value);
  std::vector<std::string> uids;
  size_t pos = 0;
  while (pos <= value.size() && uids.size() < 1000) {
    size_t end = value.find('\\', pos);
    if (end == std::string::npos) end = value.size();
    if (end > pos) uids.push_back(value.substr(pos, end - pos));
    pos = end + 1;
  }
  if (!uids.empty()) q.WhereIn(column, std::move(uids));
}

void AddDateRange(Query& q, const std::string& column, const std::string& value) {
  if (value.empty()) return;
  auto dash = value.find('-');
  if (dash == std::string::npos) {
    q.Where(column + " = ?", value);
    return;
  }
  std::string from = value.substr(0, dash), to = value.substr(dash + 1);
  if (!from.empty()) q.Where(column + " >= ?", from);
  if (!to.empty()) q.Where(column + " <= ?", to);
}

void Configure(soci::session& s, bool full_sync) {
  s << "PRAGMA busy_timeout = 10000";
  s << "PRAGMA foreign_keys = ON";
  s << (full_sync ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
}

}  // namespace

// The index writes, prepared once on the writer connection and bound to the fields of `rec`
// (SQLite would otherwise parse five statements per instance). `series_pk` caches the series
// already written, so an instance of a known series costs one lookup and one insert.
struct IndexWriter {
  explicit IndexWriter(soci::session& s)
      : patient((s.prepare << "INSERT INTO patients(patient_id, issuer, patient_name, birth_date, "
                              "sex) VALUES(:a, :b, :c, :d, :e) ON CONFLICT(patient_id, issuer, "
                              "patient_name) DO UPDATE SET birth_date = excluded.birth_date, "
                              "sex = excluded.sex RETURNING pk",
                 soci::use(rec.patient_id), soci::use(rec.issuer_of_patient_id), soci::use(rec.patient_name),
                 soci::use(rec.patient_birth_date), soci::use(rec.patient_sex), soci::into(patient_pk))),
        study((s.prepare << "INSERT INTO studies(patient_pk, study_uid, study_date, study_time, "
                            "accession_number, study_id, description, referring_physician, "
                            "created_at, updated_at) VALUES(:p, :u, :d, :t, :a, :i, :de, :r, :c, "
                            ":c2) ON CONFLICT(study_uid) DO UPDATE SET updated_at = "
                            "excluded.updated_at RETURNING pk",
               soci::use(patient_pk), soci::use(rec.study_uid), soci::use(rec.study_date), soci::use(rec.study_time),
               soci::use(rec.accession_number), soci::use(rec.study_id), soci::use(rec.study_description),
               soci::use(rec.referring_physician), soci::use(now), soci::use(now), soci::into(study_pk))),
        // A series keeps the labels it was first filed under, unless it had none.
        series((s.prepare << "INSERT INTO series(study_pk, series_uid, modality, series_number, "
                             "description, body_part, project, subject, session) VALUES(:s, :u, "
                             ":m, :n, :d, :b, :pr, :su, :se) ON CONFLICT(series_uid) DO UPDATE SET "
                             "project = CASE WHEN series.project = '' THEN excluded.project ELSE "
                             "series.project END, subject = CASE WHEN series.project = '' THEN "
                             "excluded.subject ELSE series.subject END, session = CASE WHEN "
                             "series.project = '' THEN excluded.session ELSE series.session END "
                             "RETURNING pk",
                soci::use(study_pk), soci::use(rec.series_uid), soci::use(rec.modality), soci::use(rec.series_number),
                soci::use(rec.series_description), soci::use(rec.body_part), soci::use(rec.project),
                soci::use(rec.subject), soci::use(rec.session), soci::into(series_pk_out))),
        instance((s.prepare << "INSERT INTO instances(series_pk, sop_uid, sop_class_uid, "
                               "instance_number, transfer_syntax_uid, file_path, file_size, "
                               "received_at, source_ae, receiver_ae) VALUES(:se, :u, :c, :n, :t, "
                               ":f, :z, :r, :s, :ra) ON CONFLICT(sop_uid) DO UPDATE SET "
                               "series_pk = excluded.series_pk, sop_class_uid = "
                               "excluded.sop_class_uid, instance_number = excluded.instance_number, "
                               "transfer_syntax_uid = excluded.transfer_syntax_uid, file_path = "
                               "excluded.file_path, file_size = excluded.file_size, received_at = "
                               "excluded.received_at, source_ae = excluded.source_ae, "
                               "receiver_ae = excluded.receiver_ae, version = instances.version + 1",
                  soci::use(series_pk_out), soci::use(rec.sop_uid), soci::use(rec.sop_class_uid),
                  soci::use(rec.instance_number), soci::use(rec.transfer_syntax_uid), soci::use(rec.file_path),
                  soci::use(file_size), soci::use(now), soci::use(rec.source_ae), soci::use(rec.receiver_ae))) {}

  InstanceRecord rec;
  std::string now;
  long long patient_pk = 0, study_pk = 0, series_pk_out = 0, file_size = 0;
  std::unordered_map<std::string, long long> series_pk;  // series UID → pk, committed rows only
  std::unordered_map<std::string, long long> pending;    // written by the open transaction
  soci::statement patient, study, series, instance;
};

Database::Impl::~Impl() = default;

void Database::Impl::EnsureWriter() {
  if (writer.is_connected() && index_writer) return;
  // The statements prepared on the lost connection go first: they belong to it.
  index_writer.reset();
  try {
    const bool lost = !writer.is_connected();
    if (lost) writer.reconnect();
    index_writer = std::make_unique<IndexWriter>(writer);
    if (lost) spdlog::info("index database: connected again");
  } catch (const std::exception& e) {
    // Still unreachable: the statement that follows fails with the reason, and the caller
    // reports it (the ingest indexer retries every second).
    spdlog::debug("index database: connecting again failed: {}", e.what());
  }
}

Database::Database(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Database::~Database() = default;

Database::PoolStatistics Database::Pools() const {
  auto use = [](const ConnectionCounters& c, int size) {
    ConnectionUse u;
    u.size = size;
    u.waiting = c.waiting.load(std::memory_order_relaxed);
    u.in_use = c.in_use.load(std::memory_order_relaxed);
    u.acquisitions = c.acquisitions.load(std::memory_order_relaxed);
    u.wait_seconds = static_cast<double>(c.wait_ns.load(std::memory_order_relaxed)) / 1e9;
    return u;
  };
  return PoolStatistics{use(impl_->read_use, kReadPool), use(impl_->write_use, 1)};
}

namespace {

// SQLite executes one statement per call, as does a prepared PostgreSQL statement: a migration
// script is split on ';' at line ends (a trigger or function body stays on one line).
void RunScript(soci::session& s, const std::string& script) {
  size_t start = 0;
  while (start < script.size()) {
    size_t end = script.find(";\n", start);
    if (end == std::string::npos) end = script.size();
    std::string stmt = script.substr(start, end - start);
    if (stmt.find_first_not_of(" \n\t") != std::string::npos) s << stmt;
    start = end + 2;
  }
}

// Any number for PostgreSQL's advisory lock that serializes migrations between instances.
constexpr long long kMigrationLock = 0x7062'6d69'6772;  // "pbmigr"

void MigratePostgres(soci::session& s) {
  soci::transaction tx(s);
  // Instances starting together: one migrates, the others wait here and then find it done.
  s << "SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLock) + ")";
  s << "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)";
  int version = 0;
  soci::indicator ind = soci::i_null;
  s << "SELECT MAX(version) FROM schema_version", soci::into(version, ind);
  if (ind == soci::i_null) version = 0;
  for (const Migration& m : PostgresMigrations()) {
    if (m.version <= version) continue;
    RunScript(s, m.sql);
    s << "INSERT INTO schema_version(version) VALUES(" + std::to_string(m.version) + ")";
  }
  tx.commit();
}

}  // namespace

namespace {

// The settings libpq reads from a URL, by keyword; empty when it cannot read it.
std::map<std::string, std::string> ConninfoOf(std::string_view url) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(std::string(url).c_str(), &err);
  if (err) PQfreemem(err);
  std::map<std::string, std::string> v;
  if (!opts) return v;
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    if (o->val && *o->val) v[o->keyword] = o->val;
  }
  PQconninfoFree(opts);
  return v;
}

// The URL as keyword='value' pairs (libpq's other form, quoted as it reads them): SOCI's backend
// passes a connection string on, but mangles a URL without a query ("…/db" reaches the server
// as database "db=").
std::string KeywordForm(std::string_view url) {
  std::string out;
  auto options = ConninfoOf(url);
  // A server that does not answer a connection is given up after 10 s (libpq would wait for the
  // network's own timeout), unless the URL says otherwise.
  options.emplace("connect_timeout", "10");
  // A server gone silent on an open TCP connection (its machine or the network lost, no reset)
  // is noticed within about half a minute, not after the system's 15 minutes of retransmissions:
  // keepalive probes when idle, and a limit on unacknowledged data (libpq ignores both on a Unix
  // socket). The URL may say otherwise.
  options.emplace("keepalives_idle", "10");
  options.emplace("keepalives_interval", "5");
  options.emplace("keepalives_count", "3");
  options.emplace("tcp_user_timeout", "30000");
  for (const auto& [key, value] : options) {
    out += out.empty() ? "" : " ";
    out += key + "='";
    for (char c : value) {
      if (c == '\'' || c == '\\') out += '\\';
      out += c;
    }
    out += "'";
  }
  return out;
}

}  // namespace

std::string Database::RedactedUrl(std::string_view url) {
  if (!IsPostgresUrl(url)) return std::string(url);
  // Rebuilt from what libpq reads, so a password in any place (user info, ?password=) is out.
  auto v = ConninfoOf(url);
  if (v.empty()) return "postgresql://(a URL libpq cannot read)";
  std::string out = "postgresql://";
  if (!v["user"].empty()) out += v["user"] + (v["password"].empty() ? "@" : ":***@");
  out += v["host"].empty() ? v["hostaddr"] : v["host"];
  if (!v["port"].empty()) out += ":" + v["port"];
  out += "/" + v["dbname"];
  return out;
}

bool Database::IsPostgres() const { return impl_->engine == Engine::kPostgres; }

bool Database::IsPostgresUrl(std::string_view url) {
  return url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
}

Result<std::unique_ptr<Database>> Database::OpenPostgres(const std::string& url) {
  auto impl = std::make_unique<Impl>();
  impl->engine = Engine::kPostgres;
  impl->conn = KeywordForm(url);
  try {
    MutexLock lock(impl->writer_mu);
    impl->writer.open(soci::postgresql, impl->conn);
    MigratePostgres(impl->writer);
    impl->index_writer = std::make_unique<IndexWriter>(impl->writer);
    for (int i = 0; i < kReadPool; ++i) impl->pool.at(i).open(soci::postgresql, impl->conn);
  } catch (const std::exception& e) {
    // libpq's messages name the host and port, never the password.
    Error error = DbError(e, fmt::format("cannot open {}", RedactedUrl(url)));
    // No server answering (down, starting, unreachable) is worth waiting for; one that answered
    // and refused us (password, no such database, no right to create tables) is not.
    const PGPing ping = PQping(impl->conn.c_str());
    if (ping == PQPING_NO_RESPONSE || ping == PQPING_REJECT) error.code = Code::kUnavailable;
    return tl::unexpected(std::move(error));
  }
  return std::unique_ptr<Database>(new Database(std::move(impl)));
}

Result<std::unique_ptr<Database>> Database::Open(const std::filesystem::path& file, bool full_sync) {
  auto impl = std::make_unique<Impl>();
  try {
    MutexLock lock(impl->writer_mu);  // not shared yet; the analysis wants it held all the same
    std::error_code ec;
    if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path(), ec);
    impl->conn = fmt::format("db=\"{}\" timeout=10", file.string());
    impl->writer.open(soci::sqlite3, impl->conn);
    impl->writer << "PRAGMA journal_mode = WAL";
    Configure(impl->writer, full_sync);
    int version = 0;
    impl->writer << "PRAGMA user_version", soci::into(version);
    for (const Migration& m : Migrations()) {
      if (m.version <= version) continue;
      soci::transaction tx(impl->writer);
      RunScript(impl->writer, m.sql);
      impl->writer << fmt::format("PRAGMA user_version = {}", m.version);
      tx.commit();
    }
    impl->index_writer = std::make_unique<IndexWriter>(impl->writer);
    for (int i = 0; i < kReadPool; ++i) {
      impl->pool.at(i).open(soci::sqlite3, impl->conn);
      Configure(impl->pool.at(i), full_sync);
    }
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("cannot open {}", file.string())));
  }
  return std::unique_ptr<Database>(new Database(std::move(impl)));
}

Result<std::vector<std::pair<std::string, std::string>>> Database::LoadNodes() {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::vector<std::pair<std::string, std::string>> out;
    soci::rowset<soci::row> rs = (s.prepare << "SELECT name, body FROM nodes ORDER BY name");
    for (const auto& r : rs) out.emplace_back(r.get<std::string>(0), r.get<std::string>(1));
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "loading nodes"));
  }
}

Result<void> Database::SaveNode(const std::string& name, const std::string& body, const std::string& replaces) {
  db::WriterLock lock(*impl_);
  try {
    soci::transaction tx(impl_->writer);
    if (!replaces.empty() && replaces != name) {
      impl_->writer << "DELETE FROM nodes WHERE name = :n", soci::use(replaces);
      // The jobs follow, and so does the node named in their parameters (a JSON document the
      // job kind owns: changed here only where it names the old node).
      std::vector<std::pair<long long, std::string>> params;
      {
        soci::rowset<soci::row> rs =
            (impl_->writer.prepare << "SELECT id, params FROM jobs WHERE node = :n", soci::use(replaces));
        for (const auto& r : rs) params.emplace_back(Int(r, 0), Str(r, 1));
      }
      for (auto& [id, text] : params) {
        auto doc = nlohmann::json::parse(text, nullptr, false);
        if (doc.is_object() && doc.contains("node") && doc["node"] == replaces) {
          doc["node"] = name;
          text = doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        }
        impl_->writer << "UPDATE jobs SET node = :n, params = :p WHERE id = :i", soci::use(name), soci::use(text),
            soci::use(id);
      }
      impl_->writer << "DELETE FROM node_state WHERE node = :n", soci::use(name);
      impl_->writer << "UPDATE node_state SET node = :new_name WHERE node = :old_name", soci::use(name),
          soci::use(replaces);
      impl_->writer << "DELETE FROM node_tests WHERE node = :n", soci::use(name);
      impl_->writer << "UPDATE node_tests SET node = :new_name WHERE node = :old_name", soci::use(name),
          soci::use(replaces);
    }
    impl_->writer << "INSERT INTO nodes(name, body) VALUES(:n, :b) "
                     "ON CONFLICT(name) DO UPDATE SET body = excluded.body",
        soci::use(name), soci::use(body);
    tx.commit();
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("saving node '{}'", name)));
  }
}

Result<void> Database::DeleteNode(const std::string& name) {
  db::WriterLock lock(*impl_);
  try {
    // What was learned about it and its test history go with it: a new node of the same name
    // starts afresh.
    soci::transaction tx(impl_->writer);
    impl_->writer << "DELETE FROM nodes WHERE name = :n", soci::use(name);
    impl_->writer << "DELETE FROM node_state WHERE node = :n", soci::use(name);
    impl_->writer << "DELETE FROM node_tests WHERE node = :n", soci::use(name);
    tx.commit();
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("deleting node '{}'", name)));
  }
}

Result<std::vector<StudyRow>> Database::FindStudies(const StudyFilter& f) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    const std::string visible = InProjects("se.project", f.projects);
    Query q(fmt::format("SELECT s.study_uid, p.patient_id, p.patient_name, p.birth_date, p.sex, s.study_date, "
                        "s.study_time, s.accession_number, s.study_id, s.description, "
                        "(SELECT COUNT(*) FROM series se WHERE se.study_pk = s.pk{0}), "
                        "(SELECT COUNT(*) FROM instances i JOIN series se ON i.series_pk = se.pk "
                        "  WHERE se.study_pk = s.pk{0}), "
                        "(SELECT {1} FROM series se WHERE se.study_pk = s.pk{0}) "
                        "FROM studies s JOIN patients p ON s.patient_pk = p.pk",
                        visible, db::GroupConcatDistinct(impl_->engine, "se.modality")),
            Repeat(f.projects, 3));
    const Engine e = impl_->engine;
    AddMatch(e, q, "p.patient_id", f.patient_id);
    AddMatch(e, q, "p.patient_name", f.patient_name);
    AddUidMatch(e, q, "s.study_uid", f.study_uid);
    AddMatch(e, q, "s.accession_number", f.accession_number);
    AddDateRange(q, "s.study_date", f.study_date);
    // A study shows when one of its visible series does (of the modality asked for).
    if (!f.modality.empty()) {
      std::vector<std::string> values{f.modality};
      values.insert(values.end(), f.projects.begin(), f.projects.end());
      q.Where("EXISTS (SELECT 1 FROM series se WHERE se.study_pk = s.pk AND se.modality = ?" + visible + ")",
              std::move(values));
    } else if (!f.projects.empty()) {
      q.Where("EXISTS (SELECT 1 FROM series se WHERE se.study_pk = s.pk" + visible + ")", f.projects);
    }
    std::vector<StudyRow> out;
    q.Run(s, fmt::format(" ORDER BY s.study_date DESC, s.pk DESC LIMIT {} OFFSET {}", f.limit, f.offset),
          [&](const soci::row& r) {
            StudyRow row;
            row.study_uid = Str(r, 0);
            row.patient_id = Str(r, 1);
            row.patient_name = Str(r, 2);
            row.patient_birth_date = Str(r, 3);
            row.patient_sex = Str(r, 4);
            row.study_date = Str(r, 5);
            row.study_time = Str(r, 6);
            row.accession_number = Str(r, 7);
            row.study_id = Str(r, 8);
            row.description = Str(r, 9);
            row.series_count = Int(r, 10);
            row.instance_count = Int(r, 11);
            row.modalities = Str(r, 12);
            out.push_back(std::move(row));
          });
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "finding studies"));
  }
}

Result<std::vector<SeriesRow>> Database::ListSeries(const std::string& study_uid,
                                                    const std::vector<std::string>& projects) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    Query q(
        "SELECT se.series_uid, st.study_uid, se.modality, se.series_number, se.description, "
        "se.body_part, (SELECT COUNT(*) FROM instances i WHERE i.series_pk = se.pk) "
        "FROM series se JOIN studies st ON se.study_pk = st.pk");
    q.Where("st.study_uid = ?", study_uid);
    if (!projects.empty()) q.WhereIn("se.project", projects);
    std::vector<SeriesRow> out;
    q.Run(s, fmt::format(" ORDER BY {}, se.pk", db::AsInteger(impl_->engine, "se.series_number")),
          [&](const soci::row& r) {
            out.push_back(SeriesRow{Str(r, 0), Str(r, 1), Str(r, 2), Str(r, 3), Str(r, 4), Str(r, 5), Int(r, 6)});
          });
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "listing series"));
  }
}

namespace {
const char* const kInstanceSelect =
    "SELECT i.sop_uid, se.series_uid, st.study_uid, i.sop_class_uid, i.instance_number, "
    "i.transfer_syntax_uid, i.file_path, i.received_at, i.source_ae, i.file_size "
    "FROM instances i JOIN series se ON i.series_pk = se.pk JOIN studies st ON se.study_pk = st.pk";

InstanceRow ToInstance(const soci::row& r) {
  return InstanceRow{Str(r, 0), Str(r, 1), Str(r, 2), Str(r, 3), Str(r, 4),
                     Str(r, 5), Str(r, 6), Str(r, 7), Str(r, 8), Int(r, 9)};
}
}  // namespace

Result<std::vector<InstanceRow>> Database::ListInstances(const std::string& series_uid,
                                                         const std::vector<std::string>& projects) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    Query q(kInstanceSelect);
    q.Where("se.series_uid = ?", series_uid);
    if (!projects.empty()) q.WhereIn("se.project", projects);
    std::vector<InstanceRow> out;
    q.Run(s, fmt::format(" ORDER BY {}, i.pk", db::AsInteger(impl_->engine, "i.instance_number")),
          [&](const soci::row& r) { out.push_back(ToInstance(r)); });
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "listing instances"));
  }
}

Result<std::optional<InstanceRow>> Database::GetInstance(const std::string& sop_uid,
                                                         const std::vector<std::string>& projects) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    Query q(kInstanceSelect);
    q.Where("i.sop_uid = ?", sop_uid);
    if (!projects.empty()) q.WhereIn("se.project", projects);
    std::optional<InstanceRow> out;
    q.Run(s, "", [&](const soci::row& r) { out = ToInstance(r); });
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "reading instance"));
  }
}

Result<bool> Database::StudyExists(const std::string& study_uid) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    int n = 0;
    s << "SELECT COUNT(*) FROM studies WHERE study_uid = :u", soci::use(study_uid), soci::into(n);
    return n > 0;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "reading study"));
  }
}

Result<bool> Database::SeriesExists(const std::string& series_uid) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    int n = 0;
    s << "SELECT COUNT(*) FROM series WHERE series_uid = :u", soci::use(series_uid), soci::into(n);
    return n > 0;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "reading series"));
  }
}

namespace {

// Steps a prepared statement to its end, so SQLite resets it: a statement left in the middle of
// its rows (RETURNING, a one-row SELECT) would make COMMIT fail with "statements in progress".
void Finish(soci::statement& st) {
  while (st.fetch()) {
  }
}

class IndexWriteBatch : public Database::WriteBatch {
 public:
  explicit IndexWriteBatch(Database::Impl& impl)
      : asked_(impl.write_use), lock_(impl.writer_mu), use_(impl.write_use), impl_(impl), s_(impl.writer) {
    use_.Acquired(asked_.asked);
  }
  ~IndexWriteBatch() override NO_THREAD_SAFETY_ANALYSIS {  // lock_ is held until the members go
    // A prepared statement whose execution failed still holds its bound values' buffers, and
    // SOCI's PostgreSQL backend allocates new ones at the next execution without freeing those
    // (4.0.3): after a failure the writer's statements are prepared again, not reused. The
    // transaction ends first: PostgreSQL refuses their DEALLOCATE inside an aborted one (and
    // SOCI ignores that), which would leave them prepared on the server.
    if (statement_failed_) {
      tx_.reset();
      impl_.index_writer.reset();
    }
    use_.Released();
  }
  // Opens the transaction (connecting again first if the connection was lost).
  [[nodiscard]] Result<void> Begin() NO_THREAD_SAFETY_ANALYSIS {
    impl_.EnsureWriter();
    if (!impl_.index_writer) return Fail(Code::kUnavailable, "index database: begin: not connected");
    try {
      tx_.emplace(s_);
    } catch (const std::exception& e) {
      return tl::unexpected(DbError(e, "begin"));
    }
    w_ = impl_.index_writer.get();
    w_->pending.clear();
    return {};
  }
  IndexWriteBatch(const IndexWriteBatch&) = delete;
  IndexWriteBatch& operator=(const IndexWriteBatch&) = delete;

  [[nodiscard]] Result<void> Put(const InstanceRecord& r) override {
    try {
      w_->rec = r;
      InstanceRecord& v = w_->rec;
      // Values for people only: the UIDs are identifiers, never altered (ingest refuses those
      // that are not text).
      db::MakeValidUtf8({&v.patient_id,
                         &v.issuer_of_patient_id,
                         &v.patient_name,
                         &v.patient_birth_date,
                         &v.patient_sex,
                         &v.study_date,
                         &v.study_time,
                         &v.accession_number,
                         &v.study_id,
                         &v.study_description,
                         &v.referring_physician,
                         &v.modality,
                         &v.series_number,
                         &v.series_description,
                         &v.body_part,
                         &v.instance_number,
                         &v.source_ae,
                         &v.receiver_ae,
                         &v.project,
                         &v.subject,
                         &v.session});
      w_->now = NowIso();
      w_->file_size = r.file_size;
      std::optional<long long> known;
      if (auto it = w_->series_pk.find(r.series_uid); it != w_->series_pk.end()) known = it->second;
      if (auto it = w_->pending.find(r.series_uid); it != w_->pending.end()) known = it->second;
      if (known) {
        w_->series_pk_out = *known;
      } else {
        w_->patient.execute(true);
        Finish(w_->patient);
        w_->study.execute(true);
        Finish(w_->study);
        w_->series.execute(true);
        Finish(w_->series);
        w_->pending[r.series_uid] = w_->series_pk_out;
      }
      w_->instance.execute(true);
      return {};
    } catch (const std::exception& e) {
      statement_failed_ = true;
      return tl::unexpected(DbError(e, "indexing instance"));
    }
  }

  [[nodiscard]] Result<void> PutStaged(const StagedInstance& staged) override {
    try {
      StagedInstance in = staged;
      db::MakeValidUtf8({&in.source_ae, &in.receiver_ae});
      long long sid = in.session_id, size = in.size;
      // INSERT ... SELECT needs its WHERE for SQLite to read ON CONFLICT as the upsert clause;
      // the numbers are cast, as PostgreSQL would take an untyped value in a SELECT for text.
      s_ << "INSERT INTO staged_instances(session_id, sop_uid, study_uid, series_uid, file, size, source_ae, "
            "receiver_ae) SELECT CAST(:i AS BIGINT), :u, :st, :se, :f, CAST(:z AS BIGINT), :s, :r WHERE EXISTS (SELECT "
            "1 FROM staged_sessions "
            "WHERE id = :i2) ON CONFLICT(session_id, sop_uid) DO UPDATE SET file = excluded.file, size = "
            "excluded.size",
          soci::use(sid), soci::use(in.sop_uid), soci::use(in.study_uid), soci::use(in.series_uid), soci::use(in.file),
          soci::use(size), soci::use(in.source_ae), soci::use(in.receiver_ae), soci::use(sid);
      staged_sessions_.insert(sid);
      return {};
    } catch (const std::exception& e) {
      return tl::unexpected(DbError(e, "recording a staged instance"));
    }
  }

  [[nodiscard]] Result<void> Commit() override {
    try {
      const std::string now = NowIso();
      for (long long sid : staged_sessions_) {
        s_ << "UPDATE staged_sessions SET last_at = :n, instance_count = (SELECT COUNT(*) FROM "
              "staged_instances WHERE session_id = :i), bytes = (SELECT COALESCE(SUM(size), 0) "
              "FROM staged_instances WHERE session_id = :i2) WHERE id = :i3",
            soci::use(now), soci::use(sid), soci::use(sid), soci::use(sid);
      }
      tx_->commit();
      for (auto& [uid, pk] : w_->pending) w_->series_pk[uid] = pk;
      if (w_->series_pk.size() > 100000) w_->series_pk.clear();
      w_->pending.clear();
      return {};
    } catch (const std::exception& e) {
      return tl::unexpected(DbError(e, "commit"));
    }
  }

 private:
  // The batch holds the writer for its whole life; a lock kept in a member is beyond what the
  // analysis follows, hence BeginBatch's exemption.
  db::AskedAt asked_;  // first: taken before lock_ waits
  std::unique_lock<Mutex> lock_;
  ConnectionCounters& use_;
  Database::Impl& impl_;
  soci::session& s_;
  IndexWriter* w_ = nullptr;  // the writer's statements, from Begin()
  std::optional<soci::transaction> tx_;
  std::set<long long> staged_sessions_;  // whose counts Commit() updates
  bool statement_failed_ = false;        // one of the writer's statements threw
};

}  // namespace

Result<std::unique_ptr<Database::WriteBatch>> Database::BeginBatch() NO_THREAD_SAFETY_ANALYSIS {
  auto batch = std::make_unique<IndexWriteBatch>(*impl_);
  if (auto begun = batch->Begin(); !begun) return tl::unexpected(begun.error());
  return std::unique_ptr<WriteBatch>(std::move(batch));
}

}  // namespace pb
