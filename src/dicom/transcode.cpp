#include "dicom/transcode.h"

#include <mutex>
#include <set>
#include "dicom/condition.h"

#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpeg/djencode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/dcmjpls/djencode.h>
#include <fmt/format.h>

namespace pb::dicom {
namespace {

// What DCMTK's codecs here can both decode and encode (no JPEG 2000 codec in this build).
const std::set<std::string>& Supported() {
  static const std::set<std::string> k{
      UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax,
      UID_BigEndianExplicitTransferSyntax,    UID_DeflatedExplicitVRLittleEndianTransferSyntax,
      UID_JPEGProcess1TransferSyntax,         UID_JPEGProcess2_4TransferSyntax,
      UID_JPEGProcess14TransferSyntax,        UID_JPEGProcess14SV1TransferSyntax,
      UID_JPEGLSLosslessTransferSyntax,       UID_JPEGLSLossyTransferSyntax,
      UID_RLELosslessTransferSyntax};
  return k;
}

std::string Name(const std::string& ts) {
  DcmXfer x(ts.c_str());
  return x.getXfer() == EXS_Unknown ? ts : std::string(x.getXferName());
}

}  // namespace

void RegisterCodecs() {
  static std::once_flag once;
  std::call_once(once, [] {
    DJDecoderRegistration::registerCodecs();
    DJEncoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DJLSEncoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
    DcmRLEEncoderRegistration::registerCodecs();
  });
}

bool IsUncompressed(const std::string& ts) {
  return ts == UID_LittleEndianExplicitTransferSyntax || ts == UID_LittleEndianImplicitTransferSyntax ||
         ts == UID_BigEndianExplicitTransferSyntax || ts == UID_DeflatedExplicitVRLittleEndianTransferSyntax;
}

bool IsLossy(const std::string& ts) {
  DcmXfer x(ts.c_str());
  return x.getXfer() != EXS_Unknown && x.isEncapsulated() && x.isLossy();
}

bool CanConvert(const std::string& from, const std::string& to, bool allow_lossy) {
  if (from == to) return true;
  if (!Supported().count(from) || !Supported().count(to)) return false;
  if (IsLossy(to) && !allow_lossy) return false;
  return true;
}

[[nodiscard]] Result<void> Transcode(DcmDataset& ds, const std::string& from, const std::string& to) {
  RegisterCodecs();
  DcmXfer target(to.c_str());
  if (target.getXfer() == EXS_Unknown)
    return Fail(Code::kInvalidArgument, fmt::format("unknown transfer syntax {}", to));
  if (!Supported().count(from)) {
    return Fail(Code::kUnsupported, fmt::format("{} cannot be decoded by this build", Name(from)));
  }
  OFCondition c = ds.chooseRepresentation(target.getXfer(), nullptr);
  if (c.bad() || !ds.canWriteXfer(target.getXfer())) {
    return Fail(Code::kUnsupported, fmt::format("cannot convert {} to {}{}{}", Name(from), Name(to),
                                                c.bad() ? ": " : "", c.bad() ? ConditionText(c) : ""));
  }
  return {};
}

}  // namespace pb::dicom
