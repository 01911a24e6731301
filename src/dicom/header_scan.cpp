#include "dicom/header_scan.h"

#include <cstdint>
#include <iterator>
#include <string>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdicent.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dctagkey.h>
#include <dcmtk/dcmdata/dcxfer.h>

namespace pb::dicom {
namespace {

constexpr uint32_t TagOf(uint16_t group, uint16_t element) { return (static_cast<uint32_t>(group) << 16) | element; }
constexpr uint32_t kPixelData = TagOf(0x7FE0, 0x0010);
constexpr uint32_t kItem = TagOf(0xFFFE, 0xE000);
constexpr uint32_t kItemEnd = TagOf(0xFFFE, 0xE00D);
constexpr uint32_t kSequenceEnd = TagOf(0xFFFE, 0xE0DD);
constexpr uint32_t kMetaGroupLength = TagOf(0x0002, 0x0000);
constexpr uint32_t kMetaTransferSyntax = TagOf(0x0002, 0x0010);
constexpr uint32_t kUndefinedLength = 0xFFFFFFFFu;
constexpr size_t kFail = static_cast<size_t>(-1);
constexpr int kMaxDepth = 16;

// How DCMTK turns the value into the string ReadHeader returns, and so which values are
// "clean" (returned as they are once the trailing padding is gone).
enum class Kind {
  kUid,       // UI: trailing NULs removed; any white space would be removed (with a warning)
  kText,      // CS, SH, LO, PN, DA, TM, IS: trailing spaces removed; per value, more removed
  kLongText,  // LT: one value, backslashes included; trailing spaces removed
};

struct Wanted {
  uint32_t tag;
  char vr[3];
  Kind kind;
  std::string InstanceRecord::*field;  // null: the Specific Character Set
};

// In ascending tag order (the walk meets them in that order). VRs as in PS3.6.
const Wanted kWanted[] = {
    {TagOf(0x0008, 0x0005), "CS", Kind::kText, nullptr},
    {TagOf(0x0008, 0x0016), "UI", Kind::kUid, &InstanceRecord::sop_class_uid},
    {TagOf(0x0008, 0x0018), "UI", Kind::kUid, &InstanceRecord::sop_uid},
    {TagOf(0x0008, 0x0020), "DA", Kind::kText, &InstanceRecord::study_date},
    {TagOf(0x0008, 0x0030), "TM", Kind::kText, &InstanceRecord::study_time},
    {TagOf(0x0008, 0x0050), "SH", Kind::kText, &InstanceRecord::accession_number},
    {TagOf(0x0008, 0x0060), "CS", Kind::kText, &InstanceRecord::modality},
    {TagOf(0x0008, 0x0090), "PN", Kind::kText, &InstanceRecord::referring_physician},
    {TagOf(0x0008, 0x1030), "LO", Kind::kText, &InstanceRecord::study_description},
    {TagOf(0x0008, 0x103E), "LO", Kind::kText, &InstanceRecord::series_description},
    {TagOf(0x0010, 0x0010), "PN", Kind::kText, &InstanceRecord::patient_name},
    {TagOf(0x0010, 0x0020), "LO", Kind::kText, &InstanceRecord::patient_id},
    {TagOf(0x0010, 0x0021), "LO", Kind::kText, &InstanceRecord::issuer_of_patient_id},
    {TagOf(0x0010, 0x0030), "DA", Kind::kText, &InstanceRecord::patient_birth_date},
    {TagOf(0x0010, 0x0040), "CS", Kind::kText, &InstanceRecord::patient_sex},
    {TagOf(0x0010, 0x4000), "LT", Kind::kLongText, &InstanceRecord::patient_comments},
    {TagOf(0x0018, 0x0015), "CS", Kind::kText, &InstanceRecord::body_part},
    {TagOf(0x0020, 0x000D), "UI", Kind::kUid, &InstanceRecord::study_uid},
    {TagOf(0x0020, 0x000E), "UI", Kind::kUid, &InstanceRecord::series_uid},
    {TagOf(0x0020, 0x0010), "SH", Kind::kText, &InstanceRecord::study_id},
    {TagOf(0x0020, 0x0011), "IS", Kind::kText, &InstanceRecord::series_number},
    {TagOf(0x0020, 0x0013), "IS", Kind::kText, &InstanceRecord::instance_number},
    {TagOf(0x0032, 0x4000), "LT", Kind::kLongText, &InstanceRecord::study_comments},
};

// Single-byte character sets whose 7-bit half is ASCII: DCMTK's conversion to UTF-8 leaves
// 7-bit values as they are. (ISO_IR 13, ISO 2022 sets and multi-byte sets are not here.)
const char* const kAsciiCompatible[] = {"ISO_IR 100", "ISO_IR 101", "ISO_IR 109", "ISO_IR 110",
                                        "ISO_IR 126", "ISO_IR 127", "ISO_IR 138", "ISO_IR 144",
                                        "ISO_IR 148", "ISO_IR 166", "ISO_IR 203"};

bool IsLongForm(const char vr[2]) {
  static const char* const kLong[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"};
  for (const char* v : kLong) {
    if (vr[0] == v[0] && vr[1] == v[1]) return true;
  }
  return false;
}

bool IsShortForm(const char vr[2]) {
  static const char* const kShort[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO",
                                       "LT", "PN", "SH", "SL", "SS", "ST", "TM", "UI", "UL", "US"};
  for (const char* v : kShort) {
    if (vr[0] == v[0] && vr[1] == v[1]) return true;
  }
  return false;
}

struct Header {
  uint32_t tag = 0;
  char vr[2] = {0, 0};  // explicit VR only
  uint32_t length = 0;
  size_t value = 0;  // offset of the value
};

// The raw values of the wanted attributes, as views into the bytes.
struct Found {
  std::string_view values[std::size(kWanted)];
  bool present[std::size(kWanted)] = {};
};

class Walker {
 public:
  Walker(const uint8_t* data, bool implicit) : d_(data), implicit_(implicit) {}
  ~Walker() {
    if (dict_) dcmDataDict.rdunlock();
  }
  Walker(const Walker&) = delete;
  Walker& operator=(const Walker&) = delete;

  // The element header at pos, which must end at or before `end`.
  bool Read(size_t pos, size_t end, Header& h) const {
    if (pos > end || end - pos < 8) return false;
    h.tag = TagOf(U16(pos), U16(pos + 2));
    if ((h.tag >> 16) == 0xFFFE || implicit_) {  // items and delimiters never carry a VR
      h.length = U32(pos + 4);
      h.value = pos + 8;
      return true;
    }
    h.vr[0] = static_cast<char>(d_[pos + 4]);
    h.vr[1] = static_cast<char>(d_[pos + 5]);
    if (IsShortForm(h.vr)) {
      h.length = U16(pos + 6);
      h.value = pos + 8;
      return true;
    }
    if (!IsLongForm(h.vr) || end - pos < 12) return false;
    h.length = U32(pos + 8);
    h.value = pos + 12;
    return true;
  }

  // Where the element whose header is h ends (its value skipped, a sequence's structure
  // checked), or kFail.
  size_t Skip(const Header& h, size_t end, int depth) {
    if (h.length == kUndefinedLength) {
      // Only a sequence may have an undefined length here: an explicit UN of undefined length
      // holds implicit VR data, and DCMTK refuses a known non-sequence (OB, OW, strings) of
      // undefined length in implicit VR, and reads an unknown one as a sequence: left to DCMTK.
      if (!IsSequence(h)) return kFail;
      return SkipItems(h.value, end, false, depth + 1);
    }
    if (h.length > end - h.value) return kFail;
    const size_t stop = h.value + h.length;
    if (IsSequence(h)) {
      return SkipItems(h.value, stop, true, depth + 1) == stop ? stop : kFail;
    }
    return stop;
  }

 private:
  uint16_t U16(size_t at) const { return static_cast<uint16_t>(d_[at] | (d_[at + 1] << 8)); }
  uint32_t U32(size_t at) const {
    return static_cast<uint32_t>(d_[at]) | (static_cast<uint32_t>(d_[at + 1]) << 8) |
           (static_cast<uint32_t>(d_[at + 2]) << 16) | (static_cast<uint32_t>(d_[at + 3]) << 24);
  }

  bool IsSequence(const Header& h) {
    if (!implicit_) return h.vr[0] == 'S' && h.vr[1] == 'Q';
    // Implicit VR: as DCMTK does, the dictionary says (looked up under one lock per walk).
    if (!dict_) dict_ = &dcmDataDict.rdlock();
    const DcmDictEntry* e =
        dict_->findEntry(DcmTagKey(static_cast<Uint16>(h.tag >> 16), static_cast<Uint16>(h.tag & 0xFFFF)), nullptr);
    return e && e->getEVR() == EVR_SQ;
  }

  // A sequence's items from pos: `defined`, up to `end` exactly; else through the sequence
  // delimiter (then `end` is the end of the bytes). Returns the offset after them or kFail.
  size_t SkipItems(size_t pos, size_t end, bool defined, int depth) {
    if (depth > kMaxDepth) return kFail;
    while (true) {
      if (defined && pos == end) return pos;
      Header h;
      if (!Read(pos, end, h)) return kFail;
      if (h.tag == kSequenceEnd) return !defined && h.length == 0 ? h.value : kFail;
      if (h.tag != kItem) return kFail;
      if (h.length == kUndefinedLength) {
        pos = SkipElements(h.value, end, true, depth);
      } else {
        if (h.length > end - h.value) return kFail;
        const size_t stop = h.value + h.length;
        pos = SkipElements(h.value, stop, false, depth) == stop ? stop : kFail;
      }
      if (pos == kFail) return kFail;
    }
  }

  // An item's elements from pos: up to `end` exactly, or (undefined) through the item
  // delimiter.
  size_t SkipElements(size_t pos, size_t end, bool undefined, int depth) {
    while (true) {
      if (!undefined && pos == end) return pos;
      Header h;
      if (!Read(pos, end, h)) return kFail;
      if (h.tag == kItemEnd) return undefined && h.length == 0 ? h.value : kFail;
      if ((h.tag >> 16) == 0xFFFE) return kFail;
      pos = Skip(h, end, depth);
      if (pos == kFail) return kFail;
    }
  }

  const uint8_t* d_;  // every offset read is checked against the end its caller gives
  bool implicit_;
  const DcmDataDictionary* dict_ = nullptr;
};

// The value as DCMTK would return it, if it is clean.
std::optional<std::string_view> Clean(std::string_view v, Kind kind) {
  if (kind == Kind::kUid) {
    while (!v.empty() && v.back() == '\0') v.remove_suffix(1);
    for (char c : v) {
      const auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u >= 0x7F || c == '\\') return std::nullopt;
    }
    return v;
  }
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  for (size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (c == '\0' || c == '\x1b') return std::nullopt;
    if (kind == Kind::kText && c == ' ' && (i == 0 || v[i - 1] == '\\' || (i + 1 < v.size() && v[i + 1] == '\\'))) {
      return std::nullopt;  // a value with leading or trailing spaces: DCMTK trims it
    }
  }
  return v;
}

bool SevenBit(std::string_view v) {
  for (char c : v) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

std::optional<InstanceRecord> Scan(std::string_view bytes, bool complete, bool implicit) {
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t size = bytes.size();
  Walker walk(data, implicit);
  Found found;
  size_t next_wanted = 0;
  size_t pos = 0;
  uint32_t last_tag = 0;
  bool first = true;
  while (true) {
    if (pos == size) {
      if (!complete) return std::nullopt;  // ends before the pixel data: DCMTK reads the file
      break;
    }
    Header h;
    if (!walk.Read(pos, size, h)) return std::nullopt;
    if ((h.tag >> 16) == 0xFFFE) return std::nullopt;      // an item or delimiter out of place
    if (h.tag >= kPixelData) break;                        // where DCMTK's readUntilTag stops too
    if (!first && h.tag <= last_tag) return std::nullopt;  // out of order or repeated
    first = false;
    last_tag = h.tag;
    while (next_wanted < std::size(kWanted) && kWanted[next_wanted].tag < h.tag) ++next_wanted;
    if (next_wanted < std::size(kWanted) && kWanted[next_wanted].tag == h.tag) {
      const Wanted& w = kWanted[next_wanted];
      if (!implicit && (h.vr[0] != w.vr[0] || h.vr[1] != w.vr[1])) return std::nullopt;
      if (h.length == kUndefinedLength || (h.length & 1) || h.length > size - h.value) return std::nullopt;
      found.values[next_wanted] = bytes.substr(h.value, h.length);
      found.present[next_wanted] = true;
      pos = h.value + h.length;
      continue;
    }
    pos = walk.Skip(h, size, 0);
    if (pos == kFail) return std::nullopt;
  }

  // The character set: values are returned as they are only where DCMTK's conversion to
  // UTF-8 would leave them so.
  bool need_seven_bit = false;
  if (found.present[0]) {
    auto cs = Clean(found.values[0], Kind::kText);
    if (!cs) return std::nullopt;
    if (!cs->empty() && *cs != "ISO_IR 6" && *cs != "ISO_IR 192") {
      bool known = false;
      for (const char* name : kAsciiCompatible) known = known || *cs == name;
      if (!known) return std::nullopt;
      need_seven_bit = true;
    }
  }
  InstanceRecord r;
  for (size_t i = 1; i < std::size(kWanted); ++i) {
    if (!found.present[i]) continue;
    auto v = Clean(found.values[i], kWanted[i].kind);
    if (!v || (need_seven_bit && !SevenBit(*v))) return std::nullopt;
    r.*(kWanted[i].field) = std::string(*v);
  }
  if (r.sop_uid.empty() || r.study_uid.empty() || r.series_uid.empty()) {
    return std::nullopt;  // DCMTK's path says which is missing
  }
  return r;
}

// Implicit (true) or explicit (false) VR Little Endian, or nullopt for what is left to DCMTK.
std::optional<bool> ImplicitLittleEndian(std::string_view transfer_syntax_uid) {
  const std::string uid(transfer_syntax_uid);
  DcmXfer xfer(uid.c_str());
  if (xfer.getXfer() == EXS_Unknown || !xfer.isLittleEndian() || xfer.getStreamCompression() != ESC_none) {
    return std::nullopt;
  }
  return xfer.isImplicitVR();
}

}  // namespace

std::optional<InstanceRecord> ScanHeader(std::string_view bytes, bool complete, std::string_view transfer_syntax_uid) {
  auto implicit = ImplicitLittleEndian(transfer_syntax_uid);
  if (!implicit) return std::nullopt;
  auto r = Scan(bytes, complete, *implicit);
  if (r) r->transfer_syntax_uid = std::string(transfer_syntax_uid);
  return r;
}

std::optional<MetaHeader> ScanMetaHeader(std::string_view bytes) {
  if (bytes.size() < 132 || bytes.substr(128, 4) != "DICM") return std::nullopt;
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  Walker meta(data, false);  // the meta header is explicit VR Little Endian
  size_t pos = 132;
  size_t meta_end = kFail;
  std::optional<std::string_view> syntax;
  uint32_t last_tag = 0;
  bool first = true;
  while (true) {
    if (bytes.size() - pos < 2) return std::nullopt;
    if ((data[pos] | (data[pos + 1] << 8)) != 0x0002) break;
    Header h;
    if (!meta.Read(pos, bytes.size(), h) || h.length == kUndefinedLength || h.length > bytes.size() - h.value) {
      return std::nullopt;
    }
    // Rising tags only (DCMTK keeps the first of a repeated one); a group length anywhere but
    // first, or not a 4-byte UL, is left to DCMTK.
    if (!first && h.tag <= last_tag) return std::nullopt;
    first = false;
    last_tag = h.tag;
    const std::string_view value = bytes.substr(h.value, h.length);
    if (h.tag == kMetaGroupLength) {
      if (pos != 132 || h.length != 4 || h.vr[0] != 'U' || h.vr[1] != 'L') return std::nullopt;
      const uint32_t n = static_cast<uint32_t>(data[h.value]) | (static_cast<uint32_t>(data[h.value + 1]) << 8) |
                         (static_cast<uint32_t>(data[h.value + 2]) << 16) |
                         (static_cast<uint32_t>(data[h.value + 3]) << 24);
      meta_end = h.value + 4 + n;
    } else if (h.tag == kMetaTransferSyntax) {
      if (h.vr[0] != 'U' || h.vr[1] != 'I') return std::nullopt;
      syntax = Clean(value, Kind::kUid);
      if (!syntax) return std::nullopt;
    }
    pos = h.value + h.length;
  }
  // A group length that disagrees with the elements, or no transfer syntax: left to DCMTK.
  if ((meta_end != kFail && meta_end != pos) || !syntax || syntax->empty()) return std::nullopt;
  return MetaHeader{pos, *syntax};
}

std::optional<InstanceRecord> ScanFileHeader(std::string_view bytes, bool complete) {
  auto meta = ScanMetaHeader(bytes);
  if (!meta) return std::nullopt;
  return ScanHeader(bytes.substr(meta->data_set_offset), complete, meta->transfer_syntax_uid);
}

}  // namespace pb::dicom
