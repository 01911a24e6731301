#include "receivers/archive_query.h"

#include <set>

#include <fmt/format.h>

namespace pb {
namespace {

// Keys the association side answers itself, or that only describe the query.
const std::set<std::string>& AnsweredElsewhere() {
  static const std::set<std::string> kKeys{"RetrieveAETitle", "InstanceAvailability"};
  return kKeys;
}

}  // namespace

Result<dicom::FindPage> ArchiveQuerySink::Find(const dicom::FindQuery& rq, size_t offset) {
  IndexQuery q;
  if (!IndexLevelFromName(rq.level, q.level)) {
    return Fail(Code::kInvalidArgument, fmt::format("QueryRetrieveLevel '{}' is not known", rq.level));
  }
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

}  // namespace pb
