#include "dicomweb/accept.h"

#include <gtest/gtest.h>

namespace pb::dicomweb {
namespace {

using V = std::vector<std::string>;

TEST(AcceptedSyntaxes, DefaultsToExplicitLittleEndian) {
  // PS3.18 8.7.3.5.2: without a transfer-syntax parameter, Explicit VR Little Endian.
  EXPECT_EQ(*AcceptedSyntaxes(""), V{"1.2.840.10008.1.2.1"});
  EXPECT_EQ(*AcceptedSyntaxes("*/*"), V{"1.2.840.10008.1.2.1"});
  EXPECT_EQ(*AcceptedSyntaxes("multipart/related; type=\"application/dicom\""), V{"1.2.840.10008.1.2.1"});
}

TEST(AcceptedSyntaxes, TakesRepeatedQuotedAndAnyCaseParameters) {
  EXPECT_EQ(*AcceptedSyntaxes("multipart/related; type=\"application/dicom\"; transfer-syntax=*"), V{"*"});
  EXPECT_EQ(*AcceptedSyntaxes("Multipart/Related; TYPE=application/dicom; transfer-syntax=\"1.2.840.10008.1.2.4.80\"; "
                              "transfer-syntax=1.2.840.10008.1.2"),
            (V{"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2"}));
  // Several media ranges, a comma inside quotes, one that is not DICOM.
  EXPECT_EQ(*AcceptedSyntaxes("application/dicom+json, multipart/related; type=\"application/dicom\"; "
                              "transfer-syntax=1.2.840.10008.1.2.5; q=0.9"),
            V{"1.2.840.10008.1.2.5"});
}

TEST(AcceptedSyntaxes, RefusesWhatNamesNoInstances) {
  auto r = AcceptedSyntaxes("application/dicom+json");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kUnsupported);
  EXPECT_FALSE(AcceptedSyntaxes("multipart/related; type=\"image/jpeg\""));
  // q=0 means "not acceptable" (RFC 7231 5.3.1).
  EXPECT_FALSE(AcceptedSyntaxes("multipart/related; type=\"application/dicom\"; transfer-syntax=*; q=0"));
  EXPECT_EQ(*AcceptedSyntaxes("multipart/related; type=\"application/dicom\"; transfer-syntax=*; q=0.0, "
                              "multipart/related; type=\"application/dicom\"; q=0.5"),
            V{"1.2.840.10008.1.2.1"});
}

TEST(AcceptedParts, DefaultsToAnything) {
  for (const char* accept : {"", "*/*", "multipart/related"}) {
    auto r = AcceptedParts(accept);
    ASSERT_TRUE(r) << accept;
    ASSERT_EQ(r->size(), 1u) << accept;
    EXPECT_EQ((*r)[0].type, "*") << accept;
    EXPECT_TRUE((*r)[0].multipart) << accept;
  }
}

TEST(AcceptedParts, KeepsTheClientsOrderTypesAndSyntaxes) {
  auto r = AcceptedParts(
      "multipart/related; type=\"image/jls\"; transfer-syntax=1.2.840.10008.1.2.4.80, "
      "Multipart/Related; Type=application/octet-stream; transfer-syntax=*");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].type, "image/jls");
  EXPECT_EQ((*r)[0].syntaxes, std::vector<std::string>{"1.2.840.10008.1.2.4.80"});
  EXPECT_EQ((*r)[1].type, "application/octet-stream");
  EXPECT_EQ((*r)[1].syntaxes, std::vector<std::string>{"*"});
}

TEST(AcceptedParts, ABareMediaTypeAsksForOnePart) {
  auto r = AcceptedParts("application/octet-stream");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 1u);
  EXPECT_FALSE((*r)[0].multipart);
}

TEST(AcceptedParts, RefusedAndDicomRangesDoNotCount) {
  EXPECT_FALSE(AcceptedParts("multipart/related; type=\"application/octet-stream\"; q=0"));
  EXPECT_FALSE(AcceptedParts("multipart/related; type=\"application/dicom\""));
  EXPECT_FALSE(AcceptedParts("application/dicom+json"));
  auto r = AcceptedParts("application/json, multipart/related; type=image/jpeg");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].type, "image/jpeg");
}

}  // namespace
}  // namespace pb::dicomweb
