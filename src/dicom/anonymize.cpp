#include "dicom/anonymize.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <optional>
#include <vector>

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcelem.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "dicom/anonymize_table.h"
#include "dicom/condition.h"

// How the actions of Table E.1-1 are carried out:
//  - The combinations take the action the profile allows that keeps the most: "Z/D" is Z,
//    "X/Z", "X/D" and "X/Z/D" are X, "X/Z/U*" is U. Applied at any depth of sequences.
//  - X: the element is removed. Z: the value is emptied (a sequence keeps no items).
//  - D: a dummy value of the element's VR: "ANONYMOUS" for text (AE, CS, LO, LT, PN, SH, ST, UC,
//    UR, UT), DA 19000101, TM 000000, DT 19000101000000, AS 000Y, numbers 0. A UI gets
//    MapUid (a dummy UID that keeps references consistent). A sequence keeps no items (its
//    content, e.g. the Content Sequence of an SR, is what identifies). Opaque values (OB, OW,
//    UN, ...) and AT have no meaningful dummy: they are emptied.
//  - U: every value of a UI (or of a UN holding UID text) is replaced by MapUid. U on a sequence
//    (the "U*" of Referenced Image / Source Image Sequence) keeps it; the UIDs inside it are
//    replaced by their own rows.
//  - K, and any element the table does not name: kept, and a kept sequence is processed item
//    by item. C (clean) only occurs in option columns: see the options below.
//  - Retain UIDs / Retain Device Identity: an attribute with a K (or, for device AE titles, C)
//    in the option's column is kept as it is.
//  - Retain Longitudinal Temporal Information with Modified Dates: an attribute with a C in
//    that column is kept; DA values, and the date part of DT values, are moved by
//    DateShiftDays(original PatientID + "|" + original PatientName). TM and the other VRs
//    (Timezone Offset From UTC, timestamps in OB) are kept. A value that is not a full date
//    (YYYYMMDD) cannot be shifted and is emptied; a UN element gets the Basic Profile action.
//  - Patient Name and Patient ID become the subject label; private attributes (odd groups,
//    creators included) are removed unless keep_private_tags; the repeating groups Curve Data
//    (50xx) and Overlay Data / Comments (60xx,3000 and 60xx,4000) are removed; stale group
//    length elements (gggg,0000) are removed too.

namespace pb::dicom {
namespace {

constexpr size_t kMinSecret = 16;
constexpr size_t kMaxLabel = 64;  // LO and a PN component group
constexpr char kDefaultLabel[] = "ANONYMOUS";
constexpr char kDummyText[] = "ANONYMOUS";

using Digest = std::array<unsigned char, 32>;

// HMAC-SHA256; false only if OpenSSL fails (out of memory).
bool HmacSha256(std::string_view key, std::string_view data, Digest& out) {
  unsigned int len = 0;
  // Never hand OpenSSL a null pointer for an empty key or message.
  const char* k = key.empty() ? "" : key.data();
  const char* d = data.empty() ? "" : data.data();
  const unsigned char* r = HMAC(EVP_sha256(), k, static_cast<int>(key.size()),
                                reinterpret_cast<const unsigned char*>(d), data.size(), out.data(), &len);
  return r != nullptr && len == out.size();
}

Digest HmacOrZero(std::string_view key, std::string_view data) {
  Digest out{};
  if (!HmacSha256(key, data, out)) out.fill(0);
  return out;
}

// The decimal digits of a big-endian unsigned number, by long division.
std::string Decimal(std::array<unsigned char, 16> n) {
  std::string digits;
  bool zero = false;
  while (!zero) {
    unsigned rem = 0;
    zero = true;
    for (auto& byte : n) {
      const unsigned cur = rem * 256 + byte;
      byte = static_cast<unsigned char>(cur / 10);
      rem = cur % 10;
      if (byte != 0) zero = false;
    }
    digits.push_back(static_cast<char>('0' + rem));
  }
  std::reverse(digits.begin(), digits.end());
  return digits;
}

std::string_view TrimPadding(std::string_view s) {
  while (!s.empty() && (s.back() == '\0' || s.back() == ' ')) s.remove_suffix(1);
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  return s;
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t end = s.find('\\', start);
    parts.push_back(s.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) return parts;
    start = end + 1;
  }
}

std::string Join(const std::vector<std::string>& parts) {
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) s += (i ? "\\" : "") + parts[i];
  return s;
}

