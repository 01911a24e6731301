#pragma once
// One instance held in memory, for receivers that change data before anything reaches the disk
// (anonymization, attribute processors): the data set arrives from the network into memory,
// is read and changed here, and only the changed data set is written. No DCMTK types leak out,
// so src/ingest and src/receivers can use it. Not thread-safe; one owner at a time.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"

namespace pb::dicom {

struct AnonymizeOptions;

class Dataset {
 public:
  struct Impl;
  explicit Dataset(std::unique_ptr<Impl> impl);
  // A DICOM file (with its meta header) read whole into memory, in the syntax it is stored in.
  // Errors name the file and say why (not DICOM, truncated, unreadable).
  [[nodiscard]] static Result<std::unique_ptr<Dataset>> Read(const std::filesystem::path& file);
  // The same from the bytes of such a file in memory (data that must never touch the disk as
  // it came). Errors say why (not DICOM, truncated).
  [[nodiscard]] static Result<std::unique_ptr<Dataset>> Parse(const std::string& file_bytes);
  ~Dataset();
  Dataset(const Dataset&) = delete;
  Dataset& operator=(const Dataset&) = delete;

  // A top-level attribute's value as UTF-8 (from the data set's Specific Character Set);
  // nullopt when absent.
  std::optional<std::string> Get(uint32_t tag) const;
  // Sets a top-level attribute (created when absent) from a UTF-8 value; the data set is
  // converted to UTF-8 first when the value is not plain ASCII. Errors name the tag.
  [[nodiscard]] Result<void> Set(uint32_t tag, std::string_view utf8_value);
  // Gives the attribute an empty value (kept present, as type 2 attributes must be).
  [[nodiscard]] Result<void> Clear(uint32_t tag);
  [[nodiscard]] Result<void> Anonymize(const AnonymizeOptions& options);
  // Writes the data set with a new file meta header, in the transfer syntax it arrived in.
  // Returns the file's size.
  [[nodiscard]] Result<int64_t> Write(const std::filesystem::path& file) const;
  std::string transfer_syntax_uid() const;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// The tag as "(gggg,eeee)".
std::string TagString(uint32_t tag);
// A tag from "(gggg,eeee)", "gggg,eeee", "ggggeeee" or a DICOM keyword of DCMTK's dictionary.
std::optional<uint32_t> ParseTag(std::string_view text);
// The DICOM keyword of a tag in DCMTK's dictionary ("PatientName"), or "" when it has none.
std::string TagKeyword(uint32_t tag);

}  // namespace pb::dicom
