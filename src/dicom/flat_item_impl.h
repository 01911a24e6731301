#pragma once
// FlatItem ↔ DCMTK items, and the DICOM JSON model. Internal to src/dicom.
#include <string>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcitem.h>

#include "core/result.h"
#include "dicom/flat_item.h"

namespace pb::dicom {

// The item's attributes (Specific Character Set left out: the values are as the item holds
// them, UTF-8 once ToUtf8 ran).
FlatItem Flatten(DcmItem& item);

// Puts `flat` into `item` (attributes by keyword or "(gggg,eeee)"; values as DICOM strings).
// kInvalidArgument naming `field_prefix` + the keyword when one is unknown or cannot take its value.
[[nodiscard]] Result<void> Unflatten(const FlatItem& flat, DcmItem& item, const std::string& field_prefix);

// The item in the DICOM JSON model (PS3.18 F.2), one object; empty when DCMTK cannot write it.
std::string DicomJson(DcmItem& item);

}  // namespace pb::dicom
