// WADO-RS beyond whole instances (PS3.18 10.4): metadata (the DICOM JSON written ahead at ingest,
// dicomweb/metadata_cache.h), bulk data, and frames, as stored or uncompressed.
#include <httplib.h>

#include <charconv>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "archive/index_query.h"
#include "dicom/thumbnail.h"
#include "dicom/wado.h"
#include "dicomweb/accept.h"
#include "http/api.h"
#include "http/dicomweb_common.h"
#include "http/errors.h"
#include "http/router.h"

namespace pb::http {
namespace {

using Keys = std::vector<std::pair<std::string, std::string>>;

constexpr size_t kMaxFramesAsked = 100000;

bool CheckUids(const Keys& keys, httplib::Response& res) {
  for (const auto& [keyword, uid] : keys) {
    if (!IsUid(uid)) {
      SendError(res, 400, fmt::format("'{}' is not a UID", uid), keyword);
      return false;
    }
  }
  return true;
}

Keys InstanceKeys(const httplib::Request& req) {
  return {
      {"StudyInstanceUID", req.matches[1]}, {"SeriesInstanceUID", req.matches[2]}, {"SOPInstanceUID", req.matches[3]}};
}

// The instance a path names; nullopt when it answered (400, 404, 500).
std::optional<InstanceRow> FindInstance(Services& s, const httplib::Request& req, httplib::Response& res) {
  Keys keys = InstanceKeys(req);
  if (!CheckUids(keys, res)) return std::nullopt;
  (void)s.pipeline.Flush(std::chrono::seconds(2));
  IndexQuery q;
  q.level = IndexLevel::kImage;
  q.projects = VisibleProjects();
  q.keys = std::move(keys);
  q.limit = 1;
  auto rows = s.db.QueryInstances(q);
  if (!rows) {
    SendError(res, rows.error());
    return std::nullopt;
  }
  if (rows->empty()) {
    SendError(res, 404, "no such instance in the archive", "SOPInstanceUID");
    return std::nullopt;
  }
  return std::move(rows->front());
}

// `s` as it goes between the quotes of a JSON string.
std::string JsonEscaped(const std::string& s) {
  std::string quoted = nlohmann::json(s).dump();
  return quoted.substr(1, quoted.size() - 2);
}

// Appends an instance's stored JSON, its BulkDataURIs (stored as the tag alone) prefixed.
void AppendWithBulkUris(std::string& out, const std::string& json, const std::string& prefix) {
  static constexpr std::string_view kKey = "\"BulkDataURI\":\"";
  size_t from = 0;
  while (true) {
    size_t at = json.find(kKey, from);
    if (at == std::string::npos) break;
    at += kKey.size();
    out.append(json, from, at - from);
    out += prefix;
    from = at;
  }
  out.append(json, from, std::string::npos);
}

// Whether an Accept header lets in application/dicom+json (no header, */*, application/*, JSON).
bool AcceptsDicomJson(std::string accept) {
  for (char& c : accept) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (accept.find_first_not_of(' ') == std::string::npos) return true;
  size_t pos = 0;
  while (pos <= accept.size()) {
    size_t comma = accept.find(',', pos);
    if (comma == std::string::npos) comma = accept.size();
    std::string range = accept.substr(pos, comma - pos);
    pos = comma + 1;
    const size_t semi = range.find(';');
    const std::string params = semi == std::string::npos ? "" : range.substr(semi);
    range = range.substr(0, semi);
    range.erase(0, range.find_first_not_of(' '));
    range.erase(range.find_last_not_of(' ') + 1);
    const size_t q = params.find("q=");
    if (q != std::string::npos && params.substr(q + 2).find_first_not_of("0. ") == std::string::npos) continue;
    if (range == "application/dicom+json" || range == "application/json" || range == "*/*" ||
        range == "application/*") {
      return true;
    }
  }
  return false;
}

// GET .../metadata: the instances the path selects, as a DICOM JSON array, from the index.
void Metadata(Services& s, const httplib::Request& req, httplib::Response& res, Keys keys) {
  if (!CheckUids(keys, res)) return;
  if (!AcceptsDicomJson(req.get_header_value("Accept"))) {
    return SendError(res, 406, "metadata comes as application/dicom+json (the XML form is not offered)", "Accept");
  }
  (void)s.pipeline.Flush(std::chrono::seconds(2));
  IndexQuery q;
  q.level = IndexLevel::kImage;
  q.projects = VisibleProjects();
  q.keys = std::move(keys);
  q.limit = 10'000'000;
  auto rows = s.db.QueryMetadata(q);
  if (!rows) return SendError(res, rows.error());
  if (rows->empty())
    return SendError(res, 404, fmt::format("no such {} in the archive", q.keys.back().first), q.keys.back().first);
  const std::string root = DicomwebRoot(s, req);
  // One allocation for the answer: grown piece by piece, a body of megabytes is copied (and,
  // past glibc's mmap threshold, faulted in) again at every doubling.
  size_t size = 2;
  for (const MetadataRow& r : *rows) size += r.json.size() + 4 * (root.size() + 3 * 64 + 48);
  std::string body;
  body.reserve(size);
  body += '[';
  size_t left_out = 0;
  for (const MetadataRow& r : *rows) {
    auto json = s.metadata.Get(r);
    if (!json) {
      ++left_out;
      continue;
    }
    if (body.size() > 1) body += ',';
    AppendWithBulkUris(
        body, *json,
        JsonEscaped(fmt::format("{}/studies/{}/series/{}/instances/{}/bulk/", root, UrlSegment(r.study_uid),
                                UrlSegment(r.series_uid), UrlSegment(r.sop_uid))));
  }
  body += ']';
  if (left_out > 0) {
    res.set_header("Warning", fmt::format("299 pacsbridge: {} instance(s) left out: their files cannot be given as "
                                          "DICOM JSON (the server log says why)",
                                          left_out));
  }
  SendDicomJson(req, res, 200, std::move(body));
}

std::string NewBoundary() {
  std::random_device rd;
  return fmt::format("pacsbridge-{:08x}{:08x}", rd(), rd());
}

// Frame numbers of a path ("1,3,5"), from 1; empty when one is not a number.
std::vector<int> ParseFrameList(const std::string& text) {
  std::vector<int> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    int n = 0;
    auto [end, ec] = std::from_chars(text.data() + pos, text.data() + comma, n);
    if (ec != std::errc() || end != text.data() + comma || n < 1 || out.size() >= kMaxFramesAsked) return {};
    out.push_back(n);
    pos = comma + 1;
  }
  return out;
}

// How frames go to the client: uncompressed, or as stored with their media type.
struct FrameChoice {
  bool stored = false;
  std::string media_type, transfer_syntax;
  bool multipart = true;
};

// The first of the client's acceptable kinds we can give; nullopt when none (406).
std::optional<FrameChoice> ChooseFrames(const std::vector<dicomweb::PartRange>& ranges,
                                        const dicom::FrameReader& reader) {
  const std::string stored_type = reader.encapsulated() ? dicom::FrameMediaType(reader.transfer_syntax()) : "";
  auto names = [](const dicomweb::PartRange& r, const std::string& ts) {
    return r.syntaxes.empty() || std::find(r.syntaxes.begin(), r.syntaxes.end(), ts) != r.syntaxes.end() ||
           std::find(r.syntaxes.begin(), r.syntaxes.end(), "*") != r.syntaxes.end();
  };
  for (const auto& r : ranges) {
    if (r.type == "*") {
      if (!stored_type.empty()) return FrameChoice{true, stored_type, reader.transfer_syntax(), r.multipart};
      return FrameChoice{false, "application/octet-stream", dicomweb::kExplicitVrLittleEndian, r.multipart};
    }
    if (r.type == "application/octet-stream" && names(r, dicomweb::kExplicitVrLittleEndian)) {
      return FrameChoice{false, r.type, dicomweb::kExplicitVrLittleEndian, r.multipart};
    }
    if (!stored_type.empty() && r.type == stored_type && names(r, reader.transfer_syntax())) {
      return FrameChoice{true, stored_type, reader.transfer_syntax(), r.multipart};
    }
  }
  return std::nullopt;
}

// Sends frames `frames` of an instance as parts (or one single-part body), one frame in memory
// at a time; the first is read before anything is sent, so its errors get a status.
void SendFrames(const httplib::Request& req, httplib::Response& res, const std::shared_ptr<dicom::FrameReader>& reader,
                std::vector<int> frames) {
  for (int n : frames) {
    if (n > reader->count()) {
      return SendError(res, 404, fmt::format("there is no frame {}: the instance has {}", n, reader->count()),
                       "frames");
    }
  }
  auto ranges = dicomweb::AcceptedParts(req.get_header_value("Accept"));
  if (!ranges) return SendError(res, 406, ranges.error().message, "Accept");
  auto choice = ChooseFrames(*ranges, *reader);
  if (!choice) {
    const std::string stored = dicom::FrameMediaType(reader->transfer_syntax());
    return SendError(res, 406,
                     fmt::format("the frames are stored in {}{}: ask for multipart/related; "
                                 "type=\"application/octet-stream\"{}",
                                 reader->transfer_syntax(), stored.empty() ? "" : " (" + stored + ")",
                                 stored.empty() ? "" : " or type=\"" + stored + "\""),
                     "Accept");
  }
  if (!choice->multipart && frames.size() > 1) {
    return SendError(res, 406,
                     fmt::format("{} frames come as multipart/related: ask for multipart/related; type=\"{}\"",
                                 frames.size(), choice->media_type),
                     "Accept");
  }
  auto read = [reader, stored = choice->stored](int n) { return stored ? reader->Stored(n) : reader->Uncompressed(n); };
  auto first = read(frames.front());
  if (!first) return SendError(res, first.error().code == Code::kNotFound ? 404 : 406, first.error().message, "frames");
  const std::string part_type = fmt::format("{}; transfer-syntax={}", choice->media_type, choice->transfer_syntax);
  if (!choice->multipart && frames.size() == 1) {
    res.status = 200;
    res.set_content(*first, part_type);
    return;
  }
  const std::string boundary = NewBoundary();
  auto pending = std::make_shared<std::string>(std::move(*first));
  res.set_chunked_content_provider(
      fmt::format("multipart/related; type=\"{}\"; boundary={}", choice->media_type, boundary),
      GuardedProvider(
          [read, frames = std::move(frames), pending, boundary, part_type](size_t, httplib::DataSink& sink) {
            for (size_t i = 0; i < frames.size(); ++i) {
              std::string data;
              if (i == 0) {
                data = std::move(*pending);
              } else {
                auto f = read(frames[i]);
                if (!f) {
                  spdlog::warn("WADO-RS frames: {}", f.error().message);
                  return false;  // the answer is cut: the client sees it incomplete
                }
                data = std::move(*f);
              }
              std::string head = fmt::format("--{}\r\nContent-Type: {}\r\n\r\n", boundary, part_type);
              if (!sink.write(head.data(), head.size()) || !sink.write(data.data(), data.size()) ||
                  !sink.write("\r\n", 2)) {
                return false;
              }
            }
            const std::string tail = fmt::format("--{}--\r\n", boundary);
            if (!sink.write(tail.data(), tail.size())) return false;
            sink.done();
            return true;
          }));
}

std::shared_ptr<dicom::FrameReader> OpenFrames(Services& s, const InstanceRow& row, httplib::Response& res) {
  auto reader = dicom::FrameReader::Open(s.blobs.Absolute(row.file_path));
  if (!reader) {
    const int status = reader.error().code == Code::kUnsupported ? 404 : 500;
    SendError(res, status, fmt::format("instance {}: {}", row.sop_uid, reader.error().message), "SOPInstanceUID");
    return nullptr;
  }
  return std::shared_ptr<dicom::FrameReader>(std::move(*reader));
}

void Frames(Services& s, const httplib::Request& req, httplib::Response& res) {
  auto frames = ParseFrameList(req.matches[4]);
  if (frames.empty()) {
    return SendError(res, 400, "frames must be a list of frame numbers from 1, such as 1,3,5", "frames");
  }
  auto row = FindInstance(s, req, res);
  if (!row) return;
  auto reader = OpenFrames(s, *row, res);
  if (!reader) return;
  SendFrames(req, res, reader, std::move(frames));
}

// GET .../bulk/{tag}: a value a BulkDataURI names, as one part of application/octet-stream;
// the pixel data of a compressed instance as its frames.
void Bulk(Services& s, const httplib::Request& req, httplib::Response& res) {
  const std::string tag_text = req.matches[4];
  uint32_t tag = 0;
  auto [end, ec] = std::from_chars(tag_text.data(), tag_text.data() + tag_text.size(), tag, 16);
  if (tag_text.size() != 8 || ec != std::errc() || end != tag_text.data() + tag_text.size()) {
    return SendError(res, 400, fmt::format("'{}' is not a tag in eight hex digits, such as 7FE00010", tag_text), "tag");
  }
  auto row = FindInstance(s, req, res);
  if (!row) return;
  const std::filesystem::path file = s.blobs.Absolute(row->file_path);
  // Whether the value is there (and is one we give this way), before anything is sent.
  auto probe = dicom::ReadBulk(file, tag, [](std::string_view) { return false; });
  if (!probe && probe.error().code == Code::kUnsupported && tag == 0x7FE00010) {
    auto reader = OpenFrames(s, *row, res);
    if (!reader) return;
    std::vector<int> all(static_cast<size_t>(reader->count()));
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int>(i + 1);
    return SendFrames(req, res, reader, std::move(all));
  }
  if (!probe && probe.error().code != Code::kCanceled) return SendError(res, probe.error());
  auto ranges = dicomweb::AcceptedParts(req.get_header_value("Accept"));
  if (!ranges) return SendError(res, 406, ranges.error().message, "Accept");
  bool octets = false, multipart = true;
  for (const auto& r : *ranges) {
    if (r.type == "*" || r.type == "application/octet-stream") {
      octets = true;
      multipart = r.multipart;
      break;
    }
  }
  if (!octets) {
    return SendError(res, 406,
                     "bulk data is given as application/octet-stream: ask for multipart/related; "
                     "type=\"application/octet-stream\"",
                     "Accept");
  }
  const std::string boundary = NewBoundary();
  const std::string type =
      multipart ? fmt::format("multipart/related; type=\"application/octet-stream\"; boundary={}", boundary)
                : std::string("application/octet-stream");
  res.set_chunked_content_provider(
      type, GuardedProvider([file, tag, boundary, multipart](size_t, httplib::DataSink& sink) {
        if (multipart) {
          const std::string head = fmt::format("--{}\r\nContent-Type: application/octet-stream\r\n\r\n", boundary);
          if (!sink.write(head.data(), head.size())) return false;
        }
        auto r = dicom::ReadBulk(file, tag,
                                 [&sink](std::string_view chunk) { return sink.write(chunk.data(), chunk.size()); });
        if (!r) {
          if (r.error().code != Code::kCanceled) spdlog::warn("WADO-RS bulk data: {}", r.error().message);
          return false;
        }
        if (multipart) {
          const std::string tail = fmt::format("\r\n--{}--\r\n", boundary);
          if (!sink.write(tail.data(), tail.size())) return false;
        }
        sink.done();
        return true;
      }));
}

// "a,b,c" → numbers; nullopt when one is not a number.
std::optional<std::vector<double>> Numbers(const std::string& text) {
  std::vector<double> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    double v = 0;
    auto [end, ec] = std::from_chars(text.data() + pos, text.data() + comma, v);
    if (ec != std::errc() || end != text.data() + comma) return std::nullopt;
    out.push_back(v);
    pos = comma + 1;
  }
  return out;
}

