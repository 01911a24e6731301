#include "mpps/mpps_steps.h"
#include "archive/testing.h"

#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

namespace pb {
namespace {

using json = nlohmann::json;

// Statuses from PS3.7 Annex C and PS3.4 F.7.2.2.4 (not from the code under test).
constexpr uint16_t kSuccess = 0x0000, kInvalidValue = 0x0106, kProcessingFailure = 0x0110, kDuplicate = 0x0111,
                   kNoSuchInstance = 0x0112, kMissingAttribute = 0x0120, kMissingValue = 0x0121,
                   kMayNoLongerBeUpdated = 0xA710;

class MppsStepsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("pb-mpps-steps-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto db = OpenTestDatabase(dir_);
    ASSERT_TRUE(db) << db.error().message;
    db_ = std::move(*db);
    steps_ = std::make_unique<MppsSteps>(*db_, clock_);
  }
  void TearDown() override {
    steps_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  dicom::NAnswer Send(bool create, const std::string& uid, json dataset) {
    dicom::MppsRequest rq;
    rq.create = create;
    rq.sop_instance_uid = uid;
    rq.calling_ae = "CT1";
    rq.called_ae = "PACSBRIDGE";
    rq.dicom_json = dataset.dump();
    return steps_->Receive(rq);
  }
  static json Status(const std::string& s) { return {{"00400252", {{"vr", "CS"}, {"Value", {s}}}}}; }

  std::filesystem::path dir_;
  ManualClock clock_{std::chrono::system_clock::from_time_t(1764756000)};
  std::unique_ptr<Database> db_;
  std::unique_ptr<MppsSteps> steps_;
};

TEST_F(MppsStepsTest, ReceivedStepsFollowTheStateMachine) {
  json create = Status("IN PROGRESS");
  create["00400270"] = {{"vr", "SQ"},
                        {"Value", json::array({{{"00080050", {{"vr", "SH"}, {"Value", {"A1"}}}},
                                                {"0020000D", {{"vr", "UI"}, {"Value", {"1.2.3"}}}}}})}};
  create["00100010"] = {{"vr", "PN"}, {"Value", json::array({{{"Alphabetic", "DOE^JANE"}}})}};
  EXPECT_EQ(Send(true, "1.9.1", create).status, kSuccess);
  EXPECT_EQ(Send(true, "1.9.1", create).status, kDuplicate);
  EXPECT_EQ(Send(true, "1.9.2", Status("COMPLETED")).status, kInvalidValue);
  EXPECT_EQ(Send(true, "1.9.3", json::object()).status, kMissingAttribute);
  EXPECT_EQ(Send(true, "1.9.4", {{"00400252", {{"vr", "CS"}}}}).status, kMissingValue);
  EXPECT_EQ(Send(false, "1.9.404", Status("COMPLETED")).status, kNoSuchInstance);
  EXPECT_EQ(Send(false, "1.9.1", Status("PAUSED")).status, kInvalidValue);

  auto stored = db_->GetMpps("received", "1.9.1");
  ASSERT_TRUE(stored && *stored);
  EXPECT_EQ((*stored)->status, "IN PROGRESS");
  EXPECT_EQ((*stored)->accession_number, "A1");
  EXPECT_EQ((*stored)->study_instance_uid, "1.2.3");
  EXPECT_EQ((*stored)->patient_name, "DOE^JANE");
  EXPECT_EQ((*stored)->calling_ae, "CT1");

  json end = Status("COMPLETED");
  end["00400250"] = {{"vr", "DA"}, {"Value", {"20261203"}}};
  EXPECT_EQ(Send(false, "1.9.1", end).status, kSuccess);
  auto again = Send(false, "1.9.1", Status("DISCONTINUED"));
  EXPECT_EQ(again.status, kProcessingFailure);
  EXPECT_EQ(again.error_id, kMayNoLongerBeUpdated);
  EXPECT_EQ(again.error_comment, "Performed Procedure Step Object may no longer be updated");

  stored = db_->GetMpps("received", "1.9.1");
  EXPECT_EQ((*stored)->status, "COMPLETED");
  const json merged = json::parse((*stored)->attributes);
  EXPECT_EQ(merged["00400250"]["Value"][0], "20261203");                // the N-SET's attribute
  EXPECT_EQ(merged["00100010"]["Value"][0]["Alphabetic"], "DOE^JANE");  // the N-CREATE's, kept
  EXPECT_EQ(json::parse((*stored)->history).size(), 2u);                // refusals change nothing
}

TEST_F(MppsStepsTest, HostileRequestsNeitherThrowNorMoveTheStep) {
  // A calling AE title that is not UTF-8 (DCMTK does not check it) is kept, replaced.
  dicom::MppsRequest rq;
  rq.create = true;
  rq.sop_instance_uid = "1.9.7";
  rq.calling_ae = "CT\xFF\xFE";
  json create = Status("IN PROGRESS");
  create["00100020"] = {{"vr", "LO"}, {"Value", {"P1"}}};
  rq.dicom_json = create.dump();
  EXPECT_EQ(steps_->Receive(rq).status, kSuccess);
  auto stored = db_->GetMpps("received", "1.9.7");
  ASSERT_TRUE(stored && *stored);
  EXPECT_NE(json::parse((*stored)->history, nullptr, false), nullptr);
  // An N-SET may not move the step to another patient (PS3.4 Table F.7.2-1: not allowed).
  json set = Status("IN PROGRESS");
  set["00100020"] = {{"vr", "LO"}, {"Value", {"SOMEONE-ELSE"}}};
  EXPECT_EQ(Send(false, "1.9.7", set).status, kSuccess);
  EXPECT_EQ((*db_->GetMpps("received", "1.9.7"))->patient_id, "P1");
  // Attributes that could not be read are refused, not taken as none.
  dicom::MppsRequest broken;
  broken.create = false;
  broken.sop_instance_uid = "1.9.7";
  broken.dicom_json = "{\"00400252\": {\"vr\": \"CS\", \"Value\": [1.]}}";
  EXPECT_EQ(steps_->Receive(broken).status, kProcessingFailure);
  EXPECT_EQ((*db_->GetMpps("received", "1.9.7"))->status, "IN PROGRESS");
}

TEST_F(MppsStepsTest, StartAttributesComeFromTheWorklistItem) {
  json item{
      {"PatientName", "MÜLLER^JOSÉ"},
      {"PatientID", "P1"},
      {"AccessionNumber", "A1"},
      {"StudyInstanceUID", "1.2.3"},
      {"RequestedProcedureID", "RP1"},
      {"RequestedProcedureDescription", "CT HEAD"},
      {"RequestedProcedureCodeSequence", json::array({{{"CodeValue", "RPC1"}, {"CodingSchemeDesignator", "L"}}})},
      {"ScheduledProcedureStepSequence",
       json::array(
           {{{"Modality", "CT"},
             {"ScheduledStationAETitle", "CT1"},
             {"ScheduledProcedureStepID", "SPS1"},
             {"ScheduledProcedureStepDescription", "HEAD NATIVE"},
             {"ScheduledProtocolCodeSequence",
              json::array({{{"CodeValue", "P1"}, {"CodingSchemeDesignator", "L"}, {"CodingSchemeVersion", ""}}})}}})},
      {"dicom", json::object()},
      {"mpps", nullptr}};
  MppsStart start;
  start.item = item;
  start.station_ae_title = "PACSBRIDGE";
  auto a = steps_->StartAttributes(start);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->values.at("PerformedProcedureStepStatus"), "IN PROGRESS");
  EXPECT_EQ(a->values.at("PerformedStationAETitle"), "CT1");  // the item's station
  EXPECT_EQ(a->values.at("Modality"), "CT");
  EXPECT_EQ(a->values.at("PatientName"), "MÜLLER^JOSÉ");
  EXPECT_EQ(a->values.at("PerformedProcedureStepEndDate"), "");  // type 2: present, empty
  EXPECT_EQ(a->values.at("PerformedProcedureStepStartDate").size(), 8u);
  EXPECT_LE(a->values.at("PerformedProcedureStepID").size(), 16u);  // SH
  const auto& ssa = a->sequences.at("ScheduledStepAttributesSequence");
  ASSERT_EQ(ssa.size(), 1u);
  EXPECT_EQ(ssa[0].values.at("StudyInstanceUID"), "1.2.3");
  EXPECT_EQ(ssa[0].values.at("AccessionNumber"), "A1");
  EXPECT_EQ(ssa[0].values.at("ScheduledProcedureStepID"), "SPS1");
  EXPECT_EQ(ssa[0].sequences.at("ScheduledProtocolCodeSequence").at(0).values.at("CodeValue"), "P1");
  // Type 1C (PS3.3 Table 8.8-1): left out, not sent empty.
  EXPECT_EQ(ssa[0].sequences.at("ScheduledProtocolCodeSequence").at(0).values.count("CodingSchemeVersion"), 0u);
  EXPECT_EQ(a->sequences.at("ProcedureCodeSequence").at(0).values.at("CodeValue"), "RPC1");
  EXPECT_TRUE(a->sequences.at("PerformedSeriesSequence").empty());
  EXPECT_TRUE(a->sequences.at("ReferencedPatientSequence").empty());
  // Encodable: every keyword is an attribute.
  EXPECT_TRUE(dicom::ToDicomJson(*a, "attributes."));

