#include "os/data_dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

#include <fmt/format.h>

namespace pb {
namespace {

// What a lock file says about its holder: "PID\n" from an exclusive holder, "PID\nadopted by ID\n"
// from an instance taking over another's folder, "shared\n" from servers sharing a directory.
// Empty when the holder has not written yet (it locks first).
struct Holder {
  std::string pid;
  std::string adopted_by;
  bool shared = false;
};

Holder ReadHolder(int fd) {
  char buf[160] = {};
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  Holder h;
  if (n <= 0) return h;
  std::string s(buf, static_cast<size_t>(n));
  if (s.rfind("shared\n", 0) == 0) {
    h.shared = true;
    return h;
  }
  h.pid = s.substr(0, s.find_first_not_of("0123456789"));
  static constexpr std::string_view kAdopted = "adopted by ";
  if (auto at = s.find(kAdopted); at != std::string::npos) {
    h.adopted_by = s.substr(at + kAdopted.size());
    h.adopted_by = h.adopted_by.substr(0, h.adopted_by.find('\n'));
  }
  return h;
}

std::string Describe(const Holder& h) {
  if (h.shared) return "pacsbridge servers that share it (on one PostgreSQL index)";
  return fmt::format("pacsbridge {}", h.pid.empty() ? "(PID not written yet)" : "PID " + h.pid);
}

enum class Mode { kExclusive, kShared };

// Locks `file` without waiting. kAlreadyExists (with the holder read from the file) when held.
Result<int> Lock(const std::filesystem::path& file, Mode mode, const std::string& content, const std::string& field,
                 Holder* holder) {
  // No O_TRUNC: a process that does not get the lock must leave the holder's PID in place.
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return Fail(Code::kIoError, fmt::format("cannot open {}: {}", file.string(), std::strerror(errno)), field);
  if (::flock(fd, (mode == Mode::kShared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    int err = errno;
    *holder = ReadHolder(fd);
    ::close(fd);
    if (err != EWOULDBLOCK) {
      return Fail(Code::kIoError, fmt::format("cannot lock {}: {}", file.string(), std::strerror(err)), field);
    }
    return Fail(Code::kAlreadyExists, "held", field);
  }
  // Servers sharing the directory all write the same text; an exclusive holder writes alone.
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, content.data(), content.size(), 0) != static_cast<ssize_t>(content.size())) {
    int err = errno;
    ::close(fd);
    return Fail(Code::kIoError, fmt::format("cannot write {}: {}", file.string(), std::strerror(err)), field);
  }
  return fd;
}

std::string Shown(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::path shown = std::filesystem::absolute(dir, ec);
  return (ec ? dir : shown).lexically_normal().string();
}

Result<void> CreateDir(const std::filesystem::path& dir, const char* what) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Fail(Code::kIoError, fmt::format("cannot create {} {}: {}", what, dir.string(), ec.message()),
                "server.data_dir");
  }
  return {};
}

std::string OurPid() { return fmt::format("{}\n", ::getpid()); }

}  // namespace

Result<DataDirLock> DataDirLock::Acquire(const std::filesystem::path& data_dir) {
  if (auto made = CreateDir(data_dir, "the data directory"); !made) return tl::unexpected(made.error());
  Holder holder;
  auto fd = Lock(data_dir / kFileName, Mode::kExclusive, OurPid(), "server.data_dir", &holder);
  if (!fd && fd.error().code == Code::kAlreadyExists) {
    return Fail(Code::kAlreadyExists,
                fmt::format("data directory {} is in use by {}; {}", Shown(data_dir), Describe(holder),
                            holder.shared ? "a server with an SQLite index has its data directory to itself (give "
                                            "this one another [server] data_dir, or the others' PostgreSQL index)"
                                          : "one server per data directory unless they share one PostgreSQL "
                                            "index (stop it, or give this one another [server] data_dir)"),
                "server.data_dir");
  }
  if (!fd) return tl::unexpected(fd.error());
  return DataDirLock(*fd, data_dir / kFileName);
}

Result<DataDirLock> DataDirLock::AcquireFile(const std::filesystem::path& file, const std::string& what,
                                             const std::string& field) {
  Holder holder;
  auto fd = Lock(file, Mode::kExclusive, OurPid(), field, &holder);
  if (!fd && fd.error().code == Code::kAlreadyExists) {
    return Fail(Code::kAlreadyExists, fmt::format("{} is in use by {}", what, Describe(holder)), field);
  }
  if (!fd) return tl::unexpected(fd.error());
  return DataDirLock(*fd, file);
}

