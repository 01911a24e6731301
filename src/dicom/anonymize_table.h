#pragma once
// DICOM PS3.15 Table E.1-1 (Application Level Confidentiality Profile Attributes, edition
// 2024e) as data: for each attribute its action in the Basic Profile column and in the columns
// of the three options that Anonymize offers. Internal to src/dicom (anonymize.cpp and its test).
//
// Not in the array, handled in anonymize.cpp by rule: the repeating-group rows (50xx,xxxx)
// Curve Data, (60xx,3000) Overlay Data and (60xx,4000) Overlay Comments, and the row for
// private attributes (odd groups).
#include <cstdint>
#include <span>

namespace pb::dicom {

// The actions spelled as in the standard: X remove, Z zero length, D dummy value, U UID
// replaced, K keep, C clean; the combinations ZD is "Z/D", XZ "X/Z", XD "X/D", XZD "X/Z/D" and
// XZU "X/Z/U*". N: the column is empty for that attribute (the option does not change it).
enum class Action : unsigned char { N, X, Z, D, U, K, C, ZD, XZ, XD, XZD, XZU };

struct ProfileEntry {
  uint16_t group = 0;
  uint16_t element = 0;
  Action basic = Action::X;
  Action retain_uids = Action::N;             // "Rtn. UIDs Opt."
  Action retain_device_identity = Action::N;  // "Rtn. Dev. Id. Opt."
  Action retain_dates = Action::N;            // "Rtn. Long. Modif. Dates Opt."
};

// Sorted by (group, element), each tag once.
std::span<const ProfileEntry> ProfileTable();

// The row for a tag, or nullptr when the table does not name it.
const ProfileEntry* FindProfileEntry(uint16_t group, uint16_t element);

}  // namespace pb::dicom