bool AllDigits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "YYYYMMDD" moved by `days`, or nothing when it is not a valid date.
std::optional<std::string> ShiftDate(std::string_view s, int days) {
  if (s.size() != 8 || !AllDigits(s)) return std::nullopt;
  const auto num = [&](size_t pos, size_t len) {
    int v = 0;
    for (size_t i = pos; i < pos + len; ++i) v = v * 10 + (s[i] - '0');
    return v;
  };
  using namespace std::chrono;
  const year_month_day ymd{year{num(0, 4)}, month{static_cast<unsigned>(num(4, 2))},
                           day{static_cast<unsigned>(num(6, 2))}};
  if (!ymd.ok()) return std::nullopt;
  const year_month_day moved{sys_days{ymd} + std::chrono::days{days}};
  const int y = static_cast<int>(moved.year());
  if (y < 1) return std::nullopt;
  return fmt::format("{:04}{:02}{:02}", y, static_cast<unsigned>(moved.month()), static_cast<unsigned>(moved.day()));
}

// Each value of a DA (ranges "A-B" included) or DT moved; nothing if some value is not a date.
std::optional<std::string> ShiftValues(const std::string& value, DcmEVR vr, int days) {
  std::vector<std::string> values = Split(value);
  for (auto& v : values) {
    std::string t(TrimPadding(v));
    if (t.empty()) {
      v = t;
      continue;
    }
    if (vr == EVR_DT) {
      if (t.size() < 8) return std::nullopt;
      auto date = ShiftDate(std::string_view(t).substr(0, 8), days);
      if (!date) return std::nullopt;
      v = *date + t.substr(8);
      continue;
    }
    std::string out;
    size_t start = 0;
    for (;;) {
      const size_t dash = t.find('-', start);
      std::string_view part =
          std::string_view(t).substr(start, dash == std::string::npos ? std::string::npos : dash - start);
      if (!part.empty()) {
        auto date = ShiftDate(part, days);
        if (!date) return std::nullopt;
        out += *date;
      }
      if (dash == std::string::npos) break;
      out += '-';
      start = dash + 1;
    }
    v = out;
  }
  return Join(values);
}

bool IsText(DcmEVR vr) {
  static constexpr DcmEVR kText[] = {EVR_AE, EVR_AS, EVR_CS, EVR_DA, EVR_DS, EVR_DT, EVR_IS, EVR_LO, EVR_LT,
                                     EVR_PN, EVR_SH, EVR_ST, EVR_TM, EVR_UC, EVR_UI, EVR_UR, EVR_UT};
  return std::find(std::begin(kText), std::end(kText), vr) != std::end(kText);
}

bool IsNumber(DcmEVR vr) {
  static constexpr DcmEVR kNumber[] = {EVR_US, EVR_SS, EVR_UL, EVR_SL, EVR_FL, EVR_FD, EVR_UV, EVR_SV};
  return std::find(std::begin(kNumber), std::end(kNumber), vr) != std::end(kNumber);
}

// A dummy value valid for the VR, or nothing when the value is to be emptied instead.
std::optional<std::string> Dummy(DcmEVR vr) {
  switch (vr) {
    case EVR_DA:
      return "19000101";
    case EVR_TM:
      return "000000";
    case EVR_DT:
      return "19000101000000";
    case EVR_AS:
      return "000Y";
    case EVR_DS:
    case EVR_IS:
      return "0";
    default:
      break;
  }
  if (IsNumber(vr)) return "0";
  if (IsText(vr) && vr != EVR_UI) return kDummyText;
  return std::nullopt;
}

