#include "dicom/split_dataset.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcistrma.h>
#include <dcmtk/dcmdata/dcistrmf.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <fmt/format.h>

#include "dicom/condition.h"
#include "dicom/dataset_impl.h"

namespace pb::dicom {
namespace {

constexpr uint32_t kUndefinedLength = 0xFFFFFFFFu;
// Values longer than this are left in the spill file by DCMTK's parse (read when written):
// below the smallest value that is spilled (Options::min_spill), so every spilled one is.
constexpr Uint32 kMaxReadLength = 1024;

uint16_t U16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t U32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

// PS3.5 Table 7.1-1: the VRs whose explicit encoding has a 4-byte length after 2 reserved bytes.
bool LongVr(char a, char b) {
  static constexpr const char* kLong[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"};
  return std::any_of(std::begin(kLong), std::end(kLong), [&](const char* v) { return v[0] == a && v[1] == b; });
}

bool KnownVr(char a, char b) {
  static constexpr const char* kShort[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO",
                                           "LT", "PN", "SH", "SL", "SS", "ST", "TM", "UI", "UL", "US"};
  return LongVr(a, b) ||
         std::any_of(std::begin(kShort), std::end(kShort), [&](const char* v) { return v[0] == a && v[1] == b; });
}

// The data set as stretches of memory and spill file, read in order; random access, so DCMTK
// may put back what it peeked at.
class SegmentProducer : public DcmProducer {
 public:
  SegmentProducer(const std::string& memory, const std::vector<DataSetSplitter::Segment>& segments, int fd,
                  const std::vector<uint64_t>& spilled_at)
      : memory_(memory), segments_(segments), fd_(fd), spilled_at_(spilled_at) {
    starts_.reserve(segments_.size());
    for (const auto& s : segments_) {
      starts_.push_back(total_);
      total_ += s.length;
    }
  }
  OFBool good() const override { return status_.good(); }
  OFCondition status() const override { return status_; }
  OFBool eos() override { return pos_ >= total_; }
  offile_off_t avail() override { return static_cast<offile_off_t>(total_ - pos_); }
  offile_off_t read(void* buf, offile_off_t buflen) override {
    char* out = static_cast<char*>(buf);
    offile_off_t done = 0;
    while (done < buflen && pos_ < total_ && status_.good()) {
      const size_t i = Index(pos_);
      const auto& s = segments_[i];
      const uint64_t within = pos_ - starts_[i];
      const uint64_t n = std::min<uint64_t>(s.length - within, static_cast<uint64_t>(buflen - done));
      if (!s.in_file) {
        std::memcpy(out + done, memory_.data() + s.offset + within, n);
      } else {
        ssize_t got = ::pread(fd_, out + done, n, static_cast<off_t>(s.offset + within));
        if (got <= 0) {
          status_ = EC_InvalidStream;
          break;
        }
        pos_ += static_cast<uint64_t>(got);
        done += got;
        continue;
      }
      pos_ += n;
      done += static_cast<offile_off_t>(n);
    }
    return done;
  }
  offile_off_t skip(offile_off_t skiplen) override {
    const uint64_t n = std::min<uint64_t>(static_cast<uint64_t>(std::max<offile_off_t>(skiplen, 0)), total_ - pos_);
    pos_ += n;
    return static_cast<offile_off_t>(n);
  }
  void putback(offile_off_t num) override {
    const uint64_t n = static_cast<uint64_t>(std::max<offile_off_t>(num, 0));
    if (n > pos_) {
      status_ = EC_PutbackFailed;
      return;
    }
    pos_ -= n;
  }
  // Where the value starting at `pos` lies in the spill file, when the walk put it there whole
  // (a value DCMTK finds elsewhere, where the walk saw none, is read now like any other).
  std::optional<uint64_t> FileOffset(uint64_t pos) const {
    if (pos >= total_ || !std::binary_search(spilled_at_.begin(), spilled_at_.end(), pos)) return std::nullopt;
    const size_t i = Index(pos);
    if (!segments_[i].in_file) return std::nullopt;
    return segments_[i].offset + (pos - starts_[i]);
  }

 private:
  size_t Index(uint64_t pos) const {
    return static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), pos) - starts_.begin()) - 1;
  }
  const std::string& memory_;
  const std::vector<DataSetSplitter::Segment>& segments_;
  int fd_;
  const std::vector<uint64_t>& spilled_at_;
  std::vector<uint64_t> starts_;
  uint64_t total_ = 0;
  uint64_t pos_ = 0;
  OFCondition status_ = EC_Normal;
};