  start.attributes = {{"PatientWeight", 70}};
  EXPECT_EQ(steps_->StartAttributes(start).error().field, "attributes.PatientWeight");
  start.attributes = {{"PerformedProcedureStepStatus", "COMPLETED"}};
  EXPECT_EQ(steps_->StartAttributes(start).error().field, "attributes.PerformedProcedureStepStatus");
  start.attributes = json::object();
  start.item.erase("StudyInstanceUID");
  EXPECT_EQ(steps_->StartAttributes(start).error().field, "item.StudyInstanceUID");
}

TEST_F(MppsStepsTest, EndAttributesReferenceWhatWasProduced) {
  MppsEnd end;
  end.status = "COMPLETED";
  PerformedSeries s;
  s.series_uid = "1.2.3.4";
  s.description = "AX T1";
  s.retrieve_ae_title = "PACSBRIDGE";
  s.instances = {{"1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.1"},       // CT Image Storage: an image
                 {"1.2.840.10008.5.1.4.1.1.88.22", "1.2.3.4.2"}};  // Enhanced SR: not an image
  end.series = {s};
  auto a = steps_->EndAttributes(end);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->values.at("PerformedProcedureStepStatus"), "COMPLETED");
  const auto& item = a->sequences.at("PerformedSeriesSequence").at(0);
  EXPECT_EQ(item.values.at("SeriesInstanceUID"), "1.2.3.4");
  EXPECT_EQ(item.values.at("ProtocolName"), "AX T1");  // type 1: the description stands in
  EXPECT_EQ(item.sequences.at("ReferencedImageSequence").at(0).values.at("ReferencedSOPInstanceUID"), "1.2.3.4.1");
  EXPECT_EQ(
      item.sequences.at("ReferencedNonImageCompositeSOPInstanceSequence").at(0).values.at("ReferencedSOPInstanceUID"),
      "1.2.3.4.2");
  EXPECT_TRUE(dicom::ToDicomJson(*a, "attributes."));

