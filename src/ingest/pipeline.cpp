#include "ingest/pipeline.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/files.h"
#include "core/thread_annotations.h"
#include "core/validate.h"
#include "dicom/header.h"

namespace pb {
namespace {

IngestOutcome Failed(const Error& e, const std::string& sop) {
  return {e.code == Code::kOutOfSpace ? IngestStatus::kOutOfSpace : IngestStatus::kFailed, e.message, sop};
}

Error JournalError(const char* what, int err) {
  return Error{err == ENOSPC || err == EDQUOT ? Code::kOutOfSpace : Code::kIoError,
               fmt::format("ingest journal: {}: {}", what, std::strerror(err)), ""};
}

// A value from the network in a journal field: never a tab or a line break.
std::string Field(std::string v) {
  for (char& c : v) {
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  }
  return v;
}

// One line per instance: the path, then the labels (cleaned by routing: never a tab or newline).
// A staged instance adds its session and the AE titles (its row keeps them for archiving); its
// path is relative to staging/ and starts with the session's id.
std::string JournalLine(const InstanceRecord& rec, const std::optional<StagedInstance>& staged) {
  if (!staged) return fmt::format("{}\t{}\t{}\t{}\n", rec.file_path, rec.project, rec.subject, rec.session);
  return fmt::format("{}\t{}\t{}\t{}\t{}\t{}\t{}\n", staged->file, rec.project, rec.subject, rec.session,
                     staged->session_id, Field(staged->source_ae), Field(staged->receiver_ae));
}

std::vector<std::string> SplitTabs(const std::string& line) {
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    size_t tab = line.find('\t', start);
    parts.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) break;
    start = tab + 1;
  }
  return parts;
}

// A staged entry's session id: digits only, and the path must lie in that session's folder.
std::optional<int64_t> StagedSessionOf(const std::string& id, const std::string& rel) {
  if (id.empty() || id.size() > 18 || id.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  if (rel.compare(0, id.size() + 1, id + "/") != 0) return std::nullopt;
  return std::stoll(id);
}

}  // namespace

IngestPipeline::IngestPipeline(BlobStore& blobs, Database& db, IngestOptions options)
    : blobs_(blobs), db_(db), options_(options), journal_dir_(blobs.journal_dir()) {
  // Journal generations continue after those of earlier runs, which Recover() removes.
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(journal_dir_, ec)) {
    uint64_t n = 0;
    if (std::sscanf(e.path().filename().c_str(), "journal-%lu.log", &n) == 1) {
      active_journal_ = std::max(active_journal_, n);
    }
  }
  ++active_journal_;
  indexer_ = std::thread([this] { IndexLoop(); });
}

IngestPipeline::~IngestPipeline() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  indexer_.join();
  if (journal_fd_ >= 0) ::close(journal_fd_);
}

std::filesystem::path IngestPipeline::JournalPath(uint64_t generation) const {
  return journal_dir_ / fmt::format("journal-{}.log", generation);
}

