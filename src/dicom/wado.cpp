#include "dicom/wado.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dccodec.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfcache.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcjson.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <algorithm>
#include <cctype>
#include <sstream>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dicom/charset.h"
#include "dicom/condition.h"
#include "dicom/transcode.h"

namespace pb::dicom {
namespace {

// Values longer than this stay in the file when it is read (DCMTK loads them when asked).
constexpr Uint32 kMaxReadLength = 4096;

[[nodiscard]] Result<std::unique_ptr<DcmFileFormat>> Load(const std::filesystem::path& file) {
  auto ff = std::make_unique<DcmFileFormat>();
  OFCondition c = ff->loadFile(file.c_str(), EXS_Unknown, EGL_noChange, kMaxReadLength, ERM_autoDetect);
  if (c.bad()) {
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) return Fail(Code::kNotFound, "the stored file is missing");
    return Fail(Code::kInvalidArgument, fmt::format("the stored file cannot be read as DICOM ({})", ConditionText(c)));
  }
  return ff;
}

bool IsBinary(DcmElement& e) {
  const DcmVR vr(e.getVR());
  return vr.usesExtendedLengthEncoding() && !vr.isaString() && e.ident() != EVR_SQ;
}

// Compact DICOM JSON whose binary values of the top-level element being written (and only of
// it: nested ones keep other tags) are written as a BulkDataURI naming the tag.
class BulkFormat : public DcmJsonFormatCompact {
 public:
  BulkFormat() : DcmJsonFormatCompact(OFFalse) {}
  DcmTagKey top;
  bool bulk = false;
  OFBool asBulkDataURI(const DcmTagKey& tag, OFString& uri) override {
    if (!bulk || tag != top) return OFFalse;
    uri = fmt::format("{:04X}{:04X}", tag.getGroup(), tag.getElement()).c_str();
    return OFTrue;
  }
};

struct MediaType {
  const char* syntax;
  const char* type;
};

// PS3.18 Table 8.7.3-2 (frames of the still image syntaxes DCMTK can read).
constexpr MediaType kFrameMedia[] = {
    {"1.2.840.10008.1.2.4.50", "image/jpeg"},   {"1.2.840.10008.1.2.4.51", "image/jpeg"},
    {"1.2.840.10008.1.2.4.57", "image/jpeg"},   {"1.2.840.10008.1.2.4.70", "image/jpeg"},
    {"1.2.840.10008.1.2.4.80", "image/jls"},    {"1.2.840.10008.1.2.4.81", "image/jls"},
    {"1.2.840.10008.1.2.4.90", "image/jp2"},    {"1.2.840.10008.1.2.4.91", "image/jp2"},
    {"1.2.840.10008.1.2.4.92", "image/jpx"},    {"1.2.840.10008.1.2.4.93", "image/jpx"},
    {"1.2.840.10008.1.2.5", "image/dicom-rle"},
};

}  // namespace

