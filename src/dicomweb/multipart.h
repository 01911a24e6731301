#pragma once
// A streaming parser of multipart bodies (RFC 2046 section 5.1, as PS3.18 uses
// multipart/related for WADO-RS answers and STOW-RS requests). Bytes are fed in chunks of any
// size as they arrive; each part's headers and then its data are handed on as they are found,
// so no part (a 200 MB instance) and no body is ever whole in memory. Memory is bounded by the
// header limit plus a few KB, whatever the input; a part's data is handed on from the caller's
// chunk without being copied. A part whose headers give its Content-Length (Orthanc's do) is
// taken by that length, and its delimiter must follow right after; only parts without one are
// searched for their delimiter (that search is a tenth of the parser's time on a large body).
// Hostile input (no boundary, a truncated part, endless headers, a Content-Length that does not
// end at a delimiter) ends in an error naming the part and what is wrong; nothing throws. Not
// thread-safe: one parser per body.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "core/result.h"

namespace pb::dicomweb {

// The boundary of a Content-Type such as `multipart/related; type="application/dicom";
// boundary=abc` (parameter names in any case, the value quoted or not). Errors say what is
// missing or wrong (not multipart, no boundary, a boundary RFC 2046 does not allow).
[[nodiscard]] Result<std::string> MultipartBoundary(std::string_view content_type);

class MultipartParser {
 public:
  using Headers = std::map<std::string, std::string>;  // names in lower case, values trimmed
  struct Handlers {
    // A part begins (`index` from 1). An error stops the parser and is returned by Feed.
    std::function<Result<void>(int index, const Headers& headers)> on_part;
    // Some of the current part's data, in order; may be called many times per part.
    std::function<Result<void>(std::string_view data)> on_data;
    // The current part is complete (its data ended at a delimiter).
    std::function<Result<void>()> on_part_end;
  };
  static constexpr size_t kMaxHeaderBytes = 16 * 1024;

  MultipartParser(const std::string& boundary, Handlers handlers);

  // Takes the next bytes of the body. After an error, the parser stays failed.
  [[nodiscard]] Result<void> Feed(std::string_view bytes);
  // The body ended: an error unless the closing delimiter was seen (a truncated body).
  [[nodiscard]] Result<void> Finish();

  int parts() const { return parts_; }  // parts begun so far

 private:
  // kCounted: a part's data of known length; kCountedEnd: its delimiter must come next.
  enum class State { kPreamble, kAfterDelimiter, kHeaders, kBody, kCounted, kCountedEnd, kEpilogue, kFailed };
  [[nodiscard]] Result<void> Step(bool& progressed);
  [[nodiscard]] Result<void> Fail(std::string message);
  [[nodiscard]] Result<void> Failed(const Result<void>& r);  // the parser stays failed with r's message
  [[nodiscard]] Result<void> ParseHeaders(std::string_view block);
  [[nodiscard]] Result<void> EmitCounted(std::string_view data);  // hands on what is left of a counted part

  std::string dash_boundary_;  // "--" + boundary
  std::string delimiter_;      // "\r\n--" + boundary
  Handlers handlers_;
  State state_ = State::kPreamble;
  std::string buffer_;  // bytes not consumed yet: bounded (see the header comment)
  int parts_ = 0;
  uint64_t length_ = 0;  // the counted part's Content-Length
  uint64_t left_ = 0;    // of it, bytes not handed on yet
  std::string error_;
};

}  // namespace pb::dicomweb
