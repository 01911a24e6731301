#include "os/data_dir_lock.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <vector>

#include <gtest/gtest.h>

namespace pb {
namespace {

class DataDirLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pb-lock-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string LockFileText() {
    std::ifstream in(dir_ / DataDirLock::kFileName);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // Runs Acquire in a child process: 0 when it got the lock, 1 when refused as in use.
  int AcquireInChild(const std::filesystem::path& dir) {
    pid_t pid = fork();
    if (pid == 0) {
      auto l = DataDirLock::Acquire(dir);
      _exit(l ? 0 : (l.error().code == Code::kAlreadyExists ? 1 : 2));
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::filesystem::path dir_;
};

TEST_F(DataDirLockTest, CreatesTheDirectoryAndWritesOurPid) {
  auto lock = DataDirLock::Acquire(dir_ / "new" / "data");
  ASSERT_TRUE(lock) << lock.error().message;
  EXPECT_TRUE(std::filesystem::is_directory(dir_ / "new" / "data"));
  std::ifstream in(dir_ / "new" / "data" / DataDirLock::kFileName);
  int pid = 0;
  in >> pid;
  EXPECT_EQ(pid, getpid());
}

TEST_F(DataDirLockTest, ASecondProcessIsRefusedWithTheHoldersPidAndChangesNothing) {
  auto lock = DataDirLock::Acquire(dir_);
  ASSERT_TRUE(lock);
  const std::string before = LockFileText();
  EXPECT_EQ(AcquireInChild(dir_), 1);
  EXPECT_EQ(LockFileText(), before);  // the holder's PID is still there

  auto again = DataDirLock::Acquire(dir_);  // a second open file in this process is refused too
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Code::kAlreadyExists);
  EXPECT_NE(again.error().message.find("is in use by pacsbridge PID " + std::to_string(getpid())), std::string::npos)
      << again.error().message;
  EXPECT_NE(again.error().message.find(dir_.string()), std::string::npos) << again.error().message;
  EXPECT_EQ(again.error().field, "server.data_dir");
}

TEST_F(DataDirLockTest, IsFreeAgainOnceTheHolderIsGone) {
  {
    auto lock = DataDirLock::Acquire(dir_);
    ASSERT_TRUE(lock);
    EXPECT_EQ(AcquireInChild(dir_), 1);
  }
  EXPECT_EQ(AcquireInChild(dir_), 0);
}

TEST_F(DataDirLockTest, AHolderKilledWithSigkillLeavesNoStaleLock) {
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t holder = fork();
  if (holder == 0) {
    auto l = DataDirLock::Acquire(dir_);
    char c = l ? 'y' : 'n';
    if (write(ready[1], &c, 1) != 1) _exit(3);
    for (;;) pause();
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  auto refused = DataDirLock::Acquire(dir_);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("PID " + std::to_string(holder)), std::string::npos)
      << refused.error().message;
  kill(holder, SIGKILL);
  waitpid(holder, nullptr, 0);
  auto lock = DataDirLock::Acquire(dir_);
  EXPECT_TRUE(lock) << lock.error().message;
  close(ready[0]);
  close(ready[1]);
}

TEST_F(DataDirLockTest, SharingServersAndAServerThatOwnsTheDirectoryExcludeEachOther) {
  {
    auto shared = DataDirLock::AcquireShared(dir_);
    ASSERT_TRUE(shared) << shared.error().message;
    auto second = DataDirLock::AcquireShared(dir_);  // another instance on the same index
    EXPECT_TRUE(second) << second.error().message;
    auto own = DataDirLock::Acquire(dir_);
    ASSERT_FALSE(own);
    EXPECT_EQ(own.error().code, Code::kAlreadyExists);
    EXPECT_NE(own.error().message.find("servers that share it"), std::string::npos) << own.error().message;
  }
  auto own = DataDirLock::Acquire(dir_);
  ASSERT_TRUE(own) << own.error().message;
  auto shared = DataDirLock::AcquireShared(dir_);
  ASSERT_FALSE(shared);
  EXPECT_EQ(shared.error().code, Code::kAlreadyExists);
  EXPECT_NE(shared.error().message.find("PID " + std::to_string(getpid())), std::string::npos)
      << shared.error().message;
  EXPECT_NE(shared.error().message.find("SQLite"), std::string::npos) << shared.error().message;
}

TEST_F(DataDirLockTest, AnInstanceIdRunsOnceOnADirectory) {
  auto a = DataDirLock::AcquireInstance(dir_, "gw-1", std::chrono::milliseconds(0));
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_TRUE(std::filesystem::is_directory(DataDirLock::InstancesDir(dir_) / "gw-1"));
  auto b = DataDirLock::AcquireInstance(dir_, "gw-2", std::chrono::milliseconds(0));
  EXPECT_TRUE(b) << b.error().message;
  auto again = DataDirLock::AcquireInstance(dir_, "gw-1", std::chrono::milliseconds(300));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Code::kAlreadyExists);
  EXPECT_EQ(again.error().field, "server.instance_id");
  EXPECT_NE(again.error().message.find("instance 'gw-1'"), std::string::npos) << again.error().message;
  EXPECT_NE(again.error().message.find("PID " + std::to_string(getpid())), std::string::npos) << again.error().message;
  // A running instance's folder is not taken over.
  auto adopt = DataDirLock::TryAdopt(dir_, "gw-1", "gw-2");
  ASSERT_TRUE(adopt) << adopt.error().message;
  EXPECT_FALSE(adopt->has_value());
}

TEST_F(DataDirLockTest, AnInstanceWaitsWhileAnotherTakesItsFolderOver) {
  {
    auto made = DataDirLock::AcquireInstance(dir_, "gw-1", std::chrono::milliseconds(0));
    ASSERT_TRUE(made);
  }
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  pid_t adopter = fork();
  if (adopter == 0) {  // instance gw-2 takes gw-1's folder over for 700 ms
    auto l = DataDirLock::TryAdopt(dir_, "gw-1", "gw-2");
    char c = l && l->has_value() ? 'y' : 'n';
    if (write(go[1], &c, 1) != 1) _exit(3);
    usleep(700 * 1000);
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(go[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  auto refused = DataDirLock::AcquireInstance(dir_, "gw-1", std::chrono::milliseconds(0));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("instance 'gw-2' is still indexing"), std::string::npos)
      << refused.error().message;
  auto waited = DataDirLock::AcquireInstance(dir_, "gw-1", std::chrono::seconds(30));
  EXPECT_TRUE(waited) << waited.error().message;
  int status = 0;
  waitpid(adopter, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  close(go[0]);
  close(go[1]);
}

TEST_F(DataDirLockTest, ADirectoryHasOneIdWhoeverAsksFirst) {
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  std::vector<pid_t> children;
  for (int i = 0; i < 4; ++i) {  // servers starting together
    pid_t pid = fork();
    if (pid == 0) {
      auto id = DataDirLock::DirectoryId(dir_);
      std::string line = (id ? *id : "error: " + id.error().message) + "\n";
      if (write(out[1], line.data(), line.size()) != static_cast<ssize_t>(line.size())) _exit(3);
      _exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) waitpid(pid, nullptr, 0);
  close(out[1]);
  std::string all;
  char buf[512];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;) all.append(buf, static_cast<size_t>(n));
  close(out[0]);
  auto mine = DataDirLock::DirectoryId(dir_);
  ASSERT_TRUE(mine) << mine.error().message;
  EXPECT_EQ(mine->size(), 32u);
  EXPECT_EQ(mine->find_first_not_of("0123456789abcdef"), std::string::npos) << *mine;
  EXPECT_EQ(all, *mine + "\n" + *mine + "\n" + *mine + "\n" + *mine + "\n");
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir_)) ++files;
  EXPECT_EQ(files, 1u);  // pacsbridge.id, no temp left behind
  char other[] = "/tmp/pb-lock-XXXXXX";
  ASSERT_NE(mkdtemp(other), nullptr);
  auto theirs = DataDirLock::DirectoryId(other);
  std::filesystem::remove_all(other);
  ASSERT_TRUE(theirs);
  EXPECT_NE(*theirs, *mine);
}

}  // namespace
}  // namespace pb
