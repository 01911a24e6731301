#pragma once
// What WADO-RS answers from a stored instance besides the file itself (PS3.18 10.4): its
// metadata in the DICOM JSON model, a bulk data value, and its frames, as stored or
// uncompressed. Frames are read one at a time from the file (partial access): a frame of a
// 2,000-frame instance never loads or decodes the others.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.h"

namespace pb::dicom {

// Binary values of the top level longer than this are given as a BulkDataURI, not inline.
constexpr size_t kBulkDataThreshold = 1024;

// The data set as one DICOM JSON object (PS3.18 F.2), in UTF-8. Pixel data and binary values of
// the top level longer than kBulkDataThreshold are not inline: their "BulkDataURI" is the tag in
// eight hex digits ("7FE00010"), for the server to prefix with the instance's bulk data route.
// Values given as URIs are never read. kInvalid when the file is not DICOM or its values cannot
// be written as valid JSON in UTF-8.
[[nodiscard]] Result<std::string> MetadataJson(const std::filesystem::path& file);

// A top-level binary value (a BulkDataURI's), little endian, handed to `sink` in chunks (false
// from the sink stops). kNotFound when the instance has no such value; kUnsupported for pixel
// data in an encapsulated syntax (its frames are the bulk data: FrameReader).
[[nodiscard]] Result<void> ReadBulk(const std::filesystem::path& file, uint32_t tag,
                                    const std::function<bool(std::string_view)>& sink);

// The media type of a frame of pixel data as stored in `transfer_syntax` (PS3.18 Table
// 8.7.3-2): image/jpeg, image/jls, image/jp2, image/jpx, image/dicom-rle; "" for the
// uncompressed syntaxes (application/octet-stream) and for those without a frame media type.
std::string FrameMediaType(const std::string& transfer_syntax);

class FrameReader {
 public:
  struct Impl;
  // kUnsupported when the instance has no pixel data.
  [[nodiscard]] static Result<std::unique_ptr<FrameReader>> Open(const std::filesystem::path& file);
  ~FrameReader();
  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;

  int count() const;                           // Number of Frames (1 when absent)
  bool encapsulated() const;                   // compressed as stored
  const std::string& transfer_syntax() const;  // as stored
  // Frame `n` (from 1) uncompressed, little endian (decoded when stored compressed; colour
  // frames decoded from YBR come as RGB). Errors name the frame and why.
  [[nodiscard]] Result<std::string> Uncompressed(int n);
  // Frame `n` (from 1) as stored in an encapsulated syntax: its fragments' bytes. kUnsupported
  // when the instance is not encapsulated, or when the fragments' frame boundaries cannot be told
  // (several fragments per frame and no offset table).
  [[nodiscard]] Result<std::string> Stored(int n);

 private:
  explicit FrameReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pb::dicom
