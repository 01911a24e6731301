#include "dicom/transcode.h"

#include <gtest/gtest.h>

#include <vector>

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>

namespace pb::dicom {
namespace {

constexpr Uint16 kRows = 64, kColumns = 48;

// A 16-bit grayscale image with a gradient and some noise-like variation.
std::vector<Uint16> Pixels() {
  std::vector<Uint16> p(kRows * kColumns);
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<Uint16>((i * 37 + (i / kColumns) * 11) % 4096);
  return p;
}

void FillImage(DcmDataset& ds) {
  ds.putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
  ds.putAndInsertString(DCM_SOPInstanceUID, "1.2.3.4.5");
  ds.putAndInsertUint16(DCM_SamplesPerPixel, 1);
  ds.putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2");
  ds.putAndInsertUint16(DCM_Rows, kRows);
  ds.putAndInsertUint16(DCM_Columns, kColumns);
  ds.putAndInsertUint16(DCM_BitsAllocated, 16);
  ds.putAndInsertUint16(DCM_BitsStored, 12);
  ds.putAndInsertUint16(DCM_HighBit, 11);
  ds.putAndInsertUint16(DCM_PixelRepresentation, 0);
  auto p = Pixels();
  ds.putAndInsertUint16Array(DCM_PixelData, p.data(), static_cast<unsigned long>(p.size()));
}

std::vector<Uint16> Decoded(DcmDataset& ds) {
  const Uint16* data = nullptr;
  unsigned long count = 0;
  if (ds.findAndGetUint16Array(DCM_PixelData, data, &count).bad() || !data) return {};
  return {data, data + count};
}

TEST(Transcode, LosslessRoundTripsKeepEveryPixel) {
  for (const char* ts :
       {UID_JPEGLSLosslessTransferSyntax, UID_JPEGProcess14SV1TransferSyntax, UID_RLELosslessTransferSyntax}) {
    DcmDataset ds;
    FillImage(ds);
    ds.chooseRepresentation(EXS_LittleEndianExplicit, nullptr);
    auto compressed = Transcode(ds, UID_LittleEndianExplicitTransferSyntax, ts);
    ASSERT_TRUE(compressed) << ts << ": " << compressed.error().message;
    EXPECT_TRUE(ds.canWriteXfer(DcmXfer(ts).getXfer())) << ts;
    auto back = Transcode(ds, ts, UID_LittleEndianImplicitTransferSyntax);
    ASSERT_TRUE(back) << ts << ": " << back.error().message;
    EXPECT_EQ(Decoded(ds), Pixels()) << ts;
  }
}

TEST(Transcode, LossyOnlyWhenAllowedAndJpeg2000NotAtAll) {
  const std::string explicit_le = UID_LittleEndianExplicitTransferSyntax;
  EXPECT_FALSE(CanConvert(explicit_le, UID_JPEGProcess1TransferSyntax, false));
  EXPECT_TRUE(CanConvert(explicit_le, UID_JPEGProcess1TransferSyntax, true));
  EXPECT_TRUE(CanConvert(explicit_le, UID_JPEGLSLosslessTransferSyntax, false));
  EXPECT_FALSE(CanConvert(UID_JPEG2000TransferSyntax, explicit_le, true));
  EXPECT_FALSE(CanConvert(explicit_le, UID_JPEG2000LosslessOnlyTransferSyntax, true));
  EXPECT_TRUE(CanConvert(UID_JPEG2000TransferSyntax, UID_JPEG2000TransferSyntax, false));  // as stored
  EXPECT_TRUE(IsLossy(UID_JPEGProcess1TransferSyntax));
  EXPECT_FALSE(IsLossy(UID_JPEGLSLosslessTransferSyntax));
  DcmDataset ds;
  FillImage(ds);
  auto r = Transcode(ds, UID_JPEG2000TransferSyntax, explicit_le);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("JPEG 2000"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace pb::dicom
