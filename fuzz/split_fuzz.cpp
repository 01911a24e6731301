// A data set from the network split as it arrives (attributes in memory, pixel data in a spill
// file), against DCMTK's parse of the same bytes in memory: whenever DCMTK reads the bytes in
// memory, the split must read too and write the very same file. The first byte chooses the
// syntax and the memory budget (small, so that pixel data spills), the second how the bytes are
// cut into network reads.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include "dicom/dataset_impl.h"
#include "dicom/split_dataset.h"

namespace {

namespace fs = std::filesystem;

const fs::path& Dir() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("pb-split-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(d);  // fuzz/run.sh points TMPDIR into the build tree and removes it
    return d;
  }();
  return dir;
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The data set of the file Dataset::Write makes (after the meta header, which may carry a UID
// made for it), or "" when it fails.
std::string Written(pb::dicom::Dataset& d, const char* name) {
  const fs::path out = Dir() / name;
  auto size = d.Write(out);
  std::string bytes = size ? ReadAll(out) : std::string();
  std::error_code ec;
  fs::remove(out, ec);
  if (bytes.size() < 144) return bytes;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data()) + 140;  // (0002,0000)'s value
  const size_t meta_end = 144 + (p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<size_t>(p[3]) << 24));
  return meta_end <= bytes.size() ? bytes.substr(meta_end) : bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static const char* const kSyntaxes[] = {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.4.50"};
  const std::string syntax = kSyntaxes[(data[0] & 3) % 3];
  const size_t budget = (data[0] >> 2) * 16;  // 0 to 1008 bytes
  const size_t chunk = 1 + data[1];
  const std::string bytes(reinterpret_cast<const char*>(data) + 2, size - 2);
  const DcmXfer xfer(syntax.c_str());

  // DCMTK's parse in memory, as a receiver without the split reads a data set.
  auto reference = std::make_unique<pb::dicom::Dataset::Impl>();
  reference->ds = std::make_unique<DcmDataset>();
  reference->transfer_syntax_uid = syntax;
  DcmInputBufferStream in;
  in.setBuffer(bytes.data(), static_cast<offile_off_t>(bytes.size()));
  in.setEos();
  reference->ds->transferInit();
  const bool read = reference->ds->read(in, xfer.getXfer(), EGL_noChange).good();
  reference->ds->transferEnd();

  pb::dicom::DataSetSplitter::Options options;
  options.explicit_vr = xfer.isExplicitVR();
  options.memory_budget = budget;
  options.min_spill = 1;
  int spills = 0;
  std::unique_ptr<pb::dicom::Dataset> split;
  {
    pb::dicom::DataSetSplitter splitter(options, [&] { return Dir() / ("spill" + std::to_string(++spills)); });
    for (size_t at = 0; at < bytes.size(); at += chunk) {
      if (!splitter.Feed(bytes.data() + at, std::min(chunk, bytes.size() - at))) std::abort();
    }
    auto finished = splitter.Finish(syntax);
    if (finished) split = std::move(*finished);
  }
  if (read) {
    if (!split) std::abort();  // DCMTK reads the bytes, but not once split
    pb::dicom::Dataset whole(std::move(reference));
    const std::string a = Written(whole, "whole.dcm"), b = Written(*split, "split.dcm");
    if (a != b) {  // written differently
      std::fprintf(stderr, "split_fuzz: in memory %zu bytes written, split %zu\n", a.size(), b.size());
      std::abort();
    }
  }
  split.reset();
  std::error_code ec;
  if (fs::exists(Dir() / ("spill" + std::to_string(spills)), ec)) std::abort();  // the spill file outlived its data set
  return 0;
}