// The rendering a request asks for (PS3.18 8.3.5): Accept (image/jpeg by default, image/png),
// window=center,width[,linear|linear-exact|sigmoid], viewport=vw,vh, quality=1..100. False
// when it answered 400 or 406.
bool ParseRendering(const httplib::Request& req, httplib::Response& res, dicom::RenderRequest& rq) {
  using Format = dicom::RenderRequest::Format;
  std::optional<Format> format;
  std::string accept = req.get_header_value("Accept");
  for (char& c : accept) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (accept.empty()) format = Format::kJpeg;
  size_t pos = 0;
  while (!format && pos <= accept.size()) {
    size_t comma = accept.find(',', pos);
    if (comma == std::string::npos) comma = accept.size();
    std::string range = accept.substr(pos, comma - pos);
    pos = comma + 1;
    const bool refused = range.find("q=0") != std::string::npos && range.find("q=0.") == std::string::npos;
    range = range.substr(0, range.find(';'));
    range.erase(0, range.find_first_not_of(' '));
    range.erase(range.find_last_not_of(' ') + 1);
    if (refused) continue;
    if (range == "image/jpeg" || range == "image/*" || range == "*/*")
      format = Format::kJpeg;
    else if (range == "image/png")
      format = Format::kPng;
  }
  if (!format) {
    SendError(res, 406, "rendered images come as image/jpeg or image/png", "Accept");
    return false;
  }
  rq.format = *format;
  if (req.has_param("quality")) {
    int q = 0;
    if (!ParseInt(req.get_param_value("quality"), 1, 100, q)) {
      SendError(res, 400, "quality must be a number from 1 to 100", "quality");
      return false;
    }
    rq.quality = q;
  }
  if (req.has_param("viewport")) {
    auto v = Numbers(req.get_param_value("viewport"));
    if (!v || v->size() != 2 || (*v)[0] < 1 || (*v)[1] < 1 || (*v)[0] > 8192 || (*v)[1] > 8192) {
      SendError(res, 400, "viewport must be width,height in pixels (1 to 8192); cropping (sx,sy,sw,sh) is not offered",
                "viewport");
      return false;
    }
    rq.max_width = static_cast<int>((*v)[0]);
    rq.max_height = static_cast<int>((*v)[1]);
    rq.upscale = true;
  }
  if (req.has_param("window")) {
    const std::string text = req.get_param_value("window");
    std::string numbers = text, function = "linear";
    const size_t second = text.find(',', text.find(',') + 1);
    if (text.find(',') != std::string::npos && second != std::string::npos) {
      numbers = text.substr(0, second);
      function = text.substr(second + 1);
      for (char& c : function) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    auto v = Numbers(numbers);
    using F = dicom::RenderRequest::Window::Function;
    std::optional<F> fn;
    if (function == "linear")
      fn = F::kLinear;
    else if (function == "linear-exact" || function == "linear_exact")
      fn = F::kLinearExact;
    else if (function == "sigmoid")
      fn = F::kSigmoid;
    if (!v || v->size() != 2 || (*v)[1] <= 0 || !fn) {
      SendError(res, 400, "window must be center,width[,linear|linear-exact|sigmoid] with a width above 0", "window");
      return false;
    }
    rq.window = dicom::RenderRequest::Window{(*v)[0], (*v)[1], *fn};
  }
  return true;
}

void SendRendered(Services& s, const httplib::Request& req, httplib::Response& res, const InstanceRow& row,
                  std::optional<int> frame, bool thumbnail) {
  dicom::RenderRequest rq;
  if (thumbnail) rq.max_width = rq.max_height = 128;
  rq.frame = frame;
  if (!ParseRendering(req, res, rq)) return;
  auto image = dicom::Render(s.blobs.Absolute(row.file_path), rq);
  if (!image) {
    const Code c = image.error().code;
    const int status = c == Code::kNotFound ? 404 : c == Code::kUnsupported ? 406 : 500;
    return SendError(res, status, fmt::format("instance {}: {}", row.sop_uid, image.error().message));
  }
  res.status = 200;
  // The same request draws the same image while the file stays (a replaced file keeps its URL:
  // a short while, private to the caller).
  res.set_header("Cache-Control", "private, max-age=300");
  res.set_content(image->png, rq.format == dicom::RenderRequest::Format::kJpeg ? "image/jpeg" : "image/png");
}

// One frame number of a rendered path; nullopt when it answered 400.
std::optional<int> OneFrame(const httplib::Request& req, httplib::Response& res) {
  auto frames = ParseFrameList(req.matches[4]);
  if (frames.size() != 1) {
    SendError(res, 400, "a rendered frame is one frame number from 1", "frames");
    return std::nullopt;
  }
  return frames.front();
}

// A study's or series' thumbnail: the middle instance of its first series.
void GroupThumbnail(Services& s, const httplib::Request& req, httplib::Response& res, Keys keys) {
  if (!CheckUids(keys, res)) return;
  (void)s.pipeline.Flush(std::chrono::seconds(2));
  IndexQuery q;
  q.level = IndexLevel::kImage;
  q.projects = VisibleProjects();
  q.keys = std::move(keys);
  q.limit = 100000;
  auto rows = s.db.QueryInstances(q);
  if (!rows) return SendError(res, rows.error());
  if (rows->empty())
    return SendError(res, 404, fmt::format("no such {} in the archive", q.keys.back().first), q.keys.back().first);
  size_t first_series_end = 0;
  while (first_series_end < rows->size() && (*rows)[first_series_end].series_uid == rows->front().series_uid) {
    ++first_series_end;
  }
  SendRendered(s, req, res, (*rows)[first_series_end / 2], std::nullopt, true);
}

}  // namespace

