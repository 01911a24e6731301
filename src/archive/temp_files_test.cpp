#include "archive/temp_files.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <thread>

namespace pb {
namespace {

class TempFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pb-temp-files-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    blobs_ = std::make_unique<BlobStore>(dir_);
    ASSERT_TRUE(blobs_->Prepare());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Waits (up to 10 s) until `ahead` holds n files; true when it does.
  static bool ReadyReaches(const TempFilesAhead& ahead, size_t n) {
    for (int i = 0; i < 1000 && ahead.ready() != n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return ahead.ready() == n;
  }
  size_t FilesIn(const std::filesystem::path& dir) const {
    size_t n = 0;
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator(dir, ec)) n += e.is_regular_file() ? 1 : 0;
    return n;
  }
  std::filesystem::path ahead_dir() const { return blobs_->tmp_dir() / TempFilesAhead::kFolder; }

  std::filesystem::path dir_;
  std::unique_ptr<BlobStore> blobs_;
};

TEST_F(TempFilesTest, KeepsEmptyFilesReadyAndHandsThemOutUnderAFreshNameInTmp) {
  TempFilesAhead ahead(*blobs_, 3);
  ASSERT_TRUE(ReadyReaches(ahead, 3));
  EXPECT_EQ(FilesIn(ahead_dir()), 3u);

  TempFile made = ahead.Take();
  const auto& path = made.path;
  EXPECT_EQ(path.parent_path(), blobs_->tmp_dir()) << path;
  ASSERT_TRUE(std::filesystem::exists(path)) << "a file made ahead was handed out";
  EXPECT_EQ(std::filesystem::file_size(path), 0u);
  ASSERT_GE(made.fd, 0) << "and its open descriptor";
  ASSERT_EQ(::write(made.fd, "DICM", 4), 4);
  ::close(made.fd);
  EXPECT_EQ(std::filesystem::file_size(path), 4u) << "the descriptor writes the file at that path";
  TempFile second = ahead.Take();
  EXPECT_NE(second.path, path) << "each file is handed out once";
  ::close(second.fd);
  // The maker makes up for what was taken.
  EXPECT_TRUE(ReadyReaches(ahead, 3));
  EXPECT_EQ(FilesIn(ahead_dir()), 3u);
  EXPECT_EQ(FilesIn(blobs_->tmp_dir()), 2u);
}

TEST_F(TempFilesTest, WithNoneReadyTakeGivesAFreshNameToCreate) {
  TempFilesAhead off(*blobs_, 0);
  TempFile fresh = off.Take();
  EXPECT_EQ(fresh.path.parent_path(), blobs_->tmp_dir());
  EXPECT_EQ(fresh.fd, -1);
  EXPECT_FALSE(std::filesystem::exists(fresh.path));
  EXPECT_FALSE(std::filesystem::exists(ahead_dir())) << "no folder when nothing is made ahead";
}

TEST_F(TempFilesTest, FilesRemovedBehindItsBackAreSkipped) {
  TempFilesAhead ahead(*blobs_, 2);
  ASSERT_TRUE(ReadyReaches(ahead, 2));
  for (auto& e : std::filesystem::directory_iterator(ahead_dir())) std::filesystem::remove(e.path());
  // Both listed files are gone: Take() skips them (the maker may meanwhile have made a new one)
  // and never hands out a descriptor of a removed file, nor fails.
  TempFile got = ahead.Take();
  EXPECT_EQ(got.path.parent_path(), blobs_->tmp_dir());
  if (got.fd >= 0) {
    EXPECT_TRUE(std::filesystem::exists(got.path)) << "a descriptor of a file that was removed";
    ::close(got.fd);
  } else {
    EXPECT_FALSE(std::filesystem::exists(got.path));
  }
}

TEST_F(TempFilesTest, AFolderRemovedUnderItIsMadeAgain) {
  TempFilesAhead ahead(*blobs_, 2);
  ASSERT_TRUE(ReadyReaches(ahead, 2));
  std::filesystem::remove_all(ahead_dir());
  for (int i = 0; i < 2; ++i) {
    TempFile t = ahead.Take();  // the listed files are gone
    if (t.fd >= 0) ::close(t.fd);
  }
  EXPECT_TRUE(ReadyReaches(ahead, 2)) << "the maker did not recover";
  EXPECT_EQ(FilesIn(ahead_dir()), 2u);
}

TEST_F(TempFilesTest, WhatIsLeftIsRemovedAtTheEnd) {
  std::filesystem::path taken;
  {
    TempFilesAhead ahead(*blobs_, 4);
    ASSERT_TRUE(ReadyReaches(ahead, 4));
    TempFile made = ahead.Take();
    taken = made.path;
    ::close(made.fd);
  }
  EXPECT_FALSE(std::filesystem::exists(ahead_dir()));
  EXPECT_TRUE(std::filesystem::exists(taken)) << "a file handed out belongs to its taker";
}

}  // namespace
}  // namespace pb