// What is done to one element once the table, the options and the VR are considered.
enum class Op { kKeep, kRemove, kEmpty, kDummy, kMapUid, kShiftDates, kSubject };

std::string TagText(const DcmElement& elem) {
  DcmTag tag(elem.getTag());
  return fmt::format("{} {}", tag.getXTag().toString().c_str(), tag.getTagName());
}

[[nodiscard]] Result<void> Check(const OFCondition& c, const DcmElement& elem, const char* what) {
  if (c.good()) return {};
  return FailCondition(c, fmt::format("cannot {} {}", what, TagText(elem)), Code::kInternal);
}

// The text of a value; a UN (an attribute in implicit VR unknown to the dictionary) is read as
// its bytes.
std::optional<std::string> TextOf(DcmElement& elem) {
  if (elem.ident() != EVR_UN) {
    OFString v;
    if (elem.getOFStringArray(v).bad()) return std::nullopt;
    return std::string(v.c_str(), v.length());
  }
  Uint8* bytes = nullptr;
  if (elem.getUint8Array(bytes).bad()) return std::nullopt;
  if (bytes == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(bytes), elem.getLengthField());
}

class Anonymizer {
 public:
  Anonymizer(const AnonymizeOptions& options, std::string subject, int shift_days)
      : options_(options), subject_(std::move(subject)), shift_days_(shift_days) {}

  [[nodiscard]] Result<void> Process(DcmItem& item) {
    unsigned long i = 0;
    while (i < item.card()) {
      DcmElement* elem = item.getElement(i);
      if (elem == nullptr) break;
      const Op op = Decide(*elem);
      if (op == Op::kRemove) {
        delete item.remove(i);
        continue;
      }
      if (auto r = Apply(*elem, op); !r) return r;
      ++i;
    }
    return {};
  }

 private:
  Op Decide(const DcmElement& elem) const {
    const Uint16 g = elem.getGTag(), e = elem.getETag();
    const DcmEVR vr = elem.ident();
    if (g % 2 == 1) return options_.keep_private_tags ? Op::kKeep : Op::kRemove;
    if (e == 0x0000) return Op::kRemove;  // group length: no longer right once elements go
    if (g == 0x0010 && (e == 0x0010 || e == 0x0020)) return Op::kSubject;
    if ((g & 0xFF00) == 0x5000) return Op::kRemove;
    if ((g & 0xFF00) == 0x6000 && (e == 0x3000 || e == 0x4000)) return Op::kRemove;
    const ProfileEntry* row = FindProfileEntry(g, e);
    if (row == nullptr) return Op::kKeep;
    if (options_.retain_uids && row->retain_uids != Action::N) return Op::kKeep;
    if (options_.retain_device_identity && row->retain_device_identity != Action::N) {
      return Op::kKeep;
    }
    if (options_.retain_dates && row->retain_dates != Action::N && vr != EVR_UN) {
      return vr == EVR_DA || vr == EVR_DT ? Op::kShiftDates : Op::kKeep;
    }
    switch (row->basic) {
      case Action::Z:
      case Action::ZD:
        return Op::kEmpty;
      case Action::D:
        return vr == EVR_UI ? Op::kMapUid : Op::kDummy;
      case Action::U:
      case Action::XZU:
        return Op::kMapUid;
      case Action::K:
        return Op::kKeep;
      default:
        return Op::kRemove;  // X, X/Z, X/D, X/Z/D (and C, N, which the column never has)
    }
  }

