// Our DICOMweb server, QIDO-RS (PS3.18 10.6): searches for studies, series and instances of the
// archive, in the same index queries as the receivers' C-FIND, answered in the DICOM JSON model.
#include <httplib.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "archive/index_query.h"
#include "dicom/convert.h"
#include "dicom/dataset.h"
#include "dicom/mpps.h"
#include "dicomweb/accept.h"
#include "http/api.h"
#include "http/dicomweb_common.h"
#include "http/errors.h"
#include "http/router.h"

namespace pb::http {
namespace {

constexpr size_t kDefaultLimit = 1000;
constexpr size_t kMaxLimit = 100000;

// What each level returns without includefield (PS3.18 Tables 10.6.3-3 to -5, as far as the
// index holds them).
std::vector<std::string> DefaultReturns(IndexLevel level) {
  switch (level) {
    case IndexLevel::kStudy:
      return {"StudyDate",
              "StudyTime",
              "AccessionNumber",
              "ModalitiesInStudy",
              "ReferringPhysicianName",
              "PatientName",
              "PatientID",
              "PatientBirthDate",
              "PatientSex",
              "StudyInstanceUID",
              "StudyID",
              "StudyDescription",
              "NumberOfStudyRelatedSeries",
              "NumberOfStudyRelatedInstances"};
    case IndexLevel::kSeries:
      return {"StudyInstanceUID",
              "Modality",
              "SeriesDescription",
              "SeriesInstanceUID",
              "SeriesNumber",
              "BodyPartExamined",
              "NumberOfSeriesRelatedInstances"};
    default:
      return {"StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID",
              "SOPInstanceUID",   "InstanceNumber",    "AvailableTransferSyntaxUID"};
  }
}

// Everything the index knows at a level (includefield=all).
std::vector<std::string> AllReturns(IndexLevel level) {
  static const char* const kAll[] = {"PatientName",
                                     "PatientID",
                                     "IssuerOfPatientID",
                                     "PatientBirthDate",
                                     "PatientSex",
                                     "StudyInstanceUID",
                                     "StudyDate",
                                     "StudyTime",
                                     "AccessionNumber",
                                     "StudyID",
                                     "StudyDescription",
                                     "ReferringPhysicianName",
                                     "ModalitiesInStudy",
                                     "SOPClassesInStudy",
                                     "NumberOfStudyRelatedSeries",
                                     "NumberOfStudyRelatedInstances",
                                     "SeriesInstanceUID",
                                     "Modality",
                                     "SeriesNumber",
                                     "SeriesDescription",
                                     "BodyPartExamined",
                                     "NumberOfSeriesRelatedInstances",
                                     "SOPInstanceUID",
                                     "SOPClassUID",
                                     "InstanceNumber",
                                     "AvailableTransferSyntaxUID"};
  std::vector<std::string> out;
  for (const char* k : kAll) {
    if (IndexKnows(level, k)) out.emplace_back(k);
  }
  return out;
}

// An attribute named in a query parameter: a keyword or eight hex digits → the keyword.
std::string KeywordFor(const std::string& id) {
  auto tag = dicom::ParseTag(id);
  return tag ? dicom::TagKeyword(*tag) : std::string();
}

// One search: `fixed` are the UIDs of the path.
void Search(Services& s, const httplib::Request& req, httplib::Response& res, IndexLevel level,
            std::vector<std::pair<std::string, std::string>> fixed) {
  for (const auto& [keyword, uid] : fixed) {
    if (!IsUid(uid)) return SendError(res, 400, fmt::format("'{}' is not a UID", uid), keyword);
  }
  IndexQuery q;
  q.level = level;
  q.projects = VisibleProjects();
  q.keys = std::move(fixed);
  q.limit = kDefaultLimit;
  std::vector<std::string> returns = DefaultReturns(level);
  std::set<std::string> wanted(returns.begin(), returns.end());
  std::vector<std::string> unsupported;
  auto want = [&](const std::string& k) {
    if (wanted.insert(k).second) returns.push_back(k);
  };
  for (const auto& [name, value] : req.params) {
    if (name == "limit" || name == "offset") {
      size_t n = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || end != value.data() + value.size() || (name == "limit" && (n < 1 || n > kMaxLimit))) {
        return SendError(res, 400,
                         fmt::format("{} must be a number{}", name, name == "limit" ? " from 1 to 100000" : ""), name);
      }
      (name == "limit" ? q.limit : q.offset) = n;
    } else if (name == "fuzzymatching") {
      if (value != "true" && value != "false") return SendError(res, 400, "fuzzymatching must be true or false", name);
      q.names_ignore_case = value == "true";
    } else if (name == "includefield") {
      size_t pos = 0;
      while (pos <= value.size()) {
        size_t comma = value.find(',', pos);
        if (comma == std::string::npos) comma = value.size();
        std::string id = value.substr(pos, comma - pos);
        pos = comma + 1;
        if (id == "all") {
          for (const auto& k : AllReturns(level)) want(k);
        } else if (std::string k = KeywordFor(id); !k.empty()) {
          want(k);
        } else if (!id.empty()) {
          return SendError(res, 400, fmt::format("includefield: '{}' is not a DICOM keyword or tag", id), name);
        }
      }
    } else {
      std::string k = KeywordFor(name);
      if (k.empty()) {
        return SendError(res, 400,
                         fmt::format("'{}' is not a DICOM keyword or tag, nor limit, offset, includefield or "
                                     "fuzzymatching",
                                     name),
                         name);
      }
      if (!IndexKnows(level, k)) {
        // PS3.18 10.6.1.3: an attribute that cannot be matched is ignored, and the answer says so.
        unsupported.push_back(k);
        continue;
      }
      q.keys.emplace_back(k, value);
      want(k);
    }
  }
  if (!unsupported.empty()) {
    res.set_header("Warning", fmt::format("299 pacsbridge: not supported for matching, ignored: {}",
                                          fmt::join(unsupported, ", ")));
  }
  q.returns = returns;
  (void)s.pipeline.Flush(std::chrono::seconds(2));
  auto answers = s.db.QueryIndex(q);
  if (!answers) return SendError(res, answers.error());
  const std::string base = DicomwebRoot(s, req);
  std::string body = "[";
  for (auto& a : *answers) {
    dicom::FlatItem item;
    item.values = std::move(a);
    const std::string& study = item.values["StudyInstanceUID"];
    if (level == IndexLevel::kStudy) {
      item.values["RetrieveURL"] = fmt::format("{}/studies/{}", base, UrlSegment(study));
    } else if (level == IndexLevel::kSeries) {
      item.values["RetrieveURL"] =
          fmt::format("{}/studies/{}/series/{}", base, UrlSegment(study), UrlSegment(item.values["SeriesInstanceUID"]));
    } else {
      item.values["RetrieveURL"] =
          fmt::format("{}/studies/{}/series/{}/instances/{}", base, UrlSegment(study),
                      UrlSegment(item.values["SeriesInstanceUID"]), UrlSegment(item.values["SOPInstanceUID"]));
    }
    item.values["InstanceAvailability"] = "ONLINE";
    auto json = dicom::ToDicomJson(item, "");
    if (!json) return SendError(res, json.error());
    if (body.size() > 1) body += ',';
    body += *json;
  }
  body += ']';
  if (answers->size() == q.limit) {
    // PS3.18 10.6.3.2: more may match than were returned.
    res.set_header("Warning", "299 pacsbridge: there are more matches; ask again with offset");
  }
  SendDicomJson(req, res, 200, std::move(body));
}

// One instance of a WADO-RS answer: its file and the syntax it goes in ("" as stored).
struct Part {
  std::filesystem::path file;
  std::string stored, send;
};

// `buf`: the answer's buffer, reused from part to part.
bool StreamFile(const std::filesystem::path& path, httplib::DataSink& sink, std::vector<char>& buf) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  buf.resize(256 * 1024);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0 && !sink.write(buf.data(), static_cast<size_t>(in.gcount()))) return false;
  }
  return in.eof();
}

