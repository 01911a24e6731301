#include "dicom/dataset.h"

#include <cctype>

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdicent.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <fmt/format.h>

#include "dicom/anonymize.h"
#include "dicom/charset.h"
#include "dicom/condition.h"
#include "dicom/dataset_impl.h"

namespace pb::dicom {
namespace {

DcmTagKey Key(uint32_t tag) { return {static_cast<Uint16>(tag >> 16), static_cast<Uint16>(tag & 0xffff)}; }

bool IsAscii(std::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80) return false;
  }
  return true;
}

}  // namespace

std::string TagString(uint32_t tag) { return fmt::format("({:04X},{:04X})", tag >> 16, tag & 0xffff); }

std::optional<uint32_t> ParseTag(std::string_view text) {
  std::string hex;
  for (char c : text) {
    if (c == '(' || c == ')' || c == ',' || c == ' ') continue;
    hex.push_back(c);
  }
  bool all_hex = hex.size() == 8;
  for (char c : hex) all_hex = all_hex && std::isxdigit(static_cast<unsigned char>(c));
  if (all_hex) return static_cast<uint32_t>(std::stoul(hex, nullptr, 16));
  if (text.empty() || text.find_first_of("(), ") != std::string_view::npos) return std::nullopt;
  const DcmDataDictionary& dict = dcmDataDict.rdlock();
  const DcmDictEntry* e = dict.findEntry(std::string(text).c_str());
  std::optional<uint32_t> out;
  if (e) out = (uint32_t{e->getGroup()} << 16) | e->getElement();
  dcmDataDict.rdunlock();
  return out;
}

std::string TagKeyword(uint32_t tag) {
  const DcmDataDictionary& dict = dcmDataDict.rdlock();
  const DcmDictEntry* e =
      dict.findEntry(DcmTagKey(static_cast<Uint16>(tag >> 16), static_cast<Uint16>(tag & 0xFFFF)), nullptr);
  std::string out = e && e->getTagName() ? e->getTagName() : "";
  dcmDataDict.rdunlock();
  return out;
}

Dataset::Dataset(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Dataset::~Dataset() = default;

std::optional<std::string> Dataset::Get(uint32_t tag) const {
  DcmElement* el = nullptr;
  if (impl_->ds->findAndGetElement(Key(tag), el).bad() || !el) return std::nullopt;
  // Decoded on a copy, so the data set keeps its own character set until something changes it.
  DcmDataset copy;
  OFString charset;
  if (impl_->ds->findAndGetOFStringArray(DCM_SpecificCharacterSet, charset).good()) {
    copy.putAndInsertOFStringArray(DCM_SpecificCharacterSet, charset);
  }
  copy.insert(OFstatic_cast(DcmElement*, el->clone()), OFTrue);
  (void)ToUtf8(copy);
  OFString v;
  if (copy.findAndGetOFStringArray(Key(tag), v).bad()) return std::string();
  return std::string(v.c_str(), v.length());
}

Result<void> Dataset::Set(uint32_t tag, std::string_view utf8_value) {
  if (!IsAscii(utf8_value)) {
    std::string problem;
    if (!ToUtf8(*impl_->ds, &problem)) {
      return Fail(
          Code::kInvalidArgument,
          fmt::format("cannot set {}: the data set's text cannot be converted to UTF-8 ({})", TagString(tag), problem));
    }
  }
  DcmTag t(Key(tag));
  if (t.getEVR() == EVR_UNKNOWN || t.getEVR() == EVR_UN) {
    return Fail(Code::kInvalidArgument, fmt::format("cannot set {}: not in the data dictionary", TagString(tag)));
  }
  if (t.getEVR() == EVR_SQ)
    return Fail(Code::kInvalidArgument, fmt::format("cannot set {}: it is a sequence", TagString(tag)));
  OFCondition c = impl_->ds->putAndInsertOFStringArray(t, OFString(utf8_value.data(), utf8_value.size()));
  if (c.bad()) return FailCondition(c, fmt::format("cannot set {}", TagString(tag)), Code::kInvalidArgument);
  return {};
}

Result<void> Dataset::Clear(uint32_t tag) {
  DcmTag t(Key(tag));
  OFCondition c = impl_->ds->insertEmptyElement(t, OFTrue);
  if (c.bad()) return FailCondition(c, fmt::format("cannot clear {}", TagString(tag)), Code::kInvalidArgument);
  return {};
}

Result<void> Dataset::Anonymize(const AnonymizeOptions& options) { return dicom::Anonymize(*impl_->ds, options); }

Result<int64_t> Dataset::Write(const std::filesystem::path& file) const {
  DcmXfer xfer(impl_->transfer_syntax_uid.c_str());
  // The file format borrows the data set and gives it back, so pixel data is never copied.
  DcmFileFormat ff(impl_->ds.get(), OFFalse);
  OFCondition c = ff.saveFile(file.c_str(), xfer.getXfer(), EET_ExplicitLength, EGL_recalcGL, EPD_noChange, 0, 0,
                              EWM_createNewMeta);
  ff.getAndRemoveDataset();
  if (c.bad()) {
    std::error_code ec;
    std::filesystem::remove(file, ec);
    return FailCondition(c, fmt::format("cannot write {}", file.string()), Code::kUnavailable);
  }
  std::error_code ec;
  auto size = std::filesystem::file_size(file, ec);
  if (ec) return Fail(Code::kUnavailable, fmt::format("cannot read back {}: {}", file.string(), ec.message()));
  return static_cast<int64_t>(size);
}

std::string Dataset::transfer_syntax_uid() const { return impl_->transfer_syntax_uid; }

Result<std::unique_ptr<Dataset>> Dataset::Read(const std::filesystem::path& file) {
  DcmFileFormat ff;
  OFCondition c = ff.loadFile(file.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_fileOnly);
  if (c.bad()) return FailCondition(c, fmt::format("cannot read {} as DICOM", file.string()), Code::kInvalidArgument);
  auto impl = std::make_unique<Impl>();
  impl->transfer_syntax_uid = DcmXfer(ff.getDataset()->getOriginalXfer()).getXferID();
  if (!ff.getDataset()->loadAllDataIntoMemory().good()) {
    return Fail(Code::kInvalidArgument, fmt::format("cannot read all of {}", file.string()));
  }
  impl->ds.reset(ff.getAndRemoveDataset());
  return std::make_unique<Dataset>(std::move(impl));
}

Result<std::unique_ptr<Dataset>> Dataset::Parse(const std::string& file_bytes) {
  DcmInputBufferStream in;
  in.setBuffer(file_bytes.data(), static_cast<offile_off_t>(file_bytes.size()));
  in.setEos();
  DcmFileFormat ff;
  ff.transferInit();
  OFCondition c = ff.read(in, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
  ff.transferEnd();
  if (c.bad()) return FailCondition(c, "not a complete DICOM file", Code::kInvalidArgument);
  auto impl = std::make_unique<Impl>();
  impl->transfer_syntax_uid = DcmXfer(ff.getDataset()->getOriginalXfer()).getXferID();
  impl->ds.reset(ff.getAndRemoveDataset());
  return std::make_unique<Dataset>(std::move(impl));
}

}  // namespace pb::dicom
