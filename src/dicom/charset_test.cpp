#include "dicom/charset.h"

#include <gtest/gtest.h>

#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>

namespace pb::dicom {
namespace {

std::string Name(DcmDataset& ds) {
  OFString v;
  ds.findAndGetOFStringArray(DCM_PatientName, v);
  return std::string(v.c_str(), v.length());
}

std::string Charset(DcmDataset& ds) {
  OFString v;
  ds.findAndGetOFStringArray(DCM_SpecificCharacterSet, v);
  return v.c_str();
}

TEST(CharsetToUtf8, DecodesJapaneseIso2022AsInTheStandardExample) {
  DcmDataset ds;
  ds.putAndInsertString(DCM_SpecificCharacterSet, "\\ISO 2022 IR 87");
  // PS3.5 H.3.1: Yamada^Tarou=山田^太郎=やまだ^たろう, JIS X 0208 between ESC $ B and ESC ( B.
  ds.putAndInsertString(DCM_PatientName,
                        "Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B");
  std::string problem;
  EXPECT_TRUE(ToUtf8(ds, &problem)) << problem;
  EXPECT_EQ(Name(ds), "Yamada^Tarou=山田^太郎=やまだ^たろう");
  EXPECT_EQ(Charset(ds), "ISO_IR 192");
}

TEST(CharsetToUtf8, DecodesKoreanWithAndWithoutItsG1Designation) {
  for (std::string value :
       {"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf",
        "Hong^Gildong=\xfb\xf3^\xd1\xce\xd4\xd7=\xc8\xab^\xb1\xe6\xb5\xbf"}) {
    for (const char* cs : {"\\ISO 2022 IR 149", "ISO 2022 IR 149"}) {
      DcmDataset ds;
      ds.putAndInsertString(DCM_SpecificCharacterSet, cs);
      ds.putAndInsertString(DCM_PatientName, value.c_str());
      EXPECT_TRUE(ToUtf8(ds)) << cs;
      EXPECT_EQ(Name(ds), "Hong^Gildong=洪^吉洞=홍^길동") << cs;
    }
  }
}

TEST(CharsetToUtf8, DecodesLatin1ThroughDcmtk) {
  DcmDataset ds;
  ds.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 100");
  ds.putAndInsertString(DCM_PatientName, "M\xfcller^Hans");
  EXPECT_TRUE(ToUtf8(ds));
  EXPECT_EQ(Name(ds), "Müller^Hans");
}

TEST(CharsetToUtf8, ReportsBytesThatAreNotInTheDeclaredSet) {
  DcmDataset ds;
  ds.putAndInsertString(DCM_SpecificCharacterSet, "\\ISO 2022 IR 149");
  ds.putAndInsertString(DCM_PatientName, "Bad^\xff\xff");
  std::string problem;
  EXPECT_FALSE(ToUtf8(ds, &problem));
  EXPECT_NE(problem.find("(0010,0010)"), std::string::npos) << problem;
  EXPECT_EQ(Name(ds), "Bad^\xff\xff");  // left as it was
}

TEST(CharsetToUtf8, LeavesUtf8Alone) {
  DcmDataset ds;
  ds.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 192");
  ds.putAndInsertString(DCM_PatientName, "山田^太郎");
  EXPECT_TRUE(ToUtf8(ds));
  EXPECT_EQ(Name(ds), "山田^太郎");
}

}  // namespace
}  // namespace pb::dicom
