#include "dicom/store_receive.h"

#include <filesystem>
#include <memory>
#include <optional>

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcostrmf.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "dicom/dataset_impl.h"
#include "dicom/header.h"
#include "dicom/network.h"

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

void RemoveQuietly(const std::filesystem::path& p) {
  std::error_code ec;
  std::filesystem::remove(p, ec);
}

StoreEnd Answer(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, T_DIMSE_C_StoreRQ& req,
                T_DIMSE_C_StoreRSP& rsp, const StoreAnswer& answer, const StoreContext& ctx,
                uint16_t& answered);

IncomingInstance Describe(T_ASC_Association* assoc, T_ASC_PresentationContextID pres,
                          const T_DIMSE_C_StoreRQ& req, const StoreContext& ctx) {
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

StoreEnd ReceiveStore(T_ASC_Association* assoc, T_ASC_PresentationContextID pres,
                      T_DIMSE_C_StoreRQ& req, StoreSink& sink, const StoreContext& ctx,
                      uint16_t& answered) {
  T_DIMSE_C_StoreRSP rsp{};
  rsp.MessageIDBeingRespondedTo = req.MessageID;
  rsp.DataSetType = DIMSE_DATASET_NULL;
  OFStandard::strlcpy(rsp.AffectedSOPClassUID, req.AffectedSOPClassUID, sizeof rsp.AffectedSOPClassUID);
  OFStandard::strlcpy(rsp.AffectedSOPInstanceUID, req.AffectedSOPInstanceUID, sizeof rsp.AffectedSOPInstanceUID);
  rsp.opts = O_STORE_AFFECTEDSOPCLASSUID | O_STORE_AFFECTEDSOPINSTANCEUID;

  if (sink.WantsDataset()) {
    // Received into memory: nothing of the data set as sent reaches the disk.
    DcmDataset* received = nullptr;
    OFCondition cond = DIMSE_receiveDataSetInMemory(assoc, DIMSE_BLOCKING, 0, &pres, &received, nullptr, nullptr);
    std::unique_ptr<DcmDataset> owned(received);
    if (cond.bad() || !owned) {
      spdlog::warn("{}: data set from {}@{} not received completely: {}", ctx.log_name,
                   ctx.calling_ae, ctx.peer, cond.text());
      ASC_abortAssociation(assoc);
      return StoreEnd::kAssociationLost;
    }
    IncomingInstance in = Describe(assoc, pres, req, ctx);
    auto impl = std::make_unique<Dataset::Impl>();
    impl->ds = std::move(owned);
    impl->transfer_syntax_uid = in.transfer_syntax_uid;
    Dataset data(std::move(impl));
    StoreAnswer answer = sink.StoreDataset(in, data);
    return Answer(assoc, pres, req, rsp, answer, ctx, answered);
  }
  std::filesystem::path temp = sink.NewTempPath();
  DcmOutputFileStream* created = nullptr;
  OFCondition cond = DIMSE_createFilestream(temp.c_str(), &req, assoc, pres, OFTrue, &created);
  std::unique_ptr<DcmOutputFileStream> stream(created);
  StoreAnswer answer;
  if (cond.bad()) {
    spdlog::error("{}: cannot create {}: {}", ctx.log_name, temp.string(), cond.text());
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
    stream.reset();  // closes the file: buffered bytes may still fail to reach the disk here
    std::error_code size_ec;
    if (write_ok && cond.good() &&
        std::filesystem::file_size(temp, size_ec) != static_cast<uintmax_t>(meta_size) + received) {
      write_ok = false;
    }
    if (!write_ok && cond.good()) {
      spdlog::error("{}: cannot write a data set from {}@{} to {} (disk full?)", ctx.log_name,
                    ctx.calling_ae, ctx.peer, temp.parent_path().string());
    }
    if (cond.bad() || !write_ok) {
      RemoveQuietly(temp);
      if (cond.bad()) {
        spdlog::warn("{}: data set from {}@{} not received completely: {}", ctx.log_name,
                     ctx.calling_ae, ctx.peer, cond.text());
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
      answer = sink.Store(in);
    }
  }
  if (cond.bad()) {
    ASC_abortAssociation(assoc);
    return StoreEnd::kAssociationLost;
  }
  return Answer(assoc, pres, req, rsp, answer, ctx, answered);
}

namespace {

StoreEnd Answer(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, T_DIMSE_C_StoreRQ& req,
                T_DIMSE_C_StoreRSP& rsp, const StoreAnswer& answer, const StoreContext& ctx,
                uint16_t& answered) {
  rsp.DimseStatus = answer.status;
  answered = answer.status;
  std::unique_ptr<DcmDataset> detail;
  if (answer.status != status::kSuccess && !answer.error_comment.empty()) {
    detail = std::make_unique<DcmDataset>();
    detail->putAndInsertString(DCM_ErrorComment, answer.error_comment.substr(0, 64).c_str());
  }
  OFCondition cond = DIMSE_sendStoreResponse(assoc, pres, &req, &rsp, detail.get());
  if (cond.bad()) {
    spdlog::warn("{}: cannot answer {}@{}: {}", ctx.log_name, ctx.calling_ae, ctx.peer, cond.text());
    ASC_abortAssociation(assoc);
    return StoreEnd::kAssociationLost;
  }
  return StoreEnd::kAnswered;
}

}  // namespace

}  // namespace pb::dicom
