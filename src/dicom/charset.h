#pragma once
// Attribute values to UTF-8, from whatever Specific Character Set a data set declares. DCMTK
// converts through the C library's iconv, which here lacks some ISO 2022 sets (JIS X 0208 under
// its DICOM name, and Korean as some PACS write it); those are decoded here with the iconv
// converters that do exist: ISO-2022-JP-2 for Japanese, EUC-KR and GB2312 for the Korean and
// Chinese G1 sets (whose escape sequences only announce what the high-bit bytes mean).
// Internal to src/dicom.
#include <string>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcitem.h>

namespace pb::dicom {

// Converts the item's text values (PN, LO, SH, ST, LT, UT, UC, also in sequences) to UTF-8 and
// sets Specific Character Set to ISO_IR 192. False, with the reason in `problem`, when some
// values could not be decoded (they are left as they were).
bool ToUtf8(DcmItem& item, std::string* problem = nullptr);

}  // namespace pb::dicom
