#pragma once
// STOW-RS (PS3.18 10.5) without the network: the multipart/related request body, streamed from
// the instances' files (never whole in memory), and the store response mapped to one outcome per
// instance as a C-STORE would have had it.
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "dicom/store_scu.h"

namespace pb::dicomweb {

// A multipart/related; type="application/dicom" body of whole files, read piece by piece; each
// part has its Content-Type and Content-Length.
class StowBody {
 public:
  StowBody(std::vector<std::string> paths, std::string boundary);
  ~StowBody();
  StowBody(const StowBody&) = delete;
  StowBody& operator=(const StowBody&) = delete;

  // Computes the size; an error names a file that cannot be read.
  [[nodiscard]] Result<void> Open();
  int64_t size() const { return size_; }
  std::string content_type() const;
  // The next bytes (0 at the end); an error when a file changed or cannot be read.
  [[nodiscard]] Result<size_t> Read(char* buffer, size_t n);
  [[nodiscard]] Result<void> Rewind();

 private:
  struct Segment {
    std::string text;  // a delimiter and headers, or empty for a file
    std::string path;  // a file's contents
    int64_t size = 0;
  };
  std::vector<std::string> paths_;
  std::string boundary_;
  std::vector<Segment> segments_;
  int64_t size_ = 0;
  size_t segment_ = 0;
  int64_t offset_ = 0;  // within the current segment
  std::FILE* file_ = nullptr;
};

// A boundary no DICOM file is likely to hold: "pacsbridge-" and 32 random hex digits.
std::string NewBoundary();

// One outcome per SOP Instance UID the answer names: in ReferencedSOPSequence (stored; a
// WarningReason makes it a warning) or FailedSOPSequence (failed, FailureReason as its DIMSE
// status). Errors (kUnavailable) for an answer that is not a DICOM JSON data set.
[[nodiscard]] Result<std::map<std::string, dicom::SendOutcome>> ParseStowResponse(std::string_view body);

}  // namespace pb::dicomweb