  MppsEnd stop;
  stop.status = "DISCONTINUED";
  auto d = steps_->EndAttributes(stop);
  ASSERT_TRUE(d);
  // PS3.16 CID 9300: 110513 (DCM) "Discontinued for unspecified reason".
  const auto& reason = d->sequences.at("PerformedProcedureStepDiscontinuationReasonCodeSequence").at(0);
  EXPECT_EQ(reason.values.at("CodeValue"), "110513");
  EXPECT_EQ(reason.values.at("CodingSchemeDesignator"), "DCM");
  stop.reason = {{"CodeMeaning", "no code"}};
  EXPECT_EQ(steps_->EndAttributes(stop).error().field, "reason");
  MppsEnd wrong;
  wrong.status = "PAUSED";
  EXPECT_EQ(steps_->EndAttributes(wrong).error().field, "status");
}

TEST(MppsJson, DicomJsonFlattensWithKeywordsAndNameGroups) {
  json ds{{"00100010",
           {{"vr", "PN"}, {"Value", json::array({{{"Alphabetic", "Yamada^Tarou"}, {"Ideographic", "山田^太郎"}}})}}},
          {"00400340", {{"vr", "SQ"}, {"Value", json::array({{{"0020000E", {{"vr", "UI"}, {"Value", {"1.2"}}}}}})}}},
          {"00280010", {{"vr", "US"}, {"Value", {512}}}},
          {"00080005", {{"vr", "CS"}, {"Value", {"ISO_IR 192"}}}}};
  json flat = FlatJsonFromDicomJson(ds);
  EXPECT_EQ(flat["PatientName"], "Yamada^Tarou=山田^太郎");
  EXPECT_EQ(flat["PerformedSeriesSequence"][0]["SeriesInstanceUID"], "1.2");
  EXPECT_EQ(flat["Rows"], "512");
  EXPECT_FALSE(flat.contains("SpecificCharacterSet"));
}

// Found by the dicom_json fuzz target: a peer's "Value" that is no list, a "vr" or name group
// that is no string, threw out of the flattening (and out of the thread that ran it).
TEST(MppsJson, DicomJsonOfTheWrongShapeFlattensToWhatIsUsable) {
  json ds{{"00081199",
           {{"vr", "SQ"},
            {"Value", json::array({{{"00081150", {{"vr", "UI"}, {"Value", "UI"}}},
                                    {"00081197", {{"vr", "US"}, {"Value", {272}}}}}})}}},
          {"00100010", {{"vr", "PN"}, {"Value", json::array({{{"Alphabetic", 7}, {"Ideographic", "X"}}})}}},
          {"00100020", {{"vr", 5}, {"Value", {"PID"}}}},
          {"00080060", {{"vr", "CS"}, {"Value", {{"a", 1}}}}}};
  json flat;
  ASSERT_NO_THROW(flat = FlatJsonFromDicomJson(ds));
  EXPECT_EQ(flat["ReferencedSOPSequence"][0]["ReferencedSOPClassUID"], "");
  EXPECT_EQ(flat["ReferencedSOPSequence"][0]["FailureReason"], "272");
  EXPECT_EQ(flat["PatientName"], "=X");
  EXPECT_EQ(flat["PatientID"], "PID");
}

}  // namespace
}  // namespace pb
