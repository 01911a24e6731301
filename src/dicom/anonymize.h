#pragma once
// De-identification by the DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile
// (Table E.1-1, edition 2024e), with the Retain UIDs, Retain Device Identity and Retain
// Longitudinal Temporal Information with Modified Dates options. The table is data in
// anonymize_table.cpp; what each action does to which VR is described in anonymize.cpp.
//
// Only the data set is changed: a caller that writes a file must set the meta header's Media
// Storage SOP Instance UID to the data set's new SOP Instance UID. Internal to src/dicom.
#include <string>
#include <string_view>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>

#include "core/result.h"
#include "dicom/anonymize_options.h"

namespace pb::dicom {

// Applies the profile in place to the data set (not the file meta header). Nested sequences are
// processed too (an attribute the profile names is acted on at any depth). Returns an error only
// for an unusable secret (shorter than 16 characters; `field` "secret"), an unusable
// subject_label (it must be at most 64 printable ASCII characters without a backslash, so that
// it is a valid LO and PN in any character set; `field` "subject_label") or a DCMTK failure,
// naming the attribute.
[[nodiscard]] Result<void> Anonymize(DcmDataset& ds, const AnonymizeOptions& options);

// Days to add to every date of one patient when retain_dates is on: derived from
// HMAC-SHA256(secret, "date-shift:" + key), in [-3650, -1] (always into the past, never zero).
// Anonymize uses key = original PatientID + "|" + original PatientName.
int DateShiftDays(std::string_view key, std::string_view secret);

}  // namespace pb::dicom
