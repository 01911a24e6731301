#include "dicom/split_dataset.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcvrobow.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <gtest/gtest.h>

#include "dicom/anonymize_options.h"
#include "dicom/dataset_impl.h"

namespace pb::dicom {
namespace {

namespace fs = std::filesystem;

std::string Bytes(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class SplitDataSetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("pb-split-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::function<fs::path()> SpillPaths() {
    return [this] { return dir_ / ("spill-" + std::to_string(++spills_)); };
  }

  // The attributes every test data set has, with identifying ones for the anonymizer to change.
  static void Identity(DcmDataset& ds) {
    ds.putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
    ds.putAndInsertString(DCM_SOPInstanceUID, "1.2.826.0.1.3680043.2.1143.1");
    ds.putAndInsertString(DCM_StudyInstanceUID, "1.2.826.0.1.3680043.2.1143.2");
    ds.putAndInsertString(DCM_SeriesInstanceUID, "1.2.826.0.1.3680043.2.1143.3");
    ds.putAndInsertString(DCM_PatientName, "Doe^Jane");
    ds.putAndInsertString(DCM_PatientID, "MRN-0042");
    ds.putAndInsertString(DCM_StudyDate, "20240102");
  }
  // A sequence of undefined length whose item holds another, with a small native icon.
  static void Nested(DcmDataset& ds) {
    DcmItem* item = nullptr;
    ds.findOrCreateSequenceItem(DCM_ReferencedStudySequence, item, -2);
    item->putAndInsertString(DCM_ReferencedSOPInstanceUID, "1.2.3.4");
    DcmItem* inner = nullptr;
    item->findOrCreateSequenceItem(DCM_ReferencedSeriesSequence, inner, -2);
    inner->putAndInsertString(DCM_SeriesInstanceUID, "1.2.3.4.5");
    DcmItem* icon = nullptr;
    ds.findOrCreateSequenceItem(DCM_IconImageSequence, icon, -2);
    icon->putAndInsertUint16(DCM_Rows, 64);
    icon->putAndInsertUint16(DCM_Columns, 80);
    const std::string pixels = Bytes(64 * 80, 7);
    icon->putAndInsertUint8Array(DCM_PixelData, reinterpret_cast<const Uint8*>(pixels.data()), pixels.size());
  }
  static void NativePixels(DcmDataset& ds, size_t bytes) {
    ds.putAndInsertUint16(DCM_Rows, 1);
    ds.putAndInsertUint16(DCM_Columns, static_cast<Uint16>(bytes / 2 > 65535 ? 65535 : bytes / 2));
    ds.putAndInsertUint16(DCM_BitsAllocated, 16);
    const std::string pixels = Bytes(bytes, 11);
    ds.putAndInsertUint16Array(DCM_PixelData, reinterpret_cast<const Uint16*>(pixels.data()), bytes / 2);
  }
  static void EncapsulatedPixels(DcmDataset& ds, int fragments, size_t fragment_bytes) {
    auto* seq = new DcmPixelSequence(DCM_PixelSequenceTag);
    seq->insert(new DcmPixelItem(DCM_PixelItemTag));  // the empty Basic Offset Table
    for (int i = 0; i < fragments; ++i) {
      auto* item = new DcmPixelItem(DCM_PixelItemTag);
      const std::string b = Bytes(fragment_bytes, 100 + i);
      item->putUint8Array(reinterpret_cast<const Uint8*>(b.data()), b.size());
      seq->insert(item);
    }
    auto* pixel = new DcmPixelData(DCM_PixelData);
    pixel->putOriginalRepresentation(EXS_JPEGProcess1, nullptr, seq);
    ds.insert(pixel, true);
  }

  // The data set as it comes over the network (no meta header) in `xfer`.
  std::string Encode(DcmDataset& ds, E_TransferSyntax xfer) {
    const fs::path p = dir_ / "encoded";
    EXPECT_TRUE(ds.saveFile(p.c_str(), xfer, EET_UndefinedLength, EGL_withoutGL).good());
    std::string bytes = ReadAll(p);
    fs::remove(p);
    return bytes;
  }

  // The reference: DCMTK's parse of the whole data set in memory, written as Dataset writes.
  std::string InMemoryWrite(const std::string& bytes, const std::string& xfer_uid) {
    const fs::path in = dir_ / "reference.in", out = dir_ / "reference.dcm";
    std::ofstream(in, std::ios::binary) << bytes;
    auto impl = std::make_unique<Dataset::Impl>();
    impl->ds = std::make_unique<DcmDataset>();
    EXPECT_TRUE(impl->ds->loadFile(in.c_str(), DcmXfer(xfer_uid.c_str()).getXfer()).good());
    EXPECT_TRUE(impl->ds->loadAllDataIntoMemory().good());
    impl->transfer_syntax_uid = xfer_uid;
    Dataset d(std::move(impl));
    EXPECT_TRUE(d.Write(out).has_value());
    std::string written = ReadAll(out);
    fs::remove(in);
    fs::remove(out);
    return written;
  }

  // Splits `bytes` fed in chunks of up to `chunk` bytes, and writes what Finish gives.
  struct Split {
    std::unique_ptr<Dataset> data;
    std::string written;
    uint64_t spilled = 0;
    bool walking = false;
  };
  Split SplitAndWrite(const std::string& bytes, const std::string& xfer_uid, size_t chunk,
                      DataSetSplitter::Options options) {
    Split s;
    DataSetSplitter splitter(options, SpillPaths());
    std::mt19937 rng(3);
    for (size_t at = 0; at < bytes.size();) {
      const size_t n = std::min(bytes.size() - at, 1 + rng() % chunk);
      EXPECT_TRUE(splitter.Feed(bytes.data() + at, n));
      at += n;
    }
    s.spilled = splitter.spilled_bytes();
    s.walking = splitter.walking();
    auto data = splitter.Finish(xfer_uid);
    EXPECT_TRUE(data.has_value()) << (data ? "" : data.error().message);
    if (!data) return s;
    s.data = std::move(*data);
    const fs::path out = dir_ / "split.dcm";
    EXPECT_TRUE(s.data->Write(out).has_value());
    s.written = ReadAll(out);
    fs::remove(out);
    return s;
  }

  // Native: whether the pixel data's value is in memory; encapsulated: how many fragments are.
  static size_t PixelDataLoaded(Dataset& d) {
    DcmElement* e = nullptr;
    EXPECT_TRUE(d.impl().ds->findAndGetElement(DCM_PixelData, e).good());
    auto* pixel = dynamic_cast<DcmPixelData*>(e);
    if (!pixel) return 1;
    DcmPixelSequence* seq = nullptr;
    if (pixel->getEncapsulatedRepresentation(DcmXfer(d.transfer_syntax_uid().c_str()).getXfer(), nullptr, seq).good() &&
        seq) {
      size_t loaded = 0;
      for (unsigned long i = 1; i < seq->card(); ++i) {  // item 0: the offset table (empty)
        DcmPixelItem* item = nullptr;
        seq->getItem(item, i);
        loaded += item->valueLoaded() ? 1 : 0;
      }
      return loaded;
    }
    return pixel->valueLoaded() ? 1 : 0;
  }

  size_t FilesInDir() const {
    return static_cast<size_t>(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()));
  }