// An answer of instances all sent as stored, with its length known before the first byte:
// the part headers, then each file as it is on disk. Each piece goes from the file to the socket
// through one buffer, where chunked coding (cpp-httplib 0.11) copies every piece twice more.
// Ranges of it are served too: the provider starts wherever the library asks.
class StoredParts {
 public:
  StoredParts() = default;
  StoredParts(const StoredParts&) = delete;
  StoredParts& operator=(const StoredParts&) = delete;
  ~StoredParts() {
    if (fd_ >= 0) ::close(fd_);
  }

  // False when a file is missing (the chunked answer then cuts at that part, as it always did).
  bool Add(const Part& p, const std::string& boundary) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(p.file, ec);
    if (ec) return false;
    Text(fmt::format("{}--{}\r\nContent-Type: application/dicom; transfer-syntax={}\r\n\r\n",
                     pieces_.empty() ? "" : "\r\n", boundary, p.stored));
    pieces_.push_back({{}, p.file, total_, static_cast<size_t>(size)});
    total_ += static_cast<size_t>(size);
    return true;
  }
  void End(const std::string& boundary) { Text(fmt::format("\r\n--{}--\r\n", boundary)); }
  size_t size() const { return total_; }

  // Writes what lies from `offset` on, to the end of the piece it falls in, at most `length`
  // bytes (the library asks again for the rest). False when a file cannot be read as it was
  // measured: the answer is cut, and the client sees it short.
  bool Write(size_t offset, size_t length, httplib::DataSink& sink) {
    if (offset >= total_ || length == 0) return false;  // nothing is there: never read past the pieces
    auto it =
        std::upper_bound(pieces_.begin(), pieces_.end(), offset, [](size_t o, const Piece& p) { return o < p.start; });
    if (it == pieces_.begin()) return false;
    const Piece& piece = *--it;
    const size_t within = offset - piece.start;
    const size_t n = std::min(length, piece.size - within);
    if (piece.file.empty()) return sink.write(piece.text.data() + within, n);
    if (open_ != &piece) {
      if (fd_ >= 0) ::close(fd_);
      open_ = nullptr;
      fd_ = ::open(piece.file.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd_ < 0) {
        spdlog::warn("WADO-RS: an instance's file could not be opened ({}); the answer is cut", std::strerror(errno));
        spdlog::debug("WADO-RS: the file was {}", piece.file.string());
        return false;
      }
      // Replaced since it was measured (a newer copy of the instance): its part would be cut
      // short, or end early, while the answer's framing still looked whole.
      struct stat st {};
      if (::fstat(fd_, &st) != 0 || static_cast<size_t>(st.st_size) != piece.size) {
        spdlog::warn("WADO-RS: an instance's file changed after the answer began; the answer is cut");
        spdlog::debug("WADO-RS: the file was {}", piece.file.string());
        return false;
      }
      open_ = &piece;
    }
    buffer_.resize(std::min<size_t>(kBuffer, piece.size));
    const ssize_t got = ::pread(fd_, buffer_.data(), std::min(n, buffer_.size()), static_cast<off_t>(within));
    if (got <= 0) {
      spdlog::warn("WADO-RS: an instance's file is shorter than when the answer began; the answer is cut");
      spdlog::debug("WADO-RS: the file was {}", piece.file.string());
      return false;
    }
    return sink.write(buffer_.data(), static_cast<size_t>(got));
  }

 private:
  static constexpr size_t kBuffer = 512 * 1024;
  struct Piece {
    std::string text;  // or:
    std::filesystem::path file;
    size_t start = 0, size = 0;
  };
  void Text(std::string text) {
    const size_t n = text.size();
    pieces_.push_back({std::move(text), {}, total_, n});
    total_ += n;
  }
  std::vector<Piece> pieces_;
  size_t total_ = 0;
  const Piece* open_ = nullptr;  // the piece whose file fd_ is
  int fd_ = -1;
  std::vector<char> buffer_;
};

