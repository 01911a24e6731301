#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>

#include <fmt/format.h>

#include <spdlog/spdlog.h>

#include "dicom/thumbnail.h"
#include "http/api.h"
#include "http/dicomweb_common.h"
#include "http/errors.h"
#include "http/router.h"
#include "http/zip_stream.h"

namespace pb::http {
namespace {

nlohmann::json StudyJson(const StudyRow& r) {
  return {{"StudyInstanceUID", r.study_uid},
          {"PatientID", r.patient_id},
          {"PatientName", r.patient_name},
          {"PatientBirthDate", r.patient_birth_date},
          {"PatientSex", r.patient_sex},
          {"StudyDate", r.study_date},
          {"StudyTime", r.study_time},
          {"AccessionNumber", r.accession_number},
          {"StudyID", r.study_id},
          {"StudyDescription", r.description},
          {"ModalitiesInStudy", r.modalities},
          {"series_count", r.series_count},
          {"instance_count", r.instance_count}};
}

nlohmann::json SeriesJson(const SeriesRow& r) {
  return {{"SeriesInstanceUID", r.series_uid}, {"StudyInstanceUID", r.study_uid},    {"Modality", r.modality},
          {"SeriesNumber", r.series_number},   {"SeriesDescription", r.description}, {"BodyPartExamined", r.body_part},
          {"instance_count", r.instance_count}};
}

nlohmann::json InstanceJson(const InstanceRow& r) {
  return {{"SOPInstanceUID", r.sop_uid},
          {"SeriesInstanceUID", r.series_uid},
          {"StudyInstanceUID", r.study_uid},
          {"SOPClassUID", r.sop_class_uid},
          {"InstanceNumber", r.instance_number},
          {"TransferSyntaxUID", r.transfer_syntax_uid},
          {"file_size", r.file_size},
          {"received_at", r.received_at},
          {"source_ae", r.source_ae}};
}

// Reads see every instance whose sender was answered before the request: wait (briefly) for
// the background indexer to catch up.
void CatchUp(Services& s) { (void)s.pipeline.Flush(std::chrono::seconds(2)); }

nlohmann::json LabelJson(const LabelCount& c, const char* level) {
  nlohmann::json j{{"name", c.name},
                   {"studies", c.studies},
                   {"series", c.series},
                   {"instances", c.instances},
                   {"modalities", c.modalities}};
  if (std::string(level) == "project") j["subjects"] = c.subjects;
  if (std::string(level) != "session") j["sessions"] = c.sessions;
  return j;
}

// Whether an account limited to some projects may see `project` (one it may not is answered as
// if it did not exist).
bool Visible(const std::string& project) {
  const std::vector<std::string> visible = VisibleProjects();
  return visible.empty() || std::find(visible.begin(), visible.end(), project) != visible.end();
}

void AddLabelRoutes(Router& r, Services& s) {
  // Below a label that exists there is always something, so an empty list means an unknown one.
  auto send = [](httplib::Response& res, const Result<std::vector<LabelCount>>& rows, const char* level,
                 const std::string& above = "") {
    if (!rows) return SendError(res, rows.error());
    if (rows->empty() && !above.empty()) return SendError(res, 404, "no " + above + " in the archive");
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : *rows) out.push_back(LabelJson(r, level));
    SendJson(res, 200, out);
  };
  r.Get("/api/projects", Access::kReadOnly, [&s, send](const httplib::Request&, httplib::Response& res) {
    CatchUp(s);
    auto rows = s.db.ListProjects();
    if (rows)
      rows->erase(std::remove_if(rows->begin(), rows->end(), [](const LabelCount& c) { return !Visible(c.name); }),
                  rows->end());
    send(res, rows, "project");
  });
  r.Get("/api/projects/{project}/subjects", Access::kReadOnly,
        [&s, send](const httplib::Request& req, httplib::Response& res) {
          CatchUp(s);
          const std::string above = "project '" + std::string(req.matches[1]) + "'";
          if (!Visible(req.matches[1])) return SendError(res, 404, "no " + above + " in the archive");
          send(res, s.db.ListSubjects(req.matches[1]), "subject", above);
        });
  r.Get("/api/projects/{project}/subjects/{subject}/sessions", Access::kReadOnly,
        [&s, send](const httplib::Request& req, httplib::Response& res) {
          CatchUp(s);
          const std::string above =
              "subject '" + std::string(req.matches[2]) + "' in project '" + std::string(req.matches[1]) + "'";
          if (!Visible(req.matches[1])) return SendError(res, 404, "no " + above + " in the archive");
          send(res, s.db.ListSessions(req.matches[1], req.matches[2]), "session", above);
        });
  r.Get("/api/projects/{project}/subjects/{subject}/sessions/{session}/series", Access::kReadOnly,
        [&s](const httplib::Request& req, httplib::Response& res) {
          CatchUp(s);
          auto rows = s.db.ListSessionSeries(req.matches[1], req.matches[2], req.matches[3]);
          if (!rows) return SendError(res, rows.error());
          if (rows->empty() || !Visible(req.matches[1])) {
            return SendError(res, 404,
                             "no session '" + std::string(req.matches[3]) + "' of subject '" +
                                 std::string(req.matches[2]) + "' in project '" + std::string(req.matches[1]) + "'");
          }
          nlohmann::json out = nlohmann::json::array();
          for (const auto& r : *rows) out.push_back(SeriesJson(r));
          SendJson(res, 200, out);
        });
}

}  // namespace

