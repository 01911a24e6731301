// STOW-RS (PS3.18 10.5): POST /dicom-web/studies[/{study}] with a multipart/related body of
// application/dicom parts. Each part is written to a temp file as it arrives (no body and no
// instance is ever whole in memory) and handed to the one ingest path as a receiver's instance
// would be: identification, processing, anonymization and staging of the receiver
// `[dicomweb] stow_receiver` names, or the archive with the site's routing rules. The answer
// lists every part's outcome (PS3.18 10.5.3): 200 all stored, 202 some not (or with warnings),
// 409 none.
#include <httplib.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "core/text.h"
#include "dicom/header.h"
#include "dicomweb/multipart.h"
#include "http/api.h"
#include "http/dicomweb_common.h"
#include "http/errors.h"
#include "http/router.h"
#include "ingest/origin_sink.h"
#include "receivers/receiver_sink.h"

namespace pb::http {
namespace {

// Failure reasons (the DIMSE statuses of PS3.4 Annex B that PS3.18 10.5.3 reuses).
constexpr uint16_t kOutOfResources = 0xA700;
constexpr uint16_t kDoesNotMatch = 0xA900;  // not DICOM, or not of the study the path names
constexpr uint16_t kCannotUnderstand = 0xC000;
constexpr uint16_t kProcessingFailure = 0x0110;
constexpr uint16_t kCoerced = 0xB000;  // a warning: stored with data elements changed

constexpr size_t kHeaderBytes = 64 * 1024;  // kept of each part to read its header from memory
constexpr size_t kWriteBuffer = 256 * 1024;

struct Outcome {
  std::string sop_class, sop_uid, study_uid, series_uid;
  uint16_t status = kProcessingFailure;  // 0: stored; 0xBxxx: stored with a warning
  std::string reason;                    // for the log
};

// One part being received.
struct PartFile {
  std::filesystem::path path;
  std::FILE* file = nullptr;
  std::string head;  // its first bytes
  int64_t size = 0;
  bool dicom = true;  // its Content-Type allows application/dicom
  bool failed = false;
  std::string failure;

