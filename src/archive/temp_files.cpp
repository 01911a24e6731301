#include "archive/temp_files.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace pb {
namespace {

constexpr auto kRetryAfterFailure = std::chrono::seconds(2);  // a full disk, a vanished folder

}  // namespace

TempFilesAhead::TempFilesAhead(BlobStore& blobs, size_t keep)
    : blobs_(blobs), keep_(keep), dir_(blobs.tmp_dir() / kFolder) {
  if (keep_ == 0) return;
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) {
    spdlog::warn("cannot create {} ({}): temp files are created as instances arrive", dir_.string(), ec.message());
    return;
  }
  maker_ = std::thread([this] { Loop(); });
}

TempFilesAhead::~TempFilesAhead() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (maker_.joinable()) maker_.join();
  std::error_code ec;
  for (const auto& t : ready_) {
    ::close(t.fd);
    std::filesystem::remove(t.path, ec);
  }
  std::filesystem::remove(dir_, ec);  // only when empty
}

size_t TempFilesAhead::ready() const {
  std::lock_guard lock(mu_);
  return ready_.size();
}

TempFile TempFilesAhead::Take() {
  std::filesystem::path fresh = blobs_.NewTempPath();
  for (;;) {
    TempFile made;
    {
      std::lock_guard lock(mu_);
      if (ready_.empty()) return {fresh, -1};
      made = std::move(ready_.front());
      ready_.pop_front();
    }
    wake_.notify_one();
    if (::rename(made.path.c_str(), fresh.c_str()) == 0) return {fresh, made.fd};
    ::close(made.fd);  // gone (someone emptied tmp/) or stuck: the next one, or the fresh name
    ::unlink(made.path.c_str());
  }
}

void TempFilesAhead::Loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || ready_.size() < keep_; });
    if (stopping_) return;
    std::filesystem::path path = dir_ / fmt::format("{}.empty", made_++);
    lock.unlock();
    // 0666 less the umask, as fopen() gives the files created on arrival.
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno == ENOENT) {  // the folder was removed under us: make it again
      std::error_code ec;
      std::filesystem::create_directories(dir_, ec);
      fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    }
    const int err = errno;
    lock.lock();
    if (fd >= 0) {
      warned_ = false;
      ready_.push_back({std::move(path), fd});
    } else if (err != EEXIST) {
      if (!warned_) {
        spdlog::warn("cannot make temp files ahead in {} ({}): they are created as instances arrive "
                     "until this works again",
                     dir_.string(), std::strerror(err));
        warned_ = true;
      }
      wake_.wait_for(lock, kRetryAfterFailure, [&] { return stopping_; });
    }
  }
}

}  // namespace pb