bool SendStoredParts(const std::vector<Part>& parts, const std::string& boundary, httplib::Response& res) {
  auto stored = std::make_shared<StoredParts>();
  for (const Part& p : parts) {
    if (!p.send.empty() || !stored->Add(p, boundary)) return false;
  }
  stored->End(boundary);
  res.set_content_provider(stored->size(),
                           fmt::format("multipart/related; type=\"application/dicom\"; boundary={}", boundary),
                           GuardedProvider([stored](size_t offset, size_t length, httplib::DataSink& sink) {
                             return stored->Write(offset, length, sink);
                           }));
  return true;
}

// WADO-RS (PS3.18 10.4) of the instances `fixed` selects, as multipart/related parts of
// application/dicom, streamed from their files: as stored when the client accepts that syntax
// (or transfer-syntax=*), else converted losslessly to the first syntax it accepts; 406 before
// anything is sent when an instance can be given in none of them.
void Retrieve(Services& s, const httplib::Request& req, httplib::Response& res,
              std::vector<std::pair<std::string, std::string>> fixed) {
  for (const auto& [keyword, uid] : fixed) {
    if (!IsUid(uid)) return SendError(res, 400, fmt::format("'{}' is not a UID", uid), keyword);
  }
  auto syntaxes = dicomweb::AcceptedSyntaxes(req.get_header_value("Accept"));
  if (!syntaxes) return SendError(res, 406, syntaxes.error().message, "Accept");
  (void)s.pipeline.Flush(std::chrono::seconds(2));
  IndexQuery q;
  q.level = IndexLevel::kImage;
  q.projects = VisibleProjects();
  q.keys = std::move(fixed);
  q.limit = 10'000'000;
  auto rows = s.db.QueryInstances(q);
  if (!rows) return SendError(res, rows.error());
  if (rows->empty()) return SendError(res, 404, fmt::format("no such {} in the archive", q.keys.back().first));
  const bool any = std::find(syntaxes->begin(), syntaxes->end(), "*") != syntaxes->end();
  auto parts = std::make_shared<std::vector<Part>>();
  for (const InstanceRow& r : *rows) {
    Part p{s.blobs.Absolute(r.file_path), r.transfer_syntax_uid, {}};
    if (!any && std::find(syntaxes->begin(), syntaxes->end(), r.transfer_syntax_uid) == syntaxes->end()) {
      for (const auto& t : *syntaxes) {
        if (dicom::CanGiveLosslessly(r.transfer_syntax_uid, t)) {
          p.send = t;
          break;
        }
      }
      if (p.send.empty()) {
        return SendError(res, 406,
                         fmt::format("instance {} is stored in {} and cannot be given losslessly in {}: ask with "
                                     "transfer-syntax=* for the stored syntax",
                                     r.sop_uid, r.transfer_syntax_uid, fmt::join(*syntaxes, ", ")),
                         "Accept");
      }
    }
    parts->push_back(std::move(p));
  }
  std::random_device rd;
  const std::string boundary = fmt::format("pacsbridge-{:08x}{:08x}", rd(), rd());
  if (!req.ranges.empty()) {
    // A byte range of a multipart answer whose boundary is new in every answer would splice
    // two answers together: a Range is not served (RFC 7233 lets a server ignore it), and the
    // chunked answer, which cpp-httplib never cuts to a range, goes whole with 200.
    res.status = 200;
  } else if (SendStoredParts(*parts, boundary, res)) {
    return;
  }
  res.set_chunked_content_provider(
      fmt::format("multipart/related; type=\"application/dicom\"; boundary={}", boundary),
      GuardedProvider([&s, parts, boundary](size_t, httplib::DataSink& sink) {
        std::vector<char> buf;
        for (const Part& p : *parts) {
          const std::string& ts = p.send.empty() ? p.stored : p.send;
          std::string head =
              fmt::format("--{}\r\nContent-Type: application/dicom; transfer-syntax={}\r\n\r\n", boundary, ts);
          if (!sink.write(head.data(), head.size())) return false;
          std::filesystem::path file = p.file, converted;
          if (!p.send.empty()) {
            converted = s.blobs.NewTempPath();
            if (auto c = dicom::ConvertFile(p.file, p.stored, p.send, converted); !c) {
              // The answer has begun: cutting it tells the client it is incomplete.
              spdlog::warn("WADO-RS: {}", c.error().message);
              std::error_code ec;
              std::filesystem::remove(converted, ec);
              return false;
            }
            file = converted;
          }
          const bool sent = StreamFile(file, sink, buf);
          if (!converted.empty()) {
            std::error_code ec;
            std::filesystem::remove(converted, ec);
          }
          if (!sent || !sink.write("\r\n", 2)) return false;
        }
        const std::string tail = fmt::format("--{}--\r\n", boundary);
        if (!sink.write(tail.data(), tail.size())) return false;
        sink.done();
        return true;
      }));
}

}  // namespace

