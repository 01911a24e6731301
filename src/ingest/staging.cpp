#include "ingest/staging.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "dicom/header.h"

namespace pb {
namespace {

void RemoveQuietly(const std::filesystem::path& p) {
  std::error_code ec;
  std::filesystem::remove(p, ec);
}

std::string Name(const StagedSession& s) { return fmt::format("{}/{}/{}", s.project, s.subject, s.session); }

}  // namespace

StagingArea::StagingArea(IngestPipeline& pipeline, Database& db, BlobStore& blobs,
                         std::function<int(const std::string&)> idle_seconds, Clock clock)
    : pipeline_(pipeline), db_(db), blobs_(blobs), idle_seconds_(std::move(idle_seconds)), clock_(std::move(clock)) {}

StagingArea::~StagingArea() { Stop(); }

std::filesystem::path StagingArea::SessionDir(int64_t id) const { return blobs_.staging_dir() / std::to_string(id); }

Result<int> StagingArea::Recover() {
  auto sessions = db_.ListStagedSessions();
  if (!sessions) return tl::unexpected(sessions.error());
  std::set<int64_t> known;
  for (const StagedSession& s : *sessions) known.insert(s.id);
  std::error_code ec;
  // Folders of discarded sessions (their rows went first) are removed; files whose row is
  // missing (a crash between rename and record) are recorded again.
  for (const auto& dir : std::filesystem::directory_iterator(blobs_.staging_dir(), ec)) {
    int64_t id = 0;
    try {
      id = std::stoll(dir.path().filename().string());
    } catch (...) {
      continue;
    }
    if (!known.count(id)) {
      std::filesystem::remove_all(dir.path(), ec);
      continue;
    }
    auto rows = db_.ListStagedInstances(id);
    if (!rows) return tl::unexpected(rows.error());
    std::set<std::string> recorded;
    for (const auto& r : *rows) recorded.insert(r.file);
    for (const auto& f : std::filesystem::recursive_directory_iterator(dir.path(), ec)) {
      if (!f.is_regular_file()) continue;
      std::string rel = std::filesystem::relative(f.path(), blobs_.staging_dir()).string();
      if (recorded.count(rel)) continue;
      auto h = dicom::ReadHeader(f.path());
      if (!h) {
        spdlog::warn("staging: {} is not readable ({}); removed", rel, h.error().message);
        RemoveQuietly(f.path());
        continue;
      }
      StagedInstance si{id, h->sop_uid, h->study_uid, h->series_uid, rel, "", "",
                        static_cast<int64_t>(f.file_size())};
      if (auto a = db_.AddStagedInstance(si); !a) return tl::unexpected(a.error());
    }
  }
  std::lock_guard lock(mu_);
  int waiting = 0;
  for (const StagedSession& s : *sessions) {
    last_arrival_[s.id] = clock_();  // the idle time starts again: nothing is archived early
    ++waiting;
  }
  return waiting;
}

void StagingArea::StartTicker() {
  ticker_ = std::thread([this] {
    std::unique_lock lock(tick_mu_);
    while (!stopping_) {
      tick_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
      if (stopping_) break;
      lock.unlock();
      ArchiveIdle();
      lock.lock();
    }
  });
}

void StagingArea::Stop() {
  {
    std::lock_guard lock(tick_mu_);
    stopping_ = true;
  }
  tick_cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

IngestOutcome StagingArea::Stage(const std::filesystem::path& temp, const IngestSource& src,
                                 const std::string& receiver) {
  auto header = src.header ? Result<InstanceRecord>(*src.header) : dicom::ReadHeader(temp);
  if (!header) {
    RemoveQuietly(temp);
    return {IngestStatus::kInvalid, header.error().message, src.expected_sop_uid};
  }
  if (!src.expected_sop_uid.empty() && header->sop_uid != src.expected_sop_uid) {
    RemoveQuietly(temp);
    return {IngestStatus::kInvalid,
            fmt::format("SOP Instance UID of the data set ({}) differs from the request ({})", header->sop_uid,
                        src.expected_sop_uid),
            src.expected_sop_uid};
  }
  InstanceRecord rec = std::move(*header);
  std::error_code ec;
  int64_t size = src.size >= 0 ? src.size : static_cast<int64_t>(std::filesystem::file_size(temp, ec));
  std::lock_guard lock(mu_);
  auto session = db_.OpenStagedSession(receiver, src.project, src.subject, src.session);
  if (!session) {
    RemoveQuietly(temp);
    return {session.error().code == Code::kOutOfSpace ? IngestStatus::kOutOfSpace : IngestStatus::kFailed,
            session.error().message, rec.sop_uid};
  }
  const std::string rel = fmt::format("{}/{}", session->id, BlobStore::RelativePathFor(rec.study_uid, rec.series_uid, rec.sop_uid));
  const std::filesystem::path dest = blobs_.staging_dir() / rel;
  std::filesystem::create_directories(dest.parent_path(), ec);
  if (ec || ::rename(temp.c_str(), dest.c_str()) != 0) {
    int err = errno;
    RemoveQuietly(temp);
    return {err == ENOSPC ? IngestStatus::kOutOfSpace : IngestStatus::kFailed,
            fmt::format("cannot move the instance into the staging area: {}", ec ? ec.message() : std::strerror(err)),
            rec.sop_uid};
  }
  StagedInstance si{session->id, rec.sop_uid, rec.study_uid, rec.series_uid, rel, src.calling_ae, src.called_ae, size};
  if (auto a = db_.AddStagedInstance(si); !a) {
    RemoveQuietly(dest);
    return {a.error().code == Code::kOutOfSpace ? IngestStatus::kOutOfSpace : IngestStatus::kFailed,
            a.error().message, rec.sop_uid};
  }
  last_arrival_[session->id] = clock_();
  originals_[session->id].push_back(src.original_sop_uid.empty() ? rec.sop_uid : src.original_sop_uid);
  rec.file_size = size;
  pipeline_.Announce(rec, src, false);
  return {IngestStatus::kStored, "", rec.sop_uid};
}

std::vector<ArchivedSession> StagingArea::ArchiveIdle() {
  auto sessions = db_.ListStagedSessions();
  std::vector<ArchivedSession> out;
  if (!sessions) {
    spdlog::error("staging: {}", sessions.error().message);
    return out;
  }
  const auto now = clock_();
  for (const StagedSession& s : *sessions) {
    bool due = s.state == "archiving";  // left half done (a failure or a stop): finish it
    if (!due) {
      std::lock_guard lock(mu_);
      auto it = last_arrival_.find(s.id);
      if (it == last_arrival_.end()) it = last_arrival_.emplace(s.id, now).first;
      due = now - it->second >= std::chrono::seconds(std::max(1, idle_seconds_(s.receiver)));
    }
    if (!due) continue;
    if (auto a = Archive(s.id)) out.push_back(std::move(*a));
  }
  return out;
}

std::vector<ArchivedSession> StagingArea::ArchiveHolding(const std::vector<std::string>& original_sop_uids) {
  std::set<int64_t> ids;
  {
    std::lock_guard lock(mu_);
    std::set<std::string> wanted(original_sop_uids.begin(), original_sop_uids.end());
    for (const auto& [id, uids] : originals_) {
      if (std::any_of(uids.begin(), uids.end(), [&](const std::string& u) { return wanted.count(u) > 0; })) ids.insert(id);
    }
  }
  std::vector<ArchivedSession> out;
  for (int64_t id : ids) {
    if (auto a = Archive(id)) out.push_back(std::move(*a));
  }
  return out;
}

Result<FilingPlan> StagingArea::Plan(const StagedSession& session) {
  auto rows = db_.ListStagedInstances(session.id);
  if (!rows) return tl::unexpected(rows.error());
  std::map<std::string, int64_t> staged;
  for (const StagedInstance& i : *rows) ++staged[i.series_uid];
  std::vector<std::string> uids;
  for (const auto& [uid, _] : staged) uids.push_back(uid);
  auto filed = db_.GetFiledSeries(uids);
  if (!filed) return tl::unexpected(filed.error());
  return PlanFiling(FilingLabels{session.project, session.subject, session.session}, staged, *filed);
}

Result<ArchivedSession> StagingArea::Archive(int64_t id) {
  std::lock_guard archiving(archive_mu_);
  ArchivedSession result;
  {
    std::lock_guard lock(mu_);  // from here on, new arrivals open a new session
    auto s = db_.GetStagedSession(id);
    if (!s) return tl::unexpected(s.error());
    if (!*s) return Fail(Code::kNotFound, fmt::format("no staged session {}", id), "id");
    if (auto r = db_.SetStagedState(id, "archiving"); !r) return tl::unexpected(r.error());
    result.session = **s;
    last_arrival_.erase(id);
    originals_.erase(id);
  }
  auto rows = db_.ListStagedInstances(id);
  if (!rows) return tl::unexpected(rows.error());
  for (const StagedInstance& i : *rows) {
    std::filesystem::path file = blobs_.staging_dir() / i.file;
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) {
      ++result.archived;  // moved by an earlier, interrupted archiving (it journals first)
      continue;
    }
    IngestSource src;
    src.calling_ae = i.source_ae;
    src.called_ae = i.receiver_ae;
    src.size = i.size;
    src.project = result.session.project;
    src.subject = result.session.subject;
    src.session = result.session.session;
    IngestOutcome o = pipeline_.Ingest(file, src);
    if (o.ok()) {
      ++result.archived;
    } else {
      ++result.failed;
      if (result.error.empty()) result.error = o.message;
    }
  }
  if (result.failed > 0) {
    spdlog::error("staging: session {} ({}): {} of {} instance(s) could not be archived: {}; retrying", id,
                  result.session.receiver, result.failed, rows->size(), result.error);
    return result;
  }
  if (auto f = pipeline_.Flush(); !f) spdlog::warn("staging: the index is behind: {}", f.error().message);
  if (auto d = db_.DeleteStagedSession(id); !d) return tl::unexpected(d.error());
  std::error_code ec;
  std::filesystem::remove_all(SessionDir(id), ec);
  spdlog::info("staging: session {} from receiver {} archived: {} instance(s)", id, result.session.receiver,
               result.archived);
  spdlog::debug("staging: session {} is {}", id, Name(result.session));
  if (on_archived_) on_archived_(result);
  return result;
}

Result<void> StagingArea::Discard(int64_t id) {
  std::lock_guard archiving(archive_mu_);
  std::lock_guard lock(mu_);
  auto s = db_.GetStagedSession(id);
  if (!s) return tl::unexpected(s.error());
  if (!*s) return Fail(Code::kNotFound, fmt::format("no staged session {}", id), "id");
  if (auto d = db_.DeleteStagedSession(id); !d) return d;
  std::error_code ec;
  std::filesystem::remove_all(SessionDir(id), ec);
  last_arrival_.erase(id);
  originals_.erase(id);
  spdlog::info("staging: session {} from receiver {} discarded ({} instance(s))", id, (*s)->receiver,
               (*s)->instance_count);
  return {};
}

}  // namespace pb
