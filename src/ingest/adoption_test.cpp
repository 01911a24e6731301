#include "ingest/adoption.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gtest/gtest.h>

#include "archive/testing.h"
#include "os/data_dir_lock.h"

namespace pb {
namespace {

std::filesystem::path WriteInstance(BlobStore& blobs, const std::string& sop) {
  DcmFileFormat ff;
  DcmDataset* ds = ff.getDataset();
  ds->putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
  ds->putAndInsertString(DCM_SOPInstanceUID, sop.c_str());
  ds->putAndInsertString(DCM_StudyInstanceUID, "1.2.3");
  ds->putAndInsertString(DCM_SeriesInstanceUID, "1.2.3.4");
  ds->putAndInsertString(DCM_PatientID, "P1");
  auto path = blobs.NewTempPath();
  EXPECT_TRUE(ff.saveFile(path.c_str(), EXS_LittleEndianExplicit).good());
  return path;
}

size_t Entries(const std::filesystem::path& dir) {
  size_t n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) n += e.is_regular_file() ? 1 : 0;
  return n;
}

uintmax_t JournalBytes(const std::filesystem::path& dir) {
  uintmax_t n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) n += e.file_size(ec);
  return n;
}

class AdoptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pb-adopt-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto db = OpenTestDatabase(dir_ / "db");
    ASSERT_TRUE(db) << db.error().message;
    db_ = std::move(*db);
  }
  void TearDown() override {
    if (child_ > 0) {
      kill(child_, SIGKILL);
      waitpid(child_, nullptr, 0);
    }
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Instance "a" in a child process of its own: it receives `count` instances whose rows are held
  // back (its indexer waits a minute), leaves one temp file unfinished, and then waits, holding
  // its folder, until killed. Returns once all of that is on disk.
  void StartInstanceA(int count) {
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    child_ = fork();
    if (child_ == 0) {
      close(ready[0]);
      auto lock = DataDirLock::AcquireInstance(dir_, "a", std::chrono::milliseconds(0));
      BlobStore blobs(dir_, "a");
      auto db = ReopenTestDatabase(dir_ / "db");
      if (!lock || !blobs.Prepare() || !db) _exit(3);
      IngestOptions options;
      options.test_index_delay = std::chrono::minutes(1);
      auto* p = new IngestPipeline(blobs, **db, options);  // never destroyed: the process is killed
      for (int i = 1; i <= count; ++i) {
        if (!p->Ingest(WriteInstance(blobs, "1.2.3.4." + std::to_string(i)), {}).ok()) _exit(4);
      }
      std::ofstream(blobs.NewTempPath()) << "half an instance";  // an association cut short
      char c = 'y';
      if (write(ready[1], &c, 1) != 1) _exit(5);
      for (;;) pause();
    }
    close(ready[1]);
    char c = 0;
    ASSERT_EQ(read(ready[0], &c, 1), 1) << "instance a did not start";
    close(ready[0]);
  }
  void KillInstanceA() {
    kill(child_, SIGKILL);
    waitpid(child_, nullptr, 0);
    child_ = -1;
  }
  int64_t Indexed() {
    auto studies = db_->FindStudies({});
    return studies && !studies->empty() ? (*studies)[0].instance_count : 0;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Database> db_;
  pid_t child_ = -1;
};

TEST_F(AdoptionTest, ARunningInstancesFolderIsLeftAloneAndAKilledOnesJournalsAreIndexed) {
  StartInstanceA(3);
  const auto a = DataDirLock::InstancesDir(dir_) / "a";
  ASSERT_GT(JournalBytes(a / "journal"), 0u);
  ASSERT_EQ(Entries(a / "tmp"), 1u);
  ASSERT_EQ(Indexed(), 0);  // what a holds back is only in its journal

  BlobStore blobs(dir_, "b");
  ASSERT_TRUE(blobs.Prepare());
  IngestPipeline pipeline(blobs, *db_, {});
  Adopted first = AdoptStoppedInstances(dir_, "b", pipeline);
  EXPECT_EQ(first.instances, 0);  // a runs: its journal and temp file are its own
  EXPECT_EQ(Entries(a / "tmp"), 1u);
  EXPECT_GT(JournalBytes(a / "journal"), 0u);
  EXPECT_EQ(Indexed(), 0);

  KillInstanceA();
  Adopted then = AdoptStoppedInstances(dir_, "b", pipeline);
  EXPECT_EQ(then.instances, 1);
  EXPECT_EQ(then.indexed, 3);
  EXPECT_EQ(then.temp_files, 1);
  EXPECT_EQ(Indexed(), 3);
  for (int i = 1; i <= 3; ++i) {
    auto row = db_->GetInstance("1.2.3.4." + std::to_string(i));
    ASSERT_TRUE(row && *row) << i;
    EXPECT_TRUE(std::filesystem::exists(blobs.Absolute((*row)->file_path))) << i;
  }
  EXPECT_EQ(Entries(a / "tmp"), 0u);
  EXPECT_EQ(JournalBytes(a / "journal"), 0u);

  // Nothing left to do: the folder is not taken again, and a restarted "a" gets it at once.
  EXPECT_EQ(AdoptStoppedInstances(dir_, "b", pipeline).instances, 0);
  auto again = DataDirLock::AcquireInstance(dir_, "a", std::chrono::milliseconds(0));
  EXPECT_TRUE(again) << again.error().message;
}

TEST_F(AdoptionTest, OurOwnFolderIsNeverTakenOver) {
  BlobStore blobs(dir_, "b");
  ASSERT_TRUE(blobs.Prepare());
  std::ofstream(blobs.NewTempPath()) << "arriving";
  IngestPipeline pipeline(blobs, *db_, {});
  EXPECT_EQ(AdoptStoppedInstances(dir_, "b", pipeline).instances, 0);
  EXPECT_EQ(Entries(blobs.tmp_dir()), 1u);
}

TEST_F(AdoptionTest, TheJournalsOfAServerThatOwnedTheDirectoryAloneAreIndexedOnce) {
  BlobStore legacy(dir_);  // the layout before instances shared the directory
  ASSERT_TRUE(legacy.Prepare());
  const std::string rel = BlobStore::RelativePathFor("1.2.3", "1.2.3.4", "1.2.3.4.77");
  ASSERT_TRUE(legacy.Place(WriteInstance(legacy, "1.2.3.4.77"), rel, false));
  std::ofstream(legacy.journal_dir() / "journal-3.log") << rel << "\n";
  std::ofstream(legacy.NewTempPath()) << "half";

  BlobStore blobs(dir_, "b");
  ASSERT_TRUE(blobs.Prepare());
  IngestPipeline pipeline(blobs, *db_, {});
  Adopted adopted = AdoptStoppedInstances(dir_, "b", pipeline);
  EXPECT_EQ(adopted.indexed, 1);
  EXPECT_EQ(adopted.temp_files, 1);
  EXPECT_EQ(Indexed(), 1);
  EXPECT_EQ(JournalBytes(legacy.journal_dir()), 0u);
  EXPECT_EQ(AdoptStoppedInstances(dir_, "b", pipeline).instances, 0);
}

TEST_F(AdoptionTest, AnInstanceWhoseFolderIsNotHereIsNeverTakenOverAndAStoppedOnesIsHeldMeanwhile) {
  BlobStore blobs(dir_, "b");
  ASSERT_TRUE(blobs.Prepare());
  IngestPipeline pipeline(blobs, *db_, {});
  bool ran = false;
  EXPECT_EQ(AdoptInstance(dir_, "elsewhere", "b", pipeline, nullptr, [&] { ran = true; }), Takeover::kUnknown);
  EXPECT_FALSE(ran);
  {
    auto made = DataDirLock::AcquireInstance(dir_, "a", std::chrono::milliseconds(0));
    ASSERT_TRUE(made);
  }
  Takeover t = AdoptInstance(dir_, "a", "b", pipeline, nullptr, [&] {
    ran = true;
    // Instance a cannot start while its folder is held.
    auto starting = DataDirLock::AcquireInstance(dir_, "a", std::chrono::milliseconds(0));
    EXPECT_FALSE(starting);
  });
  EXPECT_EQ(t, Takeover::kStopped);
  EXPECT_TRUE(ran);
}

}  // namespace
}  // namespace pb
