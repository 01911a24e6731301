#include "dicomweb/stow.h"

#include <filesystem>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace pb::dicomweb {
namespace {

using nlohmann::json;

constexpr const char* kReferencedSop = "00081199";
constexpr const char* kFailedSop = "00081198";
constexpr const char* kSopInstance = "00081155";
constexpr const char* kFailureReason = "00081197";
constexpr const char* kWarningReason = "00081196";

// The first value of an attribute of a DICOM JSON object, if any.
const json* FirstValue(const json& object, const char* tag) {
  auto it = object.find(tag);
  if (it == object.end() || !it->is_object()) return nullptr;
  auto v = it->find("Value");
  if (v == it->end() || !v->is_array() || v->empty()) return nullptr;
  return &(*v)[0];
}

std::string WarningText(int code) {
  switch (code) {
    case 0xB000:
      return "coercion of data elements (0xB000)";
    case 0xB006:
      return "elements discarded (0xB006)";
    case 0xB007:
      return "data set does not match SOP class (0xB007)";
    default:
      return fmt::format("warning 0x{:04X}", code);
  }
}

}  // namespace

StowBody::StowBody(std::vector<std::string> paths, std::string boundary)
    : paths_(std::move(paths)), boundary_(std::move(boundary)) {}

StowBody::~StowBody() {
  if (file_) std::fclose(file_);
}

std::string StowBody::content_type() const {
  return fmt::format("multipart/related; type=\"application/dicom\"; boundary={}", boundary_);
}

Result<void> StowBody::Open() {
  segments_.clear();
  size_ = 0;
  for (const std::string& path : paths_) {
    std::error_code ec;
    auto bytes = std::filesystem::file_size(path, ec);
    if (ec) return Fail(Code::kIoError, fmt::format("cannot read {}: {}", path, ec.message()));
    // Each part gives its length, as Orthanc's WADO-RS answers do: a server that reads it (Orthanc,
    // ours) takes the part by count instead of searching it for the delimiter.
    segments_.push_back(
        {fmt::format("--{}\r\nContent-Type: application/dicom\r\nContent-Length: {}\r\n\r\n", boundary_, bytes), "",
         0});
    segments_.push_back({"", path, static_cast<int64_t>(bytes)});
    segments_.push_back({"\r\n", "", 0});
  }
  segments_.push_back({fmt::format("--{}--\r\n", boundary_), "", 0});
  for (auto& s : segments_) {
    if (s.path.empty()) s.size = static_cast<int64_t>(s.text.size());
    size_ += s.size;
  }
  return Rewind();
}

Result<void> StowBody::Rewind() {
  if (file_) std::fclose(file_);
  file_ = nullptr;
  segment_ = 0;
  offset_ = 0;
  return {};
}

Result<size_t> StowBody::Read(char* buffer, size_t n) {
  size_t written = 0;
  while (written < n && segment_ < segments_.size()) {
    Segment& s = segments_[segment_];
    if (offset_ >= s.size) {
      // The size went into Content-Length: a file that grew since Open() would be sent cut.
      if (file_ && std::fgetc(file_) != EOF) {
        return Fail(Code::kIoError, fmt::format("{} is longer than when the send began", s.path));
      }
      if (file_) std::fclose(file_), file_ = nullptr;
      ++segment_;
      offset_ = 0;
      continue;
    }
    const size_t want = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(n - written), s.size - offset_));
    if (s.path.empty()) {
      s.text.copy(buffer + written, want, static_cast<size_t>(offset_));
      written += want;
      offset_ += static_cast<int64_t>(want);
      continue;
    }
    if (!file_) {
      file_ = std::fopen(s.path.c_str(), "rb");
      if (!file_) return Fail(Code::kIoError, fmt::format("cannot open {}", s.path));
    }
    size_t got = std::fread(buffer + written, 1, want, file_);
    if (got == 0) return Fail(Code::kIoError, fmt::format("{} is shorter than when the send began", s.path));
    written += got;
    offset_ += static_cast<int64_t>(got);
  }
  return written;
}

std::string NewBoundary() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("pacsbridge-{:016x}{:016x}", rng(), rng());
}

[[nodiscard]] Result<std::map<std::string, dicom::SendOutcome>> ParseStowResponse(std::string_view body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_array() && j.size() == 1) j = j[0];  // some servers wrap the data set in a list
  if (j.is_discarded() || !j.is_object()) {
    return Fail(Code::kUnavailable, "the store answer is not a DICOM JSON data set (PS3.18 10.5.3)");
  }
  std::map<std::string, dicom::SendOutcome> out;
  auto items = [&](const char* tag) -> std::vector<const json*> {
    std::vector<const json*> list;
    auto it = j.find(tag);
    if (it == j.end() || !it->is_object()) return list;
    auto v = it->find("Value");
    if (v == it->end() || !v->is_array()) return list;
    for (const json& item : *v) {
      if (item.is_object()) list.push_back(&item);
    }
    return list;
  };
  for (const json* item : items(kReferencedSop)) {
    const json* uid = FirstValue(*item, kSopInstance);
    if (!uid || !uid->is_string()) continue;
    dicom::SendOutcome o{dicom::SendStatus::kSuccess, 0, ""};
    if (const json* w = FirstValue(*item, kWarningReason); w && w->is_number_integer()) {
      o.status = dicom::SendStatus::kWarning;
      o.dimse_status = w->get<int>();
      o.reason = WarningText(o.dimse_status);
    }
    out[uid->get<std::string>()] = o;
  }
  for (const json* item : items(kFailedSop)) {
    const json* uid = FirstValue(*item, kSopInstance);
    if (!uid || !uid->is_string()) continue;
    dicom::SendOutcome o{dicom::SendStatus::kFailed, -1, "the server refused it without a reason"};
    if (const json* f = FirstValue(*item, kFailureReason); f && f->is_number_integer()) {
      o.dimse_status = f->get<int>();
      o.reason = dicom::StoreStatusText(o.dimse_status);
    }
    out[uid->get<std::string>()] = o;
  }
  return out;
}

}  // namespace pb::dicomweb
