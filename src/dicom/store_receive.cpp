#include "dicom/store_receive.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <utility>

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcostrma.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "dicom/condition.h"
#include "dicom/dataset_impl.h"
#include "dicom/header.h"
#include "dicom/network.h"
#include "dicom/pdv_write.h"
#include "dicom/split_dataset.h"

namespace pb::dicom {
namespace {

// Passes a data set through to the file stream and keeps its first bytes, so the header can be
// parsed without reading the file back (the base-from-member idiom: the consumer exists before
// the stream that uses it).
constexpr size_t kHeadBytes = 64 * 1024;

class HeadKeeper : public DcmConsumer {
 public:
  explicit HeadKeeper(DcmOutputStream& target) : target_(target) {}
  OFBool good() const override { return target_.good(); }
  OFCondition status() const override { return target_.status(); }
  OFBool isFlushed() const override { return target_.isFlushed(); }
  offile_off_t avail() const override { return target_.avail(); }
  offile_off_t write(const void* buf, offile_off_t len) override {
    if (head_.size() < kHeadBytes) {
      size_t take = std::min<size_t>(kHeadBytes - head_.size(), static_cast<size_t>(len));
      head_.append(static_cast<const char*>(buf), take);
    }
    offile_off_t written = target_.write(buf, len);
    total_ += written;
    return written;
  }
  void flush() override { target_.flush(); }
  std::string TakeHead() { return std::move(head_); }
  uint64_t total() const { return total_; }

 private:
  DcmOutputStream& target_;
  std::string head_;
  uint64_t total_ = 0;
};

struct HeadKeeperBase {
  explicit HeadKeeperBase(DcmOutputStream& target) : keeper(target) {}
  HeadKeeper keeper;
};

class TeeStream : private HeadKeeperBase, public DcmOutputStream {
 public:
  explicit TeeStream(DcmOutputStream& target) : HeadKeeperBase(target), DcmOutputStream(&keeper) {}
  HeadKeeper& data() { return keeper; }
};

// Hands a data set from the network to a DataSetSplitter (a consumer as DCMTK's receive wants one).
class SplitConsumer : public DcmConsumer {
 public:
  explicit SplitConsumer(DataSetSplitter& splitter) : splitter_(splitter) {}
  OFBool good() const override { return !splitter_.write_failed(); }
  OFCondition status() const override { return good() ? EC_Normal : EC_InvalidStream; }
  OFBool isFlushed() const override { return OFTrue; }
  offile_off_t avail() const override { return good() ? 0x7FFFFFFF : 0; }
  offile_off_t write(const void* buf, offile_off_t len) override {
    return splitter_.Feed(static_cast<const char*>(buf), static_cast<size_t>(len)) ? len : 0;
  }
  void flush() override {}

 private:
  DataSetSplitter& splitter_;
};

struct SplitConsumerBase {
  explicit SplitConsumerBase(DataSetSplitter& splitter) : consumer(splitter) {}
  SplitConsumer consumer;
};

class SplitStream : private SplitConsumerBase, public DcmOutputStream {
 public:
  explicit SplitStream(DataSetSplitter& splitter) : SplitConsumerBase(splitter), DcmOutputStream(&consumer) {}
};

// Writes a data set to an open file, in writes of at least 64 KB (a small data set in one),
// each one checked: the last bytes reach the file before Close() says it went well. Instead of
// stdio, whose fdopen and first write cost two more system calls per instance, and whose last
// buffered bytes would fail only at fclose.
class FdConsumer : public DcmConsumer {
 public:
  explicit FdConsumer(UniqueFd fd) : fd_(std::move(fd)) {}
  FdConsumer(const FdConsumer&) = delete;
  FdConsumer& operator=(const FdConsumer&) = delete;
  ~FdConsumer() override { Close(); }
  OFBool good() const override { return ok_; }
  OFCondition status() const override { return ok_ ? EC_Normal : EC_InvalidStream; }
  OFBool isFlushed() const override { return pending_.empty(); }
  offile_off_t avail() const override { return ok_ ? 0x7FFFFFFF : 0; }
  offile_off_t write(const void* buf, offile_off_t len) override {
    if (!ok_ || len <= 0) return 0;
    const char* p = static_cast<const char*>(buf);
    const auto n = static_cast<size_t>(len);
    if (pending_.empty() && n >= kChunk) return WriteAll(p, n) ? len : 0;
    pending_.append(p, n);
    if (pending_.size() >= kChunk) flush();
    return ok_ ? len : 0;
  }
  void flush() override {
    if (ok_ && !pending_.empty()) WriteAll(pending_.data(), pending_.size());
    pending_.clear();
  }
  // Writes what is left and closes the file: false when any write or the close failed.
  bool Close() {
    flush();
    if (!fd_.Close()) ok_ = false;
    return ok_;
  }

