#pragma once
// What the C-FIND SCUs (find.cpp, worklist.cpp) share. Internal to src/dicom.
#include <cstddef>
#include <functional>
#include <string>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dctagkey.h>

#include "core/result.h"
#include "dicom/peer.h"

namespace pb::dicom {

// One C-FIND of `query` on the information model `model`, over its own association: each
// answer goes to `take` (on this thread) until `max_results`, then the rest is canceled
// (C-CANCEL). True when it was. Errors as Find's (find.h).
[[nodiscard]] Result<bool> RunFind(const PeerRequest& peer, const char* model, DcmDataset& query, size_t max_results,
                                   const std::function<void(DcmDataset&)>& take);

// "PatientName", "(0010,0010)" or "0010,0010" → tag; the keyword of a tag ("(gggg,eeee)"
// when the dictionary has none).
bool ParseKeyword(const std::string& key, DcmTagKey& out);
std::string KeywordOf(const DcmTagKey& key);

}  // namespace pb::dicom
