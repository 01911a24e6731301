#include "core/result.h"

namespace pb {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kInvalidArgument:
      return "invalid_argument";
    case Code::kNotFound:
      return "not_found";
    case Code::kAlreadyExists:
      return "already_exists";
    case Code::kLocked:
      return "locked";
    case Code::kUnavailable:
      return "unavailable";
    case Code::kAborted:
      return "aborted";
    case Code::kTimeout:
      return "timeout";
    case Code::kIoError:
      return "io_error";
    case Code::kOutOfSpace:
      return "out_of_space";
    case Code::kUnsupported:
      return "unsupported";
    case Code::kConflict:
      return "conflict";
    case Code::kPermissionDenied:
      return "permission_denied";
    case Code::kCanceled:
      return "canceled";
    case Code::kInternal:
      return "internal";
  }
  return "internal";
}

}  // namespace pb
