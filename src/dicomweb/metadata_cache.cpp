#include "dicomweb/metadata_cache.h"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <vector>

#include <spdlog/spdlog.h>

#include "dicom/wado.h"

namespace pb::dicomweb {

namespace {
constexpr int kBatch = 200;
}

MetadataCache::MetadataCache(Database& db, const BlobStore& blobs) : db_(db), blobs_(blobs) {}

MetadataCache::~MetadataCache() { Stop(); }

void MetadataCache::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void MetadataCache::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void MetadataCache::Poke() {
  {
    std::lock_guard lock(mu_);
    poked_ = true;
  }
  wake_.notify_all();
}

MetadataRow MetadataCache::Make(const MetadataRow& row) const {
  MetadataRow out = row;
  auto json = dicom::MetadataJson(blobs_.Absolute(row.file_path));
  if (json) {
    out.json = std::move(*json);
  } else {
    spdlog::warn("WADO-RS metadata: instance {} cannot be given as DICOM JSON: {}", row.sop_uid,
                 json.error().message);
    out.json = std::string(1, kMetadataFailedMark) + json.error().message;
  }
  return out;
}

Result<std::string> MetadataCache::Get(const MetadataRow& row) {
  MetadataRow made = row;
  if (made.json.empty()) {
    made = Make(row);
    if (auto put = db_.PutMetadata({made}); !put) return tl::unexpected(put.error());
    written_.fetch_add(1);
  }
  if (!made.json.empty() && made.json.front() == kMetadataFailedMark) {
    return Fail(Code::kInvalidArgument, made.json.substr(1));
  }
  return made.json;
}

void MetadataCache::Loop() {
  // Behind what receives and serves: this is work that can wait.
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
  bool failing = false;
  while (true) {
    {
      std::unique_lock lock(mu_);
      if (stopping_) return;
      poked_ = false;
    }
    auto todo = db_.InstancesWithoutMetadata(kBatch);
    if (!todo) {
      if (!failing) spdlog::warn("WADO-RS metadata: {}", todo.error().message);
      failing = true;
    } else if (!todo->empty()) {
      failing = false;
      std::vector<MetadataRow> made;
      made.reserve(todo->size());
      for (const MetadataRow& r : *todo) {
        {
          std::lock_guard lock(mu_);
          if (stopping_) return;
        }
        made.push_back(Make(r));
      }
      if (auto put = db_.PutMetadata(made); !put) {
        spdlog::warn("WADO-RS metadata: {}", put.error().message);
        failing = true;
      } else {
        written_.fetch_add(made.size());
        if (todo->size() == static_cast<size_t>(kBatch)) continue;  // more to do
      }
    }
    std::unique_lock lock(mu_);
    wake_.wait_for(lock, failing ? std::chrono::seconds(5) : std::chrono::seconds(60),
                   [&] { return stopping_ || poked_; });
  }
}

}  // namespace pb::dicomweb
