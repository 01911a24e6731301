#include "core/validate.h"

#include <gtest/gtest.h>

namespace pb {
namespace {

TEST(AeTitle, AcceptsExactlySixteenCharacters) {
  auto r = ValidateAeTitle("ABCDEFGHIJKLMNOP");
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "ABCDEFGHIJKLMNOP");
}

TEST(AeTitle, RefusesSeventeenCharactersNamingTheField) {
  auto r = ValidateAeTitle("ABCDEFGHIJKLMNOPQ");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "ae_title");
  EXPECT_NE(r.error().message.find("16"), std::string::npos);
}

TEST(AeTitle, TrimsLeadingAndTrailingSpaces) {
  auto r = ValidateAeTitle("  ORTHANC  ");
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "ORTHANC");
}

TEST(AeTitle, SpacesDoNotCountTowardsTheLimit) { EXPECT_TRUE(ValidateAeTitle("   ABCDEFGHIJKLMNOP   ")); }

TEST(AeTitle, KeepsInnerSpacesAndCase) {
  auto r = ValidateAeTitle("my Pacs");
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "my Pacs");
}

TEST(AeTitle, RefusesEmptyAndAllSpaces) {
  EXPECT_FALSE(ValidateAeTitle(""));
  EXPECT_FALSE(ValidateAeTitle("    "));
}

TEST(AeTitle, RefusesBackslash) {
  auto r = ValidateAeTitle("AE\\TITLE");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("backslash"), std::string::npos);
}

TEST(AeTitle, RefusesTabAndNewline) {
  EXPECT_FALSE(ValidateAeTitle("AE\tTITLE"));
  EXPECT_FALSE(ValidateAeTitle("AE\n"));
}

TEST(AeTitle, UsesTheGivenFieldName) {
  auto r = ValidateAeTitle("", "calling_ae_title");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "calling_ae_title");
}

TEST(Host, AcceptsIpv4) { EXPECT_EQ(*ValidateHost("10.0.0.5"), "10.0.0.5"); }

TEST(Host, AcceptsIpv6WithoutBrackets) { EXPECT_EQ(*ValidateHost("::1"), "::1"); }

TEST(Host, AcceptsIpv6WithBracketsAndStripsThem) { EXPECT_EQ(*ValidateHost("[fe80::1:2]"), "fe80::1:2"); }

TEST(Host, RefusesBracketsAroundNonIpv6) { EXPECT_FALSE(ValidateHost("[pacs.local]")); }

TEST(Host, AcceptsDnsNames) {
  EXPECT_TRUE(ValidateHost("pacs.hospital.org"));
  EXPECT_TRUE(ValidateHost("localhost"));
  EXPECT_TRUE(ValidateHost("pacs-01.example."));
}

TEST(Host, RefusesHttpSchemeWithBareHostHint) {
  for (const char* h : {"http://host", "https://pacs.example/dicom-web"}) {
    auto r = ValidateHost(h);
    ASSERT_FALSE(r) << h;
    EXPECT_EQ(r.error().field, "host");
    EXPECT_NE(r.error().message.find("bare host"), std::string::npos);
  }
}

TEST(Host, RefusesPath) {
  auto r = ValidateHost("pacs.example/dicom");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("path"), std::string::npos);
}

TEST(Host, RefusesHostWithPort) { EXPECT_FALSE(ValidateHost("pacs.example:104")); }

TEST(Host, RefusesInvalidNames) {
  EXPECT_FALSE(ValidateHost(""));
  EXPECT_FALSE(ValidateHost("bad host"));
  EXPECT_FALSE(ValidateHost("-lead.example"));
  EXPECT_FALSE(ValidateHost("a..b"));
}

TEST(Port, AcceptsBounds) {
  EXPECT_EQ(*ValidatePort(1), 1);
  EXPECT_EQ(*ValidatePort(65535), 65535);
}

TEST(Port, RefusesOutOfRange) {
  EXPECT_FALSE(ValidatePort(0));
  EXPECT_FALSE(ValidatePort(65536));
  EXPECT_FALSE(ValidatePort(-1));
  EXPECT_EQ(ValidatePort(0).error().field, "port");
}

TEST(Uid, ValidAndInvalid) {
  EXPECT_TRUE(IsValidUid("1.2.840.10008.1.1"));
  EXPECT_TRUE(IsValidUid("1.2.0.3"));
  EXPECT_FALSE(IsValidUid("1.2.03"));
  EXPECT_FALSE(IsValidUid("1..2"));
  EXPECT_FALSE(IsValidUid("../etc"));
  EXPECT_FALSE(IsValidUid(std::string(65, '1')));
}

TEST(HostPort, BracketsIpv6) {
  EXPECT_EQ(JoinHostPort("::1", 104), "[::1]:104");
  EXPECT_EQ(JoinHostPort("pacs", 104), "pacs:104");
}

TEST(Utf8, WellFormedOrReplaced) {
  // RFC 3629 section 4 and Unicode's "U+FFFD substitution of maximal subparts" examples.
  EXPECT_TRUE(IsValidUtf8("M\xC3\x9CLLER"));             // MÜLLER
  EXPECT_TRUE(IsValidUtf8("\xE5\xB1\xB1\xE7\x94\xB0"));  // 山田
  EXPECT_FALSE(IsValidUtf8("M\xDCLLER"));                // Latin-1 Ü
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));                 // overlong "/"
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));             // a surrogate
  EXPECT_FALSE(IsValidUtf8("\xE5\xB1"));                 // cut short
  EXPECT_EQ(ToValidUtf8("M\xC3\x9CLLER"), "M\xC3\x9CLLER");
  EXPECT_EQ(ToValidUtf8("M\xDCLLER^JOS\xC9"), "M\xEF\xBF\xBDLLER^JOS\xEF\xBF\xBD");
  EXPECT_EQ(ToValidUtf8("a\xE5\xB1"), "a\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_TRUE(IsValidUtf8(ToValidUtf8("\xFF\xFE\xC0\xAF")));
}

}  // namespace
}  // namespace pb
