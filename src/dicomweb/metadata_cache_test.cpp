// The metadata writer's schedule: it stands aside while instances arrive (pokes closer than its
// quiet time), keeps a slow pace under ingest that never stops, and catches up once ingest is
// quiet. The rows name files that do not exist: the writer marks each one (a failure marker is
// a written row), which is all the schedule needs; what it writes is tested end to end.
#include "dicomweb/metadata_cache.h"
#include "archive/testing.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include <unistd.h>

namespace pb::dicomweb {
namespace {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

class MetadataWriterSchedule : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("pb-metadata-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    blobs_ = std::make_unique<BlobStore>(dir_);
    ASSERT_TRUE(blobs_->Prepare());
    auto db = OpenTestDatabase(dir_);
    ASSERT_TRUE(db) << db.error().message;
    db_ = std::move(*db);
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  // Indexes `n` more instances (as the ingest indexer does), their files absent.
  void Index(int n) {
    auto b = db_->BeginBatch();
    ASSERT_TRUE(b) << b.error().message;
    for (int i = 0; i < n; ++i, ++indexed_) {
      InstanceRecord r;
      r.patient_id = "P1";
      r.study_uid = "1.2.3";
      r.series_uid = "1.2.3.1";
      r.sop_uid = "1.2.3.1." + std::to_string(indexed_ + 1);
      r.file_path = BlobStore::RelativePathFor(r.study_uid, r.series_uid, r.sop_uid);
      r.file_size = 100;
      ASSERT_TRUE((*b)->Put(r));
    }
    ASSERT_TRUE((*b)->Commit());
  }
  // Waits until the writer has written `n` rows; false after `limit`.
  static bool WaitWritten(const MetadataCache& c, uint64_t n, milliseconds limit) {
    const auto until = SteadyClock::now() + limit;
    while (c.written() < n) {
      if (SteadyClock::now() > until) return false;
      std::this_thread::sleep_for(milliseconds(5));
    }
    return true;
  }
  std::filesystem::path dir_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<Database> db_;
  int indexed_ = 0;
};

TEST_F(MetadataWriterSchedule, StandsAsideWhileInstancesArriveAndCatchesUpOnceQuiet) {
  Index(1);
  MetadataCache cache(*db_, *blobs_);
  const auto started = SteadyClock::now();  // the writer's first batch is no older than this
  cache.Start();
  // Nothing has arrived since the start: the first row is written at once.
  ASSERT_TRUE(WaitWritten(cache, 1, milliseconds(10000)));
  // Instances arrive every 50 ms, each batch indexed and poked as the pipeline does, until
  // 1.5 s after the start: the writer's last batch is younger than its busy pace (2 s) all
  // along, and no gap reaches its quiet time (500 ms), so it writes nothing.
  int rounds = 0;
  while (SteadyClock::now() - started < milliseconds(1500)) {
    Index(5);
    cache.Poke();
    ++rounds;
    std::this_thread::sleep_for(milliseconds(50));
    EXPECT_EQ(cache.written(), 1u) << "the writer ran while instances were arriving";
  }
  ASSERT_GE(rounds, 5) << "premise: instances kept arriving for a while";
  // Quiet now: everything indexed gets its row.
  EXPECT_TRUE(WaitWritten(cache, static_cast<uint64_t>(indexed_), milliseconds(10000)))
      << cache.written() << " of " << indexed_;
  cache.Stop();
}

TEST_F(MetadataWriterSchedule, KeepsPaceUnderIngestThatNeverStops) {
  Index(1);
  MetadataCache cache(*db_, *blobs_);
  cache.Start();
  ASSERT_TRUE(WaitWritten(cache, 1, milliseconds(10000)));  // its first batch is behind it
  Index(10);
  const int first = indexed_;
  // Pokes every 50 ms until the rows of those 10 are written: never a quiet gap, so only the
  // busy pace can let the writer in.
  const auto until = SteadyClock::now() + milliseconds(15000);
  while (cache.written() < static_cast<uint64_t>(first) && SteadyClock::now() < until) {
    Index(1);
    cache.Poke();
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_GE(cache.written(), static_cast<uint64_t>(first)) << "the writer starved under sustained ingest";
  cache.Stop();
}

}  // namespace
}  // namespace pb::dicomweb