Result<DataDirLock> DataDirLock::AcquireShared(const std::filesystem::path& data_dir) {
  if (auto made = CreateDir(data_dir, "the data directory"); !made) return tl::unexpected(made.error());
  Holder holder;
  auto fd = Lock(data_dir / kFileName, Mode::kShared, "shared\n", "server.data_dir", &holder);
  if (!fd && fd.error().code == Code::kAlreadyExists) {
    return Fail(Code::kAlreadyExists,
                fmt::format("data directory {} is in use by {}, whose index is SQLite: only servers on one "
                            "PostgreSQL index share a data directory",
                            Shown(data_dir), Describe(holder)),
                "server.data_dir");
  }
  if (!fd) return tl::unexpected(fd.error());
  return DataDirLock(*fd, data_dir / kFileName);
}

Result<DataDirLock> DataDirLock::AcquireInstance(const std::filesystem::path& data_dir, const std::string& id,
                                                 std::chrono::milliseconds wait) {
  const std::filesystem::path dir = InstancesDir(data_dir) / id;
  if (auto made = CreateDir(dir, "the instance folder"); !made) return tl::unexpected(made.error());
  const auto until = std::chrono::steady_clock::now() + wait;
  while (true) {
    Holder holder;
    auto fd = Lock(dir / kFileName, Mode::kExclusive, OurPid(), "server.instance_id", &holder);
    if (fd) return DataDirLock(*fd, dir / kFileName);
    if (fd.error().code != Code::kAlreadyExists) return tl::unexpected(fd.error());
    // Another instance indexing what our journals name holds the folder for a moment (or a holder
    // has locked and not written yet).
    if ((!holder.adopted_by.empty() || holder.pid.empty()) && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (!holder.adopted_by.empty()) {
      return Fail(Code::kUnavailable,
                  fmt::format("instance '{}' of data directory {}: instance '{}' is still indexing what its "
                              "journals name; start again in a moment",
                              id, Shown(data_dir), holder.adopted_by),
                  "server.instance_id");
    }
    return Fail(Code::kAlreadyExists,
                fmt::format("instance '{}' of data directory {} is in use by {}: servers that share a data "
                            "directory need each their own [server] instance_id",
                            id, Shown(data_dir), Describe(holder)),
                "server.instance_id");
  }
}

Result<std::optional<DataDirLock>> DataDirLock::TryAdopt(const std::filesystem::path& data_dir, const std::string& id,
                                                         const std::string& by) {
  const std::filesystem::path file = id.empty() ? data_dir / "journal.lock" : InstancesDir(data_dir) / id / kFileName;
  Holder holder;
  auto fd = Lock(file, Mode::kExclusive, fmt::format("{}adopted by {}\n", OurPid(), by), "server.data_dir", &holder);
  if (!fd && fd.error().code == Code::kAlreadyExists) return std::optional<DataDirLock>();
  if (!fd) return tl::unexpected(fd.error());
  return std::optional<DataDirLock>(DataDirLock(*fd, file));
}

Result<std::string> DataDirLock::DirectoryId(const std::filesystem::path& data_dir) {
  const std::filesystem::path file = data_dir / "pacsbridge.id";
  auto read = [&file]() -> std::string {
    char buf[64] = {};
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "";
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    std::string id(buf, n > 0 ? static_cast<size_t>(n) : 0);
    return id.substr(0, id.find_first_not_of("0123456789abcdef"));
  };
  if (std::string id = read(); id.size() == 32) return id;
  // Made aside and linked into place: the first link wins, and the others read the winner's.
  unsigned char bytes[16];
  int rnd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  bool ok = rnd >= 0 && ::read(rnd, bytes, sizeof bytes) == static_cast<ssize_t>(sizeof bytes);
  if (rnd >= 0) ::close(rnd);
  if (!ok) return Fail(Code::kIoError, "cannot read /dev/urandom for the data directory's id", "server.data_dir");
  std::string id;
  for (unsigned char b : bytes) id += fmt::format("{:02x}", b);
  const std::filesystem::path temp = data_dir / fmt::format("pacsbridge.id.{}", ::getpid());
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const std::string text = id + "\n";
  ok = fd >= 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  const int linked = ok ? ::link(temp.c_str(), file.c_str()) : -1;
  const int err = errno;
  ::unlink(temp.c_str());
  if (!ok || (linked != 0 && err != EEXIST)) {
    return Fail(Code::kIoError, fmt::format("cannot write {}: {}", file.string(), std::strerror(ok ? err : errno)),
                "server.data_dir");
  }
  if (std::string winner = read(); winner.size() == 32) return winner;
  return Fail(Code::kIoError, fmt::format("{} does not hold a data directory id", file.string()), "server.data_dir");
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
