#include "dicomweb/metadata_cache.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include <spdlog/spdlog.h>

#include "core/thread_annotations.h"
#include "dicom/wado.h"

namespace pb::dicomweb {

namespace {
constexpr int kBatch = 200;
// Indexing quiet this long: the writer goes at full pace. Busy: one batch per kBusyPace, so it
// keeps up with ~100 instances/s of sustained ingest (the rest is made on demand by Get()).
constexpr auto kQuiet = std::chrono::milliseconds(500);
constexpr auto kBusyPace = std::chrono::seconds(2);
}  // namespace

MetadataCache::MetadataCache(Database& db, const BlobStore& blobs) : db_(db), blobs_(blobs) {}

MetadataCache::~MetadataCache() { Stop(); }

void MetadataCache::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void MetadataCache::Stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void MetadataCache::Poke() {
  {
    MutexLock lock(mu_);
    poked_ = true;
    last_poke_ = Clock::now();
  }
  wake_.notify_all();
}

std::optional<MetadataRow> MetadataCache::Make(const MetadataRow& row) const {
  MetadataRow out = row;
  Result<std::string> json = Fail(Code::kInternal, "");
  try {
    json = dicom::MetadataJson(blobs_.Absolute(row.file_path));
  } catch (const std::exception& e) {
    spdlog::warn("WADO-RS metadata: instance {}: {}", row.sop_uid, e.what());
    return std::nullopt;
  }
  if (json) {
    out.json = std::move(*json);
  } else if (json.error().code != Code::kInvalidArgument && json.error().code != Code::kNotFound) {
    // Not the file's fault (it is missing, or could not be read now): tried again later, not
    // marked for good.
    spdlog::warn("WADO-RS metadata: instance {}: {}", row.sop_uid, json.error().message);
    return std::nullopt;
  } else {
    spdlog::warn("WADO-RS metadata: instance {} cannot be given as DICOM JSON: {}", row.sop_uid, json.error().message);
    out.json = std::string(1, kMetadataFailedMark) + json.error().message;
  }
  return out;
}

Result<std::string> MetadataCache::Get(const MetadataRow& row) {
  MetadataRow made = row;
  if (made.json.empty()) {
    auto fresh = Make(row);
    if (!fresh) return Fail(Code::kIoError, "the instance's file cannot be read now");
    made = std::move(*fresh);
    if (auto put = db_.PutMetadata({made}); !put) return tl::unexpected(put.error());
    written_.fetch_add(1);
  }
  if (!made.json.empty() && made.json.front() == kMetadataFailedMark) {
    return Fail(Code::kInvalidArgument, made.json.substr(1));
  }
  return made.json;
}

bool MetadataCache::StandAside(Clock::time_point last_batch) {
  MutexLock lock(mu_);
  while (!stopping_) {
    const auto quiet_at = last_poke_ + kQuiet, paced_at = last_batch + kBusyPace;
    if (Clock::now() >= std::min(quiet_at, paced_at)) return true;
    wake_.wait_until(lock, std::min(quiet_at, paced_at));  // a poke wakes it too: looked at again
  }
  return false;
}

void MetadataCache::Loop() {
  // Behind what receives and serves: this is work that can wait.
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
  bool failing = false;
  // Instances come in rising keys: after a first pass over the whole index, a poke looks only
  // past the last key seen (a whole scan of a large index per ingest batch would cost more than
  // the writing). A quiet minute, or a retry, starts from the beginning again: what a replaced
  // file dropped, or what could not be read, is found then (or made on demand by Get()).
  int64_t after = 0;
  Clock::time_point last_batch;
  while (true) {
    if (!StandAside(last_batch)) return;
    {
      MutexLock lock(mu_);
      if (stopping_) return;
      poked_ = false;
    }
    last_batch = Clock::now();
    auto todo = db_.InstancesWithoutMetadata(kBatch, after);
    if (!todo) {
      if (!failing) spdlog::warn("WADO-RS metadata: {}", todo.error().message);
      failing = true;
    } else if (!todo->empty()) {
      failing = false;
      std::vector<MetadataRow> made;
      made.reserve(todo->size());
      bool skipped = false;
      for (const MetadataRow& r : *todo) {
        {
          MutexLock lock(mu_);
          if (stopping_) return;
        }
        if (auto m = Make(r))
          made.push_back(std::move(*m));
        else
          skipped = true;
      }
      if (auto put = db_.PutMetadata(made); !put) {
        spdlog::warn("WADO-RS metadata: {}", put.error().message);
        failing = true;
      } else {
        written_.fetch_add(made.size());
        after = std::max(after, todo->back().pk);
        // Some could not be read now: they are tried again from the beginning, a while later.
        failing = skipped;
        if (todo->size() == static_cast<size_t>(kBatch)) continue;  // more to do
      }
    }
    MutexLock lock(mu_);
    const bool poked = wake_.wait_for(lock, failing ? std::chrono::seconds(5) : std::chrono::seconds(60),
                                      [&]() REQUIRES(mu_) { return stopping_ || poked_; });
    if (!poked || failing) after = 0;
  }
}

}  // namespace pb::dicomweb
