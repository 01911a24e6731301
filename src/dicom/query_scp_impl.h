#pragma once
// The association side of C-FIND SCP, for dicom/server. Internal to src/dicom.
#include <string>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>

#include "dicom/query_scp.h"

namespace pb::dicom {

struct FindContext {
  std::string name;  // "receiver X", for log lines
  std::string calling_ae, called_ae, peer;
  int dimse_timeout_seconds = 60;
};

// Receives the identifier, answers every match (pending), then the final status; honors a
// C-CANCEL between answers. Failures of the query are answered, not returned: the condition
// is the association's.
OFCondition AnswerFind(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, T_DIMSE_C_FindRQ& request,
                       QuerySink& sink, const FindContext& ctx);

}  // namespace pb::dicom
