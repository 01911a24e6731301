#pragma once
// Modality Performed Procedure Step (PS3.4 Annex F), both sides. The SCU sends N-CREATE and
// N-SET over an association of its own; the SCP side (receivers) hands each request to an
// MppsSink (server.h) and answers with the status it decides. Statuses are named by their
// meaning in PS3.7 Annex C and PS3.4 F.7.2. Thread-safe.
#include <cstdint>
#include <string>

#include "core/result.h"
#include "dicom/flat_item.h"
#include "dicom/peer.h"

namespace pb::dicom {

inline constexpr const char* kMppsSopClass = "1.2.840.10008.3.1.2.3.3";

struct NAnswer {
  uint16_t status = 0;        // DIMSE status of the response
  std::string error_comment;  // (0000,0902), as the peer wrote it
  uint16_t error_id = 0;      // (0000,0903), 0 when absent
  bool ok() const { return status == 0x0000 || (status & 0xF000) == 0xB000 || status == 0x0107 || status == 0x0116; }
};

// One N-CREATE (create) or N-SET of the MPPS instance `sop_instance_uid` with `attributes`,
// written in `charset` ("" or "ISO_IR 192": UTF-8; a single-byte set: converted to it). The
// answer whatever its status; an error when the peer could not be asked (kUnavailable,
// kTimeout, kPermissionDenied, kUnsupported when it does not offer MPPS) or the attributes are
// wrong (kInvalidArgument naming "attributes.<Keyword>").
[[nodiscard]] Result<NAnswer> SendMpps(const PeerRequest& peer, bool create, const std::string& sop_instance_uid,
                                       const FlatItem& attributes, const std::string& charset);

// "Processing failure", "Duplicate SOP Instance", ... (empty for statuses with no name).
std::string NStatusMeaning(uint16_t status);
// "0x0110 (Processing failure: Performed Procedure Step Object may no longer be updated)".
std::string DescribeNAnswer(const NAnswer& a);

// A new UID (PS3.5 B.2: 2.25 and a random UUID), for SOP instances we create.
std::string NewUid();

// Whether a SOP class holds images (its instances go to a Performed Series' Referenced Image
// Sequence; others to its Referenced Non-Image Composite SOP Instance Sequence).
bool IsImageSopClass(const std::string& sop_class_uid);

// `item` in the DICOM JSON model (PS3.18 F.2), UTF-8; kInvalidArgument naming
// `field_prefix` + the keyword that is not an attribute or cannot take its value.
[[nodiscard]] Result<std::string> ToDicomJson(const FlatItem& item, const std::string& field_prefix);

}  // namespace pb::dicom
