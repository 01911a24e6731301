// The one place a DCMTK OFCondition is read. Its identity becomes our neutral Code (and, for
// network calls, what went wrong); its text ends a message that names the command and the peer.
// Nothing else in the code reads a condition's text or branches on words.
#pragma once

#include <string>

#include <dcmtk/ofstd/ofcond.h>

#include "core/result.h"

namespace pb::dicom {

// What a failed DCMTK network call means.
enum class NetFault {
  kNone,            // the condition is good
  kRefused,         // nothing listens on the port
  kTimeout,         // connecting, or waiting for the peer, took too long
  kUnreachable,     // no route to the host
  kTls,             // the TLS layer failed (handshake, protocol)
  kTlsCertificate,  // the peer's certificate failed verification
  kAborted,         // the peer aborted the association, or never let it open
  kRejected,        // A-ASSOCIATE-RJ
  kClosed,          // the connection closed or broke under way
  kOther,
};

// By the condition's module and code. DCMTK reports a failed TCP connect and a failed TLS
// handshake as one code each, with the system's reason only in the text: for those two, and
// only here, the reason is read from DCMTK's words.
NetFault Classify(const OFCondition& c);

// The neutral code of a failed condition: a timeout kTimeout, an abort kAborted, a refused,
// unreachable or lost connection kUnavailable; anything else `otherwise`.
Code CodeOf(const OFCondition& c, Code otherwise);

// "<context>: <DCMTK's text>", where `context` says what was done with whom ("C-FIND to
// PACS@10.0.0.5:104 failed", "cannot read scan.dcm as DICOM").
Error ConditionError(const OFCondition& c, const std::string& context, Code otherwise = Code::kUnavailable);
inline tl::unexpected<Error> FailCondition(const OFCondition& c, const std::string& context,
                                           Code otherwise = Code::kUnavailable) {
  return tl::unexpected<Error>(ConditionError(c, context, otherwise));
}

// DCMTK's words for a condition, for log lines and for messages worded around them.
std::string ConditionText(const OFCondition& c);

}  // namespace pb::dicom
