#pragma once
// The WADO-RS metadata of archived instances, written ahead: a background writer turns each
// newly indexed instance (and, after an upgrade, every older one) into its DICOM JSON object
// once and keeps it in the index (migration 010), so a study's or series' metadata is answered
// from the database, never by reading its files. An instance the writer has not come to yet is
// made on demand by Get(). An instance that cannot be turned into JSON is marked (with why), not
// retried until its file changes. The writer runs at a lower CPU priority than the threads that
// receive and serve, and stands aside while instances arrive: it writes once indexing has been
// quiet for kQuiet, and under sustained ingest one batch per kBusyPace (a receiving thread that
// shared two cores with it was ~17 % slower on small instances). Thread-safe.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "archive/blob_store.h"
#include "archive/database.h"
#include "core/result.h"
#include "core/thread_annotations.h"

namespace pb::dicomweb {

class MetadataCache {
 public:
  MetadataCache(Database& db, const BlobStore& blobs);
  ~MetadataCache();  // stops the writer
  MetadataCache(const MetadataCache&) = delete;
  MetadataCache& operator=(const MetadataCache&) = delete;

  void Start();
  void Stop();
  // Instances were indexed: the writer looks for work now.
  void Poke();

  // The metadata of `row` (a QueryMetadata row): its stored JSON, or made now from the file and
  // stored. kInvalidArgument when the instance's file cannot be given as DICOM JSON (the reason).
  [[nodiscard]] Result<std::string> Get(const MetadataRow& row);

  uint64_t written() const { return written_.load(); }

 private:
  using Clock = std::chrono::steady_clock;
  void Loop();
  // Waits until the last poke is kQuiet old, or kBusyPace has passed since `last_batch`; false
  // when stopping.
  bool StandAside(Clock::time_point last_batch);
  // Makes the JSON of a row (or its failure marker, when the file is missing or cannot be given
  // as JSON) from its file; nullopt when it cannot be read now (tried again later).
  std::optional<MetadataRow> Make(const MetadataRow& row) const;

  Database& db_;
  const BlobStore& blobs_;
  Mutex mu_;
  std::condition_variable wake_;
  bool poked_ GUARDED_BY(mu_) = false;
  Clock::time_point last_poke_ GUARDED_BY(mu_);  // when instances were last indexed
  bool stopping_ GUARDED_BY(mu_) = false;
  std::atomic<uint64_t> written_{0};
  std::thread thread_;
};

// A stored row that marks an instance whose metadata cannot be made starts with this; the rest
// is the reason.
constexpr char kMetadataFailedMark = '!';

}  // namespace pb::dicomweb
