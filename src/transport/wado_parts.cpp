#include "transport/wado_parts.h"

#include <cctype>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "core/thread_annotations.h"
#include "dicom/dataset.h"
#include "dicom/header.h"
#include "dicom/store_scu.h"
#include "dicomweb/http_client.h"

namespace pb {
namespace {

constexpr size_t kMaxWaiting = 8;         // complete parts waiting for the ingest path
constexpr int64_t kPollEvery = 4 << 20;   // bytes between cancel checks within a part
constexpr size_t kHeadBytes = 64 * 1024;  // kept to read the header without reading the file
constexpr size_t kReadyFiles = 2;         // temp files the worker keeps open for the next parts

int OpenTemp(const std::filesystem::path& path) {
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
}

// The whole chunk, straight from the network's buffer (no stdio copy); false with errno set.
bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

WadoParts::WadoParts(dicom::StoreSink& sink, const Node& node, Scope scope, const FetchHooks& hooks)
    : sink_(sink),
      node_(node),
      scope_(std::move(scope)),
      hooks_(hooks),
      in_memory_(sink.WantsDataset()),
      worker_([this] { Work(); }) {}

WadoParts::~WadoParts() {
  Discard();
  Drain();
}

Result<void> WadoParts::Begin(const std::string& content_type) {
  auto boundary = dicomweb::MultipartBoundary(content_type);
  if (!boundary) {
    return Fail(Code::kUnavailable,
                fmt::format("the WADO-RS answer is not a usable multipart body: {}", boundary.error().message));
  }
  dicomweb::MultipartParser::Handlers h;
  h.on_part = [this](int index, const dicomweb::MultipartParser::Headers& headers) { return OnPart(index, headers); };
  h.on_data = [this](std::string_view data) { return OnData(data); };
  h.on_part_end = [this]() { return OnPartEnd(); };
  parser_.emplace(*boundary, std::move(h));
  if (!in_memory_ && scope_.sop.empty()) {  // one instance asked for: one file, no next parts
    {
      MutexLock lock(mu_);
      open_ahead_ = true;
    }
    changed_.notify_all();
  }
  return {};
}

Result<void> WadoParts::Feed(std::string_view chunk) {
  if (!parser_) return Fail(Code::kUnavailable, "the WADO-RS answer has no multipart body");
  return parser_->Feed(chunk);
}

Result<void> WadoParts::Finish() {
  if (!parser_) return Fail(Code::kUnavailable, "the WADO-RS answer has no multipart body");
  return parser_->Finish();
}

void WadoParts::Drain() {
  {
    MutexLock lock(mu_);
    closing_ = true;
  }
  changed_.notify_all();
  if (worker_.joinable()) worker_.join();
}

int WadoParts::stored() const {
  MutexLock lock(mu_);
  return stored_;
}

void WadoParts::Problem(std::string text) {
  MutexLock lock(mu_);
  problems_.push_back(std::move(text));
}

std::optional<Error> WadoParts::Fatal() {
  MutexLock lock(mu_);
  return fatal_;
}

Result<void> WadoParts::OnPart(int index, const dicomweb::MultipartParser::Headers& headers) {
  if (auto f = Fatal()) return tl::unexpected(*f);
  index_ = index;
  skip_ = false;
  auto it = headers.find("content-type");
  if (it != headers.end()) {
    std::string type = it->second.substr(0, it->second.find(';'));
    for (auto& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    while (!type.empty() && type.back() == ' ') type.pop_back();
    if (type != "application/dicom") {
      Problem(fmt::format("part {} is {}, not application/dicom; it was skipped", index, it->second.substr(0, 60)));
      skip_ = true;
      return {};
    }
  }
  bytes_ = 0;
  polled_at_ = 0;
  if (in_memory_) {
    memory_.clear();
    return {};
  }
  {
    MutexLock lock(mu_);
    if (!ready_.empty()) {
      path_ = std::move(ready_.front().path);
      fd_ = ready_.front().fd;
      ready_.pop_front();
    }
    if (!spare_heads_.empty()) {
      memory_ = std::move(spare_heads_.back());
      spare_heads_.pop_back();
    }
  }
  changed_.notify_all();  // the worker opens the next one
  memory_.clear();
  if (fd_ >= 0) return {};
  path_ = sink_.NewTempPath();
  fd_ = OpenTemp(path_);
  if (fd_ < 0) {
    path_.clear();
    return Fail(Code::kIoError, fmt::format("cannot create a temp file: {}", std::strerror(errno)));
  }
  return {};
}

Result<void> WadoParts::OnData(std::string_view data) {
  if (skip_) return {};
  if (in_memory_) {
    memory_.append(data.data(), data.size());
  } else {
    if (memory_.size() < kHeadBytes) memory_.append(data.data(), std::min(data.size(), kHeadBytes - memory_.size()));
    if (!WriteAll(fd_, data)) {
      const int err = errno;
      Discard();
      return Fail(err == ENOSPC ? Code::kOutOfSpace : Code::kIoError,
                  fmt::format("cannot write the retrieved data to disk: {}", std::strerror(err)));
    }
  }
  bytes_ += static_cast<int64_t>(data.size());
  if (bytes_ - polled_at_ >= kPollEvery) {
    polled_at_ = bytes_;
    if (hooks_.cancel_requested && hooks_.cancel_requested()) return Fail(Code::kCanceled, "canceled");
  }
  return {};
}

Result<void> WadoParts::OnPartEnd() {
  if (skip_) return {};
  if (in_memory_) {
    Complete part{{}, std::move(memory_), bytes_, index_};
    memory_.clear();
    MutexLock lock(mu_);
    changed_.wait(lock, [&]() REQUIRES(mu_) { return queue_.empty() || fatal_; });  // one part in memory waits
    if (fatal_) return tl::unexpected(*fatal_);
    queue_.push_back(std::move(part));
    lock.Unlock();
    changed_.notify_all();
    if (hooks_.cancel_requested && hooks_.cancel_requested()) return Fail(Code::kCanceled, "canceled");
    return {};
  }
  const bool written = ::close(fd_) == 0;
  const int err = errno;
  fd_ = -1;
  Complete part{std::move(path_), std::move(memory_), bytes_, index_};
  memory_.clear();
  path_.clear();
  if (!written) {
    std::error_code ec;
    std::filesystem::remove(part.path, ec);
    return Fail(err == ENOSPC ? Code::kOutOfSpace : Code::kIoError,
                fmt::format("cannot write the retrieved data to disk: {}", std::strerror(err)));
  }
  {
    MutexLock lock(mu_);
    changed_.wait(lock, [&]() REQUIRES(mu_) { return queue_.size() < kMaxWaiting || fatal_; });
    queue_.push_back(std::move(part));
    if (fatal_) return tl::unexpected(*fatal_);  // the worker drops what is queued after this
  }
  changed_.notify_all();
  if (hooks_.cancel_requested && hooks_.cancel_requested()) return Fail(Code::kCanceled, "canceled");
  return {};
}

bool WadoParts::WantsFile() const { return open_ahead_ && !closing_ && !fatal_ && ready_.size() < kReadyFiles; }

void WadoParts::RemoveReady() {
  std::deque<Ready> unused;
  {
    MutexLock lock(mu_);
    unused.swap(ready_);
  }
  for (auto& r : unused) {
    ::close(r.fd);
    std::error_code ec;
    std::filesystem::remove(r.path, ec);
  }
}

void WadoParts::Work() {
  for (;;) {
    Complete part;
    {
      MutexLock lock(mu_);
      changed_.wait(lock, [&]() REQUIRES(mu_) { return !queue_.empty() || closing_ || WantsFile(); });
      // A file ahead first when none is ready (the network thread would wait on its creation),
      // else the waiting parts, else more files ahead.
      if (WantsFile() && (queue_.empty() || ready_.empty())) {
        lock.Unlock();
        Ready r{sink_.NewTempPath(), -1};
        r.fd = OpenTemp(r.path);
        lock.Lock();
        if (r.fd < 0) {
          open_ahead_ = false;  // the network thread opens its own and reports why it cannot
        } else {
          ready_.push_back(std::move(r));
        }
        continue;
      }
      if (queue_.empty()) {
        lock.Unlock();
        RemoveReady();
        return;
      }
      part = std::move(queue_.front());
      queue_.pop_front();
      if (fatal_) {
        std::error_code ec;
        if (!part.path.empty()) std::filesystem::remove(part.path, ec);
        changed_.notify_all();
        continue;
      }
    }
    changed_.notify_all();
    if (part.path.empty()) {
      IngestInMemory(part);
    } else {
      Ingest(part);
      part.data.clear();
      MutexLock lock(mu_);
      if (spare_heads_.size() < kMaxWaiting + 2) spare_heads_.push_back(std::move(part.data));
    }
  }
}

void WadoParts::Ingest(const Complete& part) {
  auto drop = [&](std::string why) {
    std::error_code ec;
    std::filesystem::remove(part.path, ec);
    Problem(std::move(why));
  };
  auto header = dicom::ReadHeaderFromFileBytes(part.data, part.bytes <= static_cast<int64_t>(part.data.size()));
  if (!header) header = dicom::ReadHeader(part.path);
  if (!header)
    return drop(fmt::format("part {} is not a DICOM file ({}); it was skipped", part.index, header.error().message));
  const InstanceRecord& h = *header;
  if (!Asked(h.study_uid, h.series_uid, h.sop_uid, part.index)) {
    std::error_code ec;
    std::filesystem::remove(part.path, ec);
    return;
  }
  dicom::IncomingInstance in;
  in.temp_file = part.path;
  in.sop_class_uid = h.sop_class_uid;
  in.sop_instance_uid = h.sop_uid;
  in.transfer_syntax_uid = h.transfer_syntax_uid;
  in.calling_ae = node_.ae_title;
  in.peer_address = dicomweb::OriginOf(node_.url);
  in.file_size = part.bytes;
  in.header = h;
  Settle(sink_.Store(in), h.sop_uid);  // the sink owns the temp file from here
}

void WadoParts::IngestInMemory(const Complete& part) {
  auto data = dicom::Dataset::Parse(part.data);
  if (!data)
    return Problem(fmt::format("part {} is not a DICOM file ({}); it was skipped", part.index, data.error().message));
  const std::string sop = (*data)->Get(0x00080018).value_or("");
  if (!Asked((*data)->Get(0x0020000D).value_or(""), (*data)->Get(0x0020000E).value_or(""), sop, part.index)) return;
  dicom::IncomingInstance in;
  in.sop_class_uid = (*data)->Get(0x00080016).value_or("");
  in.sop_instance_uid = sop;
  in.transfer_syntax_uid = (*data)->transfer_syntax_uid();
  in.calling_ae = node_.ae_title;
  in.peer_address = dicomweb::OriginOf(node_.url);
  in.file_size = part.bytes;
  Settle(sink_.StoreDataset(in, **data), sop);
}

bool WadoParts::Asked(const std::string& study, const std::string& series, const std::string& sop, int index) {
  const bool asked = (scope_.study.empty() || study == scope_.study) &&
                     (scope_.series.empty() || series == scope_.series) && (scope_.sop.empty() || sop == scope_.sop);
  if (asked) return true;
  MutexLock lock(mu_);
  discarded_.push_back(sop);
  problems_.push_back(fmt::format("part {} holds instance {}, which was not asked for; it was discarded", index, sop));
  return false;
}

void WadoParts::Settle(const dicom::StoreAnswer& answer, const std::string& sop_uid) {
  MutexLock lock(mu_);
  if (answer.status == 0 || (answer.status & 0xF000) == 0xB000) {
    ++stored_;
    return;
  }
  refused_.push_back(sop_uid);
  problems_.push_back(
      fmt::format("instance {} was not stored: {}", sop_uid,
                  answer.error_comment.empty() ? dicom::StoreStatusText(answer.status) : answer.error_comment));
  if (answer.status == 0xA700 && !fatal_) {
    fatal_ = Error{Code::kOutOfSpace, "the archive is out of space", {}};
    changed_.notify_all();
  }
}

void WadoParts::Discard() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!path_.empty()) {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
    path_.clear();
  }
}

}  // namespace pb