  static DataSetSplitter::Options Small(bool explicit_vr) {
    DataSetSplitter::Options o;
    o.explicit_vr = explicit_vr;
    o.memory_budget = 64 * 1024;
    return o;
  }

  fs::path dir_;
  int spills_ = 0;
};

TEST_F(SplitDataSetTest, NativePixelDataGoesToTheFileAndIsWrittenFromThereUnchanged) {
  for (E_TransferSyntax xfer : {EXS_LittleEndianExplicit, EXS_LittleEndianImplicit}) {
    DcmDataset ds;
    Identity(ds);
    Nested(ds);
    const std::string blob = Bytes(100 * 1024, 5);  // a private value that crosses the budget
    ds.putAndInsertString(DcmTag(0x0009, 0x0010, EVR_LO), "ACME");
    ds.putAndInsertUint8Array(DcmTag(0x0009, 0x1010, EVR_OB), reinterpret_cast<const Uint8*>(blob.data()), blob.size());
    NativePixels(ds, 3 * 1024 * 1024);
    ds.putAndInsertUint8Array(DCM_DataSetTrailingPadding, reinterpret_cast<const Uint8*>("\0\0\0\0"), 4);
    const std::string uid = DcmXfer(xfer).getXferID();
    const std::string bytes = Encode(ds, xfer);
    for (size_t chunk : {7u, 16384u}) {
      Split s = SplitAndWrite(bytes, uid, chunk, Small(xfer == EXS_LittleEndianExplicit));
      ASSERT_TRUE(s.data) << uid;
      EXPECT_TRUE(s.walking);
      // The pixel data is in the file, and nothing else: the private blob crossed the budget
      // but may identify, so it stays in memory.
      EXPECT_EQ(s.spilled, 3u * 1024 * 1024) << uid;
      EXPECT_EQ(s.written, InMemoryWrite(bytes, uid)) << uid << " in chunks of " << chunk;
      EXPECT_EQ(PixelDataLoaded(*s.data), 0u) << "pixel data read into memory on the way (" << uid << ")";
      EXPECT_EQ(FilesInDir(), 1u);  // the spill file, kept while the data set lives
      s.data.reset();
      EXPECT_EQ(FilesInDir(), 0u) << "the spill file outlived its data set";
    }
  }
}

TEST_F(SplitDataSetTest, EncapsulatedFragmentsGoToTheFile) {
  DcmDataset ds;
  Identity(ds);
  Nested(ds);
  EncapsulatedPixels(ds, 60, 20000);
  const std::string uid = UID_JPEGProcess1TransferSyntax;
  const std::string bytes = Encode(ds, EXS_JPEGProcess1);
  Split s = SplitAndWrite(bytes, uid, 9000, Small(true));
  ASSERT_TRUE(s.data);
  EXPECT_TRUE(s.walking);
  EXPECT_GE(s.spilled, 50u * 20000);  // all fragments after the budget
  EXPECT_LT(s.spilled, 60u * 20000 + 60 * 8);
  EXPECT_EQ(s.written, InMemoryWrite(bytes, uid));
  // The fragments that came before the budget was reached are in memory, no others.
  EXPECT_LE(PixelDataLoaded(*s.data), 10u);
}

TEST_F(SplitDataSetTest, SmallDataSetsStayInMemory) {
  DcmDataset ds;
  Identity(ds);
  NativePixels(ds, 512 * 512 * 2);
  const std::string uid = UID_LittleEndianExplicitTransferSyntax;
  const std::string bytes = Encode(ds, EXS_LittleEndianExplicit);
  Split s = SplitAndWrite(bytes, uid, 16384, DataSetSplitter::Options{});  // the 4 MB default
  ASSERT_TRUE(s.data);
  EXPECT_EQ(s.spilled, 0u);
  EXPECT_EQ(FilesInDir(), 0u);
  EXPECT_EQ(s.written, InMemoryWrite(bytes, uid));
}

// A private sequence whose VR the sender did not know: explicit VR UN of undefined length, its
// items in implicit VR (PS3.5 6.2.2), written by hand since DCMTK would write it as SQ.
TEST_F(SplitDataSetTest, UnknownSequencesAreWalkedInImplicitVr) {
  auto tag = [](uint16_t g, uint16_t e) {
    return std::string{char(g & 0xFF), char(g >> 8), char(e & 0xFF), char(e >> 8)};
  };
  auto u32 = [](uint32_t v) {
    return std::string{char(v & 0xFF), char((v >> 8) & 0xFF), char((v >> 16) & 0xFF), char(v >> 24)};
  };
  auto u16 = [](uint16_t v) { return std::string{char(v & 0xFF), char(v >> 8)}; };
  auto shortel = [&](uint16_t g, uint16_t e, const char* vr, const std::string& v) {
    return tag(g, e) + vr + u16(static_cast<uint16_t>(v.size())) + v;
  };
  const std::string inner = Bytes(200000, 9);
  const std::string pixels = Bytes(300000, 10);
  std::string bytes =
      shortel(0x0008, 0x0016, "UI", std::string(UID_SecondaryCaptureImageStorage) + std::string(1, '\0'));
  bytes += shortel(0x0008, 0x0018, "UI", "1.2.3.4.5.67");
  bytes += shortel(0x0009, 0x0010, "LO", "ACME");
  bytes += tag(0x0009, 0x1001) + "UN" + u16(0) + u32(0xFFFFFFFF);
  bytes += tag(0xFFFE, 0xE000) + u32(0xFFFFFFFF);
  bytes += tag(0x0009, 0x1002) + u32(static_cast<uint32_t>(inner.size())) + inner;  // implicit VR
  bytes += tag(0xFFFE, 0xE00D) + u32(0) + tag(0xFFFE, 0xE0DD) + u32(0);
  bytes += shortel(0x0010, 0x0010, "PN", "Doe^Jane");
  bytes += tag(0x7FE0, 0x0010) + "OW" + u16(0) + u32(static_cast<uint32_t>(pixels.size())) + pixels;
  const std::string uid = UID_LittleEndianExplicitTransferSyntax;
  Split s = SplitAndWrite(bytes, uid, 5000, Small(true));
  ASSERT_TRUE(s.data);
  EXPECT_TRUE(s.walking) << "the UN sequence was not followed";
  EXPECT_EQ(s.spilled, pixels.size());  // the private value inside stays in memory
  EXPECT_EQ(s.written, InMemoryWrite(bytes, uid));
  EXPECT_EQ(s.data->Get(0x00100010).value_or(""), "Doe^Jane");  // after the sequence, in memory
}

TEST_F(SplitDataSetTest, AnonymizesWithoutReadingThePixelData) {
  DcmDataset ds;
  Identity(ds);
  NativePixels(ds, 2 * 1024 * 1024);
  const std::string uid = UID_LittleEndianExplicitTransferSyntax;
  const std::string bytes = Encode(ds, EXS_LittleEndianExplicit);
  DataSetSplitter splitter(Small(true), SpillPaths());
  ASSERT_TRUE(splitter.Feed(bytes.data(), bytes.size()));
  auto data = splitter.Finish(uid);
  ASSERT_TRUE(data.has_value());
  AnonymizeOptions o;
  o.secret = "a site secret of 32 characters..";
  o.subject_label = "SUBJ_1";
  auto anonymized = (*data)->Anonymize(o);
  ASSERT_TRUE(anonymized.has_value()) << anonymized.error().message;
  const fs::path out = dir_ / "anon.dcm";
  ASSERT_TRUE((*data)->Write(out).has_value());
  EXPECT_EQ(PixelDataLoaded(**data), 0u);
  auto back = Dataset::Read(out);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ((*back)->Get(0x00100010).value_or(""), "SUBJ_1");
  EXPECT_NE((*back)->Get(0x00100020).value_or("MRN-0042"), "MRN-0042");
  DcmElement* e = nullptr;
  ASSERT_TRUE((*back)->impl().ds->findAndGetElement(DCM_PixelData, e).good());
  Uint8* got = nullptr;
  ASSERT_TRUE(e->getUint8Array(got).good());
  const std::string pixels = Bytes(2 * 1024 * 1024, 11);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(got), e->getLength()), pixels);
}

