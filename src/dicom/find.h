#pragma once
// C-FIND SCU at PATIENT, STUDY, SERIES and IMAGE level (Study Root, or Patient Root where the
// node needs it). Matching keys by DICOM keyword or "(gggg,eeee)"; each level has sensible
// return keys and takes extra ones. Answers are converted to UTF-8 from whatever character set
// the peer answers in. Thread-safe; each call opens its own association.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"
#include "dicom/peer.h"

namespace pb::dicom {

struct FindRequest {
  PeerRequest peer;
  std::string level;  // PATIENT, STUDY, SERIES, IMAGE (case-insensitive)
  bool patient_root = false;
  std::vector<std::pair<std::string, std::string>> keys;  // keyword or (gggg,eeee) → value
  std::string charset = "ISO_IR 192";                     // Specific Character Set of the query; "none": send none
  size_t max_results = 1000;
  bool default_keys = true;  // false: only `keys` are asked for (each computed key costs the peer)
};

struct FindResult {
  std::vector<std::map<std::string, std::string>> rows;  // keyword → UTF-8 value
  bool truncated = false;                                // max_results reached: the rest was canceled (C-CANCEL)
};

// Errors: kInvalidArgument naming the field ("level", "query.Foo"; a malformed date, time or
// UID is refused before connecting, see matching.h), kUnavailable/kTimeout with
// the connection diagnosis, kInternal for a failed C-FIND status.
[[nodiscard]] Result<FindResult> Find(const FindRequest& request);

// Whether `name` is a keyword of the DICOM dictionary ("StudyDate"; case matters).
bool IsKeyword(const std::string& name);

// A matching or return key as the dictionary knows it, for transports that speak DICOM
// attributes another way (QIDO-RS): the tag, the keyword answers use ("(gggg,eeee)" when the
// dictionary has none) and the VR ("UN" when unknown).
struct KeyInfo {
  uint32_t tag = 0;
  std::string keyword, vr;
};
// "PatientName", "(0010,0010)" or "0010,0010"; nullopt when it is neither.
std::optional<KeyInfo> LookupKey(const std::string& key);
KeyInfo LookupTag(uint32_t tag);
// The return keys every find asks for at a level (PATIENT, STUDY, SERIES, IMAGE; upper case).
std::vector<uint32_t> DefaultReturnKeys(const std::string& level);

}  // namespace pb::dicom
