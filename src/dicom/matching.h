#pragma once
// Checks the value of a C-FIND matching key against the form its VR allows (PS3.5 6.2, PS3.4
// C.2.2.2), before anything goes on the network: a malformed date would otherwise be sent as is
// and silently match nothing. Pure logic, no DCMTK.
//
// Accepted (an empty value is universal matching and always accepted; trailing spaces are
// padding and ignored):
//   DA  YYYYMMDD, or a range YYYYMMDD-YYYYMMDD, -YYYYMMDD, YYYYMMDD-        (C.2.2.2.5)
//   TM  HH, HHMM, HHMMSS or HHMMSS.F (1 to 6 fraction digits), or a range of those
//   DT  YYYY[MM[DD[HH[MM[SS[.F]]]]]] with an optional offset +HHMM/-HHMM, or a range of those
//   UI  a UID (digits and dots, at most 64 characters) or a list of them separated by
//       backslashes (C.2.2.2.2)
// Wildcards (* and ?) are not allowed in any of these. A range that ends before it starts is
// refused. Other VRs are not checked here.
#include <string_view>

#include "core/result.h"

namespace pb::dicom {

// Error: kInvalidArgument with field "query.<keyword>" and a message giving the expected form,
// e.g. "StudyDate: '2024' is not a date; use YYYYMMDD or a range YYYYMMDD-YYYYMMDD".
[[nodiscard]] Result<void> CheckMatchingValue(std::string_view keyword, std::string_view vr, std::string_view value);

}  // namespace pb::dicom