TEST_F(SplitDataSetTest, AStructureItCannotFollowStaysInMemory) {
  std::string bytes = std::string(
      "\x08\x00\x18\x00"
      "ZZ\x04\x00"
      "1.23",
      12);
  bytes += std::string(200000, 'x');
  DataSetSplitter splitter(Small(true), SpillPaths());
  ASSERT_TRUE(splitter.Feed(bytes.data(), bytes.size()));
  EXPECT_FALSE(splitter.walking());
  EXPECT_EQ(splitter.spilled_bytes(), 0u);
  EXPECT_EQ(splitter.memory_bytes(), bytes.size());
}

TEST_F(SplitDataSetTest, ATruncatedDataSetIsRefusedAndItsSpillFileRemoved) {
  DcmDataset ds;
  Identity(ds);
  NativePixels(ds, 1024 * 1024);
  const std::string bytes = Encode(ds, EXS_LittleEndianExplicit);
  {
    DataSetSplitter splitter(Small(true), SpillPaths());
    ASSERT_TRUE(splitter.Feed(bytes.data(), bytes.size() - 1000));
    EXPECT_GT(splitter.spilled_bytes(), 0u);
    auto data = splitter.Finish(UID_LittleEndianExplicitTransferSyntax);
    ASSERT_FALSE(data.has_value());
    EXPECT_NE(data.error().message.find("cannot be read"), std::string::npos) << data.error().message;
  }
  EXPECT_EQ(FilesInDir(), 0u);
  {
    DataSetSplitter splitter(Small(true), SpillPaths());  // never finished: the peer went away
    ASSERT_TRUE(splitter.Feed(bytes.data(), bytes.size() / 2));
    EXPECT_EQ(FilesInDir(), 1u);
  }
  EXPECT_EQ(FilesInDir(), 0u);
}

TEST_F(SplitDataSetTest, ASpillFileThatCannotBeWrittenFailsTheFeed) {
  DcmDataset ds;
  Identity(ds);
  NativePixels(ds, 1024 * 1024);
  const std::string bytes = Encode(ds, EXS_LittleEndianExplicit);
  DataSetSplitter splitter(Small(true), [this] { return dir_ / "missing" / "spill"; });
  EXPECT_FALSE(splitter.Feed(bytes.data(), bytes.size()));
  EXPECT_TRUE(splitter.write_failed());
  EXPECT_FALSE(splitter.Finish(UID_LittleEndianExplicitTransferSyntax).has_value());
}

}  // namespace
}  // namespace pb::dicom