void AddArchiveRoutes(Router& r, Services& s) {
  AddLabelRoutes(r, s);
  r.Get("/api/studies", Access::kReadOnly, [&s](const httplib::Request& req, httplib::Response& res) {
    CatchUp(s);
    StudyFilter f;
    f.projects = VisibleProjects();
    std::map<std::string, std::string*> keys{
        {"PatientID", &f.patient_id},       {"PatientName", &f.patient_name},
        {"StudyInstanceUID", &f.study_uid}, {"AccessionNumber", &f.accession_number},
        {"StudyDate", &f.study_date},       {"ModalitiesInStudy", &f.modality}};
    for (const auto& [k, v] : req.params) {
      if (k == "limit") {
        if (!ParseInt(v, 1, 100000, f.limit)) return SendError(res, 400, "limit must be 1..100000", "limit");
      } else if (k == "offset") {
        if (!ParseInt(v, 0, 1 << 30, f.offset)) return SendError(res, 400, "offset must be 0 or more", "offset");
      } else if (auto it = keys.find(k); it != keys.end()) {
        *it->second = v;
      } else {
        return SendError(res, 400,
                         fmt::format("unknown filter '{}' (use PatientID, PatientName, "
                                     "StudyInstanceUID, AccessionNumber, StudyDate, "
                                     "ModalitiesInStudy, limit, offset)",
                                     k),
                         k);
      }
    }
    auto rows = s.db.FindStudies(f);
    if (!rows) return SendError(res, rows.error());
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : *rows) out.push_back(StudyJson(r));
    SendJson(res, 200, out);
  });
  r.Get("/api/studies/{uid}/series", Access::kReadOnly, [&s](const httplib::Request& req, httplib::Response& res) {
    CatchUp(s);
    const auto projects = VisibleProjects();
    auto rows = s.db.ListSeries(req.matches[1], projects);
    if (!rows) return SendError(res, rows.error());
    if (rows->empty()) {
      auto exists = s.db.StudyExists(req.matches[1]);
      if ((exists && !*exists) || !projects.empty()) {
        return SendError(res, 404, fmt::format("no study {}", req.matches[1].str()));
      }
    }
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : *rows) out.push_back(SeriesJson(r));
    SendJson(res, 200, out);
  });
  r.Get("/api/series/{uid}/instances", Access::kReadOnly, [&s](const httplib::Request& req, httplib::Response& res) {
    CatchUp(s);
    const auto projects = VisibleProjects();
    auto rows = s.db.ListInstances(req.matches[1], projects);
    if (!rows) return SendError(res, rows.error());
    if (rows->empty()) {
      auto exists = s.db.SeriesExists(req.matches[1]);
      if ((exists && !*exists) || !projects.empty()) {
        return SendError(res, 404, fmt::format("no series {}", req.matches[1].str()));
      }
    }
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : *rows) out.push_back(InstanceJson(r));
    SendJson(res, 200, out);
  });
  // A PNG of the series' middle image (by instance number), at most `size` pixels a side
  // (16-512, default 128), rendered by DCMTK from the stored file.
  r.Get("/api/series/{uid}/thumbnail", Access::kReadOnly, [&s](const httplib::Request& req, httplib::Response& res) {
    int size = 128;
    if (req.has_param("size") && !ParseInt(req.get_param_value("size"), 16, 512, size)) {
      return SendError(res, 400, "size is a whole number of pixels from 16 to 512", "size");
    }
    CatchUp(s);
    auto rows = s.db.ListInstances(req.matches[1], VisibleProjects());
    if (!rows) return SendError(res, rows.error());
    if (rows->empty()) return SendError(res, 404, fmt::format("no series {}", req.matches[1].str()));
    const InstanceRow& middle = (*rows)[rows->size() / 2];
    const std::string etag = fmt::format("\"{}-{}-{}\"", middle.sop_uid, rows->size(), size);
    if (req.get_header_value("If-None-Match") == etag) {
      res.status = 304;
      return;
    }
    auto thumb = dicom::RenderThumbnail(s.blobs.Absolute(middle.file_path), size);
    if (!thumb) {
      if (thumb.error().code == Code::kUnsupported) {
        return SendError(
            res, 422, fmt::format("series {} has no image to show: {}", req.matches[1].str(), thumb.error().message));
      }
      return SendError(res, thumb.error());
    }
    res.set_header("ETag", etag);
    res.set_header("Cache-Control", "private, max-age=300");
    res.set_content(thumb->png, "image/png");
  });
  // The series as a ZIP of its stored files, streamed as it is written. At most kMaxZips at once:
  // each holds an HTTP thread for as long as the download lasts.
  r.Get("/api/series/{uid}/zip", Access::kReadOnly, [&s](const httplib::Request& req, httplib::Response& res) {
    static std::atomic<int> running{0};
    constexpr int kMaxZips = 4;
    CatchUp(s);
    auto rows = s.db.ListInstances(req.matches[1], VisibleProjects());
    if (!rows) return SendError(res, rows.error());
    if (rows->empty()) return SendError(res, 404, fmt::format("no series {}", req.matches[1].str()));
    if (running.fetch_add(1) >= kMaxZips) {
      running.fetch_sub(1);
      res.set_header("Retry-After", "10");
      return SendError(res, 503, fmt::format("{} downloads are running; try again in a moment", kMaxZips));
    }
    const std::string series = req.matches[1];
    res.set_header("Content-Disposition", fmt::format("attachment; filename=\"series-{}.zip\"", series));
    res.set_chunked_content_provider(
        "application/zip",
        [&s, rows = std::make_shared<std::vector<InstanceRow>>(std::move(*rows)), series](size_t,
                                                                                          httplib::DataSink& sink) {
          ZipStream zip([&sink](const char* data, size_t size) { return sink.write(data, size); });
          for (const InstanceRow& r : *rows) {
            const bool numbered = !r.instance_number.empty() &&
                                  r.instance_number.find_first_not_of("0123456789") == std::string::npos &&
                                  r.instance_number.size() <= 6;
            const std::string name = numbered ? fmt::format("{}/{:0>5}_{}.dcm", series, r.instance_number, r.sop_uid)
                                              : fmt::format("{}/{}.dcm", series, r.sop_uid);
            if (auto added = zip.AddFile(name, s.blobs.Absolute(r.file_path)); !added) {
              // The answer has begun: cutting it leaves the client a ZIP without its directory.
              if (added.error().code != Code::kUnavailable) {
                spdlog::warn("download of series {}: {}", series, added.error().message);
              }
              return false;
            }
          }
          if (auto done = zip.Finish(); !done) return false;
          sink.done();
          return true;
        },
        [](bool) { running.fetch_sub(1); });
  });
  r.Get("/api/instances/{sop_instance_uid}", Access::kReadOnly,
        [&s](const httplib::Request& req, httplib::Response& res) {
          CatchUp(s);
          auto row = s.db.GetInstance(req.matches[1], VisibleProjects());
          if (!row) return SendError(res, row.error());
          if (!*row) return SendError(res, 404, fmt::format("no instance {}", req.matches[1].str()));
          SendJson(res, 200, InstanceJson(**row));
        });
  r.Get("/api/instances/{sop_instance_uid}/file", Access::kReadOnly,
        [&s](const httplib::Request& req, httplib::Response& res) {
          CatchUp(s);
          auto row = s.db.GetInstance(req.matches[1], VisibleProjects());
          if (!row) return SendError(res, row.error());
          if (!*row) return SendError(res, 404, fmt::format("no instance {}", req.matches[1].str()));
          auto path = s.blobs.Absolute((*row)->file_path);
          auto file = std::make_shared<std::ifstream>(path, std::ios::binary);
          std::error_code ec;
          auto size = std::filesystem::file_size(path, ec);
          if (!*file || ec) return SendError(res, 500, "the stored file cannot be read");
          res.set_header("Content-Disposition", fmt::format("attachment; filename=\"{}.dcm\"", (*row)->sop_uid));
          // Streamed in chunks: a 200 MB instance never sits in memory.
          res.set_content_provider(size, "application/dicom",
                                   [file](size_t offset, size_t length, httplib::DataSink& sink) {
                                     std::vector<char> buf(std::min<size_t>(length, 256 * 1024));
                                     file->seekg(static_cast<std::streamoff>(offset));
                                     file->read(buf.data(), static_cast<std::streamsize>(buf.size()));
                                     auto n = file->gcount();
                                     if (n <= 0) return false;
                                     sink.write(buf.data(), static_cast<size_t>(n));
                                     return true;
                                   });
        });
}

}  // namespace pb::http