  [[nodiscard]] Result<void> Apply(DcmElement& elem, Op op) {
    const DcmEVR vr = elem.ident();
    switch (op) {
      case Op::kRemove:
        return {};  // done by the caller
      case Op::kEmpty:
        return Check(elem.clear(), elem, "empty");
      case Op::kDummy: {
        auto dummy = Dummy(vr);
        if (!dummy) return Check(elem.clear(), elem, "empty");
        return Check(elem.putString(dummy->c_str()), elem, "replace");
      }
      case Op::kSubject:
        return PutText(elem, subject_);
      case Op::kMapUid:
        if (vr == EVR_SQ) return Recurse(elem);
        if (vr != EVR_UI && vr != EVR_UN) return Check(elem.clear(), elem, "empty");
        return MapValues(elem);
      case Op::kShiftDates: {
        OFString value;
        if (elem.getOFStringArray(value).bad()) return Check(elem.clear(), elem, "empty");
        auto shifted = ShiftValues(std::string(value.c_str(), value.length()), vr, shift_days_);
        if (!shifted) return Check(elem.clear(), elem, "empty");
        return Check(elem.putString(shifted->c_str()), elem, "shift the dates of");
      }
      case Op::kKeep:
        return vr == EVR_SQ ? Recurse(elem) : Result<void>{};
    }
    return {};
  }

  [[nodiscard]] Result<void> Recurse(DcmElement& elem) {
    auto& sq = static_cast<DcmSequenceOfItems&>(elem);
    for (unsigned long j = 0; j < sq.card(); ++j) {
      DcmItem* child = sq.getItem(j);
      if (child == nullptr) continue;
      if (auto r = Process(*child); !r) return r;
    }
    return {};
  }

  [[nodiscard]] Result<void> PutText(DcmElement& elem, const std::string& text) {
    if (IsText(elem.ident())) return Check(elem.putString(text.c_str()), elem, "replace");
    if (elem.ident() != EVR_UN) return Check(elem.clear(), elem, "empty");
    std::string padded = text;
    if (padded.size() % 2 == 1) padded.push_back(' ');
    if (padded.empty()) return Check(elem.clear(), elem, "empty");
    return Check(elem.putUint8Array(reinterpret_cast<const Uint8*>(padded.data()), padded.size()), elem, "replace");
  }

  [[nodiscard]] Result<void> MapValues(DcmElement& elem) {
    auto text = TextOf(elem);
    if (!text) return Check(elem.clear(), elem, "empty");
    std::vector<std::string> uids = Split(*text);
    for (auto& uid : uids) {
      std::string_view t = TrimPadding(uid);
      uid = t.empty() ? std::string() : MapUid(t, options_.secret);
    }
    std::string mapped = Join(uids);
    if (elem.ident() == EVR_UI) {
      return Check(elem.putString(mapped.c_str()), elem, "replace the UID of");
    }
    if (mapped.size() % 2 == 1) mapped.push_back('\0');
    if (mapped.empty()) return Check(elem.clear(), elem, "empty");
    return Check(elem.putUint8Array(reinterpret_cast<const Uint8*>(mapped.data()), mapped.size()), elem,
                 "replace the UID of");
  }

  const AnonymizeOptions& options_;
  std::string subject_;
  int shift_days_;
};

std::string TopLevel(DcmDataset& ds, const DcmTagKey& key) {
  DcmElement* elem = nullptr;
  if (ds.findAndGetElement(key, elem).bad() || elem == nullptr) return {};
  auto text = TextOf(*elem);
  return text ? std::string(TrimPadding(*text)) : std::string();
}

struct MethodCode {
  const char* value;
  const char* meaning;  // CID 7050
};

[[nodiscard]] Result<void> Put(DcmItem& item, const DcmTagKey& key, const std::string& value) {
  OFCondition c = item.putAndInsertString(key, value.c_str());
  if (c.good()) return {};
  DcmTag tag(key);
  return FailCondition(c, fmt::format("cannot write {} {}", key.toString().c_str(), tag.getTagName()), Code::kInternal);
}