void AddWadoRoutes(Router& r, Services& s) {
  r.Get("/dicom-web/studies/{study}/metadata", Access::kReadOnly,
        [&s](const httplib::Request& req, httplib::Response& res) {
          Metadata(s, req, res, {{"StudyInstanceUID", req.matches[1]}});
        });
  r.Get("/dicom-web/studies/{study}/series/{series}/metadata", Access::kReadOnly,
        [&s](const httplib::Request& req, httplib::Response& res) {
          Metadata(s, req, res, {{"StudyInstanceUID", req.matches[1]}, {"SeriesInstanceUID", req.matches[2]}});
        });
  r.Get("/dicom-web/studies/{study}/series/{series}/instances/{instance}/metadata", Access::kReadOnly,
        [&s](const httplib::Request& req, httplib::Response& res) { Metadata(s, req, res, InstanceKeys(req)); });
  r.Get("/dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/{frames}", Access::kReadOnly,
        [&s](const httplib::Request& req, httplib::Response& res) { Frames(s, req, res); });
  r.Get("/dicom-web/studies/{study}/series/{series}/instances/{instance}/bulk/{tag}", Access::kReadOnly,
        [&s](const httplib::Request& req, httplib::Response& res) { Bulk(s, req, res); });
  for (const bool thumbnail : {false, true}) {
    const std::string what = thumbnail ? "thumbnail" : "rendered";
    r.Get("/dicom-web/studies/{study}/series/{series}/instances/{instance}/" + what, Access::kReadOnly,
          [&s, thumbnail](const httplib::Request& req, httplib::Response& res) {
            if (auto row = FindInstance(s, req, res)) SendRendered(s, req, res, *row, std::nullopt, thumbnail);
          });
    r.Get("/dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/" + what, Access::kReadOnly,
          [&s, thumbnail](const httplib::Request& req, httplib::Response& res) {
            auto frame = OneFrame(req, res);
            if (!frame) return;
            if (auto row = FindInstance(s, req, res)) SendRendered(s, req, res, *row, frame, thumbnail);
          });
  }
  r.Get("/dicom-web/studies/{study}/thumbnail", Access::kReadOnly,
        [&s](const httplib::Request& req, httplib::Response& res) {
          GroupThumbnail(s, req, res, {{"StudyInstanceUID", req.matches[1]}});
        });
  r.Get("/dicom-web/studies/{study}/series/{series}/thumbnail", Access::kReadOnly,
        [&s](const httplib::Request& req, httplib::Response& res) {
          GroupThumbnail(s, req, res, {{"StudyInstanceUID", req.matches[1]}, {"SeriesInstanceUID", req.matches[2]}});
        });
}

}  // namespace pb::http
