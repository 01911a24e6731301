#pragma once
// One C-STORE on an association that is already open (ours for a send or a C-MOVE, the
// caller's for a C-GET). Internal to src/dicom.
#include <cstdint>
#include <string>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>

#include "dicom/store_scu.h"

namespace pb::dicom {

struct StoreOptions {
  std::string preferred_transfer_syntax;  // UID; empty: none
  bool allow_lossy = false;
  std::string move_originator_ae;  // set: a C-MOVE sub-operation
  uint16_t move_originator_id = 0;
  // A C-GET's sub-operation on the caller's association: only contexts the caller accepted to
  // receive on (SCP role), and a C-CANCEL that comes while the C-STORE-RSP is awaited is
  // noted here instead of breaking the association.
  bool on_callers_association = false;
  T_DIMSE_DetectedCancelParameters* cancel = nullptr;
};

// The item on the accepted context of its own syntax (streamed from its file), else converted
// to what the peer accepts, else failed alone with the reason. `broke` is set (the outcome then
// not confirmed) when the association failed: nothing more can be sent on it.
SendOutcome StoreOne(T_ASC_Association* assoc, const SendItem& item, const StoreOptions& options, std::string& broke);

}  // namespace pb::dicom
