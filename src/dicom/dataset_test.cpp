#include "dicom/dataset.h"

#include <filesystem>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <fstream>

#include <gtest/gtest.h>

#include "dicom/anonymize.h"
#include "dicom/dataset_impl.h"

namespace pb::dicom {
namespace {

std::unique_ptr<Dataset> Latin1Dataset() {
  auto impl = std::make_unique<Dataset::Impl>();
  impl->ds = std::make_unique<DcmDataset>();
  DcmDataset& ds = *impl->ds;
  ds.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 100");
  ds.putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
  ds.putAndInsertString(DCM_SOPInstanceUID, "1.2.3.4.5");
  ds.putAndInsertString(DCM_StudyInstanceUID, "1.2.3");
  ds.putAndInsertString(DCM_SeriesInstanceUID, "1.2.3.4");
  ds.putAndInsertString(DCM_PatientName, "M\xfcller^Hans");  // Latin-1 ü
  ds.putAndInsertString(DCM_PatientID, "PID1");
  ds.putAndInsertString(DCM_ReferringPhysicianName, "Doc^Who");
  impl->transfer_syntax_uid = UID_LittleEndianExplicitTransferSyntax;
  return std::make_unique<Dataset>(std::move(impl));
}

TEST(Dataset, GetDecodesTheCharacterSetWithoutChangingTheDataSet) {
  auto d = Latin1Dataset();
  EXPECT_EQ(d->Get(0x00100010).value(), "M\xc3\xbcller^Hans");
  EXPECT_EQ(d->Get(0x00100020).value(), "PID1");
  EXPECT_FALSE(d->Get(0x00081030).has_value());
  OFString raw;
  d->impl().ds->findAndGetOFString(DCM_SpecificCharacterSet, raw);
  EXPECT_EQ(std::string(raw.c_str()), "ISO_IR 100");  // untouched by reading
}

TEST(Dataset, SetAndClear) {
  auto d = Latin1Dataset();
  ASSERT_TRUE(d->Set(0x00080080, "Site 4"));
  EXPECT_EQ(d->Get(0x00080080).value(), "Site 4");
  ASSERT_TRUE(d->Set(0x00081030, "\xc3\x89tude"));  // UTF-8 É: the data set becomes UTF-8
  EXPECT_EQ(d->Get(0x00081030).value(), "\xc3\x89tude");
  EXPECT_EQ(d->Get(0x00100010).value(), "M\xc3\xbcller^Hans");
  OFString cs;
  d->impl().ds->findAndGetOFString(DCM_SpecificCharacterSet, cs);
  EXPECT_EQ(std::string(cs.c_str()), "ISO_IR 192");
  ASSERT_TRUE(d->Clear(0x00080090));
  EXPECT_EQ(d->Get(0x00080090).value(), "");
  EXPECT_FALSE(d->Set(0x00091001, "private"));  // not in the dictionary: refused, named
  auto seq = d->Set(0x00081110, "x");
  ASSERT_FALSE(seq);
  EXPECT_NE(seq.error().message.find("(0008,1110)"), std::string::npos);
}

TEST(Dataset, WritesAnonymizedDataWithAMatchingFileMetaHeader) {
  auto d = Latin1Dataset();
  AnonymizeOptions o;
  o.secret = "0123456789abcdef0123";
  o.subject_label = "SUBJ1";
  ASSERT_TRUE(d->Anonymize(o));
  auto file = std::filesystem::temp_directory_path() / "pb-dataset-write.dcm";
  auto size = d->Write(file);
  ASSERT_TRUE(size) << size.error().message;
  EXPECT_EQ(*size, static_cast<int64_t>(std::filesystem::file_size(file)));
  DcmFileFormat ff;
  ASSERT_TRUE(ff.loadFile(file.c_str()).good());
  OFString sop, meta_sop, name, ts;
  ff.getDataset()->findAndGetOFString(DCM_SOPInstanceUID, sop);
  ff.getMetaInfo()->findAndGetOFString(DCM_MediaStorageSOPInstanceUID, meta_sop);
  ff.getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, ts);
  ff.getDataset()->findAndGetOFString(DCM_PatientName, name);
  EXPECT_EQ(std::string(sop.c_str()), MapUid("1.2.3.4.5", o.secret));
  EXPECT_EQ(sop, meta_sop);
  EXPECT_EQ(std::string(ts.c_str()), UID_LittleEndianExplicitTransferSyntax);
  EXPECT_EQ(std::string(name.c_str()), "SUBJ1");
  // The data set is still usable after writing (the file format only borrowed it).
  EXPECT_EQ(d->Get(0x00100020).value(), "SUBJ1");
  std::filesystem::remove(file);
}

TEST(Dataset, ReadsAFileBackWithItsValuesAndSyntax) {
  auto d = Latin1Dataset();
  auto file = std::filesystem::temp_directory_path() / "pb-dataset-read.dcm";
  ASSERT_TRUE(d->Write(file));
  auto back = Dataset::Read(file);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ((*back)->Get(0x00100010), d->Get(0x00100010));  // decoded from Latin-1 both times
  EXPECT_EQ((*back)->Get(0x00080018).value(), "1.2.3.4.5");
  EXPECT_EQ((*back)->transfer_syntax_uid(), UID_LittleEndianExplicitTransferSyntax);
  std::filesystem::remove(file);
  std::ofstream(file) << "not DICOM";
  auto bad = Dataset::Read(file);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("cannot read " + file.string() + " as DICOM"), std::string::npos)
      << bad.error().message;
  std::filesystem::remove(file);
}

TEST(Dataset, WriteToAMissingFolderFailsCleanly) {
  auto d = Latin1Dataset();
  auto r = d->Write("/nonexistent-folder/x.dcm");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("cannot write"), std::string::npos);
}

TEST(ParseTag, AcceptsEveryWrittenFormAndKeywords) {
  EXPECT_EQ(ParseTag("(0010,0010)"), 0x00100010u);
  EXPECT_EQ(ParseTag("0010,0010"), 0x00100010u);
  EXPECT_EQ(ParseTag("00100010"), 0x00100010u);
  EXPECT_EQ(ParseTag("(0008,103e)"), 0x0008103Eu);
  EXPECT_EQ(ParseTag("PatientName"), 0x00100010u);
  EXPECT_EQ(ParseTag("InstitutionName"), 0x00080080u);
  EXPECT_FALSE(ParseTag("NoSuchKeyword").has_value());
  EXPECT_FALSE(ParseTag("(0010,001G)").has_value());
  EXPECT_FALSE(ParseTag("").has_value());
  EXPECT_EQ(TagString(0x0008103E), "(0008,103E)");
}

}  // namespace
}  // namespace pb::dicom