// Base-from-member: the producer exists before the stream that reads it.
struct SegmentProducerBase {
  SegmentProducerBase(const std::string& memory, const std::vector<DataSetSplitter::Segment>& segments, int fd,
                      const std::vector<uint64_t>& spilled_at)
      : producer(memory, segments, fd, spilled_at) {}
  SegmentProducer producer;
};

// A value DCMTK meets in the spill file is left there: its factory reads the file at the value.
class SegmentInputStream : private SegmentProducerBase, public DcmInputStream {
 public:
  SegmentInputStream(const std::string& memory, const std::vector<DataSetSplitter::Segment>& segments, int fd,
                     const std::vector<uint64_t>& spilled_at, std::filesystem::path file)
      : SegmentProducerBase(memory, segments, fd, spilled_at), DcmInputStream(&producer), file_(std::move(file)) {}
  DcmInputStreamFactory* newFactory() const override {
    auto at = producer.FileOffset(static_cast<uint64_t>(tell()));
    if (!at) return nullptr;  // in memory: DCMTK reads the value now
    return new DcmInputFileStreamFactory(OFFilename(file_.c_str()), static_cast<offile_off_t>(*at));
  }

 private:
  std::filesystem::path file_;
};

}  // namespace

DataSetSplitter::DataSetSplitter(Options options, std::function<std::filesystem::path()> spill_path)
    : options_(options), spill_path_(std::move(spill_path)) {
  levels_.push_back({Level::kDataSet, options_.explicit_vr, false});
}

DataSetSplitter::~DataSetSplitter() {
  if (file_) std::fclose(file_);
  if (!file_path_.empty()) {
    std::error_code ec;
    std::filesystem::remove(file_path_, ec);
  }
}

void DataSetSplitter::AppendMemory(const char* data, size_t size) {
  if (size == 0) return;
  if (!segments_.empty() && !segments_.back().in_file) {
    segments_.back().length += size;
  } else {
    segments_.push_back({false, mem_.size(), size});
  }
  mem_.append(data, size);
  total_ += size;
}

