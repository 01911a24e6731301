#include "dicom/anonymize.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdicent.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcelem.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcuid.h>

#include "core/validate.h"
#include "dicom/anonymize_table.h"

namespace pb::dicom {
namespace {

constexpr char kSecret[] = "0123456789abcdef-unit-test";
constexpr char kMarker[] = "ORIGINAL";
constexpr char kDate[] = "20240115";
constexpr char kTime[] = "101500";
constexpr char kDateTime[] = "20240115101500";
constexpr char kPatientName[] = "ORIGINAL^PATIENT";
constexpr char kPatientId[] = "ORIGINAL-ID-42";
// The UID the item put into every sequence refers to.
constexpr char kNestedUid[] = "1.2.826.0.1.3680043.10.999.1000000";

std::string Uid(size_t i) { return "1.2.826.0.1.3680043.10.999." + std::to_string(i + 1); }

DcmEVR DictionaryVr(uint16_t g, uint16_t e) {
  const DcmDataDictionary& dict = dcmDataDict.rdlock();
  const DcmDictEntry* entry = dict.findEntry(DcmTagKey(g, e), nullptr);
  DcmEVR vr = entry ? entry->getEVR() : EVR_UNKNOWN;
  dcmDataDict.rdunlock();
  return vr;
}

std::string Get(DcmItem& item, const DcmTagKey& key) {
  OFString v;
  if (item.findAndGetOFStringArray(key, v).bad()) return {};
  return v.c_str();
}

std::string Value(DcmElement& elem) {
  OFString v;
  elem.getOFStringArray(v);
  return std::string(v.c_str(), v.length());
}

// An item holding attributes that identify, for the table's sequences and the kept ones.
DcmItem* IdentifyingItem() {
  auto* item = new DcmItem;
  item->putAndInsertString(DCM_InstitutionName, "ORIGINAL HOSPITAL");
  item->putAndInsertString(DCM_ReferencedSOPInstanceUID, kNestedUid);
  item->putAndInsertString(DCM_PatientName, "ORIGINAL^NESTED");
  item->putAndInsertString(DcmTag(0x0019, 0x0010, EVR_LO), "ORIGINAL NESTED CREATOR");
  item->putAndInsertString(DcmTag(0x0019, 0x1001, EVR_LO), "ORIGINAL nested private");
  return item;
}

// A value valid for the VR; text VRs carry the marker.
std::string ValueFor(DcmEVR vr, size_t index) {
  switch (vr) {
    case EVR_DA:
      return kDate;
    case EVR_TM:
      return kTime;
    case EVR_DT:
      return kDateTime;
    case EVR_AS:
      return "045Y";
    case EVR_DS:
      return "12.5";
    case EVR_IS:
    case EVR_US:
    case EVR_SS:
    case EVR_UL:
    case EVR_SL:
      return "7";
    case EVR_UI:
      return Uid(index);
    case EVR_UR:
      return "http://original.example/ORIGINAL";
    default:
      return kMarker;
  }
}

struct Fixture {
  DcmDataset ds;
  std::map<const ProfileEntry*, std::string> original;  // value put in, per row in the data set
  std::set<std::string> uids;
};

// A data set with every attribute of the table that DCMTK's dictionary knows, a private block,
// the repeating groups the profile removes and image attributes that must stay.
void Build(Fixture& f) {
  size_t index = 0;
  for (const ProfileEntry& row : ProfileTable()) {
    ++index;
    const DcmEVR vr = DictionaryVr(row.group, row.element);
    if (vr == EVR_UNKNOWN) continue;
    const DcmTagKey key(row.group, row.element);
    std::string value;
    if (key == DCM_PatientName) {
      value = kPatientName;
    } else if (key == DCM_PatientID) {
      value = kPatientId;
    } else if (vr != EVR_SQ) {
      value = ValueFor(vr, index);
    }
    DcmElement* elem = DcmItem::newDicomElement(key);
    ASSERT_NE(elem, nullptr) << key.toString();
    if (vr == EVR_SQ) {
      static_cast<DcmSequenceOfItems*>(elem)->insert(IdentifyingItem());
      value = "1 item";
    } else if (vr == EVR_OB || vr == EVR_OW || vr == EVR_UN) {
      ASSERT_TRUE(elem->putUint8Array(reinterpret_cast<const Uint8*>(kMarker), 8).good());
    } else {
      ASSERT_TRUE(elem->putString(value.c_str()).good()) << key.toString();
    }
    ASSERT_TRUE(f.ds.insert(elem, true).good()) << key.toString();
    f.original[&row] = value;
    if (vr == EVR_UI) f.uids.insert(value);
  }
  f.uids.insert(kNestedUid);
  f.ds.putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
  f.ds.putAndInsertUint16(DCM_Rows, 2);
  f.ds.putAndInsertUint16(DCM_Columns, 2);
  const Uint16 pixels[4] = {1, 2, 3, 4};
  f.ds.putAndInsertUint16Array(DCM_PixelData, pixels, 4);
  f.ds.putAndInsertString(DcmTag(0x0009, 0x0010, EVR_LO), "ORIGINAL CREATOR");
  f.ds.putAndInsertString(DcmTag(0x0009, 0x1001, EVR_LO), "ORIGINAL private");
  f.ds.putAndInsertUint16(DcmTag(0x0009, 0x1002, EVR_US), 9);
  f.ds.putAndInsertString(DcmTag(0x6000, 0x4000, EVR_LT), "ORIGINAL overlay comment");
  f.ds.putAndInsertUint16(DcmTag(0x6000, 0x0010, EVR_US), 2);
  f.ds.putAndInsertString(DcmTag(0x5000, 0x0022, EVR_LO), "ORIGINAL curve");
  f.ds.putAndInsertUint32(DcmTag(0x0008, 0x0000, EVR_UL), 1234);
  // A sequence the profile does not name: kept, its content processed.
  f.ds.insertSequenceItem(DCM_AnatomicRegionSequence, IdentifyingItem());
}

std::string Shifted(const std::string& yyyymmdd, int days) {
  using namespace std::chrono;
  const year_month_day ymd{year{std::stoi(yyyymmdd.substr(0, 4))},
                           month{static_cast<unsigned>(std::stoi(yyyymmdd.substr(4, 2)))},
                           day{static_cast<unsigned>(std::stoi(yyyymmdd.substr(6, 2)))}};
  const year_month_day r{sys_days{ymd} + std::chrono::days{days}};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d%02u%02u", static_cast<int>(r.year()), static_cast<unsigned>(r.month()),
                static_cast<unsigned>(r.day()));
  return buf;
}

enum class Want { kAbsent, kEmpty, kChanged, kMapped, kSame, kShifted, kSubject };

// What the profile asks for a row, worked out here from the table's letters on their own.
Want Expected(const ProfileEntry& row, DcmEVR vr, const AnonymizeOptions& o) {
  const DcmTagKey key(row.group, row.element);
  if (key == DCM_PatientName || key == DCM_PatientID) return Want::kSubject;
  if (o.retain_uids && row.retain_uids == Action::K) return Want::kSame;
  if (o.retain_device_identity &&
      (row.retain_device_identity == Action::K || row.retain_device_identity == Action::C)) {
    return Want::kSame;
  }
  if (o.retain_dates && row.retain_dates == Action::C) {
    return vr == EVR_DA || vr == EVR_DT ? Want::kShifted : Want::kSame;
  }
  switch (row.basic) {
    case Action::X:
    case Action::XZ:
    case Action::XD:
    case Action::XZD:
      return Want::kAbsent;
    case Action::Z:
    case Action::ZD:
      return Want::kEmpty;
    case Action::D:
      return vr == EVR_UI ? Want::kMapped : Want::kChanged;
    case Action::U:
    case Action::XZU:
      return vr == EVR_UI ? Want::kMapped : Want::kSame;
    default:
      ADD_FAILURE() << "unexpected basic action for " << key.toString();
      return Want::kSame;
  }
}

// Checks each row of the table against what the options ask for.
void CheckEveryRow(const AnonymizeOptions& options) {
  Fixture f;
  ASSERT_NO_FATAL_FAILURE(Build(f));
  ASSERT_GT(f.original.size(), 550u);
  const std::string original_id = kPatientId, original_name = kPatientName;
  auto r = Anonymize(f.ds, options);
  ASSERT_TRUE(r) << r.error().message;
  const int shift = DateShiftDays(original_id + "|" + original_name, options.secret);
  const std::string label = options.subject_label.empty() ? "ANONYMOUS" : options.subject_label;
  for (const auto& [row, before] : f.original) {
    const DcmTagKey key(row->group, row->element);
    const DcmEVR vr = DictionaryVr(row->group, row->element);
    const std::string what = std::string(key.toString().c_str()) + " " + DcmTag(key).getTagName();
    DcmElement* elem = nullptr;
    const bool present = f.ds.findAndGetElement(key, elem).good() && elem != nullptr;
    const Want want = Expected(*row, vr, options);
    if (want == Want::kAbsent) {
      EXPECT_FALSE(present) << what << " should be removed";
      continue;
    }
    if (!present) {
      ADD_FAILURE() << what << " should be present";
      continue;
    }
    if (vr == EVR_SQ) {
      auto* sq = static_cast<DcmSequenceOfItems*>(elem);
      if (want == Want::kEmpty || want == Want::kChanged) {
        EXPECT_EQ(sq->card(), 0u) << what;
      } else {  // kept (U* or an option's K): its item is kept and processed
        ASSERT_EQ(sq->card(), 1u) << what;
        DcmItem* item = sq->getItem(0);
        EXPECT_FALSE(item->tagExists(DCM_InstitutionName)) << what;
        EXPECT_FALSE(item->tagExists(DcmTagKey(0x0019, 0x1001))) << what;
        EXPECT_EQ(Get(*item, DCM_ReferencedSOPInstanceUID),
                  options.retain_uids ? kNestedUid : MapUid(kNestedUid, options.secret))
            << what;
        EXPECT_EQ(Get(*item, DCM_PatientName), label) << what;
      }
      continue;
    }
    const std::string after =
        vr == EVR_OB || vr == EVR_OW || vr == EVR_UN ? std::to_string(elem->getLengthField()) : Value(*elem);
    const std::string was = vr == EVR_OB || vr == EVR_OW || vr == EVR_UN ? "8" : before;
    switch (want) {
      case Want::kEmpty:
        EXPECT_EQ(elem->getLengthField(), 0u) << what;
        break;
      case Want::kChanged:
        EXPECT_NE(after, was) << what;
        break;
      case Want::kMapped:
        EXPECT_EQ(after, MapUid(before, options.secret)) << what;
        break;
      case Want::kSame:
        EXPECT_EQ(after, was) << what;
        break;
      case Want::kShifted:
        EXPECT_EQ(after, Shifted(kDate, shift) + (vr == EVR_DT ? std::string(kTime) : "")) << what;
        break;
      case Want::kSubject:
        EXPECT_EQ(after, label) << what;
        break;
      case Want::kAbsent:
        break;
    }
  }
}

// Every element of the tree, items of sequences included.
void Walk(DcmItem& item, const std::function<void(DcmElement&)>& visit) {
  for (unsigned long i = 0; i < item.card(); ++i) {
    DcmElement* elem = item.getElement(i);
    visit(*elem);
    if (elem->ident() == EVR_SQ) {
      auto* sq = static_cast<DcmSequenceOfItems*>(elem);
      for (unsigned long j = 0; j < sq->card(); ++j) Walk(*sq->getItem(j), visit);
    }
  }
}

TEST(Anonymize, AppliesTheBasicProfileActionToEveryAttributeOfTheTable) {
  AnonymizeOptions o;
  o.secret = kSecret;
  CheckEveryRow(o);
}

TEST(Anonymize, AppliesEachOptionColumnToEveryAttributeOfTheTable) {
  for (int mask = 1; mask < 8; ++mask) {
    SCOPED_TRACE(mask);
    AnonymizeOptions o;
    o.secret = kSecret;
    o.subject_label = "SUBJ-007";
    o.retain_uids = mask & 1;
    o.retain_device_identity = mask & 2;
    o.retain_dates = mask & 4;
    CheckEveryRow(o);
  }
}

TEST(Anonymize, LeavesNoOriginalIdentifyingValueAnywhereInTheTree) {
  Fixture f;
  ASSERT_NO_FATAL_FAILURE(Build(f));
  AnonymizeOptions o;
  o.secret = kSecret;
  ASSERT_TRUE(Anonymize(f.ds, o));
  size_t visited = 0;
  Walk(f.ds, [&](DcmElement& elem) {
    ++visited;
    const std::string what = elem.getTag().getXTag().toString().c_str();
    EXPECT_NE(elem.getGTag() % 2, 1) << "private " << what;
    EXPECT_NE(elem.getETag(), 0) << "group length " << what;
    if (elem.ident() == EVR_SQ) return;
    std::string text;
    if (elem.ident() == EVR_OB || elem.ident() == EVR_UN) {
      Uint8* bytes = nullptr;
      if (elem.getUint8Array(bytes).good() && bytes) {
        text.assign(reinterpret_cast<const char*>(bytes), elem.getLengthField());
      }
    } else {
      text = Value(elem);
    }
    EXPECT_EQ(text.find(kMarker), std::string::npos) << what << " = " << text;
    EXPECT_EQ(f.uids.count(text), 0u) << what << " keeps an original UID";
    EXPECT_NE(text, kDate) << what;
    EXPECT_NE(text, kTime) << what;
    EXPECT_NE(text, kDateTime) << what;
  });
  EXPECT_GT(visited, 100u);
  EXPECT_FALSE(f.ds.tagExists(DcmTagKey(0x6000, 0x4000)));
  EXPECT_FALSE(f.ds.tagExists(DcmTagKey(0x5000, 0x0022)));
  EXPECT_TRUE(f.ds.tagExists(DcmTagKey(0x6000, 0x0010)));
}

TEST(Anonymize, ProcessesSequencesTheProfileDoesNotName) {
  Fixture f;
  ASSERT_NO_FATAL_FAILURE(Build(f));
  AnonymizeOptions o;
  o.secret = kSecret;
  ASSERT_TRUE(Anonymize(f.ds, o));
  DcmItem* item = nullptr;
  ASSERT_TRUE(f.ds.findAndGetSequenceItem(DCM_AnatomicRegionSequence, item, 0).good());
  EXPECT_FALSE(item->tagExists(DCM_InstitutionName));
  EXPECT_EQ(Get(*item, DCM_PatientName), "ANONYMOUS");
  EXPECT_EQ(Get(*item, DCM_ReferencedSOPInstanceUID), MapUid(kNestedUid, kSecret));
  EXPECT_FALSE(item->tagExists(DcmTagKey(0x0019, 0x0010)));
}

TEST(Anonymize, KeepsImageAttributesAndRecordsTheMethod) {
  Fixture f;
  ASSERT_NO_FATAL_FAILURE(Build(f));
  AnonymizeOptions o;
  o.secret = kSecret;
  ASSERT_TRUE(Anonymize(f.ds, o));
  EXPECT_EQ(Get(f.ds, DCM_SOPClassUID), UID_SecondaryCaptureImageStorage);
  Uint16 rows = 0;
  EXPECT_TRUE(f.ds.findAndGetUint16(DCM_Rows, rows).good());
  EXPECT_EQ(rows, 2);
  const Uint16* pixels = nullptr;
  ASSERT_TRUE(f.ds.findAndGetUint16Array(DCM_PixelData, pixels).good());
  EXPECT_EQ(pixels[3], 4);
  EXPECT_EQ(Get(f.ds, DCM_PatientIdentityRemoved), "YES");
  EXPECT_NE(Get(f.ds, DCM_DeidentificationMethod).find("Basic Application Level Confidentiality"), std::string::npos);
  EXPECT_EQ(Get(f.ds, DCM_LongitudinalTemporalInformationModified), "REMOVED");
  DcmItem* code = nullptr;
  ASSERT_TRUE(f.ds.findAndGetSequenceItem(DCM_DeidentificationMethodCodeSequence, code, 0).good());
  EXPECT_EQ(Get(*code, DCM_CodeValue), "113100");
  EXPECT_EQ(Get(*code, DCM_CodingSchemeDesignator), "DCM");
  EXPECT_EQ(Get(*code, DCM_CodeMeaning), "Basic Application Confidentiality Profile");
  EXPECT_FALSE(f.ds.findAndGetSequenceItem(DCM_DeidentificationMethodCodeSequence, code, 1).good());
}

TEST(Anonymize, RecordsEveryOptionUsed) {
  DcmDataset ds;
  AnonymizeOptions o;
  o.secret = kSecret;
  o.retain_uids = o.retain_device_identity = o.retain_dates = true;
  ASSERT_TRUE(Anonymize(ds, o));
  std::vector<std::string> codes;
  for (long i = 0;; ++i) {
    DcmItem* item = nullptr;
    if (ds.findAndGetSequenceItem(DCM_DeidentificationMethodCodeSequence, item, i).bad()) break;
    codes.push_back(Get(*item, DCM_CodeValue));
    EXPECT_EQ(Get(*item, DCM_CodingSchemeDesignator), "DCM");
    EXPECT_FALSE(Get(*item, DCM_CodeMeaning).empty());
  }
  EXPECT_EQ(codes, (std::vector<std::string>{"113100", "113108", "113109", "113107"}));
  const std::string method = Get(ds, DCM_DeidentificationMethod);
  EXPECT_NE(method.find("Retain UIDs Option"), std::string::npos) << method;
  EXPECT_NE(method.find("Retain Device Identity Option"), std::string::npos) << method;
  EXPECT_NE(method.find("Modified Dates Option"), std::string::npos) << method;
  EXPECT_EQ(Get(ds, DCM_LongitudinalTemporalInformationModified), "MODIFIED");
  DcmElement* elem = nullptr;
  ASSERT_TRUE(ds.findAndGetElement(DCM_DeidentificationMethod, elem).good());
  for (unsigned long i = 0; i < elem->getVM(); ++i) {
    OFString v;
    elem->getOFString(v, i);
    EXPECT_LE(v.length(), 64u) << "LO value too long: " << v;
  }
}

TEST(Anonymize, RemovesPrivateAttributesUnlessAskedToKeepThem) {
  for (bool keep : {false, true}) {
    Fixture f;
    ASSERT_NO_FATAL_FAILURE(Build(f));
    AnonymizeOptions o;
    o.secret = kSecret;
    o.keep_private_tags = keep;
    ASSERT_TRUE(Anonymize(f.ds, o));
    EXPECT_EQ(f.ds.tagExists(DcmTagKey(0x0009, 0x0010)), keep);
    EXPECT_EQ(f.ds.tagExists(DcmTagKey(0x0009, 0x1001)), keep);
    EXPECT_EQ(f.ds.tagExists(DcmTagKey(0x0009, 0x1002)), keep);
    DcmItem* item = nullptr;
    ASSERT_TRUE(f.ds.findAndGetSequenceItem(DCM_AnatomicRegionSequence, item, 0).good());
    EXPECT_EQ(item->tagExists(DcmTagKey(0x0019, 0x1001)), keep);
  }
}

TEST(Anonymize, ReplacesPatientNameAndIdWithTheSubjectLabel) {
  DcmDataset ds;
  ds.putAndInsertString(DCM_PatientName, "DOE^JOHN");
  ds.putAndInsertString(DCM_PatientID, "12345");
  AnonymizeOptions o;
  o.secret = kSecret;
  o.subject_label = "TRIAL-0042";
  ASSERT_TRUE(Anonymize(ds, o));
  EXPECT_EQ(Get(ds, DCM_PatientName), "TRIAL-0042");
  EXPECT_EQ(Get(ds, DCM_PatientID), "TRIAL-0042");
  o.subject_label.clear();
  ASSERT_TRUE(Anonymize(ds, o));
  EXPECT_EQ(Get(ds, DCM_PatientName), "ANONYMOUS");
}

TEST(Anonymize, RefusesAShortSecretAndAnUnusableSubjectLabel) {
  DcmDataset ds;
  ds.putAndInsertString(DCM_PatientName, "DOE^JOHN");
  AnonymizeOptions o;
  o.secret = "too short";
  auto r = Anonymize(ds, o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalidArgument);
  EXPECT_EQ(r.error().field, "secret");
  EXPECT_EQ(Get(ds, DCM_PatientName), "DOE^JOHN");  // untouched
  o.secret = kSecret;
  for (const std::string& bad : {std::string(65, 'A'), std::string("A\\B"), std::string("A\nB")}) {
    o.subject_label = bad;
    r = Anonymize(ds, o);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().field, "subject_label");
  }
}

