#pragma once
// A data set arriving as a byte stream (a C-STORE's PDVs), split as it comes so that changing
// it (anonymization, attribute processors) needs no memory for its pixel data: the attributes
// stay in memory, and once the data set outgrows a memory budget, its pixel data (the value of
// a top-level (7FE0,xxxx) element, or each fragment of encapsulated pixel data, of at least
// `min_spill` bytes) goes to a spill file instead. The data set is then read by DCMTK from
// both, the spilled values left in the file and read from it only while the changed data set
// is written (DCMTK's write cache, 64 KB at a time). A 200 MB image thus needs the budget, not
// 200 MB; what reaches the disk before anonymization is pixel data only, which the anonymizer
// leaves as it is, never an attribute that may identify (another large value stays in memory).
//
// The walk knows the encoding of Little Endian data sets (implicit or explicit VR, native or
// encapsulated pixel data, sequences of defined or undefined length, UN sequences in implicit
// VR); other syntaxes (deflate, big endian) must not come here. A structure the walk cannot
// follow stops the splitting: the rest stays in memory, as it would without a split, and
// DCMTK's parse decides. It never throws and never reads outside what it is given.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "dicom/dataset.h"

namespace pb::dicom {

class DataSetSplitter {
 public:
  struct Options {
    bool explicit_vr = true;
    // Bytes held in memory before values start going to the spill file.
    size_t memory_budget = 4 * 1024 * 1024;
    // Pixel data shorter than this stays in memory even then (DCMTK would load it anyway).
    size_t min_spill = 4096;
  };
  // A stretch of the data set: in memory (offset into the memory buffer) or in the spill file.
  struct Segment {
    bool in_file = false;
    uint64_t offset = 0;
    uint64_t length = 0;
  };

  // `spill_path` names the spill file when one is first needed (made with O_EXCL, mode 0600).
  DataSetSplitter(Options options, std::function<std::filesystem::path()> spill_path);
  ~DataSetSplitter();  // removes the spill file unless Finish handed it over
  DataSetSplitter(const DataSetSplitter&) = delete;
  DataSetSplitter& operator=(const DataSetSplitter&) = delete;

  // The next bytes of the data set. False once the spill file cannot be written (disk full):
  // the data set is then lost, and the caller answers so.
  bool Feed(const char* data, size_t size);

  // The data set read by DCMTK from memory and the spill file, in `transfer_syntax_uid`; it
  // keeps the spill file (removed with it). Errors say why DCMTK could not read it.
  [[nodiscard]] Result<std::unique_ptr<Dataset>> Finish(const std::string& transfer_syntax_uid);

  // For tests and diagnostics.
  const std::vector<Segment>& segments() const { return segments_; }
  uint64_t spilled_bytes() const { return file_size_; }
  size_t memory_bytes() const { return mem_.size(); }
  bool walking() const { return state_ != State::kLost; }  // false: the structure was not followed
  bool write_failed() const { return write_failed_; }

 private:
  enum class State { kHeader, kValue, kLost };
  struct Level {
    enum Kind { kDataSet, kSequence, kItem } kind;
    bool explicit_vr;
    bool pixel_data;  // a sequence: the fragments of encapsulated pixel data
  };

  void AppendMemory(const char* data, size_t size);
  void AppendFile(const char* data, size_t size);
  void HeaderComplete();
  void StartValue(uint64_t length, bool bulk);
  void CheckBudget();
  size_t HeaderSize() const;

  Options options_;
  std::function<std::filesystem::path()> spill_path_;
  std::string mem_;
  std::vector<Segment> segments_;
  std::FILE* file_ = nullptr;
  std::filesystem::path file_path_;
  uint64_t file_size_ = 0;
  uint64_t total_ = 0;                // bytes of the data set so far, in memory or file
  std::vector<uint64_t> spilled_at_;  // where each value in the file starts in the data set
  uint64_t value_at_ = 0;             // where the current value starts in the data set
  bool write_failed_ = false;
  bool spilling_ = false;

  State state_ = State::kHeader;
  std::vector<Level> levels_;
  unsigned char header_[12] = {};
  size_t header_have_ = 0;
  uint64_t value_left_ = 0;
  bool value_to_file_ = false;
  bool value_spillable_ = false;
  size_t value_mem_start_ = 0;  // where the current value's bytes begin in mem_ (not spilled)
};

}  // namespace pb::dicom
