#pragma once
// The choices of de-identification (PS3.15 Annex E) and the UID mapping, without DCMTK types,
// for the modules that decide them (receivers). The profile itself is in anonymize.h.
#include <string>
#include <string_view>

namespace pb::dicom {

struct AnonymizeOptions {
  bool retain_dates = false;            // Retain Longitudinal Temporal Information with Modified Dates Option
  bool retain_device_identity = false;  // Retain Device Identity Option
  bool retain_uids = false;             // Retain UIDs Option
  bool keep_private_tags = false;       // default: all private tags removed, creators included
  std::string secret;                   // site secret (random bytes/hex, >= 16 chars); required
  std::string subject_label;            // replaces PatientName and PatientID; empty -> "ANONYMOUS"
};

// The replacement of a UID: "2.25." + decimal of the first 128 bits of HMAC-SHA256(secret, uid)
// (at most 44 characters, a valid UID, deterministic; a different secret gives a different
// result). Trailing NUL and space padding of `uid` is ignored.
std::string MapUid(std::string_view uid, std::string_view secret);

}  // namespace pb::dicom
