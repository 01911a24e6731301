// Queries of the archive's index as C-FIND on our receivers and QIDO-RS build them: any level,
// any keys the index knows with any values (wildcards, lists, ranges, bytes that are not
// UTF-8), any projects. Every value is bound as a parameter, so no value may make the SQL fail:
// an error is a defect.
#include <fuzzer/FuzzedDataProvider.h>

#include <unistd.h>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "archive/database.h"
#include "archive/index_query.h"

namespace {

const char* const kKeywords[] = {"PatientID",
                                 "PatientName",
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
                                 "SeriesInstanceUID",
                                 "Modality",
                                 "SeriesNumber",
                                 "SeriesDescription",
                                 "BodyPartExamined",
                                 "SOPInstanceUID",
                                 "SOPClassUID",
                                 "InstanceNumber",
                                 "NumberOfStudyRelatedInstances",
                                 "NumberOfStudyRelatedSeries",
                                 "NumberOfSeriesRelatedInstances",
                                 "NumberOfPatientRelatedStudies",
                                 "SOPClassesInStudy",
                                 "IssuerOfPatientID"};

pb::Database& Db() {
  static std::unique_ptr<pb::Database> db = [] {
    const auto dir = std::filesystem::temp_directory_path() / ("pb-fuzz-index-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    auto opened = pb::Database::Open(dir / "index.db", false);
    if (!opened) std::abort();
    auto batch = (*opened)->BeginBatch();
    if (!batch) std::abort();
    for (int i = 0; i < 6; ++i) {
      pb::InstanceRecord r;
      r.patient_id = "P" + std::to_string(i % 2);
      r.patient_name = i % 2 ? "Yamada^Tarou=山田^太郎" : "DOE^JANE";
      r.study_uid = "1.2." + std::to_string(i % 3);
      r.study_date = "2024010" + std::to_string(i);
      r.study_time = "1015" + std::to_string(i);
      r.series_uid = r.study_uid + "." + std::to_string(i % 2);
      r.modality = i % 2 ? "CT" : "MR";
      r.sop_uid = r.series_uid + "." + std::to_string(i);
      r.sop_class_uid = "1.2.840.10008.5.1.4.1.1.2";
      r.file_path = r.sop_uid + ".dcm";
      r.project = i % 2 ? "A" : "B";
      if (!(*batch)->Put(r)) std::abort();
    }
    if (!(*batch)->Commit()) std::abort();
    batch->reset();  // a batch holds the writer until it goes
    return std::move(*opened);
  }();
  return *db;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  pb::IndexQuery q;
  q.level = static_cast<pb::IndexLevel>(in.ConsumeIntegralInRange<int>(0, 3));
  q.names_ignore_case = in.ConsumeBool();
  q.limit = in.ConsumeIntegralInRange<size_t>(1, 2000);
  q.offset = in.ConsumeIntegralInRange<size_t>(0, 10);
  const int keys = in.ConsumeIntegralInRange<int>(0, 6);
  for (int k = 0; k < keys; ++k) {
    const std::string keyword = kKeywords[in.ConsumeIntegralInRange<size_t>(0, std::size(kKeywords) - 1)];
    if (!pb::IndexKnows(q.level, keyword)) continue;
    q.keys.emplace_back(keyword, in.ConsumeRandomLengthString(80));
    q.returns.push_back(keyword);
  }
  if (in.ConsumeBool()) q.projects.push_back(in.ConsumeRandomLengthString(16));
  auto answers = Db().QueryIndex(q);
  if (!answers) std::abort();  // no value may make the query fail
  if (answers->size() > q.limit) std::abort();
  return 0;
}
