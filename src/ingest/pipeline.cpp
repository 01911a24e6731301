#include "ingest/pipeline.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "dicom/header.h"

namespace pb {
namespace {

// How long the indexer gathers instances into one transaction: longer windows cost less CPU per
// instance (fewer commits and journal rotations) and delay only what the API can see.
constexpr auto kBatchWindow = std::chrono::milliseconds(20);

void RemoveQuietly(const std::filesystem::path& p) {
  std::error_code ec;
  std::filesystem::remove(p, ec);
}

IngestOutcome Failed(const Error& e, const std::string& sop) {
  return {e.code == Code::kOutOfSpace ? IngestStatus::kOutOfSpace : IngestStatus::kFailed, e.message,
          sop};
}

Error JournalError(const char* what, int err) {
  return Error{err == ENOSPC || err == EDQUOT ? Code::kOutOfSpace : Code::kIoError,
               fmt::format("ingest journal: {}: {}", what, std::strerror(err)), ""};
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
    std::lock_guard lock(mu_);
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

Result<uint64_t> IngestPipeline::Journal(const InstanceRecord& rec) {
  // One line per instance: the archive path, then the labels (cleaned: never a tab or newline).
  std::string line = fmt::format("{}\t{}\t{}\t{}\n", rec.file_path, rec.project, rec.subject, rec.session);
  std::lock_guard lock(mu_);
  if (journal_fd_ < 0) {
    if (auto r = OpenJournal(active_journal_); !r) return tl::unexpected(r.error());
  }
  ssize_t n = ::write(journal_fd_, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) return tl::unexpected(JournalError("write", n < 0 ? errno : ENOSPC));
  if (options_.fsync && ::fdatasync(journal_fd_) != 0) return tl::unexpected(JournalError("fsync", errno));
  ++outstanding_[active_journal_];
  return active_journal_;
}

void IngestPipeline::Release(uint64_t generation) {  // mu_ held
  auto it = outstanding_.find(generation);
  if (it == outstanding_.end() || --it->second > 0) return;
  outstanding_.erase(it);
  if (generation != active_journal_) RemoveQuietly(JournalPath(generation));
}

IngestOutcome IngestPipeline::Ingest(const std::filesystem::path& temp, const IngestSource& src) {
  auto header = src.header ? Result<InstanceRecord>(*src.header) : dicom::ReadHeader(temp);
  if (!header) {
    RemoveQuietly(temp);
    return {IngestStatus::kInvalid, header.error().message, src.expected_sop_uid};
  }
  if (!src.expected_sop_uid.empty() && header->sop_uid != src.expected_sop_uid) {
    RemoveQuietly(temp);
    return {IngestStatus::kInvalid,
            fmt::format("SOP Instance UID of the data set ({}) differs from the request ({})",
                        header->sop_uid, src.expected_sop_uid),
            src.expected_sop_uid};
  }
  Entry entry;
  InstanceRecord& rec = entry.record;
  rec = std::move(*header);
  std::error_code ec;
  rec.file_size = src.size >= 0 ? src.size : static_cast<int64_t>(std::filesystem::file_size(temp, ec));
  rec.file_path = BlobStore::RelativePathFor(rec.study_uid, rec.series_uid, rec.sop_uid);
  rec.source_ae = src.calling_ae;
  rec.receiver_ae = src.called_ae;
  rec.project = src.project;
  rec.subject = src.subject;
  rec.session = src.session;
  if (options_.fsync) {
    if (auto r = BlobStore::Sync(temp); !r) {
      RemoveQuietly(temp);
      return Failed(r.error(), rec.sop_uid);
    }
  }
  // The journal names the file before it exists in the archive: a crash after the rename can
  // never leave an answered instance that nobody will index.
  auto generation = Journal(rec);
  if (!generation) {
    RemoveQuietly(temp);
    return Failed(generation.error(), rec.sop_uid);
  }
  entry.journal = *generation;
  auto placed = blobs_.Place(temp, rec.file_path, options_.duplicates == DuplicatePolicy::kOverwrite);
  if (placed && options_.fsync && *placed != BlobStore::Placed::kExists) {
    if (auto r = blobs_.SyncDirOf(rec.file_path); !r) placed = tl::unexpected(r.error());
  }
  if (!placed || *placed == BlobStore::Placed::kExists) {
    RemoveQuietly(temp);
    std::lock_guard lock(mu_);
    Release(entry.journal);
    if (!placed) return Failed(placed.error(), rec.sop_uid);
    Announce(rec, src, true);
    return {IngestStatus::kDuplicate, "already in the archive; kept the stored copy", rec.sop_uid};
  }
  IngestStatus status = *placed == BlobStore::Placed::kReplaced ? IngestStatus::kReplaced : IngestStatus::kStored;
  std::string sop = rec.sop_uid;
  Announce(rec, src, false);
  bool wake;
  {
    std::lock_guard lock(mu_);
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

Result<void> IngestPipeline::IndexBatch(const std::vector<InstanceRecord>& records) {
  auto tx = db_.BeginBatch();
  if (!tx) return tl::unexpected(tx.error());
  for (const InstanceRecord& r : records) {
    if (auto p = (*tx)->Put(r); !p) return p;
  }
  return (*tx)->Commit();
}

void IngestPipeline::IndexLoop() {
  std::unique_lock lock(mu_);
  bool failing = false;
  while (true) {
    wake_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
    if (pending_.empty()) return;  // stopping with nothing left
    // A short window lets concurrent associations share one transaction.
    wake_.wait_for(lock, kBatchWindow, [&] {
      return stopping_ || flush_requested_ || pending_.size() >= options_.max_batch;
    });
    flush_requested_ = false;
    std::vector<Entry> batch;
    batch.swap(pending_);
    // New arrivals go to a fresh journal, so this one can go once its entries are indexed.
    if (outstanding_.count(active_journal_)) {
      ++active_journal_;
      if (journal_fd_ >= 0) ::close(journal_fd_);
      journal_fd_ = -1;
    }
    lock.unlock();
    std::vector<InstanceRecord> records;
    records.reserve(batch.size());
    for (const Entry& e : batch) records.push_back(e.record);
    auto r = IndexBatch(records);
    lock.lock();
    if (r) {
      if (failing) spdlog::info("ingest: the index accepts writes again");
      failing = false;
      for (const Entry& e : batch) Release(e.journal);
      done_ += batch.size();
      last_error_.clear();
      indexed_.notify_all();
      continue;
    }
    // The files are in the archive and named by their journals: keep them queued and retry.
    if (!failing) spdlog::error("ingest: cannot index {} instance(s): {}", batch.size(), r.error().message);
    failing = true;
    last_error_ = r.error().message;
    indexed_.notify_all();
    pending_.insert(pending_.begin(), std::make_move_iterator(batch.begin()),
                    std::make_move_iterator(batch.end()));
    if (stopping_) {
      spdlog::error("ingest: stopping with {} instance(s) not indexed; they are indexed at the "
                    "next start from the journal",
                    pending_.size());
      return;
    }
    wake_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
  }
}

Result<void> IngestPipeline::Flush(std::chrono::seconds timeout) {
  std::unique_lock lock(mu_);
  uint64_t target = pushed_;
  if (done_ < target) {
    flush_requested_ = true;  // someone waits: commit now rather than after the batch window
    wake_.notify_all();
  }
  bool ok = indexed_.wait_for(lock, timeout, [&] { return done_ >= target || !last_error_.empty(); });
  if (done_ >= target) return {};
  return Fail(Code::kIoError, ok ? last_error_ : "indexing did not finish in time");
}

Result<int> IngestPipeline::Recover() {
  std::vector<std::filesystem::path> journals;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(journal_dir_, ec)) {
    uint64_t n = 0;
    if (std::sscanf(e.path().filename().c_str(), "journal-%lu.log", &n) == 1 && n < active_journal_) {
      journals.push_back(e.path());
    }
  }
  if (journals.empty()) return 0;
  std::vector<InstanceRecord> records;
  for (const auto& j : journals) {
    std::ifstream in(j);
    std::string line;
    while (std::getline(in, line)) {
      std::vector<std::string> parts;
      for (size_t start = 0;;) {
        size_t tab = line.find('\t', start);
        parts.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
        if (tab == std::string::npos) break;
        start = tab + 1;
      }
      const std::string& rel = parts[0];
      if (rel.empty() || rel.find("..") != std::string::npos) continue;
      auto path = blobs_.Absolute(rel);
      if (!std::filesystem::exists(path, ec)) continue;  // never placed: the sender got no success
      auto header = dicom::ReadHeader(path);
      if (!header) {
        spdlog::warn("ingest: recovery: {} is not readable: {}", rel, header.error().message);
        continue;
      }
      header->file_path = rel;
      if (parts.size() >= 4) {
        header->project = parts[1];
        header->subject = parts[2];
        header->session = parts[3];
      }
      header->file_size = static_cast<int64_t>(std::filesystem::file_size(path, ec));
      records.push_back(std::move(*header));
    }
  }
  if (auto r = IndexBatch(records); !r) return tl::unexpected(r.error());
  for (const auto& j : journals) RemoveQuietly(j);
  return static_cast<int>(records.size());
}

}  // namespace pb