  void Close() {
    if (file) std::fclose(file);
    file = nullptr;
  }
  void Discard() {
    Close();
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove(path, ec);
    path.clear();
  }
};

// The media type of the parts, from `type=` of the body's Content-Type ("" when absent).
std::string PartsType(const std::string& content_type) {
  std::string ct = AsciiLower(content_type);
  size_t at = ct.find("type=");
  while (at != std::string::npos && at > 0 && std::isalnum(static_cast<unsigned char>(ct[at - 1]))) {
    at = ct.find("type=", at + 1);  // not "subtype=" or similar
  }
  if (at == std::string::npos) return {};
  size_t b = at + 5, e = ct.find(';', b);
  std::string v = ct.substr(b, e == std::string::npos ? std::string::npos : e - b);
  while (!v.empty() && (v.back() == ' ' || v.back() == '"')) v.pop_back();
  while (!v.empty() && (v.front() == ' ' || v.front() == '"')) v.erase(v.begin());
  return v;
}

nlohmann::json Value(const char* vr, const nlohmann::json& v) {
  return {{"vr", vr}, {"Value", nlohmann::json::array({v})}};
}

void Stow(Services& s, const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader,
          const std::string& study) {
  if (!study.empty() && !IsUid(study)) {
    SendError(res, 400, fmt::format("'{}' is not a UID", study), "StudyInstanceUID");
    return CloseAfterAnswer(res);
  }
  const std::string content_type = req.get_header_value("Content-Type");
  auto boundary = dicomweb::MultipartBoundary(content_type);
  const std::string parts_type = PartsType(content_type);
  if (!boundary || AsciiLower(content_type).rfind("multipart/related", 0) != 0 ||
      (!parts_type.empty() && parts_type != "application/dicom")) {
    SendError(res, 415,
              fmt::format("STOW-RS takes multipart/related; type=\"application/dicom\" with a boundary{}",
                          boundary ? "" : ": " + boundary.error().message),
              "Content-Type");
    return CloseAfterAnswer(res);
  }
  std::shared_ptr<const IngestPolicy> policy;
  if (const std::string& name = s.settings.dicomweb_stow_receiver; !name.empty()) {
    auto receiver = s.receivers.Get(name);
    if (!receiver) {
      SendError(res, 503,
                fmt::format("STOW-RS files instances as receiver '{}' ([dicomweb] stow_receiver), which "
                            "does not exist",
                            name),
                "stow_receiver");
      return CloseAfterAnswer(res);
    }
    policy = ReceiverPolicy(*receiver);
  } else {
    auto p = std::make_shared<IngestPolicy>();
    p->name = "STOW-RS";
    policy = std::move(p);
  }
  if (auto projects = VisibleProjects(); !projects.empty()) {
    // An account limited to some projects stores only into them.
    auto limited = std::make_shared<IngestPolicy>(*policy);
    limited->writable_projects = std::move(projects);
    policy = std::move(limited);
  }
  OriginSink sink(policy, s.receivers.site());

  std::vector<Outcome> outcomes;
  PartFile part;
  auto finish_part = [&]() {
    Outcome o;
    part.Close();
    if (part.failed || !part.dicom) {
      o.status = part.failed ? kOutOfResources : kDoesNotMatch;
      o.reason = part.failed ? part.failure : "the part is not application/dicom";
      part.Discard();
      outcomes.push_back(std::move(o));
      return;
    }
    auto header = dicom::ReadHeaderFromFileBytes(part.head, part.size == static_cast<int64_t>(part.head.size()));
    if (!header) header = dicom::ReadHeader(part.path);
    if (!header) {
      o.status = kCannotUnderstand;
      o.reason = header.error().message;
      part.Discard();
      outcomes.push_back(std::move(o));
      return;
    }
    o.sop_class = header->sop_class_uid;
    o.sop_uid = header->sop_uid;
    o.study_uid = header->study_uid;
    o.series_uid = header->series_uid;
    if (!study.empty() && header->study_uid != study) {
      o.status = kDoesNotMatch;
      o.reason = fmt::format("the instance is of study {}, not of {} the request names", header->study_uid, study);
      part.Discard();
      outcomes.push_back(std::move(o));
      return;
    }
    dicom::IncomingInstance in;
    in.temp_file = part.path;
    in.sop_class_uid = header->sop_class_uid;
    in.sop_instance_uid = header->sop_uid;
    in.transfer_syntax_uid = header->transfer_syntax_uid;
    in.peer_address = req.remote_addr;
    in.file_size = part.size;
    in.header = std::move(*header);
    part.path.clear();  // the sink owns the file now
    const dicom::StoreAnswer answer = sink.Store(in);
    o.status = answer.status;
    o.reason = answer.error_comment;
    if (answer.changed && answer.status == 0) {
      // Stored changed (anonymized, relabelled): the answer points at what the archive holds,
      // and says the data was coerced (PS3.18 10.5.3: WarningReason B000).
      o.sop_uid = answer.stored_sop_uid;
      o.study_uid = answer.stored_study_uid;
      o.series_uid = answer.stored_series_uid;
      o.status = kCoerced;
    }
    outcomes.push_back(std::move(o));
  };

  dicomweb::MultipartParser parser(
      *boundary, {[&](int, const dicomweb::MultipartParser::Headers& headers) -> Result<void> {
                    part = PartFile{};
                    auto type = headers.find("content-type");
                    part.dicom = type == headers.end() || AsciiLower(type->second).rfind("application/dicom", 0) == 0;
                    if (AsciiLower(type == headers.end() ? "" : type->second).rfind("application/dicom+", 0) == 0)
                      part.dicom = false;
                    if (!part.dicom) return {};
                    part.path = s.pipeline.NewTempPath();
                    part.file = std::fopen(part.path.c_str(), "wb");
                    if (!part.file) {
                      part.failed = true;
                      part.failure = "no room for the instance in the data directory";
                    } else {
                      // The body arrives in 4 KB reads: written through a larger buffer, a 0.5 MB instance
                      // is two write calls rather than 128.
                      std::setvbuf(part.file, nullptr, _IOFBF, kWriteBuffer);
                    }
                    return {};
                  },
                  [&](std::string_view data) -> Result<void> {
                    if (!part.dicom || part.failed) return {};
                    if (part.head.size() < kHeaderBytes) {
                      part.head.append(data.substr(0, kHeaderBytes - part.head.size()));
                    }
                    if (std::fwrite(data.data(), 1, data.size(), part.file) != data.size()) {
                      part.failed = true;
                      part.failure = "the instance could not be written (is the disk full?)";
                    }
                    part.size += static_cast<int64_t>(data.size());
                    return {};
                  },
                  [&]() -> Result<void> {
                    finish_part();
                    return {};
                  }});
  Result<void> fed;
  bool read = true;
  if (req.has_header("Content-Length") || req.has_header("Transfer-Encoding")) {  // else there is none
    read = reader([&](const char* data, size_t n) {
      fed = parser.Feed(std::string_view(data, n));
      return static_cast<bool>(fed);
    });
  }
  if (fed && read) fed = parser.Finish();
  if (fed && !read) {
    fed = Fail(Code::kInvalidArgument,
               "the body could not be read to its end (cut short, or in an encoding that "
               "cannot be decoded)");
  }
  part.Discard();  // a part the body ended in the middle of
  // What is left of a body that was not read to its end must not be taken for further requests.
  const bool unread = !read || !fed;
  if (!fed && outcomes.empty()) {
    SendError(res, 400, fmt::format("the multipart body cannot be read: {}", fed.error().message));
    return CloseAfterAnswer(res);
  }

  const std::string root = DicomwebRoot(s, req);
  nlohmann::json referenced = nlohmann::json::array(), failed = nlohmann::json::array();
  size_t stored = 0, warned = 0;
  std::string one_study;
  bool several_studies = false;
  for (const Outcome& o : outcomes) {
    nlohmann::json item = nlohmann::json::object();
    if (!o.sop_class.empty()) item["00081150"] = Value("UI", o.sop_class);
    if (!o.sop_uid.empty()) item["00081155"] = Value("UI", o.sop_uid);
    const bool ok = o.status == 0 || (o.status & 0xF000) == 0xB000;
    if (ok) {
      ++stored;
      item["00081190"] = Value("UR", fmt::format("{}/studies/{}/series/{}/instances/{}", root, UrlSegment(o.study_uid),
                                                 UrlSegment(o.series_uid), UrlSegment(o.sop_uid)));
      if (o.status != 0) {
        ++warned;
        item["00081196"] = Value("US", o.status);
      }
      referenced.push_back(std::move(item));
      if (one_study.empty())
        one_study = o.study_uid;
      else if (one_study != o.study_uid)
        several_studies = true;
    } else {
      item["00081197"] = Value("US", o.status);
      failed.push_back(std::move(item));
      // No UID at info (the stow receiver may anonymize: its original UIDs stay out of the log).
      spdlog::info("STOW-RS: a part not stored ({:04X}): {}", o.status, o.reason);
      spdlog::debug("STOW-RS: the part not stored was instance {}", o.sop_uid);
    }
  }
  if (!fed) {
    // The body broke off or went wrong after some parts: those are kept and listed; the rest
    // is one failure.
    nlohmann::json item = nlohmann::json::object();
    item["00081197"] = Value("US", kCannotUnderstand);
    failed.push_back(std::move(item));
    spdlog::info("STOW-RS: the body ended badly after {} part(s): {}", outcomes.size(), fed.error().message);
  }
  int status = 200;
  if (stored == 0)
    status = 409;
  else if (!failed.empty() || warned > 0)
    status = 202;
  nlohmann::json answer = nlohmann::json::object();
  if (!one_study.empty() && !several_studies) {
    answer["00081190"] = Value("UR", fmt::format("{}/studies/{}", root, UrlSegment(one_study)));
  }
  if (!referenced.empty()) answer["00081199"] = {{"vr", "SQ"}, {"Value", std::move(referenced)}};
  if (!failed.empty()) answer["00081198"] = {{"vr", "SQ"}, {"Value", std::move(failed)}};
  if (stored == 0 && outcomes.empty() && fed) {
    return SendError(res, 400, "the body holds no instance");
  }
  SendDicomJson(req, res, status, answer.dump());
  if (unread) CloseAfterAnswer(res);
}

}  // namespace

void AddStowRoutes(Router& r, Services& s) {
  r.PostStream("/dicom-web/studies", Access::kUser,
               [&s](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
                 Stow(s, req, res, reader, "");
               });
  r.PostStream("/dicom-web/studies/{study}", Access::kUser,
               [&s](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
                 Stow(s, req, res, reader, req.matches[1]);
               });
}

}  // namespace pb::http
