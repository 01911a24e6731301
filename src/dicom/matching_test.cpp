// The expected forms come from the standard, not from matching.cpp: PS3.5 table 6.2-1 (DA, TM,
// DT, UI) and PS3.4 C.2.2.2 (single value, list of UIDs, range matching).
#include "dicom/matching.h"

#include <gtest/gtest.h>

namespace pb::dicom {
namespace {

bool Ok(std::string_view vr, std::string_view value) { return static_cast<bool>(CheckMatchingValue("Key", vr, value)); }

TEST(MatchingValue, DatesAreYyyymmddOrARangeOfThem) {
  for (const char* good :
       {"20240131", "20240101-20241231", "-20241231", "20240101-", "19000101", "20240101-20240101", "20240229  "}) {
    EXPECT_TRUE(Ok("DA", good)) << good;
  }
  for (const char* bad :
       {"2024", "202401", "2024-01-31", "2024.01.31", "20241301", "20240100", "20240132", "-", "2024013", "202401311",
        "20240101--", "20240101-2024", "abcdefgh", "2024*", "2024013?", "20240101\\20240102", "20241231-20240101"}) {
    EXPECT_FALSE(Ok("DA", bad)) << bad;
  }
}

TEST(MatchingValue, TheDateMessageGivesTheExpectedFormAndField) {
  auto r = CheckMatchingValue("StudyDate", "DA", "2024");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalidArgument);
  EXPECT_EQ(r.error().field, "query.StudyDate");
  EXPECT_NE(r.error().message.find("StudyDate: '2024' is not a date; use YYYYMMDD or a range YYYYMMDD-YYYYMMDD"),
            std::string::npos)
      << r.error().message;
  auto wild = CheckMatchingValue("PatientBirthDate", "DA", "1970*");
  ASSERT_FALSE(wild);
  EXPECT_NE(wild.error().message.find("wildcards"), std::string::npos) << wild.error().message;
  auto reversed = CheckMatchingValue("StudyDate", "DA", "20241231-20240101");
  ASSERT_FALSE(reversed);
  EXPECT_NE(reversed.error().message.find("ends before it starts"), std::string::npos);
}

TEST(MatchingValue, TimesMayOmitComponentsFromTheRight) {
  // A range whose end is before its start spans midnight (PS3.4 C.2.2.2.5.1): the night shift.
  for (const char* good : {"07", "0730", "073015", "073015.1", "073015.123456", "235960", "070000-120000", "-1200",
                           "07-", "1200-0700", "220000-060000"}) {
    EXPECT_TRUE(Ok("TM", good)) << good;
  }
  for (const char* bad :
       {"7", "073", "07:30", "240000", "076000", "073061", "073015.1234567", "0730.5", "07*", "abc"}) {
    EXPECT_FALSE(Ok("TM", bad)) << bad;
  }
}

TEST(MatchingValue, DateTimesTakeShortFormsOffsetsAndRanges) {
  for (const char* good :
       {"2024", "202401", "20240131", "2024013107", "202401310730", "20240131073015", "20240131073015.5",
        "20240131073015+0100", "20240131-0500", "20240101-20241231", "2024-2025", "-20241231235959", "20240101000000-",
        // 11:00 UTC to 11:30 UTC: the text order of bounds with offsets means nothing.
        "20240101120000+0100-20240101113000+0000"}) {
    EXPECT_TRUE(Ok("DT", good)) << good;
  }
  for (const char* bad : {"24", "20241", "2024013", "20241301", "2024013125", "20240131073015.1234567", "2024-01-31",
                          "2024*", "2025-2024"}) {
    EXPECT_FALSE(Ok("DT", bad)) << bad;
  }
}

TEST(MatchingValue, UidsAreDigitsAndDotsOrABackslashList) {
  for (const char* good : {"1.2.840.10008.1.1", "1.2.3\\1.2.4\\1.2.5", "2.25.123456789012345678901234567890"}) {
    EXPECT_TRUE(Ok("UI", good)) << good;
  }
  std::string too_long(65, '1');
  for (std::string bad : {std::string("1.2.*"), std::string("1.2.?"), std::string("abc"), std::string("1..2"),
                          std::string(".1.2"), std::string("1.2."), std::string("1.2\\"), too_long,
                          std::string("1.2 .3"), std::string("1.02.3")}) {  // PS3.5 9.1: no leading zero
    EXPECT_FALSE(Ok("UI", bad)) << bad;
  }
}

TEST(MatchingValue, EmptyValuesAndOtherVrsAreLeftAlone) {
  for (const char* vr : {"DA", "TM", "DT", "UI"}) EXPECT_TRUE(Ok(vr, "")) << vr;
  EXPECT_TRUE(Ok("PN", "DOE*"));
  EXPECT_TRUE(Ok("LO", "2024"));
  EXPECT_TRUE(Ok("CS", "CT\\MR"));
}

}  // namespace
}  // namespace pb::dicom