void DataSetSplitter::AppendFile(const char* data, size_t size) {
  if (size == 0 || write_failed_) return;
  if (!file_) {
    file_path_ = spill_path_();
    const int fd = ::open(file_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    file_ = fd >= 0 ? ::fdopen(fd, "wb") : nullptr;
    if (!file_) {
      if (fd >= 0) ::close(fd);
      if (fd < 0) file_path_.clear();  // not ours to remove
      write_failed_ = true;
      return;
    }
    std::setvbuf(file_, nullptr, _IOFBF, 256 * 1024);
  }
  if (std::fwrite(data, 1, size, file_) != size) {
    write_failed_ = true;
    return;
  }
  if (!segments_.empty() && segments_.back().in_file) {
    segments_.back().length += size;
  } else {
    segments_.push_back({true, file_size_, size});
  }
  file_size_ += size;
  total_ += size;
}

size_t DataSetSplitter::HeaderSize() const {
  if (header_have_ < 6) return 8;
  if (U16(header_) == 0xFFFE || !levels_.back().explicit_vr) return 8;
  return LongVr(static_cast<char>(header_[4]), static_cast<char>(header_[5])) ? 12 : 8;
}

void DataSetSplitter::StartValue(uint64_t length, bool bulk) {
  header_have_ = 0;
  if (length == 0) {
    state_ = State::kHeader;
    return;
  }
  state_ = State::kValue;
  value_left_ = length;
  value_spillable_ = bulk && length >= options_.min_spill;
  value_to_file_ = spilling_ && value_spillable_;
  value_mem_start_ = mem_.size();
  value_at_ = total_;
  if (value_to_file_) spilled_at_.push_back(value_at_);
}

void DataSetSplitter::HeaderComplete() {
  const uint16_t group = U16(header_);
  const uint16_t element = U16(header_ + 2);
  const Level level = levels_.back();
  auto lose = [&] { state_ = State::kLost; };
  header_have_ = 0;
  if (group == 0xFFFE) {
    const uint32_t length = U32(header_ + 4);
    if (element == 0xE000 && level.kind == Level::kSequence) {
      if (length == kUndefinedLength) {
        levels_.push_back({Level::kItem, level.explicit_vr, false});
      } else {
        StartValue(length, level.pixel_data);  // a pixel fragment, or an item taken whole
      }
    } else if ((element == 0xE00D && level.kind == Level::kItem) ||
               (element == 0xE0DD && level.kind == Level::kSequence)) {
      if (length != 0) return lose();
      levels_.pop_back();
    } else {
      lose();
    }
    return;
  }
  if (level.kind == Level::kSequence) return lose();  // a sequence holds items only
  // Only pixel data (7FE0,xxxx at the top level: Pixel Data, Float and Double Float Pixel
  // Data) may leave memory: the anonymizer never changes it, whereas any other value may
  // identify (a private blob, a report, a comment) and must not reach the disk as sent.
  const bool pixel_data = level.kind == Level::kDataSet && group == 0x7FE0;
  uint32_t length = 0;
  if (level.explicit_vr) {
    const char a = static_cast<char>(header_[4]), b = static_cast<char>(header_[5]);
    if (!KnownVr(a, b)) return lose();
    length = LongVr(a, b) ? U32(header_ + 8) : U16(header_ + 6);
    if (length == kUndefinedLength) {
      const bool sq = a == 'S' && b == 'Q', un = a == 'U' && b == 'N', ob_ow = a == 'O' && (b == 'B' || b == 'W');
      if (!sq && !un && !ob_ow) return lose();
      // A UN of undefined length is a sequence in implicit VR (PS3.5 6.2.2); OB or OW of
      // undefined length is encapsulated pixel data: items of defined length.
      levels_.push_back({Level::kSequence, !un, pixel_data && ob_ow});
      return;
    }
  } else {
    length = U32(header_ + 4);
    if (length == kUndefinedLength) {
      levels_.push_back({Level::kSequence, false, false});
      return;
    }
  }
  StartValue(length, pixel_data);
}

void DataSetSplitter::CheckBudget() {
  if (spilling_ || mem_.size() <= options_.memory_budget) return;
  spilling_ = true;
  if (state_ == State::kValue && value_spillable_ && !value_to_file_) {
    // The value being received goes to the file whole, with what came of it so far.
    const size_t moved = mem_.size() - value_mem_start_;
    Segment& last = segments_.back();  // the value's bytes are the end of the last memory stretch
    last.length -= moved;
    std::string head = mem_.substr(value_mem_start_);
    mem_.resize(value_mem_start_);
    total_ -= moved;  // counted again as it goes to the file
    if (last.length == 0) segments_.pop_back();
    value_to_file_ = true;
    spilled_at_.push_back(value_at_);
    AppendFile(head.data(), head.size());
  }
}

bool DataSetSplitter::Feed(const char* data, size_t size) {
  while (size > 0 && !write_failed_) {
    if (state_ == State::kLost) {
      AppendMemory(data, size);
      break;
    }
    if (state_ == State::kHeader) {
      const size_t take = std::min(HeaderSize() - header_have_, size);
      std::memcpy(header_ + header_have_, data, take);
      header_have_ += take;
      AppendMemory(data, take);
      data += take;
      size -= take;
      if (header_have_ == HeaderSize()) HeaderComplete();
      CheckBudget();
      continue;
    }
    const size_t take = static_cast<size_t>(std::min<uint64_t>(value_left_, size));
    if (value_to_file_) {
      AppendFile(data, take);
    } else {
      AppendMemory(data, take);
      CheckBudget();
    }
    value_left_ -= take;
    data += take;
    size -= take;
    if (value_left_ == 0) state_ = State::kHeader;
  }
  return !write_failed_;
}

Result<std::unique_ptr<Dataset>> DataSetSplitter::Finish(const std::string& transfer_syntax_uid) {
  if (file_) {
    const bool flushed = std::fflush(file_) == 0;
    const bool closed = std::fclose(file_) == 0;
    file_ = nullptr;
    write_failed_ = write_failed_ || !flushed || !closed;
  }
  if (write_failed_) return Fail(Code::kUnavailable, "cannot write the spill file (disk full?)");
  int fd = -1;
  if (!file_path_.empty()) {
    fd = ::open(file_path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return Fail(Code::kUnavailable, fmt::format("cannot read back the spill file: {}", std::strerror(errno)));
  }
  const DcmXfer xfer(transfer_syntax_uid.c_str());
  auto ds = std::make_unique<DcmDataset>();
  OFCondition cond;
  {
    SegmentInputStream stream(mem_, segments_, fd, spilled_at_, file_path_);
    ds->transferInit();
    cond = ds->read(stream, xfer.getXfer(), EGL_noChange, kMaxReadLength);
    ds->transferEnd();
  }
  if (fd >= 0) ::close(fd);
  std::string().swap(mem_);  // DCMTK holds what it read from memory
  if (cond.bad()) return FailCondition(cond, "the data set cannot be read", Code::kInvalidArgument);
  auto impl = std::make_unique<Dataset::Impl>();
  impl->spill.path = std::exchange(file_path_, {});
  impl->ds = std::move(ds);
  impl->transfer_syntax_uid = transfer_syntax_uid;
  return std::make_unique<Dataset>(std::move(impl));
}

}  // namespace pb::dicom
