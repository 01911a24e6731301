#pragma once
// Modality Worklist SCU: a C-FIND on the Modality Worklist information model (PS3.4 K.6). The
// caller names matching keys by DICOM keyword; those of the Scheduled Procedure Step go into
// the ScheduledProcedureStepSequence item, the others at the top level, and the return keys the
// IHE Scheduled Workflow profile expects of a worklist are always asked for. Answers come back
// in UTF-8 (from the character set they declare, or the one assumed for those that declare
// none) and flattened: keyword → text, sequences as lists of items. Thread-safe; each call
// opens its own association.
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"
#include "dicom/flat_item.h"
#include "dicom/peer.h"

namespace pb::dicom {

struct WorklistRequest {
  PeerRequest peer;
  std::vector<std::pair<std::string, std::string>> keys;  // keyword or (gggg,eeee) → value
  // The Specific Character Set the query is written in, and assumed for answers that declare
  // none ("ISO_IR 100", "ISO 2022 IR 87", ...). Empty: the query in UTF-8, answers without a
  // declared set read as ASCII. ISO 2022 sets take ASCII matching values only.
  std::string charset;
  size_t max_results = 1000;
};

struct WorklistAnswer {
  FlatItem item;
  std::string dicom_json;  // the answer in the DICOM JSON model (PS3.18 F.2), UTF-8
};

struct WorklistResult {
  std::vector<WorklistAnswer> answers;
  bool truncated = false;  // max_results reached: the rest was canceled (C-CANCEL)
};

// Errors: kInvalidArgument naming the field ("query.X", "mwl_charset"); kUnavailable, kTimeout
// or kPermissionDenied with the connection diagnosis; kInternal for a refused C-FIND.
[[nodiscard]] Result<WorklistResult> FindWorklist(const WorklistRequest& request);

// Whether `keyword` is an attribute of the Scheduled Procedure Step Sequence's items.
bool IsScheduledStepKey(const std::string& keyword);

// Whether `value` is a Specific Character Set this side reads and writes ("ISO_IR 100",
// "ISO 2022 IR 6\\ISO 2022 IR 87", "\\ISO 2022 IR 87", ...; PS3.3 C.12.1.1.2).
bool IsKnownCharacterSet(const std::string& value);

}  // namespace pb::dicom
