#include "ingest/staging.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/files.h"
#include "core/thread_annotations.h"
#include "dicom/header.h"

namespace pb {
namespace {

std::string Name(const StagedSession& s) { return fmt::format("{}/{}/{}", s.project, s.subject, s.session); }

}  // namespace

StagingArea::StagingArea(IngestPipeline& pipeline, Database& db, BlobStore& blobs,
                         std::function<int(const std::string&)> idle_seconds, Clock clock)
    : pipeline_(pipeline), db_(db), blobs_(blobs), idle_seconds_(std::move(idle_seconds)), clock_(std::move(clock)) {}

StagingArea::~StagingArea() { Stop(); }

void StagingArea::ShareWith(std::string owner, TakeOver take_over) {
  owner_ = std::move(owner);
  take_over_ = std::move(take_over);
}

bool StagingArea::Mine(const StagedSession& s) {
  if (s.owner == owner_ || !take_over_) return true;
  std::error_code ec;
  // Opened by a server that owned a data directory alone: ours from before instances shared it
  // when its files are here, else another directory's.
  if (s.owner.empty() && !std::filesystem::exists(SessionDir(s.id), ec)) return false;
  bool claimed = false;
  const bool stopped = take_over_(s.owner, [&] {
    auto c = db_.ClaimStagedSession(s.id, s.owner, owner_);
    if (!c) spdlog::warn("staging: cannot take session {} over: {}", s.id, c.error().message);
    claimed = c && *c;  // false: another instance took it first
  });
  if (!stopped || !claimed) return false;
  spdlog::info("staging: session {} from receiver {} belonged to {}, which is not running: taken over here", s.id,
               s.receiver, s.owner.empty() ? std::string("the server before") : fmt::format("instance '{}'", s.owner));
  MutexLock lock(mu_);
  last_arrival_[s.id] = clock_();  // its idle time starts again here
  return true;
}

Result<void> StagingArea::CheckOwner(int64_t id, const char* what) {
  if (!take_over_) return {};
  auto found = db_.GetStagedSession(id);
  if (!found) return tl::unexpected(found.error());
  if (!*found) return {};  // the caller says it is gone
  const StagedSession& s = **found;
  if (Mine(s)) return {};
  return Fail(Code::kConflict,
              fmt::format("staged session {} is received by instance '{}', which alone knows its arrivals in flight: "
                          "{} it through that instance",
                          s.id, s.owner, what),
              "id");
}

std::filesystem::path StagingArea::SessionDir(int64_t id) const { return blobs_.staging_dir() / std::to_string(id); }

Result<int> StagingArea::Recover() {
  auto sessions = db_.ListStagedSessions();
  if (!sessions) return tl::unexpected(sessions.error());
  std::set<int64_t> known;
  std::vector<StagedSession> mine;
  for (const StagedSession& s : *sessions) {
    known.insert(s.id);
    if (Mine(s)) mine.push_back(s);
  }
  std::set<int64_t> ours;
  for (const StagedSession& s : mine) ours.insert(s.id);
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
      // Another instance sharing the data directory may have opened it since the list was read
      // (its row comes before its folder): only a folder whose row is still missing goes.
      auto now = db_.GetStagedSession(id);
      if (!now) return tl::unexpected(now.error());
      if (!*now) std::filesystem::remove_all(dir.path(), ec);
      continue;
    }
    if (!ours.count(id)) continue;  // a running instance's: its rows may still be in its batch
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
      StagedInstance si{id, h->sop_uid, h->study_uid, h->series_uid, rel, "", "", static_cast<int64_t>(f.file_size())};
      if (auto a = db_.AddStagedInstance(si); !a) return tl::unexpected(a.error());
    }
  }
  MutexLock lock(mu_);
  int waiting = 0;
  for (const StagedSession& s : mine) {
    last_arrival_[s.id] = clock_();  // the idle time starts again: nothing is archived early
    ++waiting;
  }
  return waiting;
}

void StagingArea::StartTicker() {
  ticker_ = std::thread([this] {
    MutexLock lock(tick_mu_);
    while (!stopping_) {
      tick_cv_.wait_for(lock, std::chrono::seconds(1), [&]() REQUIRES(tick_mu_) { return stopping_; });
      if (stopping_) break;
      lock.Unlock();
      ArchiveIdle();
      lock.Lock();
    }
  });
}

