#pragma once
// What a WADO-RS client accepts (PS3.18 8.7.3): the transfer syntaxes named in its Accept
// header for multipart/related; type="application/dicom". Tolerant as clients need it: several
// media ranges, repeated transfer-syntax parameters, quoted values, any case in names.
#include <string>
#include <vector>

#include "core/result.h"

namespace pb::dicomweb {

constexpr const char* kExplicitVrLittleEndian = "1.2.840.10008.1.2.1";

// The transfer syntaxes acceptable, in the client's order ("*": any, as stored). No Accept,
// "*/*", or DICOM without a transfer-syntax: Explicit VR Little Endian, PS3.18's default.
// kUnsupported when the header names only media types other than DICOM instances.
[[nodiscard]] Result<std::vector<std::string>> AcceptedSyntaxes(const std::string& accept);

// One acceptable kind of part for answers that are not DICOM instances (frames, bulk data):
// its media type ("application/octet-stream", "image/jls", ...; "*" for any) and the transfer
// syntaxes named with it (none: the type's default). `multipart`: asked for as parts of
// multipart/related; false for a bare media type (a single-part answer).
struct PartRange {
  std::string type;
  std::vector<std::string> syntaxes;
  bool multipart = true;
};

// The part kinds acceptable, in the client's order. No Accept, "*/*" or multipart/related
// without a type: {"*"}. kUnsupported when the header names only DICOM instances or JSON.
[[nodiscard]] Result<std::vector<PartRange>> AcceptedParts(const std::string& accept);

}  // namespace pb::dicomweb