 private:
  static constexpr size_t kChunk = 64 * 1024;
  bool WriteAll(const char* p, size_t n) {
    while (n > 0) {
      const ssize_t w = ::write(fd_.get(), p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return ok_ = false;
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }
  UniqueFd fd_;
  bool ok_ = true;
  std::string pending_;
};

struct FdConsumerBase {
  explicit FdConsumerBase(UniqueFd fd) : consumer(std::move(fd)) {}
  FdConsumer consumer;
};

// DCMTK's output stream onto FdConsumer: owns the descriptor from here on.
class FdStream : private FdConsumerBase, public DcmOutputStream {
 public:
  explicit FdStream(UniqueFd fd) : FdConsumerBase(std::move(fd)), DcmOutputStream(&consumer) {}
  bool Close() { return consumer.Close(); }
};

// Syntaxes whose encoding DataSetSplitter walks: Little Endian, not deflated.
bool Splittable(const std::string& transfer_syntax_uid) {
  DcmXfer xfer(transfer_syntax_uid.c_str());
  return xfer.getXfer() != EXS_Unknown && xfer.getByteOrder() == EBO_LittleEndian &&
         xfer.getStreamCompression() == ESC_none;
}

StoreEnd Answer(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, T_DIMSE_C_StoreRQ& req,
                const StoreAnswer& answer, const StoreContext& ctx, uint16_t& answered);

// What DIMSE_createFilestream writes (the file meta information of PS3.10 7.1, with DCMTK's
// implementation class UID and version name and the association's calling AE title as source),
// into a file opened already (owned by the stream from here on, closed on failure too).
OFCondition CreateFilestream(UniqueFd fd, const T_DIMSE_C_StoreRQ& req, T_ASC_Association* assoc,
                             T_ASC_PresentationContextID pres, std::unique_ptr<FdStream>& out) {
  out = std::make_unique<FdStream>(std::move(fd));
  T_ASC_PresentationContext pc;
  OFCondition cond = ASC_findAcceptedPresentationContext(assoc->params, pres, &pc);
  if (cond.bad()) return cond;
  DcmMetaInfo meta;
  const Uint8 version[2] = {0, 1};
  const char* source = assoc->params->DULparams.callingAPTitle;
  for (const OFCondition& c :
       {meta.putAndInsertUint32(DCM_FileMetaInformationGroupLength, 0),
        meta.putAndInsertUint8Array(DCM_FileMetaInformationVersion, version, 2),
        meta.putAndInsertString(DCM_MediaStorageSOPClassUID, req.AffectedSOPClassUID),
        meta.putAndInsertString(DCM_MediaStorageSOPInstanceUID, req.AffectedSOPInstanceUID),
        meta.putAndInsertString(DCM_TransferSyntaxUID, pc.acceptedTransferSyntax),
        meta.putAndInsertString(DCM_ImplementationClassUID, OFFIS_IMPLEMENTATION_CLASS_UID),
        meta.putAndInsertString(DCM_ImplementationVersionName, OFFIS_DTK_IMPLEMENTATION_VERSION_NAME2),
        meta.putAndInsertString(DCM_SourceApplicationEntityTitle, source ? source : "")}) {
    if (c.bad()) return c;
  }
  cond = meta.computeGroupLengthAndPadding(EGL_withGL, EPD_noChange, META_HEADER_DEFAULT_TRANSFERSYNTAX,
                                           EET_UndefinedLength);
  if (cond.bad()) return cond;
  meta.transferInit();
  cond = meta.write(*out, META_HEADER_DEFAULT_TRANSFERSYNTAX, EET_ExplicitLength, nullptr);
  meta.transferEnd();
  if (cond.good() && !out->good()) cond = out->status();
  return cond;
}

UniqueFd OpenNew(const std::filesystem::path& path) {
  return UniqueFd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
}

IncomingInstance Describe(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, const T_DIMSE_C_StoreRQ& req,
                          const StoreContext& ctx) {
  T_ASC_PresentationContext pc;
  ASC_findAcceptedPresentationContext(assoc->params, pres, &pc);
  IncomingInstance in;
  in.sop_class_uid = req.AffectedSOPClassUID;
  in.sop_instance_uid = req.AffectedSOPInstanceUID;
  in.transfer_syntax_uid = pc.acceptedTransferSyntax;
  in.calling_ae = ctx.calling_ae;
  in.called_ae = ctx.called_ae;
  in.peer_address = ctx.peer;
  if (req.opts & O_STORE_MOVEORIGINATORAETITLE) in.move_originator_ae = req.MoveOriginatorApplicationEntityTitle;
  if (req.opts & O_STORE_MOVEORIGINATORID) in.move_originator_id = req.MoveOriginatorID;
  return in;
}

}  // namespace

StoreAnswer StoreSink::StoreDataset(const IncomingInstance&, Dataset&) {
  return {status::kOutOfResources, "this destination cannot take data sets in memory"};
}

SpareFile::~SpareFile() {
  if (fd_) {
    fd_.Reset();
    RemoveQuietly(path_);
  }
}

void SpareFile::Make(std::filesystem::path path) {
  if (!std::exchange(asked_before_, true) || fd_) return;
  fd_ = OpenNew(path);
  if (fd_) path_ = std::move(path);
}

UniqueFd SpareFile::Take(std::filesystem::path& path) {
  path = std::move(path_);
  path_.clear();
  return std::move(fd_);
}

StoreEnd ReceiveStore(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, T_DIMSE_C_StoreRQ& req,
                      StoreSink& sink, const StoreContext& ctx, uint16_t& answered) {
  if (sink.WantsDataset() && Splittable(Describe(assoc, pres, req, ctx).transfer_syntax_uid)) {
    // The attributes are received into memory, where they are changed: nothing that identifies
    // reaches the disk as sent. Bulk values beyond the memory budget (pixel data) go to a
    // spill file on the way, and are copied from there when the changed data set is written.
    IncomingInstance in = Describe(assoc, pres, req, ctx);
    DataSetSplitter::Options options;
    options.explicit_vr = DcmXfer(in.transfer_syntax_uid.c_str()).isExplicitVR();
    DataSetSplitter splitter(options, [&] { return sink.NewTempPath(); });
    std::optional<SplitStream> stream(std::in_place, splitter);
    OFCondition cond = DIMSE_receiveDataSetInFile(assoc, DIMSE_BLOCKING, 0, &pres, &*stream, nullptr, nullptr);
    stream.reset();
    if (cond.bad() && cond != DIMSE_OUTOFRESOURCES) {
      spdlog::warn("{}: data set from {}@{} not received completely: {}", ctx.log_name, ctx.calling_ae, ctx.peer,
                   ConditionText(cond));
      ASC_abortAssociation(assoc);
      return StoreEnd::kAssociationLost;
    }
    StoreAnswer answer;
    Result<std::unique_ptr<Dataset>> data = Fail(Code::kUnavailable, "the spill file could not be written");
    if (!splitter.write_failed()) data = splitter.Finish(in.transfer_syntax_uid);
    if (splitter.write_failed()) {  // while it came, or at the spill file's last flush
      spdlog::error("{}: cannot write the pixel data of a data set from {}@{} to the data directory (disk full?)",
                    ctx.log_name, ctx.calling_ae, ctx.peer);
      answer = {status::kOutOfResources, "cannot write the data set to disk (disk full?)"};
    } else if (!data) {
      spdlog::warn("{}: refused a data set from {}@{}: {}", ctx.log_name, ctx.calling_ae, ctx.peer,
                   data.error().message);
      answer = {status::kCannotUnderstand, data.error().message};
    } else {
      answer = sink.StoreDataset(in, **data);
    }
    if (data) data->reset();  // the spill file goes with the data set
    return Answer(assoc, pres, req, answer, ctx, answered);
  }
  if (sink.WantsDataset()) {
    // Received into memory (syntaxes the split does not walk: deflate, big endian): nothing of
    // the data set as sent reaches the disk.
    DcmDataset* received = nullptr;
    OFCondition cond = DIMSE_receiveDataSetInMemory(assoc, DIMSE_BLOCKING, 0, &pres, &received, nullptr, nullptr);
    std::unique_ptr<DcmDataset> owned(received);
    if (cond.bad() || !owned) {
      spdlog::warn("{}: data set from {}@{} not received completely: {}", ctx.log_name, ctx.calling_ae, ctx.peer,
                   ConditionText(cond));
      ASC_abortAssociation(assoc);
      return StoreEnd::kAssociationLost;
    }
    IncomingInstance in = Describe(assoc, pres, req, ctx);
    auto impl = std::make_unique<Dataset::Impl>();
    impl->ds = std::move(owned);
    impl->transfer_syntax_uid = in.transfer_syntax_uid;
    Dataset data(std::move(impl));
    StoreAnswer answer = sink.StoreDataset(in, data);
    return Answer(assoc, pres, req, answer, ctx, answered);
  }
  std::filesystem::path temp;
  UniqueFd fd = ctx.spare ? ctx.spare->Take(temp) : UniqueFd();
  std::string create_error;
  if (!fd) {
    temp = sink.NewTempPath();
    fd = OpenNew(temp);
    if (!fd) create_error = std::strerror(errno);
  }
  std::unique_ptr<FdStream> stream;
  OFCondition cond = EC_InvalidStream;
  if (fd) {
    cond = CreateFilestream(std::move(fd), req, assoc, pres, stream);
    if (cond.bad()) {
      create_error = ConditionText(cond);
      stream.reset();
      RemoveQuietly(temp);
    }
  }
  // After the answer, while the peer sends its next data set.
  auto make_spare = [&] {
    if (ctx.spare) ctx.spare->Make(sink.NewTempPath());
  };
  StoreAnswer answer;
  if (cond.bad()) {
    spdlog::error("{}: cannot create {}: {}", ctx.log_name, temp.string(), create_error);
    DIC_UL bytes = 0, pdvs = 0;
    cond = DIMSE_ignoreDataSet(assoc, DIMSE_BLOCKING, 0, &bytes, &pdvs);
    answer = {status::kOutOfResources, "cannot create a file in the data directory"};
  } else {
    const offile_off_t meta_size = stream->tell();
    std::optional<TeeStream> tee(std::in_place, *stream);
    cond = DIMSE_receiveDataSetInFile(assoc, DIMSE_BLOCKING, 0, &pres, &*tee, nullptr, nullptr);
    bool write_ok = stream->good() && cond != DIMSE_OUTOFRESOURCES;
    if (cond == DIMSE_OUTOFRESOURCES) cond = EC_Normal;  // DCMTK read the rest of the data set
    tee->flush();
    const uint64_t received = tee->data().total();
    std::string head = tee->data().TakeHead();
    tee.reset();
    // The last bytes are written here, and a write that fails (a full disk) says so.
    if (!stream->Close()) write_ok = false;
    stream.reset();
    if (!write_ok && cond.good()) {
      spdlog::error("{}: cannot write a data set from {}@{} to {} (disk full?)", ctx.log_name, ctx.calling_ae, ctx.peer,
                    temp.parent_path().string());
    }
    if (cond.bad() || !write_ok) {
      RemoveQuietly(temp);
      if (cond.bad()) {
        spdlog::warn("{}: data set from {}@{} not received completely: {}", ctx.log_name, ctx.calling_ae, ctx.peer,
                     ConditionText(cond));
        ASC_abortAssociation(assoc);
        return StoreEnd::kAssociationLost;
      }
      answer = {status::kOutOfResources, "cannot write the data set to disk (disk full?)"};
    } else {
      IncomingInstance in = Describe(assoc, pres, req, ctx);
      in.temp_file = temp;
      in.file_size = static_cast<int64_t>(meta_size) + static_cast<int64_t>(received);
      if (auto h = ReadHeaderFromBuffer(head, received <= kHeadBytes, in.transfer_syntax_uid)) {
        in.header = std::move(*h);
      }
      std::unique_ptr<StoreSink::PendingStore> pending;
      if (in.header && in.header->sop_uid == in.sop_instance_uid) pending = sink.AnswerBeforeStore(in);
      if (pending) {
        StoreAnswer early{status::kSuccess, {}};
        StoreEnd end = Answer(assoc, pres, req, early, ctx, answered);
        in.answered = true;
        answer = sink.Store(in);  // the temp file is the sink's whatever the answer's fate
        pending->Finished(answer.status == status::kSuccess);
        pending.reset();
        answered = answer.status;
        if (answer.status != status::kSuccess && end == StoreEnd::kAnswered) {
          spdlog::warn(
              "{}: an instance from {}@{} was answered Success before it was stored, and "
              "could not be stored: the retrieve that asked for it counts it missing",
              ctx.log_name, ctx.calling_ae, ctx.peer);
        }
        if (end == StoreEnd::kAnswered) make_spare();
        return end;
      }
      answer = sink.Store(in);
    }
  }
  if (cond.bad()) {
    ASC_abortAssociation(assoc);
    return StoreEnd::kAssociationLost;
  }
  StoreEnd end = Answer(assoc, pres, req, answer, ctx, answered);
  if (end == StoreEnd::kAnswered && answer.status == status::kSuccess) make_spare();
  return end;
}

namespace {

StoreEnd Answer(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, T_DIMSE_C_StoreRQ& req,
                const StoreAnswer& answer, const StoreContext& ctx, uint16_t& answered) {
  answered = answer.status;
  std::unique_ptr<DcmDataset> detail;
  if (answer.status != status::kSuccess && !answer.error_comment.empty()) {
    detail = std::make_unique<DcmDataset>();
    detail->putAndInsertString(DCM_ErrorComment, answer.error_comment.substr(0, 64).c_str());
  }
  // The C-STORE-RSP (PS3.7 9.3.1.2), as DIMSE_sendStoreResponse builds it, written in one PDU.
  DcmDataset cmd;
  OFCondition cond = cmd.putAndInsertString(DCM_AffectedSOPClassUID, req.AffectedSOPClassUID);
  if (cond.good()) cond = cmd.putAndInsertUint16(DCM_CommandField, DIMSE_C_STORE_RSP);
  if (cond.good()) cond = cmd.putAndInsertUint16(DCM_MessageIDBeingRespondedTo, req.MessageID);
  if (cond.good()) cond = cmd.putAndInsertUint16(DCM_CommandDataSetType, DIMSE_DATASET_NULL);
  if (cond.good()) cond = cmd.putAndInsertUint16(DCM_Status, answer.status);
  if (cond.good()) cond = cmd.putAndInsertString(DCM_AffectedSOPInstanceUID, req.AffectedSOPInstanceUID);
  if (cond.good() && detail) {
    DcmElement* e = nullptr;
    while (cond.good() && (e = detail->remove(0UL)) != nullptr) cond = cmd.insert(e, OFTrue);
  }
  if (cond.good()) cond = WriteCommand(assoc, pres, cmd);
  if (cond.bad()) {
    spdlog::warn("{}: cannot answer {}@{}: {}", ctx.log_name, ctx.calling_ae, ctx.peer, ConditionText(cond));
    ASC_abortAssociation(assoc);
    return StoreEnd::kAssociationLost;
  }
  return StoreEnd::kAnswered;
}

}  // namespace

}  // namespace pb::dicom
