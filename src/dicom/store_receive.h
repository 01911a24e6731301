#pragma once
// Receiving one C-STORE request's data set, shared by our receivers (C-STORE SCP) and the C-GET
// SCU (whose sub-operations are C-STOREs on the association we opened): the data set streams
// from the socket into a temp file from the sink, bit-preserving; the header is parsed from the
// first bytes kept in memory on the way; the sink decides the answer, which is then sent, or,
// where its AnswerBeforeStore says so (a retrieve job's own instances), sends Success first and
// stores while the peer goes on to its next sub-operation.
// Internal to src/dicom (DCMTK types).
#include <cstdio>
#include <filesystem>
#include <string>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>

#include "core/files.h"
#include "dicom/server.h"

namespace pb::dicom {

struct StoreContext {
  std::string log_name;  // "receiver X" or "C-GET from Y": the subject of log lines
  std::string calling_ae, called_ae, peer;
  // Where the next data set's temp file is made ahead, after each answer (a file system
  // allocates its inode while the peer sends the next instance); null: made when it comes.
  class SpareFile* spare = nullptr;
};

// A temp file made ahead for the next data set of one association, removed with it if unused.
// Made with O_EXCL and written through the open descriptor: reopening an existing file with
// O_TRUNC (as DCMTK's fopen("wb") would) makes ext4 start its write-back at close.
class SpareFile {
 public:
  SpareFile() = default;
  SpareFile(const SpareFile&) = delete;
  SpareFile& operator=(const SpareFile&) = delete;
  ~SpareFile();
  // Quietly nothing when it cannot be made, and the first time: an association that has carried
  // one data set often carries no more (a modality's single image), and the file would only be
  // made and removed again.
  void Make(std::filesystem::path path);
  // The descriptor of the file made ahead and its path, handed over (none when there is none).
  UniqueFd Take(std::filesystem::path& path);

 private:
  UniqueFd fd_;
  std::filesystem::path path_;
  bool asked_before_ = false;
};

enum class StoreEnd { kAnswered, kAssociationLost };

// Receives the data set of `req`, hands it to `sink` and answers with its status. `answered`
// receives the status sent. kAssociationLost: the association was aborted (by the peer or by
// us after a broken data set) and must not be used any more.
StoreEnd ReceiveStore(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, T_DIMSE_C_StoreRQ& req,
                      StoreSink& sink, const StoreContext& ctx, uint16_t& answered);

}  // namespace pb::dicom