namespace {

bool IsJsonNumber(const std::string& v) {
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) ++i;
    return i > start;
  };
  if (i < v.size() && v[i] == '-') ++i;
  if (i < v.size() && v[i] == '0')
    ++i;
  else if (!digits())
    return false;
  if (i < v.size() && v[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < v.size() && (v[i] == 'e' || v[i] == 'E')) {
    ++i;
    if (i < v.size() && (v[i] == '+' || v[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == v.size();
}

// A Decimal String value PS3.5 allows ("1.", "+.5", "01.5E2") as JSON allows numbers ("1",
// "0.5", "1.5E2"), the same number; values that are no number are left alone (DCMTK writes
// those as strings).
std::string JsonDecimal(std::string v) {
  while (!v.empty() && v.front() == ' ') v.erase(v.begin());
  while (!v.empty() && v.back() == ' ') v.pop_back();
  if (v.empty() || IsJsonNumber(v)) return v;                        // an empty value of several stays empty (null)
  if (v.find_first_of("0123456789") == std::string::npos) return v;  // no number: "+", "e5"
  std::string sign, mantissa = v, exponent;
  if (!mantissa.empty() && (mantissa[0] == '+' || mantissa[0] == '-')) {
    if (mantissa[0] == '-') sign = "-";
    mantissa.erase(0, 1);
  }
  if (size_t e = mantissa.find_first_of("eE"); e != std::string::npos) {
    exponent = mantissa.substr(e);
    mantissa.resize(e);
  }
  std::string integer = mantissa, fraction;
  if (size_t dot = mantissa.find('.'); dot != std::string::npos) {
    integer = mantissa.substr(0, dot);
    fraction = mantissa.substr(dot + 1);
  }
  integer.erase(0, std::min(integer.find_first_not_of('0'), integer.size()));
  if (integer.empty()) integer = "0";
  std::string out = sign + integer + (fraction.empty() ? "" : "." + fraction) + exponent;
  return IsJsonNumber(out) ? out : v;
}

// Rewrites the Decimal String values of an item (and of its sequences' items) as JsonDecimal.
void NormalizeDecimals(DcmItem& item) {
  for (DcmObject* o = item.nextInContainer(nullptr); o; o = item.nextInContainer(o)) {
    if (o->ident() == EVR_DS) {
      auto* e = OFstatic_cast(DcmElement*, o);
      const unsigned long vm = e->getVM();
      std::string joined;
      bool changed = false;
      for (unsigned long k = 0; k < vm; ++k) {
        OFString value;
        if (e->getOFString(value, k).bad()) {
          changed = false;  // left as it is (DCMTK writes what is no number as a string)
          break;
        }
        std::string fixed = JsonDecimal(value.c_str());
        changed |= fixed != value.c_str();
        joined += (k ? "\\" : "") + fixed;
      }
      if (changed) e->putString(joined.c_str());
    } else if (o->ident() == EVR_SQ) {
      auto* sq = OFstatic_cast(DcmSequenceOfItems*, o);
      for (unsigned long k = 0; k < sq->card(); ++k) NormalizeDecimals(*sq->getItem(k));
    }
  }
}

// The data set's elements as one JSON object (BulkFormat), or the element that cannot be.
[[nodiscard]] Result<std::string> WriteJson(DcmDataset& ds) {
  BulkFormat format;
  std::ostringstream out;
  out << '{';
  bool first = true;
  for (DcmObject* o = ds.nextInContainer(nullptr); o; o = ds.nextInContainer(o)) {
    auto* e = OFstatic_cast(DcmElement*, o);
    const DcmTagKey tag = e->getTag();
    if (tag.getElement() == 0) continue;  // group lengths are not part of the model
    format.top = tag;
    format.bulk = tag == DCM_PixelData || (IsBinary(*e) && e->getLengthField() > kBulkDataThreshold);
    if (!first) out << ',';
    first = false;
    if (OFCondition c = e->writeJson(out, format); c.bad()) {
      return FailCondition(
          c, fmt::format("({:04X},{:04X}) cannot be written as DICOM JSON", tag.getGroup(), tag.getElement()),
          Code::kInvalidArgument);
    }
  }
  out << '}';
  return std::move(out).str();
}

}  // namespace

[[nodiscard]] Result<std::string> MetadataJson(const std::filesystem::path& file) {
  auto ff = Load(file);
  if (!ff) return tl::unexpected(ff.error());
  DcmDataset* ds = (*ff)->getDataset();
  std::string problem;
  if (!ToUtf8(*ds, &problem)) {
    return Fail(Code::kInvalidArgument, fmt::format("its text values cannot be given in UTF-8: {}", problem));
  }
  NormalizeDecimals(*ds);
  auto json = WriteJson(*ds);
  if (!json) return json;
  // What DCMTK wrote from a malformed value (a number field that is not one, bytes that are not
  // UTF-8) must not break a whole study's answer: checked here, once.
  if (nlohmann::json::accept(*json)) return json;
  // Text with bytes above 127 and no character set declared: read as Latin-1, as most such
  // files are written.
  OFString declared;
  ds->findAndGetOFStringArray(DCM_SpecificCharacterSet, declared);
  if (declared.empty() || declared == "ISO_IR 6") {
    ds->putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 100");
    if (ToUtf8(*ds) && (json = WriteJson(*ds)) && nlohmann::json::accept(*json)) return json;
  }
  return Fail(Code::kInvalidArgument, "its attributes do not make valid DICOM JSON (a malformed value)");
}

[[nodiscard]] Result<void> ReadBulk(const std::filesystem::path& file, uint32_t tag,
                                    const std::function<bool(std::string_view)>& sink) {
  auto ff = Load(file);
  if (!ff) return tl::unexpected(ff.error());
  DcmDataset* ds = (*ff)->getDataset();
  const DcmTagKey key(static_cast<Uint16>(tag >> 16), static_cast<Uint16>(tag & 0xFFFF));
  DcmElement* e = nullptr;
  if (ds->findAndGetElement(key, e, OFFalse).bad() || !e || !IsBinary(*e)) {
    return Fail(Code::kNotFound,
                fmt::format("the instance has no bulk data ({:04X},{:04X})", key.getGroup(), key.getElement()));
  }
  if (key == DCM_PixelData && DcmXfer(ds->getOriginalXfer()).isEncapsulated()) {
    return Fail(Code::kUnsupported, "encapsulated pixel data is given by its frames");
  }
  const Uint32 length = e->getLengthField();
  std::string buf;
  DcmFileCache cache;
  for (Uint32 offset = 0; offset < length;) {
    const Uint32 n = std::min<Uint32>(length - offset, 1u << 20);
    buf.resize(n);
    if (OFCondition c = e->getPartialValue(buf.data(), offset, n, &cache, EBO_LittleEndian); c.bad()) {
      return FailCondition(c, "the value cannot be read", Code::kIoError);
    }
    if (!sink(buf)) return Fail(Code::kCanceled, "the client went away");
    offset += n;
  }
  return {};
}

std::string FrameMediaType(const std::string& transfer_syntax) {
  for (const MediaType& m : kFrameMedia) {
    if (transfer_syntax == m.syntax) return m.type;
  }
  return {};
}

struct FrameReader::Impl {
  std::unique_ptr<DcmFileFormat> ff;
  DcmPixelData* pixels = nullptr;
  int frames = 1;
  bool encapsulated = false;
  std::string syntax;
  DcmFileCache cache;
};

FrameReader::FrameReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FrameReader::~FrameReader() = default;

Result<std::unique_ptr<FrameReader>> FrameReader::Open(const std::filesystem::path& file) {
  RegisterCodecs();
  auto ff = Load(file);
  if (!ff) return tl::unexpected(ff.error());
  auto impl = std::make_unique<Impl>();
  DcmDataset* ds = (*ff)->getDataset();
  DcmElement* e = nullptr;
  if (ds->findAndGetElement(DCM_PixelData, e, OFFalse).bad() || !e || e->ident() != EVR_PixelData) {
    return Fail(Code::kUnsupported, "the instance has no pixel data");
  }
  impl->pixels = OFstatic_cast(DcmPixelData*, e);
  long frames = 1;
  if (ds->findAndGetLongInt(DCM_NumberOfFrames, frames).good() && frames > 0) impl->frames = static_cast<int>(frames);
  const DcmXfer x(ds->getOriginalXfer());
  impl->encapsulated = x.isEncapsulated();
  impl->syntax = x.getXferID();
  // Number of Frames is what the file says; the pixel data must hold them (a hostile count would
  // size allocations): at most one frame per fragment, or as many as the native value holds.
  if (impl->encapsulated) {
    DcmPixelSequence* seq = nullptr;
    if (impl->pixels->getEncapsulatedRepresentation(x.getXfer(), nullptr, seq).good() && seq && seq->card() > 1) {
      impl->frames = std::min<int>(impl->frames, static_cast<int>(seq->card() - 1));
    }
  } else {
    Uint32 size = 0;
    if (impl->pixels->getUncompressedFrameSize(ds, size).good() && size > 0) {
      impl->frames = std::max(1, std::min<int>(impl->frames, static_cast<int>(impl->pixels->getLengthField() / size)));
    }
  }
  impl->ff = std::move(*ff);
  return std::unique_ptr<FrameReader>(new FrameReader(std::move(impl)));
}

int FrameReader::count() const { return impl_->frames; }
bool FrameReader::encapsulated() const { return impl_->encapsulated; }
const std::string& FrameReader::transfer_syntax() const { return impl_->syntax; }

Result<std::string> FrameReader::Uncompressed(int n) {
  if (n < 1 || n > impl_->frames) return Fail(Code::kNotFound, fmt::format("there is no frame {}", n));
  DcmDataset* ds = impl_->ff->getDataset();
  Uint32 size = 0;
  if (OFCondition c = impl_->pixels->getUncompressedFrameSize(ds, size); c.bad() || size == 0) {
    return Fail(Code::kUnsupported, "the frame size cannot be told from the image attributes");
  }
  std::string buf(size, '\0');
  Uint32 start = 0;
  OFString colour;
  OFCondition c = impl_->pixels->getUncompressedFrame(ds, static_cast<Uint32>(n - 1), start, buf.data(), size, colour,
                                                      &impl_->cache);
  if (c.bad()) return FailCondition(c, fmt::format("frame {} cannot be decoded", n), Code::kUnsupported);
  return buf;
}

Result<std::string> FrameReader::Stored(int n) {
  if (n < 1 || n > impl_->frames) return Fail(Code::kNotFound, fmt::format("there is no frame {}", n));
  if (!impl_->encapsulated) return Fail(Code::kUnsupported, "the instance is not stored compressed");
  DcmPixelSequence* seq = nullptr;
  const DcmXfer x(impl_->syntax.c_str());
  if (impl_->pixels->getEncapsulatedRepresentation(x.getXfer(), nullptr, seq).bad() || !seq) {
    return Fail(Code::kUnsupported, "the compressed pixel data cannot be read");
  }
  Uint32 first = 0, end = seq->card();
  if (DcmCodec::determineStartFragment(static_cast<Uint32>(n - 1), impl_->frames, seq, first).bad() ||
      (n < impl_->frames && DcmCodec::determineStartFragment(static_cast<Uint32>(n), impl_->frames, seq, end).bad())) {
    return Fail(Code::kUnsupported,
                fmt::format("frame {} cannot be told apart: several fragments per frame and no offset table", n));
  }
  std::string out;
  for (Uint32 i = first; i < end; ++i) {
    DcmPixelItem* item = nullptr;
    Uint8* data = nullptr;
    if (seq->getItem(item, i).bad() || !item || item->getUint8Array(data).bad()) {
      return Fail(Code::kIoError, fmt::format("fragment {} of frame {} cannot be read", i, n));
    }
    if (data) out.append(reinterpret_cast<const char*>(data), item->getLength());
    item->compact();  // the fragment goes back to the file: one frame in memory at a time
  }
  return out;
}

}  // namespace pb::dicom
