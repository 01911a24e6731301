#include "ingest/pipeline.h"

#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "dicom/header.h"

namespace pb {

struct IngestPipeline::Pending {
  InstanceRecord record;
  std::filesystem::path temp;
  IngestOutcome outcome;
  bool done = false;
  std::condition_variable cv;
};

namespace {
void RemoveQuietly(const std::filesystem::path& p) {
  std::error_code ec;
  std::filesystem::remove(p, ec);
}
}  // namespace

IngestPipeline::IngestPipeline(BlobStore& blobs, Database& db, IngestOptions options)
    : blobs_(blobs), db_(db), options_(options) {}

IngestPipeline::~IngestPipeline() = default;

IngestOutcome IngestPipeline::Ingest(const std::filesystem::path& temp, const IngestSource& src) {
  auto header = dicom::ReadHeader(temp);
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
  std::error_code ec;
  Pending p;
  p.record = std::move(*header);
  p.record.file_size = static_cast<int64_t>(std::filesystem::file_size(temp, ec));
  p.record.file_path =
      BlobStore::RelativePathFor(p.record.study_uid, p.record.series_uid, p.record.sop_uid);
  p.record.source_ae = src.calling_ae;
  p.record.receiver_ae = src.called_ae;
  p.temp = temp;
  if (options_.fsync) {
    if (auto r = BlobStore::Sync(temp); !r) {
      RemoveQuietly(temp);
      return {r.error().code == Code::kOutOfSpace ? IngestStatus::kOutOfSpace : IngestStatus::kFailed,
              r.error().message, p.record.sop_uid};
    }
  }
  // Group commit, leader/follower: the first caller to find no commit running commits
  // everything queued (its own entry included) in one transaction; the others wait for it. One
  // association thus pays no thread handoff, and many share each transaction.
  std::unique_lock lock(mu_);
  queue_.push_back(&p);
  while (!p.done) {
    if (committing_) {
      p.cv.wait(lock);
      continue;
    }
    committing_ = true;
    while (!p.done) {
      std::deque<Pending*> batch;
      while (!queue_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
      lock.unlock();
      CommitBatch(batch);
      lock.lock();
      for (Pending* q : batch) {
        q->done = true;
        if (q != &p) q->cv.notify_one();
      }
    }
    committing_ = false;
    if (!queue_.empty()) queue_.front()->cv.notify_one();  // the next in line leads
  }
  return p.outcome;
}

void IngestPipeline::CommitBatch(std::deque<Pending*>& batch) {
  std::vector<Pending*> placed_new;  // files renamed into the archive that were not there before
  auto fail_all = [&](const Error& e) {
    for (Pending* p : placed_new) RemoveQuietly(blobs_.Absolute(p->record.file_path));
    for (Pending* p : batch) {
      RemoveQuietly(p->temp);
      p->outcome = {e.code == Code::kOutOfSpace ? IngestStatus::kOutOfSpace : IngestStatus::kFailed,
                    e.message, p->record.sop_uid};
    }
  };
  auto tx = db_.BeginBatch();
  if (!tx) return fail_all(tx.error());
  std::set<std::string> in_batch;
  std::set<std::string> dirs;
  for (Pending* p : batch) {
    const std::string& sop = p->record.sop_uid;
    auto existing = (*tx)->ExistingFile(sop);
    if (!existing) return fail_all(existing.error());
    bool seen = existing->has_value() || in_batch.count(sop);
    if (seen && options_.duplicates == DuplicatePolicy::kKeep) {
      RemoveQuietly(p->temp);
      p->outcome = {IngestStatus::kDuplicate, "already in the archive; kept the stored copy", sop};
      continue;
    }
    if (existing->has_value()) p->record.file_path = **existing;  // overwrite in place
    if (auto r = blobs_.Commit(p->temp, p->record.file_path); !r) {
      RemoveQuietly(p->temp);
      p->outcome = {r.error().code == Code::kOutOfSpace ? IngestStatus::kOutOfSpace : IngestStatus::kFailed,
                    r.error().message, sop};
      continue;
    }
    if (!seen) placed_new.push_back(p);
    if (auto r = (*tx)->Put(p->record); !r) {
      p->outcome = {IngestStatus::kFailed, r.error().message, sop};
      if (!seen) {
        RemoveQuietly(blobs_.Absolute(p->record.file_path));
        placed_new.pop_back();
      }
      continue;
    }
    in_batch.insert(sop);
    dirs.insert(p->record.file_path);
    p->outcome = {seen ? IngestStatus::kReplaced : IngestStatus::kStored, "", sop};
  }
  if (options_.fsync) {
    std::set<std::filesystem::path> synced;
    for (const auto& rel : dirs) {
      if (synced.insert(std::filesystem::path(rel).parent_path()).second) (void)blobs_.SyncDirOf(rel);
    }
  }
  if (auto r = (*tx)->Commit(); !r) {
    // Nothing of this batch is indexed: take back the files it placed.
    spdlog::error("ingest: {}", r.error().message);
    for (Pending* p : placed_new) RemoveQuietly(blobs_.Absolute(p->record.file_path));
    for (Pending* p : batch) {
      if (p->outcome.ok() && p->outcome.status != IngestStatus::kDuplicate) {
        p->outcome = {r.error().code == Code::kOutOfSpace ? IngestStatus::kOutOfSpace : IngestStatus::kFailed,
                      r.error().message, p->record.sop_uid};
      }
    }
  }
}

}  // namespace pb
