#include "dicom/header_scan.h"

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcvrlo.h>
#include <dcmtk/dcmdata/dcvrobow.h>
#include <dcmtk/oflog/oflog.h>
#include <gtest/gtest.h>

#include "dicom/header.h"

// The reference for every expectation is DCMTK's own parse of the same bytes (ReadHeader,
// which always parses with DCMTK): the scanner must give exactly that, or nothing.
namespace pb::dicom {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> Fields(const InstanceRecord& r) {
  return {r.patient_id,          r.issuer_of_patient_id,
          r.patient_name,        r.patient_birth_date,
          r.patient_sex,         r.study_uid,
          r.study_date,          r.study_time,
          r.accession_number,    r.study_id,
          r.study_description,   r.referring_physician,
          r.series_uid,          r.modality,
          r.series_number,       r.series_description,
          r.body_part,           r.sop_uid,
          r.sop_class_uid,       r.instance_number,
          r.transfer_syntax_uid, r.patient_comments,
          r.study_comments};
}

void AddItem(DcmSequenceOfItems& seq, const char* uid, bool nested) {
  auto* item = new DcmItem;
  item->putAndInsertString(DCM_ReferencedSOPClassUID, UID_SecondaryCaptureImageStorage);
  item->putAndInsertString(DCM_ReferencedSOPInstanceUID, uid);
  if (nested) {
    auto* inner = new DcmSequenceOfItems(DCM_PurposeOfReferenceCodeSequence);
    auto* code = new DcmItem;
    code->putAndInsertString(DCM_CodeValue, "121311");
    code->putAndInsertString(DCM_CodingSchemeDesignator, "DCM");
    code->putAndInsertString(DCM_CodeMeaning, "Localizer");
    inner->append(code);
    item->insert(inner);
  }
  seq.append(item);
}

// Every attribute the record carries, sequences (nested, empty), a private block, pixel data.
std::unique_ptr<DcmFileFormat> Full() {
  auto ff = std::make_unique<DcmFileFormat>();
  DcmDataset& ds = *ff->getDataset();
  ds.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 192");
  ds.putAndInsertString(DCM_ImageType, "ORIGINAL\\PRIMARY\\AXIAL");
  ds.putAndInsertString(DCM_SOPClassUID, UID_CTImageStorage);
  ds.putAndInsertString(DCM_SOPInstanceUID, "1.2.826.0.1.3680043.9.7133.3.1");
  ds.putAndInsertString(DCM_StudyDate, "20261203");
  ds.putAndInsertString(DCM_StudyTime, "101500.25");
  ds.putAndInsertString(DCM_AccessionNumber, "ACC0042");
  ds.putAndInsertString(DCM_Modality, "CT");
  ds.putAndInsertString(DCM_ReferringPhysicianName, "Ref^Doc");
  ds.putAndInsertString(DCM_StudyDescription, "CHEST W/O");
  ds.putAndInsertString(DCM_SeriesDescription, "Axial 1.25mm");
  auto* refs = new DcmSequenceOfItems(DCM_ReferencedImageSequence);
  AddItem(*refs, "1.2.3.4.1", true);
  AddItem(*refs, "1.2.3.4.2", false);
  ds.insert(refs);
  ds.insert(new DcmSequenceOfItems(DCM_ReferencedStudySequence));  // empty sequence
  ds.putAndInsertString(DCM_PatientName,
                        "Dup\xc3\xa9^Ann\xc3\xa9"
                        "e");  // UTF-8
  ds.putAndInsertString(DCM_PatientID, "P-0042");
  ds.putAndInsertString(DCM_IssuerOfPatientID, "HOSP");
  ds.putAndInsertString(DCM_PatientBirthDate, "19700101");
  ds.putAndInsertString(DCM_PatientSex, "F");
  ds.putAndInsertString(DCM_PatientComments, "Project: LUNG  Subject: S1\\x");
  ds.putAndInsertString(DcmTag(0x0009, 0x0010, EVR_LO), "ACME 1.0");
  ds.putAndInsertUint8Array(DcmTag(0x0009, 0x1001, EVR_OB), reinterpret_cast<const Uint8*>("abcdef"), 6);
  ds.putAndInsertString(DCM_BodyPartExamined, "CHEST");
  ds.putAndInsertString(DCM_SliceThickness, "1.25");
  ds.putAndInsertString(DCM_StudyInstanceUID, "1.2.826.0.1.3680043.9.7133.1");
  ds.putAndInsertString(DCM_SeriesInstanceUID, "1.2.826.0.1.3680043.9.7133.2.1");
  ds.putAndInsertString(DCM_StudyID, "S42");
  ds.putAndInsertString(DCM_SeriesNumber, "3");
  ds.putAndInsertString(DCM_InstanceNumber, "17");
  ds.putAndInsertString(DCM_RETIRED_StudyComments, " indented comment");  // LT keeps it
  ds.putAndInsertUint16(DCM_Rows, 4);
  ds.putAndInsertUint16(DCM_Columns, 4);
  Uint16 pixels[16] = {};
  ds.putAndInsertUint16Array(DCM_PixelData, pixels, 16);
  return ff;
}

class HeaderScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    OFLog::configure(OFLogger::FATAL_LOG_LEVEL);  // DCMTK's warnings on the damaged bytes
    dir_ = fs::temp_directory_path() / ("pb-scan-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The file's bytes, as DCMTK writes it.
  std::string Save(DcmFileFormat& ff, E_TransferSyntax xfer, E_EncodingType enc = EET_ExplicitLength,
                   E_GrpLenEncoding gl = EGL_withoutGL) {
    const fs::path p = dir_ / "a.dcm";
    EXPECT_TRUE(ff.saveFile(p.c_str(), xfer, enc, gl).good());
    return Bytes(p);
  }
  static std::string Bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // DCMTK's parse of these bytes as a file.
  Result<InstanceRecord> Dcmtk(const std::string& bytes) {
    const fs::path p = dir_ / "ref.dcm";
    {
      std::ofstream out(p, std::ios::binary | std::ios::trunc);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    return ReadHeader(p);
  }
  // Where the data set starts: after the meta header, whose group length DCMTK writes.
  static size_t DatasetOffset(const std::string& file) {
    const auto* b = reinterpret_cast<const unsigned char*>(file.data());
    return 144 + (b[140] | (b[141] << 8) | (b[142] << 16) | (static_cast<size_t>(b[143]) << 24));
  }
  static std::string Syntax(E_TransferSyntax xfer) { return DcmXfer(xfer).getXferID(); }

  fs::path dir_;
};

TEST_F(HeaderScanTest, ReadsWhatDcmtkReadsInEveryLittleEndianEncoding) {
  auto ff = Full();
  for (E_TransferSyntax xfer : {EXS_LittleEndianImplicit, EXS_LittleEndianExplicit}) {
    for (E_EncodingType enc : {EET_ExplicitLength, EET_UndefinedLength}) {
      for (E_GrpLenEncoding gl : {EGL_withoutGL, EGL_withGL}) {
        SCOPED_TRACE(Syntax(xfer) + (enc == EET_UndefinedLength ? " undefined lengths" : " explicit lengths") +
                     (gl == EGL_withGL ? ", group lengths" : ""));
        const std::string file = Save(*ff, xfer, enc, gl);
        auto want = Dcmtk(file);
        ASSERT_TRUE(want) << want.error().message;
        EXPECT_EQ(want->patient_name,
                  "Dup\xc3\xa9^Ann\xc3\xa9"
                  "e");  // the reference read it all
        EXPECT_EQ(want->study_comments, " indented comment");

        auto scanned = ScanFileHeader(file, true);
        ASSERT_TRUE(scanned);
        EXPECT_EQ(Fields(*scanned), Fields(*want));

        const std::string dataset = file.substr(DatasetOffset(file));
        auto from_dataset = ScanHeader(dataset, true, Syntax(xfer));
        ASSERT_TRUE(from_dataset);
        EXPECT_EQ(Fields(*from_dataset), Fields(*want));
        // The first bytes are enough when they reach the pixel data.
        const size_t pixel_data = dataset.find(std::string("\xe0\x7f\x10\x00", 4));
        ASSERT_NE(pixel_data, std::string::npos);
        const size_t header_bytes = xfer == EXS_LittleEndianImplicit ? 8 : 12;
        auto head = ScanHeader(dataset.substr(0, pixel_data + header_bytes), false, Syntax(xfer));
        ASSERT_TRUE(head);
        EXPECT_EQ(Fields(*head), Fields(*want));
        EXPECT_FALSE(ScanHeader(dataset.substr(0, pixel_data), false, Syntax(xfer)));
      }
    }
  }
}

TEST_F(HeaderScanTest, SevenBitValuesOfASingleByteCharacterSetAreReadAsTheyAre) {
  auto ff = Full();
  DcmDataset& ds = *ff->getDataset();
  ds.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 100");
  ds.putAndInsertString(DCM_PatientName, "Dupont^Anne");
  const std::string file = Save(*ff, EXS_LittleEndianExplicit);
  auto want = Dcmtk(file);
  ASSERT_TRUE(want);
  auto scanned = ScanFileHeader(file, true);
  ASSERT_TRUE(scanned);
  EXPECT_EQ(Fields(*scanned), Fields(*want));
}

// Each case is a data set the scanner must leave to DCMTK; the public readers still give
// DCMTK's answer for it.
TEST_F(HeaderScanTest, LeavesToDcmtkWhatItCannotVouchFor) {
  struct Case {
    const char* what;
    std::function<void(DcmDataset&)> change;
    E_TransferSyntax xfer = EXS_LittleEndianExplicit;
  };
  const std::vector<Case> cases = {
      {"a value with a leading space", [](DcmDataset& ds) { ds.putAndInsertString(DCM_PatientID, " P-0042"); }},
      {"a value of several with a trailing space",
       [](DcmDataset& ds) { ds.putAndInsertString(DCM_Modality, "CT \\PT"); }},
      {"Latin-1 text DCMTK converts",
       [](DcmDataset& ds) {
         ds.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 100");
         ds.putAndInsertString(DCM_PatientName,
                               "M\xfc"
                               "ller^Hans");
       }},
      {"code extensions", [](DcmDataset& ds) { ds.putAndInsertString(DCM_SpecificCharacterSet, "\\ISO 2022 IR 87"); }},
      {"a character set of no single byte",
       [](DcmDataset& ds) { ds.putAndInsertString(DCM_SpecificCharacterSet, "GB18030"); }},
      {"a VR other than the dictionary's",
       [](DcmDataset& ds) {
         auto* e = new DcmLongString(DcmTag(DCM_PatientName, EVR_LO));
         e->putString("Doe^John");
         ds.insert(e, true);
       }},
      {"no Study Instance UID", [](DcmDataset& ds) { delete ds.remove(DCM_StudyInstanceUID); }},
      {"big endian", [](DcmDataset&) {}, EXS_BigEndianExplicit},
  };
  auto expect_left_to_dcmtk = [&](const std::string& file) {
    EXPECT_FALSE(ScanFileHeader(file, true));
    auto want = Dcmtk(file);
    auto got = ReadHeaderFromFileBytes(file, true);
    ASSERT_EQ(static_cast<bool>(got), static_cast<bool>(want));
    if (want) {
      EXPECT_EQ(Fields(*got), Fields(*want));
    } else {
      EXPECT_EQ(got.error().message, want.error().message);
    }
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    auto ff = Full();
    c.change(*ff->getDataset());
    expect_left_to_dcmtk(Save(*ff, c.xfer));
  }
  // Bytes DCMTK's own writer would not produce.
  auto patched = [&](const std::string& find, size_t offset, char to) {
    std::string file = Save(*Full(), EXS_LittleEndianExplicit);
    const size_t at = file.rfind(find);  // in the data set, not the meta header
    EXPECT_NE(at, std::string::npos) << find;
    if (at != std::string::npos) file[at + offset] = to;
    return file;
  };
  {
    SCOPED_TRACE("NUL padding of a text value (DCMTK keeps the NUL)");
    expect_left_to_dcmtk(patched("S42", 3, '\0'));  // StudyID "S42" is padded to even
  }
  {
    SCOPED_TRACE("a space inside a UID (DCMTK removes it)");
    expect_left_to_dcmtk(patched("1.2.826.0.1.3680043.9.7133.3.1", 7, ' '));
  }
}

// Little-endian bytes, written out by hand for encodings DCMTK's writer never produces.
std::string U16(uint16_t v) { return {static_cast<char>(v & 0xFF), static_cast<char>(v >> 8)}; }
std::string U32(uint32_t v) { return U16(static_cast<uint16_t>(v & 0xFFFF)) + U16(static_cast<uint16_t>(v >> 16)); }
std::string Implicit(uint16_t g, uint16_t e, const std::string& value) {
  return U16(g) + U16(e) + U32(static_cast<uint32_t>(value.size())) + value;
}
std::string Explicit(uint16_t g, uint16_t e, const char* vr, const std::string& value) {
  return U16(g) + U16(e) + vr + U16(static_cast<uint16_t>(value.size())) + value;
}

TEST_F(HeaderScanTest, AnUndefinedLengthIsASequenceOnlyWhereTheDictionarySaysSo) {
  const std::string head =
      Implicit(0x0008, 0x0016, std::string(UID_CTImageStorage) + '\0') + Implicit(0x0008, 0x0018, "1.2.3.40");
  const std::string tail = Implicit(0x0020, 0x000D, "1.2.30") + Implicit(0x0020, 0x000E, "1.2.3.50");
  const std::string undefined_then_end = U32(0xFFFFFFFF) + U16(0xFFFE) + U16(0xE0DD) + U32(0);
  // (0008,1140) Referenced Image Sequence, undefined length, empty: read through.
  auto sequence = ScanHeader(head + U16(0x0008) + U16(0x1140) + undefined_then_end + tail, true,
                             UID_LittleEndianImplicitTransferSyntax);
  ASSERT_TRUE(sequence);
  EXPECT_EQ(sequence->series_uid, "1.2.3.50");
  // (0008,0070) Manufacturer (LO) with an undefined length: DCMTK refuses it; so does the walk.
  EXPECT_FALSE(ScanHeader(head + U16(0x0008) + U16(0x0070) + undefined_then_end + tail, true,
                          UID_LittleEndianImplicitTransferSyntax));
}

TEST_F(HeaderScanTest, AMetaHeaderDcmtkWouldReadDifferentlyIsLeftToIt) {
  const std::string file = Save(*Full(), EXS_LittleEndianExplicit);
  const std::string dataset = file.substr(DatasetOffset(file));
  auto with_meta = [&](const std::string& elements, bool group_length = true) {
    std::string meta = group_length ? Explicit(0x0002, 0x0000, "UL", U32(static_cast<uint32_t>(elements.size()))) : "";
    return std::string(128, '\0') + "DICM" + meta + elements + dataset;
  };
  const std::string ts = Explicit(0x0002, 0x0010, "UI", std::string(UID_LittleEndianExplicitTransferSyntax) + '\0');
  const std::string other = Explicit(0x0002, 0x0010, "UI", std::string(UID_LittleEndianImplicitTransferSyntax) + '\0');
  ASSERT_TRUE(ScanFileHeader(with_meta(ts), true));           // the hand-made file reads
  ASSERT_TRUE(ScanFileHeader(with_meta(ts, false), true));    // also without a group length
  EXPECT_FALSE(ScanFileHeader(with_meta(ts + other), true));  // DCMTK keeps the first of two
  const std::string wrong_vr = Explicit(0x0002, 0x0000, "US", U16(static_cast<uint16_t>(ts.size())));
  EXPECT_FALSE(ScanFileHeader(std::string(128, '\0') + "DICM" + wrong_vr + ts + dataset, true));
  const std::string short_length = Explicit(0x0002, 0x0000, "UL", U16(static_cast<uint16_t>(ts.size())));
  EXPECT_FALSE(ScanFileHeader(std::string(128, '\0') + "DICM" + short_length + ts + dataset, true));
}

TEST_F(HeaderScanTest, TheMetaHeaderSaysWhereTheDataSetBeginsWhateverItsSyntax) {
  auto ff = Full();
  // The data set's own encoding does not matter: big endian and deflated ones too.
  for (E_TransferSyntax xfer :
       {EXS_LittleEndianImplicit, EXS_LittleEndianExplicit, EXS_BigEndianExplicit, EXS_DeflatedLittleEndianExplicit}) {
    const std::string file = Save(*ff, xfer);
    auto meta = ScanMetaHeader(file);
    ASSERT_TRUE(meta) << Syntax(xfer);
    // What follows is the data set as DCMTK writes it alone, without a meta header.
    const fs::path alone = dir_ / "alone.dcm";
    ASSERT_TRUE(ff->getDataset()->saveFile(alone.c_str(), xfer, EET_ExplicitLength, EGL_withoutGL).good());
    EXPECT_EQ(file.substr(meta->data_set_offset), Bytes(alone)) << Syntax(xfer);
    EXPECT_EQ(meta->data_set_offset, DatasetOffset(file)) << Syntax(xfer);
    EXPECT_EQ(meta->transfer_syntax_uid, Syntax(xfer));
    // The meta header and the data set's first group number are enough; less is not.
    ASSERT_TRUE(ScanMetaHeader(std::string_view(file).substr(0, DatasetOffset(file) + 2)));
    EXPECT_FALSE(ScanMetaHeader(std::string_view(file).substr(0, DatasetOffset(file) + 1)));
    EXPECT_FALSE(ScanMetaHeader(std::string_view(file).substr(0, DatasetOffset(file))));
  }
  EXPECT_FALSE(ScanMetaHeader(std::string(200, '\0')));  // no "DICM"
}

TEST_F(HeaderScanTest, AnyFirstBytesGiveTheWholeAnswerOrNone) {
  auto ff = Full();
  for (E_TransferSyntax xfer : {EXS_LittleEndianImplicit, EXS_LittleEndianExplicit}) {
    for (E_EncodingType enc : {EET_ExplicitLength, EET_UndefinedLength}) {
      const std::string file = Save(*ff, xfer, enc);
      auto want = Dcmtk(file);
      ASSERT_TRUE(want);
      int answered = 0;
      for (size_t n = 0; n <= file.size(); ++n) {
        auto got = ScanFileHeader(std::string_view(file).substr(0, n), false);
        if (!got) continue;
        ++answered;
        ASSERT_EQ(Fields(*got), Fields(*want)) << "first " << n << " bytes";
      }
      EXPECT_GT(answered, 0);  // from the pixel data's header on
    }
  }
}

// Damaged bytes: whenever the scanner answers, DCMTK reads the same bytes to the same record.
TEST_F(HeaderScanTest, DamagedBytesNeverGiveWhatDcmtkWouldNotRead) {
  std::mt19937 rng(20261203);
  auto ff = Full();
  int answered = 0, runs = 0;
  for (E_TransferSyntax xfer : {EXS_LittleEndianImplicit, EXS_LittleEndianExplicit}) {
    for (E_EncodingType enc : {EET_ExplicitLength, EET_UndefinedLength}) {
      const std::string file = Save(*ff, xfer, enc);
      const size_t start = DatasetOffset(file);
      const size_t stop = file.find(std::string("\xe0\x7f\x10\x00", 4), start) + 8;
      for (int i = 0; i < 600; ++i, ++runs) {
        std::string bytes = file;
        const int flips = 1 + static_cast<int>(rng() % 3);
        for (int f = 0; f < flips; ++f) {
          bytes[start + rng() % (stop - start)] = static_cast<char>(rng() & 0xFF);
        }
        auto got = ScanFileHeader(bytes, true);
        if (!got) continue;
        ++answered;
        auto want = Dcmtk(bytes);
        ASSERT_TRUE(want) << "run " << runs << ": DCMTK refuses what the scanner read: " << want.error().message;
        ASSERT_EQ(Fields(*got), Fields(*want)) << "run " << runs;
      }
    }
  }
  EXPECT_GT(answered, runs / 10);  // damage to skipped values is read through
}

}  // namespace
}  // namespace pb::dicom
