#pragma once
// Process-wide DCMTK setup. Call once from main() before any thread starts.
#include <string>

namespace pb::dicom {

// Disables Nagle's algorithm for every DCMTK connection of this process (whatever the
// environment says), turns off reverse DNS lookups of peers, and sets DCMTK's log level
// ("debug"/"trace" pass DCMTK's own messages through; otherwise only its errors). DCMTK's messages
// are forwarded to the spdlog logger named "dcmtk" (to stderr when there is none):
// fatal as error, error and warning as warning, info as debug, debug as trace.
void InitializeDicomNetwork(const std::string& log_level);

// Reads DCMTK's data dictionary now rather than at the first data set a job or an association
// builds (~10 ms, which the first transfer after a start would otherwise pay). False when no
// dictionary could be loaded: keywords and VRs would then be unknown.
bool LoadDataDictionary();

// The DICOM status codes we answer with (PS3.7 Annex C).
namespace status {
constexpr unsigned short kSuccess = 0x0000;
constexpr unsigned short kOutOfResources = 0xA700;
constexpr unsigned short kDataSetDoesNotMatchSopClass = 0xA900;
constexpr unsigned short kCannotUnderstand = 0xC000;
constexpr unsigned short kNotAuthorized = 0x0124;  // Refused: Not Authorized
}  // namespace status

}  // namespace pb::dicom
