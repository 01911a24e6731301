#pragma once
// The identifying attributes of a data set read by walking its encoded elements, without
// building DCMTK's element objects: the receive path's header parse, ~20x cheaper than
// DCMTK's (which builds, looks up in the dictionary and normalizes every element before the
// pixel data, and took up to half of a receiving thread's time for small instances).
//
// It answers only where it can vouch for giving exactly what the DCMTK parse (ReadHeader and
// friends in header.h) gives: Little Endian (implicit or explicit VR) data sets whose wanted
// values are clean (no leading or embedded padding, no NUL, no escape), in the default
// character repertoire, UTF-8, or a single-byte ISO 8859 set with 7-bit values. Anything else
// (big endian, an unexpected VR, an undefined-length UN, elements out of order, values DCMTK
// would normalize, a structure that does not add up, bytes ending before the pixel data)
// gives nullopt, and the caller parses with DCMTK. It never reads outside `bytes`, never
// throws and allocates only the record's strings.
#include <cstddef>
#include <optional>
#include <string_view>

#include "dicom/instance_record.h"

namespace pb::dicom {

// `bytes`: the start of a data set (no meta header) in `transfer_syntax_uid`; `complete`: the
// bytes are the whole data set. The record's transfer_syntax_uid is the one given.
std::optional<InstanceRecord> ScanHeader(std::string_view bytes, bool complete, std::string_view transfer_syntax_uid);

// A DICOM file's meta header (128-byte preamble, "DICM", group 0002 in explicit VR Little
// Endian): where its data set begins and the transfer syntax it is in. nullopt when `bytes`
// do not reach 2 bytes past the meta header (the next tag's group tells it has ended), or it
// is anything DCMTK might read otherwise (elements out
// of order, a group length that disagrees, no or an unclean transfer syntax UID).
struct MetaHeader {
  size_t data_set_offset = 0;
  std::string_view transfer_syntax_uid;  // within the bytes given
};
std::optional<MetaHeader> ScanMetaHeader(std::string_view bytes);

// The same from the start of a DICOM file: 128-byte preamble, "DICM", meta header, data set.
// The record's transfer_syntax_uid is the meta header's.
std::optional<InstanceRecord> ScanFileHeader(std::string_view bytes, bool complete);

}  // namespace pb::dicom