// Patient Identity Removed, De-identification Method (one LO value per profile and option, each
// within the 64 characters of LO) and its Code Sequence, Longitudinal Temporal Information
// Modified.
[[nodiscard]] Result<void> Record(DcmDataset& ds, const AnonymizeOptions& o) {
  std::vector<MethodCode> codes{{"113100", "Basic Application Confidentiality Profile"}};
  std::vector<std::string> method{"PS3.15 Annex E Basic Application Level Confidentiality Profile"};
  if (o.retain_uids) codes.push_back({"113108", "Retain UIDs Option"});
  if (o.retain_device_identity) codes.push_back({"113109", "Retain Device Identity Option"});
  if (o.retain_dates) {
    codes.push_back({"113107", "Retain Longitudinal Temporal Information Modified Dates Option"});
  }
  for (size_t i = 1; i < codes.size(); ++i) method.emplace_back(codes[i].meaning);
  if (auto r = Put(ds, DCM_PatientIdentityRemoved, "YES"); !r) return r;
  if (auto r = Put(ds, DCM_DeidentificationMethod, Join(method)); !r) return r;
  delete ds.remove(DCM_DeidentificationMethodCodeSequence);
  for (const auto& code : codes) {
    DcmItem* item = nullptr;
    OFCondition c = ds.findOrCreateSequenceItem(DCM_DeidentificationMethodCodeSequence, item, -2);
    if (c.bad() || item == nullptr) {
      return Fail(Code::kInternal, fmt::format("cannot write (0012,0064) "
                                               "DeidentificationMethodCodeSequence: {}",
                                               ConditionText(c)));
    }
    if (auto r = Put(*item, DCM_CodeValue, code.value); !r) return r;
    if (auto r = Put(*item, DCM_CodingSchemeDesignator, "DCM"); !r) return r;
    if (auto r = Put(*item, DCM_CodeMeaning, code.meaning); !r) return r;
  }
  return Put(ds, DCM_LongitudinalTemporalInformationModified, o.retain_dates ? "MODIFIED" : "REMOVED");
}

}  // namespace

std::string MapUid(std::string_view uid, std::string_view secret) {
  const Digest mac = HmacOrZero(secret, TrimPadding(uid));
  std::array<unsigned char, 16> first{};
  std::copy_n(mac.begin(), first.size(), first.begin());
  return "2.25." + Decimal(first);
}

int DateShiftDays(std::string_view key, std::string_view secret) {
  const Digest mac = HmacOrZero(secret, "date-shift:" + std::string(key));
  const uint32_t v = (uint32_t{mac[0]} << 24) | (uint32_t{mac[1]} << 16) | (uint32_t{mac[2]} << 8) | mac[3];
  return -static_cast<int>(1 + v % 3650);
}

[[nodiscard]] Result<void> Anonymize(DcmDataset& ds, const AnonymizeOptions& options) {
  if (options.secret.size() < kMinSecret) {
    return Fail(Code::kInvalidArgument,
                fmt::format("the anonymization secret must have at least {} characters", kMinSecret), "secret");
  }
  const std::string& label = options.subject_label;
  if (label.size() > kMaxLabel ||
      std::any_of(label.begin(), label.end(), [](char c) { return c < 0x20 || c > 0x7E || c == '\\'; })) {
    return Fail(Code::kInvalidArgument,
                "the subject label must be at most 64 printable ASCII characters without a backslash", "subject_label");
  }
  Digest probe{};
  if (!HmacSha256(options.secret, "probe", probe)) {
    return Fail(Code::kInternal, "HMAC-SHA256 is not available from OpenSSL");
  }
  // The shift comes from the patient's original identity, read before it is replaced.
  const int shift =
      options.retain_dates
          ? DateShiftDays(TopLevel(ds, DCM_PatientID) + "|" + TopLevel(ds, DCM_PatientName), options.secret)
          : 0;
  Anonymizer anonymizer(options, label.empty() ? kDefaultLabel : label, shift);
  if (auto r = anonymizer.Process(ds); !r) return r;
  return Record(ds, options);
}

}  // namespace pb::dicom