TEST(Anonymize, SurvivesEmptyOddAndDeeplyNestedInput) {
  AnonymizeOptions o;
  o.secret = kSecret;
  o.retain_dates = true;
  {
    DcmDataset empty;
    EXPECT_TRUE(Anonymize(empty, o));
    EXPECT_EQ(Get(empty, DCM_PatientIdentityRemoved), "YES");
  }
  DcmDataset ds;  // no Patient ID; empty values; dates that are not dates; unknown VRs
  ds.insertEmptyElement(DCM_StudyInstanceUID);
  ds.insertEmptyElement(DCM_StudyDate);
  ds.putAndInsertString(DCM_SeriesDate, "2024.01.15");
  ds.putAndInsertString(DCM_AcquisitionDateTime, "2024");
  ds.putAndInsertString(DCM_ContentDate, "20240231");
  ds.putAndInsertString(DCM_InstanceCreationDate, "20240101-20240131");
  ds.putAndInsertString(DCM_SeriesInstanceUID, "1.2.3\\1.2.4");
  DcmElement* un = nullptr;
  ASSERT_TRUE(DcmItem::newDicomElementWithVR(un, DcmTag(0x0020, 0x0052, EVR_UN)).good());
  un->putUint8Array(reinterpret_cast<const Uint8*>("1.2.3.4\0"), 8);
  ds.insert(un);
  DcmElement* un_name = nullptr;
  ASSERT_TRUE(DcmItem::newDicomElementWithVR(un_name, DcmTag(0x0010, 0x0010, EVR_UN)).good());
  un_name->putUint8Array(reinterpret_cast<const Uint8*>("DOE^JANE"), 8);
  ds.insert(un_name);
  DcmItem* level = &ds;
  for (int depth = 0; depth < 200; ++depth) {
    auto* item = new DcmItem;
    item->putAndInsertString(DCM_SOPInstanceUID, "1.2.3.4");
    item->putAndInsertString(DCM_OperatorsName, "ORIGINAL^OPERATOR");
    ASSERT_TRUE(level->insertSequenceItem(DCM_AnatomicRegionSequence, item).good());
    level = item;
  }
  auto r = Anonymize(ds, o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(Get(ds, DCM_StudyInstanceUID), "");
  EXPECT_EQ(Get(ds, DCM_StudyDate), "");
  EXPECT_EQ(Get(ds, DCM_SeriesDate), "");           // not a date: emptied
  EXPECT_EQ(Get(ds, DCM_AcquisitionDateTime), "");  // no full date: emptied
  EXPECT_EQ(Get(ds, DCM_ContentDate), "");
  const int shift = DateShiftDays("|DOE^JANE", kSecret);  // Patient Name read from the UN
  EXPECT_EQ(Get(ds, DCM_InstanceCreationDate), Shifted("20240101", shift) + "-" + Shifted("20240131", shift));
  EXPECT_EQ(Get(ds, DCM_SeriesInstanceUID), MapUid("1.2.3", kSecret) + "\\" + MapUid("1.2.4", kSecret));
  ASSERT_TRUE(ds.findAndGetElement(DcmTagKey(0x0020, 0x0052), un).good());
  Uint8* bytes = nullptr;
  ASSERT_TRUE(un->getUint8Array(bytes).good());
  std::string mapped(reinterpret_cast<const char*>(bytes), un->getLengthField());
  EXPECT_EQ(mapped.substr(0, mapped.find('\0')), MapUid("1.2.3.4", kSecret));
  int depth = 0;
  Walk(ds, [&](DcmElement& elem) {
    if (elem.getTag().getXTag() == DCM_SOPInstanceUID) {
      ++depth;
      EXPECT_EQ(Value(elem), MapUid("1.2.3.4", kSecret));
    }
    EXPECT_NE(elem.getTag().getXTag(), DCM_OperatorsName);
  });
  EXPECT_EQ(depth, 200);
}

TEST(Anonymize, RetainDeviceIdentityKeepsTheDevice) {
  DcmDataset ds;
  ds.putAndInsertString(DCM_DeviceSerialNumber, "SN-1234");
  ds.putAndInsertString(DCM_StationName, "CT01");
  ds.putAndInsertString(DCM_InstitutionName, "General Hospital");
  AnonymizeOptions o;
  o.secret = kSecret;
  DcmDataset copy(ds);
  ASSERT_TRUE(Anonymize(copy, o));
  EXPECT_FALSE(copy.tagExists(DCM_DeviceSerialNumber));
  EXPECT_FALSE(copy.tagExists(DCM_StationName));
  o.retain_device_identity = true;
  ASSERT_TRUE(Anonymize(ds, o));
  EXPECT_EQ(Get(ds, DCM_DeviceSerialNumber), "SN-1234");
  EXPECT_EQ(Get(ds, DCM_StationName), "CT01");
  EXPECT_FALSE(ds.tagExists(DCM_InstitutionName));
}

TEST(Anonymize, RetainUidsKeepsUids) {
  DcmDataset ds;
  ds.putAndInsertString(DCM_StudyInstanceUID, "1.2.3.1");
  ds.putAndInsertString(DCM_SOPInstanceUID, "1.2.3.2");
  AnonymizeOptions o;
  o.secret = kSecret;
  o.retain_uids = true;
  ASSERT_TRUE(Anonymize(ds, o));
  EXPECT_EQ(Get(ds, DCM_StudyInstanceUID), "1.2.3.1");
  EXPECT_EQ(Get(ds, DCM_SOPInstanceUID), "1.2.3.2");
}

DcmDataset Patient(const char* id, const char* name, const char* study_date, const char* series_date) {
  DcmDataset ds;
  ds.putAndInsertString(DCM_PatientID, id);
  ds.putAndInsertString(DCM_PatientName, name);
  ds.putAndInsertString(DCM_StudyDate, study_date);
  ds.putAndInsertString(DCM_SeriesDate, series_date);
  ds.putAndInsertString(DCM_StudyTime, "083000");
  ds.putAndInsertString(DCM_AcquisitionDateTime, "20240110093000.25+0100");
  return ds;
}

TEST(Anonymize, RetainDatesShiftsEveryDateOfAPatientByTheSameDays) {
  AnonymizeOptions o;
  o.secret = kSecret;
  o.retain_dates = true;
  DcmDataset first = Patient("PID-1", "DOE^JOHN", "20240115", "20240110");
  DcmDataset second = Patient("PID-1", "DOE^JOHN", "20230301", "20230302");
  ASSERT_TRUE(Anonymize(first, o));
  ASSERT_TRUE(Anonymize(second, o));
  const int shift = DateShiftDays("PID-1|DOE^JOHN", kSecret);  // from the original identity
  EXPECT_EQ(Get(first, DCM_StudyDate), Shifted("20240115", shift));
  EXPECT_EQ(Get(first, DCM_SeriesDate), Shifted("20240110", shift));
  EXPECT_EQ(Get(first, DCM_AcquisitionDateTime), Shifted("20240110", shift) + "093000.25+0100");
  EXPECT_EQ(Get(first, DCM_StudyTime), "083000");
  EXPECT_EQ(Get(second, DCM_StudyDate), Shifted("20230301", shift));
  EXPECT_EQ(Get(second, DCM_SeriesDate), Shifted("20230302", shift));
  EXPECT_EQ(Get(first, DCM_LongitudinalTemporalInformationModified), "MODIFIED");
}

TEST(Anonymize, DifferentPatientsGetDifferentDateShifts) {
  AnonymizeOptions o;
  o.secret = kSecret;
  o.retain_dates = true;
  DcmDataset a = Patient("PID-1", "DOE^JOHN", "20240115", "20240115");
  DcmDataset b = Patient("PID-2", "ROE^JANE", "20240115", "20240115");
  ASSERT_TRUE(Anonymize(a, o));
  ASSERT_TRUE(Anonymize(b, o));
  EXPECT_NE(Get(a, DCM_StudyDate), Get(b, DCM_StudyDate));
  EXPECT_NE(DateShiftDays("PID-1|DOE^JOHN", kSecret), DateShiftDays("PID-2|ROE^JANE", kSecret));
}

TEST(Anonymize, ReferencesBetweenInstancesStayConsistent) {
  AnonymizeOptions o;
  o.secret = kSecret;
  DcmDataset image;
  image.putAndInsertString(DCM_SOPInstanceUID, "1.2.3.4.5.6");
  DcmDataset report;
  auto* ref = new DcmItem;
  ref->putAndInsertString(DCM_ReferencedSOPClassUID, UID_CTImageStorage);
  ref->putAndInsertString(DCM_ReferencedSOPInstanceUID, "1.2.3.4.5.6");
  report.insertSequenceItem(DCM_SourceImageSequence, ref);
  ASSERT_TRUE(Anonymize(image, o));
  ASSERT_TRUE(Anonymize(report, o));
  DcmItem* item = nullptr;
  ASSERT_TRUE(report.findAndGetSequenceItem(DCM_SourceImageSequence, item, 0).good());
  EXPECT_EQ(Get(*item, DCM_ReferencedSOPInstanceUID), Get(image, DCM_SOPInstanceUID));
  EXPECT_EQ(Get(*item, DCM_ReferencedSOPClassUID), UID_CTImageStorage);
  EXPECT_NE(Get(image, DCM_SOPInstanceUID), "1.2.3.4.5.6");
}

TEST(MapUid, IsADeterministicValidUidThatDependsOnTheSecret) {
  const std::string uid = "1.2.840.113619.2.55.3.604688119.971.1234567890.123";
  const std::string a = MapUid(uid, kSecret);
  EXPECT_EQ(a, MapUid(uid, kSecret));
  EXPECT_EQ(a, MapUid(uid + std::string(1, '\0'), kSecret));  // padding does not count
  EXPECT_TRUE(IsValidUid(a)) << a;
  EXPECT_LE(a.size(), 64u);
  EXPECT_EQ(a.rfind("2.25.", 0), 0u) << a;
  EXPECT_NE(a, MapUid(uid, "another-secret-of-16+"));
  // HMAC-SHA256("0123456789abcdef", "1.2.3"), first 16 bytes as a decimal number.
  EXPECT_EQ(MapUid("1.2.3", "0123456789abcdef"), "2.25.265779070829976282664916940014600137748");
}

TEST(MapUid, DistinctUidsGiveDistinctResults) {
  std::set<std::string> seen;
  for (int i = 0; i < 5000; ++i) {
    const std::string mapped = MapUid("1.2.826.0.1." + std::to_string(i), kSecret);
    ASSERT_TRUE(IsValidUid(mapped)) << mapped;
    seen.insert(mapped);
  }
  EXPECT_EQ(seen.size(), 5000u);
}

TEST(DateShift, IsDeterministicAndAlwaysInTheLastTenYears) {
  EXPECT_EQ(DateShiftDays("PID|DOE^JOHN", "0123456789abcdef"), -3599);
  std::set<int> seen;
  for (int i = 0; i < 2000; ++i) {
    const std::string key = "patient-" + std::to_string(i);
    const int d = DateShiftDays(key, kSecret);
    EXPECT_GE(d, -3650);
    EXPECT_LE(d, -1);
    EXPECT_EQ(d, DateShiftDays(key, kSecret));
    seen.insert(d);
  }
  EXPECT_GT(seen.size(), 1000u);  // spread over the range
  EXPECT_NE(DateShiftDays("PID|DOE^JOHN", kSecret), DateShiftDays("PID|DOE^JOHN", "another-secret-of-16+"));
}

}  // namespace
}  // namespace pb::dicom