Result<void> IngestPipeline::OpenJournal(uint64_t generation) {
  if (journal_fd_ >= 0) ::close(journal_fd_);
  journal_fd_ = ::open(JournalPath(generation).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (journal_fd_ < 0) return tl::unexpected(JournalError("open", errno));
  return {};
}

Result<uint64_t> IngestPipeline::Journal(const std::string& line) {
  MutexLock lock(mu_);
  if (journal_fd_ < 0) {
    if (auto r = OpenJournal(active_journal_); !r) return tl::unexpected(r.error());
  }
  ssize_t n = ::write(journal_fd_, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) return tl::unexpected(JournalError("write", n < 0 ? errno : ENOSPC));
  if (options_.fsync) {
    if (::fdatasync(journal_fd_) != 0) return tl::unexpected(JournalError("fsync", errno));
    ++synced_journal_;
  }
  ++outstanding_[active_journal_];
  ++active_entries_;
  return active_journal_;
}

void IngestPipeline::Release(uint64_t generation) {
  auto it = outstanding_.find(generation);
  if (it == outstanding_.end() || --it->second > 0) return;
  outstanding_.erase(it);
  if (generation != active_journal_) {
    RemoveQuietly(JournalPath(generation));
  } else if (journal_fd_ >= 0 && ::ftruncate(journal_fd_, 0) == 0) {
    active_entries_ = 0;  // everything it named is indexed: emptied in place (appends go on)
  }
}

tl::expected<InstanceRecord, IngestOutcome> IngestPipeline::Check(const std::filesystem::path& temp,
                                                                  const IngestSource& src) {
  auto header = src.header ? Result<InstanceRecord>(*src.header) : dicom::ReadHeader(temp);
  if (!header) {
    RemoveQuietly(temp);
    return tl::unexpected(IngestOutcome{IngestStatus::kInvalid, header.error().message, src.expected_sop_uid});
  }
  if (!src.expected_sop_uid.empty() && header->sop_uid != src.expected_sop_uid) {
    RemoveQuietly(temp);
    return tl::unexpected(
        IngestOutcome{IngestStatus::kInvalid,
                      fmt::format("SOP Instance UID of the data set ({}) differs from the request ({})",
                                  header->sop_uid, src.expected_sop_uid),
                      src.expected_sop_uid});
  }
  InstanceRecord rec = std::move(*header);
  // An identifier is stored as it is, never altered: one whose bytes are not text cannot be
  // indexed (PostgreSQL takes UTF-8 only) nor told apart from another once its bytes replaced.
  for (const auto& [name, uid] : {std::pair<const char*, const std::string*>{"SOP Instance UID", &rec.sop_uid},
                                  {"Series Instance UID", &rec.series_uid},
                                  {"Study Instance UID", &rec.study_uid},
                                  {"SOP Class UID", &rec.sop_class_uid}}) {
    if (!IsValidUtf8(*uid)) {
      RemoveQuietly(temp);
      return tl::unexpected(IngestOutcome{
          IngestStatus::kInvalid, fmt::format("its {} has bytes that are not characters", name), src.expected_sop_uid});
    }
  }
  std::error_code ec;
  rec.file_size = src.size >= 0 ? src.size : static_cast<int64_t>(std::filesystem::file_size(temp, ec));
  rec.source_ae = src.calling_ae;
  rec.receiver_ae = src.called_ae;
  rec.project = src.project;
  rec.subject = src.subject;
  rec.session = src.session;
  return rec;
}

IngestOutcome IngestPipeline::Ingest(const std::filesystem::path& temp, const IngestSource& src,
                                     const IngestTarget& target) {
  auto rec = Check(temp, src);
  if (!rec) return rec.error();
  Entry entry;
  entry.record = std::move(*rec);
  if (!target.staging) {
    entry.record.file_path =
        BlobStore::RelativePathFor(entry.record.study_uid, entry.record.series_uid, entry.record.sop_uid);
    return Commit(temp, src, std::move(entry));
  }
  // Only an instance that passed its checks opens a session.
  auto session = target.staging->Enter(target.receiver, src);
  if (!session) {
    RemoveQuietly(temp);
    return Failed(session.error(), entry.record.sop_uid);
  }
  const InstanceRecord& r = entry.record;
  std::string rel = fmt::format("{}/{}", *session, BlobStore::RelativePathFor(r.study_uid, r.series_uid, r.sop_uid));
  entry.staged = StagedInstance{*session,       r.sop_uid,   r.study_uid,   r.series_uid,
                                std::move(rel), r.source_ae, r.receiver_ae, r.file_size};
  // Leave() runs on every way out: archiving or discarding that session waits for it.
  struct Leaving {
    StagingSessions& area;
    int64_t session;
    std::string sent_sop_uid;
    bool durable = false;
    ~Leaving() { area.Leave(session, sent_sop_uid, durable); }
  } leaving{*target.staging, *session, src.original_sop_uid.empty() ? r.sop_uid : src.original_sop_uid, false};
  IngestOutcome out = Commit(temp, src, std::move(entry));
  leaving.durable = out.ok();
  return out;
}

std::string IngestPipeline::IndexWriteError() {
  MutexLock lock(mu_);
  return index_failing_ ? last_error_ : std::string();
}

IngestOutcome IngestPipeline::Commit(const std::filesystem::path& temp, const IngestSource& src, Entry entry) {
  const InstanceRecord& rec = entry.record;
  const bool staged = entry.staged.has_value();
  const std::string& rel = staged ? entry.staged->file : rec.file_path;
  const BlobStore::Root root = staged ? BlobStore::Root::kStaging : BlobStore::Root::kArchive;
  if (options_.fsync) {
    if (auto r = BlobStore::Sync(temp); !r) {
      RemoveQuietly(temp);
      return Failed(r.error(), rec.sop_uid);
    }
    ++synced_files_;
  }
  {
    MutexLock lock(mu_);
    if (index_failing_ && !src.answered) {
      RemoveQuietly(temp);
      return {IngestStatus::kOutOfSpace,
              fmt::format("the index database cannot be written ({}); nothing is taken until it can", last_error_),
              rec.sop_uid};
    }
  }
  // The journal names the file before it exists in its place: a crash after the rename can
  // never leave an answered instance that nobody will index.
  auto generation = Journal(JournalLine(rec, entry.staged));
  if (!generation) {
    RemoveQuietly(temp);
    return Failed(generation.error(), rec.sop_uid);
  }
  entry.journal = *generation;
  // A staged copy of an instance replaces the one staged before (the session keeps one row per
  // SOP Instance UID); the archive follows the duplicates option.
  auto placed = blobs_.Place(temp, rel, staged || options_.duplicates == DuplicatePolicy::kOverwrite, root);
  if (placed && options_.fsync && *placed != BlobStore::Placed::kExists) {
    if (auto r = blobs_.SyncDirOf(rel, root); !r)
      placed = tl::unexpected(r.error());
    else
      ++synced_folders_;
  }
  if (!placed || *placed == BlobStore::Placed::kExists) {
    RemoveQuietly(temp);
    {
      MutexLock lock(mu_);
      Release(entry.journal);
    }
    if (!placed) return Failed(placed.error(), rec.sop_uid);
    Announce(rec, src, true);  // subscribers are never called with mu_ held
    return {IngestStatus::kDuplicate, "already in the archive; kept the stored copy", rec.sop_uid};
  }
  IngestStatus status =
      *placed == BlobStore::Placed::kReplaced && !staged ? IngestStatus::kReplaced : IngestStatus::kStored;
  std::string sop = rec.sop_uid;
  Announce(rec, src, false);
  bool wake;
  {
    MutexLock lock(mu_);
    wake = pending_.empty() || pending_.size() + 1 >= options_.max_batch;  // else it is awake
    pending_.push_back(std::move(entry));
    ++pushed_;
  }
  if (wake) wake_.notify_one();
  return {status, "", sop};
}

void IngestPipeline::Announce(const InstanceRecord& rec, const IngestSource& src, bool was_present) {
  if (!arrivals_.HasSubscribers()) return;  // no job waits: no copies, no lock
  Arrival a;
  a.sop_uid = src.original_sop_uid.empty() ? rec.sop_uid : src.original_sop_uid;
  a.sop_class_uid = rec.sop_class_uid;
  a.study_uid = src.original_study_uid.empty() ? rec.study_uid : src.original_study_uid;
  a.series_uid = src.original_series_uid.empty() ? rec.series_uid : src.original_series_uid;
  a.bytes = rec.file_size;
  a.calling_ae = src.calling_ae;
  a.called_ae = src.called_ae;
  a.move_originator_ae = src.move_originator_ae;
  a.move_originator_id = src.move_originator_id;
  a.was_present = was_present;
  arrivals_.Publish(a);
}

Result<void> IngestPipeline::IndexBatch(const std::vector<Entry>& entries) {
  auto tx = db_.BeginBatch();
  if (!tx) return tl::unexpected(tx.error());
  for (const Entry& e : entries) {
    if (auto p = e.staged ? (*tx)->PutStaged(*e.staged) : (*tx)->Put(e.record); !p) return p;
  }
  return (*tx)->Commit();
}

void IngestPipeline::IndexLoop() {
  MutexLock lock(mu_);
  bool failing = false;
  while (true) {
    wake_.wait(lock, [&]() REQUIRES(mu_) { return stopping_ || !pending_.empty(); });
    if (pending_.empty()) return;  // stopping with nothing left
    // A short window lets concurrent associations share one transaction.
    wake_.wait_for(lock, options_.batch_window, [&]() REQUIRES(mu_) {
      return stopping_ || flush_requested_ || pending_.size() >= options_.max_batch;
    });
    flush_requested_ = false;
    const std::function<void()> listener = on_indexed_;
    std::vector<Entry> batch;
    batch.swap(pending_);
    // A full journal: new arrivals go to a fresh one, so this one can go once its entries are
    // indexed (until then it is emptied in place whenever all it names is indexed).
    if (outstanding_.count(active_journal_) && active_entries_ >= options_.journal_rotate_entries) {
      ++active_journal_;
      active_entries_ = 0;
      if (journal_fd_ >= 0) ::close(journal_fd_);
      journal_fd_ = -1;
    }
    lock.Unlock();
    if (options_.test_index_delay.count() > 0) std::this_thread::sleep_for(options_.test_index_delay);
    auto r = IndexBatch(batch);
    if (r && listener) listener();
    lock.Lock();
    if (r) {
      if (failing) spdlog::info("ingest: the index accepts writes again; arrivals are taken again");
      failing = false;
      index_failing_ = false;
      for (const Entry& e : batch) Release(e.journal);
      done_ += batch.size();
      last_error_.clear();
      indexed_.notify_all();
      continue;
    }
    // The files are in the archive and named by their journals: keep them queued and retry.
    if (!failing) {
      spdlog::error(
          "ingest: cannot index {} instance(s): {}; they stay in the archive and their journal, "
          "retried every second, and arrivals are refused (0xA700) until the index takes them",
          batch.size(), r.error().message);
    }
    failing = true;
    index_failing_ = true;
    last_error_ = r.error().message;
    indexed_.notify_all();
    pending_.insert(pending_.begin(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
    if (stopping_) {
      spdlog::error(
          "ingest: stopping with {} instance(s) not indexed; they are indexed at the "
          "next start from the journal",
          pending_.size());
      return;
    }
    wake_.wait_for(lock, std::chrono::seconds(1), [&]() REQUIRES(mu_) { return stopping_; });
  }
}

void IngestPipeline::SetIndexedListener(std::function<void()> listener) {
  MutexLock lock(mu_);
  on_indexed_ = std::move(listener);
}

Result<void> IngestPipeline::Flush(std::chrono::seconds timeout) {
  MutexLock lock(mu_);
  uint64_t target = pushed_;
  if (done_ < target) {
    flush_requested_ = true;  // someone waits: commit now rather than after the batch window
    wake_.notify_all();
  }
  bool ok = indexed_.wait_for(lock, timeout, [&]() REQUIRES(mu_) { return done_ >= target || !last_error_.empty(); });
  if (done_ >= target) return {};
  return Fail(Code::kIoError, ok ? last_error_ : "indexing did not finish in time");
}

std::optional<IngestPipeline::Entry> IngestPipeline::Replay(const std::string& line) {
  std::vector<std::string> parts = SplitTabs(line);
  const std::string& rel = parts[0];
  if (rel.empty() || rel.find("..") != std::string::npos) return std::nullopt;
  std::optional<int64_t> session;
  if (parts.size() >= 5) {  // a staged instance
    session = StagedSessionOf(parts[4], rel);
    if (!session) return std::nullopt;
  }
  auto path = blobs_.Absolute(session ? BlobStore::Root::kStaging : BlobStore::Root::kArchive, rel);
  std::error_code ec;
  // Never placed (the sender got no success), or a staged file archived or discarded since.
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  auto header = dicom::ReadHeader(path);
  if (!header) {
    spdlog::warn("ingest: recovery: {} is not readable: {}", rel, header.error().message);
    return std::nullopt;
  }
  Entry e;
  e.record = std::move(*header);
  e.record.file_size = static_cast<int64_t>(std::filesystem::file_size(path, ec));
  if (parts.size() >= 4) {
    e.record.project = parts[1];
    e.record.subject = parts[2];
    e.record.session = parts[3];
  }
  if (!session) {
    e.record.file_path = rel;
    // Indexed before the crash (a journal is emptied only once all it names is indexed): its
    // row keeps what the journal does not hold (the AE titles, when it arrived).
    if (auto row = db_.GetInstance(e.record.sop_uid); row && *row && (*row)->file_path == rel) return std::nullopt;
    return e;
  }
  const InstanceRecord& r = e.record;
  e.staged = StagedInstance{*session,
                            r.sop_uid,
                            r.study_uid,
                            r.series_uid,
                            rel,
                            parts.size() > 5 ? parts[5] : "",
                            parts.size() > 6 ? parts[6] : "",
                            r.file_size};
  return e;
}

Result<int> IngestPipeline::Recover() {
  uint64_t active = 0;
  {
    MutexLock lock(mu_);
    active = active_journal_;
  }
  return ReplayJournals(journal_dir_, active);
}

Result<int> IngestPipeline::ReplayJournalsOf(const std::filesystem::path& dir) {
  return ReplayJournals(dir, std::numeric_limits<uint64_t>::max());
}

Result<int> IngestPipeline::ReplayJournals(const std::filesystem::path& dir, uint64_t below) {
  std::vector<std::filesystem::path> journals;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    uint64_t n = 0;
    if (std::sscanf(e.path().filename().c_str(), "journal-%lu.log", &n) == 1 && n < below) {
      journals.push_back(e.path());
    }
  }
  if (journals.empty()) return 0;
  std::vector<Entry> entries;
  for (const auto& j : journals) {
    std::ifstream in(j);
    std::string line;
    while (std::getline(in, line)) {
      if (auto e = Replay(line)) entries.push_back(std::move(*e));
    }
  }
  if (auto r = IndexBatch(entries); !r) return tl::unexpected(r.error());
  {
    const std::function<void()> listener = [this] {
      MutexLock lock(mu_);
      return on_indexed_;
    }();
    if (listener && !entries.empty()) listener();
  }
  for (const auto& j : journals) RemoveQuietly(j);
  return static_cast<int>(entries.size());
}

}  // namespace pb
