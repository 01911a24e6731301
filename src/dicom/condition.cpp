#include "dicom/condition.h"

#include <dcmtk/dcmdata/dcerror.h>
#include <dcmtk/dcmnet/cond.h>
#include <fmt/format.h>

namespace pb::dicom {
namespace {

bool Has(const std::string& text, const char* word) { return text.find(word) != std::string::npos; }

bool IsDcmnet(const OFCondition& c, unsigned short code) { return c.module() == OFM_dcmnet && c.code() == code; }

}  // namespace

NetFault Classify(const OFCondition& c) {
  if (c.good()) return NetFault::kNone;
  if (c == DUL_ASSOCIATIONREJECTED) return NetFault::kRejected;
  if (c == DUL_PEERABORTEDASSOCIATION || c == DUL_PEERREQUESTEDRELEASE) return NetFault::kAborted;
  if (c == DUL_READTIMEOUT || c == DIMSE_NODATAAVAILABLE) return NetFault::kTimeout;
  if (c == DUL_NETWORKCLOSED || c == DIMSE_READPDVFAILED) return NetFault::kClosed;
  const std::string text = ConditionText(c);
  const bool dcmnet = c.module() == OFM_dcmnet;
  if (IsDcmnet(c, DULC_TLSERROR) || c.module() == OFM_dcmtls ||
      (dcmnet && (Has(text, "TLS") || Has(text, "SSL") || Has(text, "ecure") || Has(text, "certificate")))) {
    return Has(text, "certificate verify failed") ? NetFault::kTlsCertificate : NetFault::kTls;
  }
  if (dcmnet) {
    // The system's reason, as strerror words it (glibc).
    if (Has(text, "Connection refused")) return NetFault::kRefused;
    if (Has(text, "Timeout") || Has(text, "timed out")) return NetFault::kTimeout;
    if (Has(text, "No route") || Has(text, "unreachable")) return NetFault::kUnreachable;
  }
  return NetFault::kOther;
}

Code CodeOf(const OFCondition& c, Code otherwise) {
  switch (Classify(c)) {
    case NetFault::kTimeout:
      return Code::kTimeout;
    case NetFault::kAborted:
      return Code::kAborted;
    case NetFault::kRefused:
    case NetFault::kUnreachable:
    case NetFault::kClosed:
      return Code::kUnavailable;
    case NetFault::kNone:
    case NetFault::kTls:
    case NetFault::kTlsCertificate:
    case NetFault::kRejected:
    case NetFault::kOther:
      break;
  }
  return otherwise;
}

Error ConditionError(const OFCondition& c, const std::string& context, Code otherwise) {
  return Error{CodeOf(c, otherwise), fmt::format("{}: {}", context, ConditionText(c)), ""};
}

std::string ConditionText(const OFCondition& c) { return c.text() ? c.text() : "unknown DCMTK condition"; }

}  // namespace pb::dicom
