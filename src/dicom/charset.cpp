#include "dicom/charset.h"

#include <iconv.h>
#include "dicom/condition.h"

#include <memory>
#include <optional>

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcelem.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <fmt/format.h>

namespace pb::dicom {
namespace {

std::optional<std::string> Iconv(const char* from, const std::string& in) {
  iconv_t cd = iconv_open("UTF-8", from);
  if (cd == reinterpret_cast<iconv_t>(-1)) return std::nullopt;  // NOLINT(performance-no-int-to-ptr): iconv's API
  std::unique_ptr<void, int (*)(iconv_t)> guard(cd, iconv_close);
  std::string out(in.size() * 4 + 16, '\0');
  char* src = const_cast<char*>(in.data());
  size_t src_left = in.size();
  char* dst = out.data();
  size_t dst_left = out.size();
  if (iconv(cd, &src, &src_left, &dst, &dst_left) == static_cast<size_t>(-1)) return std::nullopt;
  if (iconv(cd, nullptr, nullptr, &dst, &dst_left) == static_cast<size_t>(-1)) return std::nullopt;
  out.resize(out.size() - dst_left);
  return out;
}

std::string Strip(std::string s, const std::string& sequence) {
  for (size_t p; (p = s.find(sequence)) != std::string::npos;) s.erase(p, sequence.size());
  return s;
}

// How to decode values of a character set DCMTK could not convert; empty: no fallback.
struct Fallback {
  const char* iconv_name = nullptr;
  std::string strip;  // a G1 designation to remove before decoding
};

Fallback FallbackFor(const std::string& charset) {
  if (charset.find("IR 87") != std::string::npos || charset.find("IR 159") != std::string::npos) {
    return {"ISO-2022-JP-2", ""};
  }
  if (charset.find("IR 149") != std::string::npos) return {"EUC-KR", "\x1b$)C"};
  if (charset.find("IR 58") != std::string::npos) return {"GB2312", "\x1b$)A"};
  return {};
}

bool IsText(DcmEVR vr) {
  switch (vr) {
    case EVR_PN:
    case EVR_LO:
    case EVR_SH:
    case EVR_ST:
    case EVR_LT:
    case EVR_UT:
    case EVR_UC:
      return true;
    default:
      return false;
  }
}

bool Decode(DcmItem& item, const Fallback& f, std::string& problem) {
  bool ok = true;
  for (unsigned long i = 0; i < item.card(); ++i) {
    DcmElement* el = item.getElement(i);
    if (el->ident() == EVR_SQ) {
      auto* seq = static_cast<DcmSequenceOfItems*>(el);
      for (unsigned long k = 0; k < seq->card(); ++k) ok = Decode(*seq->getItem(k), f, problem) && ok;
      continue;
    }
    if (!IsText(el->ident())) continue;
    OFString raw;
    if (el->getOFStringArray(raw).bad() || raw.empty()) continue;
    std::string in(raw.c_str(), raw.length());
    if (!f.strip.empty()) in = Strip(in, f.strip);
    auto text = Iconv(f.iconv_name, in);
    if (!text) {
      ok = false;
      problem = fmt::format("({:04x},{:04x}) is not valid {}", el->getGTag(), el->getETag(), f.iconv_name);
      continue;
    }
    el->putOFStringArray(OFString(text->data(), text->size()));
  }
  return ok;
}

}  // namespace

bool ToUtf8(DcmItem& item, std::string* problem) {
  OFString declared;
  item.findAndGetOFStringArray(DCM_SpecificCharacterSet, declared);
  std::string charset = declared.c_str();
  if (charset.empty() || charset == "ISO_IR 192" || charset == "ISO_IR 6") return true;
  OFCondition c = item.convertToUTF8();
  if (c.good()) return true;
  Fallback f = FallbackFor(charset);
  std::string why;
  if (!f.iconv_name) {
    if (problem) *problem = fmt::format("character set '{}' cannot be converted: {}", charset, ConditionText(c));
    return false;
  }
  bool ok = Decode(item, f, why);
  item.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 192");
  if (!ok && problem) *problem = fmt::format("character set '{}': {}", charset, why);
  return ok;
}

}  // namespace pb::dicom
