// MPPS steps, sent and received (migration 008).
#include <fmt/format.h>
#include <soci/soci.h>

#include "archive/database_impl.h"
#include "core/thread_annotations.h"

namespace pb {

using db::DbError;
using db::Str;

namespace {

constexpr const char* kColumns =
    "direction, sop_instance_uid, node, receiver_ae, calling_ae, status, accession_number, study_instance_uid, "
    "patient_id, patient_name, scheduled_step_id, modality, attributes, history, created_at, updated_at";

MppsRecord FromRow(const soci::row& r) {
  MppsRecord m;
  m.direction = Str(r, 0);
  m.sop_instance_uid = Str(r, 1);
  m.node = Str(r, 2);
  m.receiver_ae = Str(r, 3);
  m.calling_ae = Str(r, 4);
  m.status = Str(r, 5);
  m.accession_number = Str(r, 6);
  m.study_instance_uid = Str(r, 7);
  m.patient_id = Str(r, 8);
  m.patient_name = Str(r, 9);
  m.scheduled_step_id = Str(r, 10);
  m.modality = Str(r, 11);
  m.attributes = Str(r, 12);
  m.history = Str(r, 13);
  m.created_at = Str(r, 14);
  m.updated_at = Str(r, 15);
  return m;
}

}  // namespace

Result<void> Database::PutMpps(const MppsRecord& step) {
  MppsRecord m = step;
  db::MakeValidUtf8({&m.node, &m.receiver_ae, &m.calling_ae, &m.status, &m.accession_number, &m.study_instance_uid,
                     &m.patient_id, &m.patient_name, &m.scheduled_step_id, &m.modality, &m.attributes, &m.history});
  db::WriterLock lock(*impl_);
  try {
    impl_->writer << fmt::format(
        "INSERT INTO mpps({}) VALUES(:d, :u, :n, :r, :c, :s, :a, :st, :pi, :pn, :sp, :mo, :at, :h, :ca, :ua) "
        "ON CONFLICT(direction, sop_instance_uid) DO UPDATE SET node = excluded.node, receiver_ae = "
        "excluded.receiver_ae, calling_ae = excluded.calling_ae, status = excluded.status, accession_number = "
        "excluded.accession_number, study_instance_uid = excluded.study_instance_uid, patient_id = "
        "excluded.patient_id, patient_name = excluded.patient_name, scheduled_step_id = excluded.scheduled_step_id, "
        "modality = excluded.modality, attributes = excluded.attributes, history = excluded.history, created_at = "
        "excluded.created_at, updated_at = excluded.updated_at",
        kColumns),
        soci::use(m.direction), soci::use(m.sop_instance_uid), soci::use(m.node), soci::use(m.receiver_ae),
        soci::use(m.calling_ae), soci::use(m.status), soci::use(m.accession_number), soci::use(m.study_instance_uid),
        soci::use(m.patient_id), soci::use(m.patient_name), soci::use(m.scheduled_step_id), soci::use(m.modality),
        soci::use(m.attributes), soci::use(m.history), soci::use(m.created_at), soci::use(m.updated_at);
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("saving the MPPS step {}", m.sop_instance_uid)));
  }
}

Result<std::optional<MppsRecord>> Database::GetMpps(const std::string& direction, const std::string& uid) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    soci::rowset<soci::row> rs =
        (s.prepare << fmt::format("SELECT {} FROM mpps WHERE direction = :d AND sop_instance_uid = :u", kColumns),
         soci::use(direction), soci::use(uid));
    for (const auto& r : rs) return std::optional<MppsRecord>(FromRow(r));
    return std::optional<MppsRecord>();
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, fmt::format("reading the MPPS step {}", uid)));
  }
}

Result<std::vector<MppsRecord>> Database::ListMpps(const MppsFilter& f) {
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::vector<MppsRecord> out;
    const int limit = std::max(1, f.limit);
    soci::rowset<soci::row> rs =
        (s.prepare << fmt::format(
             "SELECT {} FROM mpps WHERE (:d1 = '' OR direction = :d2) AND (:s1 = '' OR status = :s2) "
             "AND (:a1 = '' OR accession_number = :a2) AND (:u1 = '' OR study_instance_uid = :u2) "
             "AND (:n1 = '' OR node = :n2) ORDER BY updated_at DESC, direction DESC, sop_instance_uid LIMIT :l",
             kColumns),
         soci::use(f.direction), soci::use(f.direction), soci::use(f.status), soci::use(f.status),
         soci::use(f.accession_number), soci::use(f.accession_number), soci::use(f.study_instance_uid),
         soci::use(f.study_instance_uid), soci::use(f.node), soci::use(f.node), soci::use(limit));
    for (const auto& r : rs) out.push_back(FromRow(r));
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "listing MPPS steps"));
  }
}

}  // namespace pb
