#include "receivers/archive_query.h"

#include <set>

#include <fmt/format.h>

namespace pb {
namespace {

// Keys the association side answers itself.
const std::set<std::string>& AnsweredElsewhere() {
  static const std::set<std::string> kKeys{"RetrieveAETitle", "InstanceAvailability"};
  return kKeys;
}

[[nodiscard]] Result<IndexLevel> LevelOf(const std::string& name) {
  IndexLevel level;
  if (!IndexLevelFromName(name, level)) {
    return Fail(Code::kInvalidArgument, fmt::format("QueryRetrieveLevel '{}' is not known", name));
  }
  return level;
}

}  // namespace

Result<dicom::FindPage> ArchiveQuerySink::Find(const dicom::FindQuery& rq, size_t offset) {
  auto level = LevelOf(rq.level);
  if (!level) return tl::unexpected(level.error());
  // What a sender was answered for is in the index before it is looked for.
  if (offset == 0) (void)pipeline_.Flush(std::chrono::seconds(5));
  IndexQuery q;
  q.level = *level;
  q.keys = rq.keys;
  q.projects = projects_;
  q.names_ignore_case = names_ignore_case_;
  q.offset = offset;
  q.limit = kPage + 1;  // one more tells whether another page follows
  dicom::FindPage page;
  for (const auto& [keyword, value] : rq.keys) {
    q.returns.push_back(keyword);
    if (!IndexKnows(q.level, keyword) && !AnsweredElsewhere().count(keyword)) page.unsupported = true;
  }
  auto rows = db_.QueryIndex(q);
  if (!rows) return tl::unexpected(rows.error());
  page.more = rows->size() > kPage;
  if (page.more) rows->pop_back();
  page.answers = std::move(*rows);
  return page;
}

Result<std::vector<dicom::SendItem>> ArchiveQuerySink::Instances(const dicom::RetrieveQuery& rq) {
  auto level = LevelOf(rq.level);
  if (!level) return tl::unexpected(level.error());
  (void)pipeline_.Flush(std::chrono::seconds(5));
  IndexQuery q;
  q.level = *level;
  q.keys = rq.keys;
  q.projects = projects_;
  q.names_ignore_case = names_ignore_case_;
  q.limit = 10'000'000;
  auto rows = db_.QueryInstances(q);
  if (!rows) return tl::unexpected(rows.error());
  std::vector<dicom::SendItem> items;
  items.reserve(rows->size());
  for (const InstanceRow& r : *rows) {
    items.push_back({pipeline_.blobs().Absolute(r.file_path).string(), r.sop_class_uid, r.sop_uid,
                     r.transfer_syntax_uid, r.file_size});
  }
  return items;
}

Result<dicom::MoveTarget> ArchiveQuerySink::MoveDestination(const std::string& ae_title,
                                                            const dicom::RetrieveQuery& rq) {
  if (!destinations_) return Fail(Code::kNotFound, fmt::format("move destination '{}' is unknown", ae_title));
  return destinations_(ae_title, rq.called_ae);
}

}  // namespace pb
