// WADO-RS metadata rows (migration 010): which instances still need theirs, and writing them.
#include <soci/soci.h>

#include "archive/database_impl.h"
#include "core/thread_annotations.h"

namespace pb {

using db::DbError;
using db::Str;

Result<std::vector<MetadataRow>> Database::InstancesWithoutMetadata(int limit, int64_t after_pk) {
  try {
    long long after = after_pk;
    db::ReadSession s(impl_->pool, impl_->read_use);
    soci::rowset<soci::row> rows =
        (s.prepare << "SELECT i.pk, i.sop_uid, se.series_uid, st.study_uid, i.file_path, "
                      "i.received_at, i.version FROM instances i JOIN series se ON i.series_pk = se.pk "
                      "JOIN studies st ON se.study_pk = st.pk WHERE i.pk > :a AND NOT EXISTS "
                      "(SELECT 1 FROM instance_metadata m WHERE m.instance_pk = i.pk) ORDER "
                      "BY i.pk LIMIT :l",
         soci::use(after), soci::use(limit));
    std::vector<MetadataRow> out;
    for (const soci::row& r : rows) {
      MetadataRow m;
      m.pk = db::Int(r, 0);
      m.sop_uid = Str(r, 1);
      m.series_uid = Str(r, 2);
      m.study_uid = Str(r, 3);
      m.file_path = Str(r, 4);
      m.received_at = Str(r, 5);
      m.version = db::Int(r, 6);
      out.push_back(std::move(m));
    }
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "listing the instances without metadata"));
  }
}

Result<void> Database::PutMetadata(const std::vector<MetadataRow>& rows) {
  if (rows.empty()) return {};
  db::WriterLock lock(*impl_);
  try {
    soci::transaction tx(impl_->writer);
    long long pk = 0, version = 0;
    std::string json, file, received;
    soci::statement st = (impl_->writer.prepare << "INSERT INTO instance_metadata(instance_pk, json) "
                                                   "SELECT pk, :j FROM instances WHERE pk = :p AND file_path = :f "
                                                   "AND received_at = :r AND version = :v "
                                                   "ON CONFLICT(instance_pk) DO UPDATE SET json = excluded.json",
                          soci::use(json), soci::use(pk), soci::use(file), soci::use(received), soci::use(version));
    for (const MetadataRow& r : rows) {
      pk = r.pk;
      version = r.version;
      json = r.json;
      file = r.file_path;
      received = r.received_at;
      st.execute(true);
    }
    tx.commit();
    return {};
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "writing instances' metadata", false));
  }
}

}  // namespace pb