void AddDicomwebRoutes(Router& r, Services& s) {
  r.Get("/dicom-web/studies/{study}", Access::kReadOnly, [&s](const httplib::Request& req, httplib::Response& res) {
    Retrieve(s, req, res, {{"StudyInstanceUID", req.matches[1]}});
  });
  r.Get("/dicom-web/studies/{study}/series/{series}", Access::kReadOnly,
        [&s](const httplib::Request& req, httplib::Response& res) {
          Retrieve(s, req, res, {{"StudyInstanceUID", req.matches[1]}, {"SeriesInstanceUID", req.matches[2]}});
        });
  r.Get("/dicom-web/studies/{study}/series/{series}/instances/{instance}", Access::kReadOnly,
        [&s](const httplib::Request& req, httplib::Response& res) {
          Retrieve(s, req, res,
                   {{"StudyInstanceUID", req.matches[1]},
                    {"SeriesInstanceUID", req.matches[2]},
                    {"SOPInstanceUID", req.matches[3]}});
        });
  r.Get("/dicom-web/studies", Access::kReadOnly,
        [&s](const httplib::Request& req, httplib::Response& res) { Search(s, req, res, IndexLevel::kStudy, {}); });
  r.Get("/dicom-web/series", Access::kReadOnly,
        [&s](const httplib::Request& req, httplib::Response& res) { Search(s, req, res, IndexLevel::kSeries, {}); });
  r.Get("/dicom-web/instances", Access::kReadOnly,
        [&s](const httplib::Request& req, httplib::Response& res) { Search(s, req, res, IndexLevel::kImage, {}); });
  r.Get("/dicom-web/studies/{study}/series", Access::kReadOnly,
        [&s](const httplib::Request& req, httplib::Response& res) {
          Search(s, req, res, IndexLevel::kSeries, {{"StudyInstanceUID", req.matches[1]}});
        });
  r.Get("/dicom-web/studies/{study}/instances", Access::kReadOnly,
        [&s](const httplib::Request& req, httplib::Response& res) {
          Search(s, req, res, IndexLevel::kImage, {{"StudyInstanceUID", req.matches[1]}});
        });
  r.Get("/dicom-web/studies/{study}/series/{series}/instances", Access::kReadOnly,
        [&s](const httplib::Request& req, httplib::Response& res) {
          Search(s, req, res, IndexLevel::kImage,
                 {{"StudyInstanceUID", req.matches[1]}, {"SeriesInstanceUID", req.matches[2]}});
        });
}

}  // namespace pb::http
