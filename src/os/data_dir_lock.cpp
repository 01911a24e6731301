#include "os/data_dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/format.h>

namespace pb {
namespace {

// What the holder wrote: "PID\n". Empty when it has not written yet (it locks first).
std::string ReadHolder(int fd) {
  char buf[64] = {};
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return "";
  std::string s(buf, static_cast<size_t>(n));
  auto end = s.find_first_not_of("0123456789");
  return s.substr(0, end);
}

}  // namespace

Result<DataDirLock> DataDirLock::Acquire(const std::filesystem::path& data_dir) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    return Fail(Code::kIoError, fmt::format("cannot create the data directory {}: {}", data_dir.string(), ec.message()),
                "server.data_dir");
  }
  std::filesystem::path shown = std::filesystem::absolute(data_dir, ec);
  if (ec) shown = data_dir;
  auto lock =
      AcquireFile(data_dir / kFileName, "data directory " + shown.lexically_normal().string(), "server.data_dir");
  if (!lock && lock.error().code == Code::kAlreadyExists) {
    lock.error().message += "; one server per data directory (stop it, or give this one another [server] data_dir)";
  }
  return lock;
}

Result<DataDirLock> DataDirLock::AcquireFile(const std::filesystem::path& file, const std::string& what,
                                             const std::string& field) {
  // No O_TRUNC: a process that does not get the lock must leave the holder's PID in place.
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return Fail(Code::kIoError, fmt::format("cannot open {}: {}", file.string(), std::strerror(errno)), field);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    std::string holder = ReadHolder(fd);
    ::close(fd);
    if (err != EWOULDBLOCK) {
      return Fail(Code::kIoError, fmt::format("cannot lock {}: {}", file.string(), std::strerror(err)), field);
    }
    return Fail(
        Code::kAlreadyExists,
        fmt::format("{} is in use by pacsbridge {}", what, holder.empty() ? "(PID not written yet)" : "PID " + holder),
        field);
  }
  std::string pid = fmt::format("{}\n", ::getpid());
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    int err = errno;
    ::close(fd);
    return Fail(Code::kIoError, fmt::format("cannot write {}: {}", file.string(), std::strerror(err)), field);
  }
  return DataDirLock(fd, file);
}

DataDirLock::DataDirLock(DataDirLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), file_(std::move(other.file_)) {}

DataDirLock& DataDirLock::operator=(DataDirLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    file_ = std::move(other.file_);
  }
  return *this;
}

DataDirLock::~DataDirLock() {
  // Closing releases the lock; the file stays (removing it would race with a starting server).
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace pb
