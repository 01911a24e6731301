#pragma once
// The association side of C-FIND SCP, for dicom/server. Internal to src/dicom.
#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>

#include "dicom/query_scp.h"
#include "dicom/retrieve_scp.h"

namespace pb::dicom {

// A C-FIND, C-GET or C-MOVE identifier, read in its declared character set.
struct IdentifierKey {
  DcmTagKey tag;
  std::string keyword;  // "(gggg,eeee)" for one the dictionary does not name
  bool sequence = false;
};
struct Identifier {
  std::string level;                                      // QueryRetrieveLevel
  std::string declared;                                   // its Specific Character Set ("" none)
  std::vector<std::pair<std::string, std::string>> keys;  // keyword → UTF-8 value, in order
  std::vector<IdentifierKey> elements;                    // the same, as elements
};

// The identifier that follows a C-FIND, C-GET or C-MOVE command, on the command's context.
OFCondition ReceiveIdentifier(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, int timeout_seconds,
                              std::unique_ptr<DcmDataset>& identifier);

// False with the status to answer (0xA900, 0xC000) and why: no identifier, a character set
// that cannot be read, a level that is not one of the model's, a malformed date, time or UID.
bool ReadIdentifier(DcmDataset* identifier, bool patient_root, Identifier& out, uint16_t& status, std::string& comment);

// Maps a sink's error to a failure status: kInvalidArgument 0xA900, an unreachable resource
// 0xA700 (or `out_of_resources`), anything else 0xC000.
uint16_t FailureStatus(const Error& e, uint16_t out_of_resources = 0xA700);

struct FindContext {
  std::string name;  // "receiver X", for log lines
  std::string calling_ae, called_ae, peer;
  int dimse_timeout_seconds = 60;
  const std::atomic<bool>* stopping = nullptr;  // the server is stopping: retrieves end as canceled
};

// Receives the identifier, answers every match (pending), then the final status; honors a
// C-CANCEL between answers. Failures of the query are answered, not returned: the condition
// is the association's.
OFCondition AnswerFind(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, T_DIMSE_C_FindRQ& request,
                       QuerySink& sink, const FindContext& ctx);

// Receives the identifier, sends every instance it selects on the caller's association (the
// storage contexts it proposed in the SCP role), a pending response after each, then the final
// one; honors a C-CANCEL between sub-operations.
OFCondition AnswerGet(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, T_DIMSE_C_GetRQ& request,
                      RetrieveSink& sink, const FindContext& ctx);
// The same to the Move Destination, over one association we open to it; each sub-operation
// names the caller as Move Originator.
OFCondition AnswerMove(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, T_DIMSE_C_MoveRQ& request,
                       RetrieveSink& sink, const FindContext& ctx);

}  // namespace pb::dicom
