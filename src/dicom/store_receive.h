#pragma once
// Receiving one C-STORE request's data set, shared by our receivers (C-STORE SCP) and the C-GET
// SCU (whose sub-operations are C-STOREs on the association we opened): the data set streams
// from the socket into a temp file from the sink, bit-preserving; the header is parsed from the
// first bytes kept in memory on the way; the sink decides the answer, which is then sent.
// Internal to src/dicom (DCMTK types).
#include <string>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>

#include "dicom/server.h"

namespace pb::dicom {

struct StoreContext {
  std::string log_name;  // "receiver X" or "C-GET from Y": the subject of log lines
  std::string calling_ae, called_ae, peer;
};

enum class StoreEnd { kAnswered, kAssociationLost };

// Receives the data set of `req`, hands it to `sink` and answers with its status. `answered`
// receives the status sent. kAssociationLost: the association was aborted (by the peer or by
// us after a broken data set) and must not be used any more.
StoreEnd ReceiveStore(T_ASC_Association* assoc, T_ASC_PresentationContextID pres,
                      T_DIMSE_C_StoreRQ& req, StoreSink& sink, const StoreContext& ctx,
                      uint16_t& answered);

}  // namespace pb::dicom