void StagingArea::Stop() {
  {
    MutexLock lock(tick_mu_);
    stopping_ = true;
  }
  tick_cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

Result<int64_t> StagingArea::Enter(const std::string& receiver, const IngestSource& src) {
  MutexLock lock(mu_);
  SessionKey key{receiver, src.project, src.subject, src.session};
  auto it = open_.find(key);
  if (it == open_.end()) {  // the first arrival since the start, or since its session closed
    auto session = db_.OpenStagedSession(receiver, src.project, src.subject, src.session, owner_);
    if (!session) return tl::unexpected(session.error());
    it = open_.emplace(std::move(key), session->id).first;
  }
  ++in_flight_[it->second];
  return it->second;
}

void StagingArea::Leave(int64_t id, const std::string& sent_sop_uid, bool durable) {
  MutexLock lock(mu_);
  if (auto it = in_flight_.find(id); it != in_flight_.end() && --it->second <= 0) in_flight_.erase(it);
  bool open = std::any_of(open_.begin(), open_.end(), [id](const auto& kv) { return kv.second == id; });
  if (durable && open) {  // a closed session is being archived or discarded: it waits for this
    last_arrival_[id] = clock_();
    originals_[id].push_back(sent_sop_uid);
  }
  settled_.notify_all();
}

void StagingArea::Close(int64_t id, MutexLock& lock) {
  for (auto it = open_.begin(); it != open_.end();) {
    it = it->second == id ? open_.erase(it) : std::next(it);
  }
  last_arrival_.erase(id);
  originals_.erase(id);
  settled_.wait(lock, [&]() REQUIRES(mu_) { return in_flight_.count(id) == 0; });
}

Result<std::vector<StagedSession>> StagingArea::List() {
  CatchUp();
  return db_.ListStagedSessions();
}

Result<std::optional<StagedSession>> StagingArea::Get(int64_t id) {
  CatchUp();
  return db_.GetStagedSession(id);
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
    if (!Mine(s)) continue;
    bool due = s.state == "archiving";  // left half done (a failure or a stop): finish it
    if (!due) {
      MutexLock lock(mu_);
      if (in_flight_.count(s.id)) continue;  // an instance is arriving: not idle
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
    MutexLock lock(mu_);
    std::set<std::string> wanted(original_sop_uids.begin(), original_sop_uids.end());
    for (const auto& [id, uids] : originals_) {
      if (std::any_of(uids.begin(), uids.end(), [&](const std::string& u) { return wanted.count(u) > 0; }))
        ids.insert(id);
    }
  }
  std::vector<ArchivedSession> out;
  for (int64_t id : ids) {
    if (auto a = Archive(id)) out.push_back(std::move(*a));
  }
  return out;
}

Result<FilingPlan> StagingArea::Plan(const StagedSession& session) {
  CatchUp();
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
  MutexLock archiving(archive_mu_);
  if (auto owned = CheckOwner(id, "archive"); !owned) return tl::unexpected(owned.error());
  ArchivedSession result;
  {
    MutexLock lock(mu_);
    auto s = db_.GetStagedSession(id);
    if (!s) return tl::unexpected(s.error());
    if (!*s) return Fail(Code::kNotFound, fmt::format("no staged session {}", id), "id");
    // From here on, new arrivals open a new session (also after a restart: it is not 'open').
    if (auto r = db_.SetStagedState(id, "archiving"); !r) return tl::unexpected(r.error());
    Close(id, lock);
  }
  // The rows of its last arrivals may still be in the indexer's batch: archiving must see them,
  // or their files would be removed with the folder.
  if (auto f = pipeline_.Flush(); !f) {
    return Fail(f.error().code, fmt::format("staged session {} cannot be archived yet: {}", id, f.error().message));
  }
  auto s = db_.GetStagedSession(id);
  if (!s) return tl::unexpected(s.error());
  if (!*s) return Fail(Code::kNotFound, fmt::format("no staged session {}", id), "id");
  result.session = **s;
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
  MutexLock archiving(archive_mu_);
  if (auto owned = CheckOwner(id, "discard"); !owned) return owned;
  MutexLock lock(mu_);
  auto s = db_.GetStagedSession(id);
  if (!s) return tl::unexpected(s.error());
  if (!*s) return Fail(Code::kNotFound, fmt::format("no staged session {}", id), "id");
  // The rows go first: new arrivals open a new session, and rows of this one still in the
  // indexer's batch are skipped. Then its folder, once no commit is renaming into it.
  if (auto d = db_.DeleteStagedSession(id); !d) return d;
  Close(id, lock);
  std::error_code ec;
  std::filesystem::remove_all(SessionDir(id), ec);
  spdlog::info("staging: session {} from receiver {} discarded ({} instance(s))", id, (*s)->receiver,
               (*s)->instance_count);
  return {};
}

}  // namespace pb
