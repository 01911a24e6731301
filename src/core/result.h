#pragma once
// Errors are values: every fallible operation returns Result<T>. The Code is protocol-neutral;
// src/http maps it to an HTTP status and src/dicom to a DIMSE status, each in one place.
#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace pb {

enum class Code {
  kInvalidArgument,  // the caller's input is wrong; `field` names what
  kNotFound,
  kAlreadyExists,
  kLocked,       // comes from the config file, read-only
  kUnavailable,  // a peer or resource cannot be reached right now
  kAborted,      // the peer ended the association or connection under way (A-ABORT): it
                 // may pass, or the peer may not take what we asked (some abort a C-GET)
  kTimeout,
  kIoError,  // disk, database
  kOutOfSpace,
  kUnsupported,       // the peer (or this build) does not offer the operation asked for
  kConflict,          // the state of the resource does not allow the operation
  kPermissionDenied,  // a peer refused us or the request (our AE title, credentials, a request it
                      // does not take): asking again unchanged will not help
  kCanceled,          // someone asked the operation to stop
  kInternal,
};

struct Error {
  Code code = Code::kInternal;
  std::string message;
  std::string field;  // the input field the error is about, if any
};

template <typename T>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> Fail(Code code, std::string message, std::string field = {}) {
  return tl::unexpected<Error>(Error{code, std::move(message), std::move(field)});
}

const char* CodeName(Code code);

// Whether a fault of this kind may go away by itself (a peer down, a timeout, no space right
// now), so that trying again later is worth it; refusals and bad input are not.
inline bool IsTransient(Code code) {
  return code == Code::kUnavailable || code == Code::kAborted || code == Code::kTimeout || code == Code::kOutOfSpace ||
         code == Code::kIoError;
}

}  // namespace pb
