#include "mpps/mpps_steps.h"

#include <ctime>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/thread_annotations.h"
#include "core/validate.h"
#include "dicom/find.h"
#include "dicom/mpps.h"

namespace pb {
namespace {

using json = nlohmann::json;

constexpr const char* kInProgress = "IN PROGRESS";
// At a stop, queued forwards are sent for this long; the rest are noted as not sent.
constexpr auto kStopGrace = std::chrono::seconds(10);

// Tags of the DICOM JSON model (upper-case hex, PS3.18 F.2.1.1).
constexpr const char* kStatus = "00400252";
constexpr const char* kScheduledStepAttributes = "00400270";
constexpr const char* kAccession = "00080050";
constexpr const char* kStudyUid = "0020000D";
constexpr const char* kStepId = "00400009";
constexpr const char* kPatientId = "00100020";
constexpr const char* kPatientName = "00100010";
constexpr const char* kModality = "00080060";

// The first value of an attribute of a DICOM JSON data set, as text ("" when absent).
std::string Text(const json& ds, const char* tag) {
  if (!ds.is_object()) return {};
  auto a = ds.find(tag);
  if (a == ds.end() || !a->is_object()) return {};
  auto v = a->find("Value");
  if (v == a->end() || !v->is_array() || v->empty()) return {};
  const json& first = (*v)[0];
  if (first.is_string()) return first.get<std::string>();
  if (first.is_number()) return first.dump();
  if (first.is_object()) return first.value("Alphabetic", "");
  return {};
}

const json& FirstItem(const json& ds, const char* tag) {
  static const json kNone = json::object();
  if (!ds.is_object()) return kNone;
  auto a = ds.find(tag);
  if (a == ds.end() || !a->is_object()) return kNone;
  auto v = a->find("Value");
  if (v == a->end() || !v->is_array() || v->empty() || !(*v)[0].is_object()) return kNone;
  return (*v)[0];
}

// The columns a list shows, taken from the step as it stands.
void Derive(MppsRecord& m, const json& ds) {
  m.status = Text(ds, kStatus);
  const json& scheduled = FirstItem(ds, kScheduledStepAttributes);
  m.accession_number = Text(scheduled, kAccession);
  m.study_instance_uid = Text(scheduled, kStudyUid);
  m.scheduled_step_id = Text(scheduled, kStepId);
  m.patient_id = Text(ds, kPatientId);
  m.patient_name = Text(ds, kPatientName);
  m.modality = Text(ds, kModality);
}

// JSON text for the index: what a peer sent may not be UTF-8 (an AE title, an Error Comment),
// and is replaced rather than thrown on.
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json History(const MppsRecord& m) {
  json h = json::parse(m.history, nullptr, false);
  return h.is_array() ? h : json::array();
}

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Local date and time now, as DICOM DA and TM: a modality reports its own clock.
std::pair<std::string, std::string> LocalDateTime(TimePoint t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm local{};
  localtime_r(&tt, &local);
  char date[16], time[16];
  std::strftime(date, sizeof date, "%Y%m%d", &local);
  std::strftime(time, sizeof time, "%H%M%S", &local);
  return {date, time};
}

dicom::FlatItem CodeItem(const json& code) {
  dicom::FlatItem c;
  for (const char* k : {"CodeValue", "CodingSchemeDesignator", "CodeMeaning", "CodingSchemeVersion"}) {
    if (code.contains(k) && code[k].is_string()) c.values[k] = code[k].get<std::string>();
  }
  return c;
}

// Code items as a worklist gives them, fit to send: Coding Scheme Version is type 1C (PS3.3
// Table 8.8-1), left out rather than sent empty.
std::vector<dicom::FlatItem> Codes(const dicom::FlatItem& from, const char* sequence) {
  auto it = from.sequences.find(sequence);
  if (it == from.sequences.end()) return {};
  std::vector<dicom::FlatItem> out = it->second;
  for (auto& code : out) {
    if (auto v = code.values.find("CodingSchemeVersion"); v != code.values.end() && v->second.empty()) {
      code.values.erase(v);
    }
  }
  return out;
}

[[nodiscard]] Result<void> Overrides(const json& attributes, dicom::FlatItem& into) {
  if (!attributes.is_object())
    return Fail(Code::kInvalidArgument, "attributes must be an object of keyword: value", "attributes");
  for (auto it = attributes.begin(); it != attributes.end(); ++it) {
    if (!it->is_string() && !it->is_array()) {
      return Fail(Code::kInvalidArgument, "attribute values are DICOM strings (a sequence: a list of objects)",
                  "attributes." + it.key());
    }
  }
  dicom::FlatItem extra = FlatItemFromJson(attributes);
  for (auto& [k, v] : extra.values) into.values[k] = v;
  for (auto& [k, v] : extra.sequences) into.sequences[k] = v;
  return {};
}

}  // namespace

dicom::FlatItem FlatItemFromJson(const json& j) {
  dicom::FlatItem out;
  if (!j.is_object()) return out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it->is_string()) {
      out.values[it.key()] = it->get<std::string>();
    } else if (it->is_array() && dicom::IsKeyword(it.key())) {
      std::vector<dicom::FlatItem> items;
      for (const auto& e : *it) {
        if (e.is_object()) items.push_back(FlatItemFromJson(e));
      }
      out.sequences[it.key()] = std::move(items);
    }
  }
  return out;
}

namespace {

// A member that is a string, or "" (DICOM JSON from a peer may put anything anywhere).
std::string StringMember(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

json FlatJsonFromDicomJson(const json& ds) {
  json out = json::object();
  if (!ds.is_object()) return out;
  for (auto it = ds.begin(); it != ds.end(); ++it) {
    unsigned tag = 0;
    if (std::sscanf(it.key().c_str(), "%8x", &tag) != 1 || !it->is_object()) continue;
    if (tag == 0x00080005) continue;  // Specific Character Set: the values here are UTF-8
    const std::string keyword = dicom::LookupTag(tag).keyword;
    static const json kNone = json::array();
    auto found = it->find("Value");
    const json& values = found != it->end() && found->is_array() ? *found : kNone;  // else: no value
    if (StringMember(*it, "vr") == "SQ") {
      json items = json::array();
      for (const auto& item : values) items.push_back(FlatJsonFromDicomJson(item));
      out[keyword] = std::move(items);
      continue;
    }
    std::string text;
    for (size_t i = 0; i < values.size(); ++i) {
      const json& v = values[i];
      if (i) text += '\\';
      if (v.is_string())
        text += v.get<std::string>();
      else if (v.is_number())
        text += v.dump();
      else if (v.is_object()) {  // a person name: its groups
        std::string name = StringMember(v, "Alphabetic");
        if (v.contains("Ideographic") || v.contains("Phonetic")) name += "=" + StringMember(v, "Ideographic");
        if (v.contains("Phonetic")) name += "=" + StringMember(v, "Phonetic");
        text += name;
      }
    }
    out[keyword] = text;
  }
  return out;
}

std::string MppsSteps::Now() const { return UtcIso(clock_.Now()); }

MppsRecord MppsSteps::Merge(MppsRecord m, const json& update) const {
  json ds = json::parse(m.attributes, nullptr, false);
  if (!ds.is_object()) ds = json::object();
  for (auto it = update.begin(); it != update.end(); ++it) ds[it.key()] = *it;  // N-SET replaces attributes
  m.attributes = Dump(ds);
  Derive(m, ds);
  m.updated_at = Now();
  return m;
}

dicom::NAnswer MppsSteps::Receive(const dicom::MppsRequest& rq) {
  try {
    return ReceiveChecked(rq);
  } catch (const std::exception&) {  // nothing a peer sends may end the receiver's thread
    spdlog::error("MPPS from {}: the request could not be handled", ToValidUtf8(rq.calling_ae));
    return {0x0110, "the request could not be handled", 0};
  }
}

dicom::NAnswer MppsSteps::ReceiveChecked(const dicom::MppsRequest& rq) {
  const char* command = rq.create ? "N-CREATE" : "N-SET";
  auto refuse = [&](uint16_t status, std::string comment, uint16_t error_id = 0) {
    spdlog::info("MPPS {} from {} for step {} refused: {}", command, ToValidUtf8(rq.calling_ae),
                 ToValidUtf8(rq.sop_instance_uid), comment);
    return dicom::NAnswer{status, std::move(comment), error_id};
  };
  json update = json::parse(rq.dicom_json, nullptr, false);
  if (!update.is_object()) return refuse(0x0110, "the attributes could not be read");
  update.erase("00080005");
  if (!rq.create) {
    // PS3.4 Table F.7.2-1: the relationship to the patient and the scheduled step, and who
    // performs it since when, are set by the N-CREATE only. A modality that sends them again
    // does not move the step to another study.
    for (const char* fixed : {"00100010", "00100020", "00100021", "00100030", "00100040", "00081120", "00400270",
                              "00400253", "00400241", "00400242", "00400243", "00400244", "00400245", "00080060"}) {
      update.erase(fixed);
    }
  }
  MutexLock lock(mu_);
  auto existing = db_.GetMpps("received", rq.sop_instance_uid);
  if (!existing) return refuse(0x0110, "the step cannot be read from the index");
  const std::string new_status = Text(update, kStatus);
  MppsRecord m;
  if (rq.create) {
    if (*existing) return refuse(0x0111, "a step with this SOP Instance UID exists already");
    if (!update.contains(kStatus)) return refuse(0x0120, "Performed Procedure Step Status is missing");
    if (new_status.empty()) return refuse(0x0121, "Performed Procedure Step Status is empty");
    if (new_status != kInProgress)
      return refuse(0x0106, fmt::format("a step is created IN PROGRESS, not {}", new_status));
    m.direction = "received";
    m.sop_instance_uid = rq.sop_instance_uid;
    m.receiver_ae = rq.called_ae;
    m.calling_ae = rq.calling_ae;
    m.created_at = Now();
  } else {
    if (!*existing) return refuse(0x0112, "no step with this SOP Instance UID");
    m = **existing;
    if (m.status != kInProgress) {
      // PS3.4 F.7.2.2.4: Processing failure, Error ID A710.
      return refuse(0x0110, "Performed Procedure Step Object may no longer be updated", 0xA710);
    }
    if (update.contains(kStatus) && new_status.empty()) {
      return refuse(0x0121, "Performed Procedure Step Status is empty");
    }
    if (update.contains(kStatus) && new_status != kInProgress && new_status != "COMPLETED" &&
        new_status != "DISCONTINUED") {
      return refuse(0x0106,
                    fmt::format("'{}' is not a step status (IN PROGRESS, COMPLETED, DISCONTINUED)", new_status));
    }
  }
  m = Merge(std::move(m), update);
  json history = History(m);
  history.push_back({{"at", m.updated_at}, {"command", command}, {"by", rq.calling_ae}, {"status", m.status}});
  m.history = Dump(history);
  if (auto r = db_.PutMpps(m); !r) {
    spdlog::error("MPPS {} from {}: {}", command, rq.calling_ae, r.error().message);
    return {0x0110, "the step could not be stored", 0};
  }
  spdlog::info("MPPS {} from {} via {}: step {} is {}", command, rq.calling_ae, rq.called_ae, m.sop_instance_uid,
               m.status);
  if (!rq.forward_to.empty()) {
    MutexLock queue_lock(queue_mu_);
    if (forward_ && !stopping_) {
      queue_.push_back({rq.forward_to, rq.sop_instance_uid, rq.create, rq.attributes});
      queue_cv_.notify_one();
    }
  }
  return {};
}

void MppsSteps::StartForwarding(Forward send) {
  MutexLock lock(queue_mu_);
  forward_ = std::move(send);
  stopping_ = false;
  if (!forwarder_.joinable()) forwarder_ = std::thread([this] { ForwardLoop(); });
}

void MppsSteps::StopForwarding() {
  {
    MutexLock lock(queue_mu_);
    if (!stopping_) stop_deadline_ = std::chrono::steady_clock::now() + kStopGrace;
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (forwarder_.joinable()) forwarder_.join();
}

void MppsSteps::ForwardLoop() {
  MutexLock lock(queue_mu_);
  while (true) {
    queue_cv_.wait(lock, [&]() REQUIRES(queue_mu_) { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything was sent
    Pending p = std::move(queue_.front());
    queue_.pop_front();
    const bool late = stopping_ && std::chrono::steady_clock::now() > stop_deadline_;
    lock.Unlock();
    std::string outcome;
    try {
      if (late) {
        outcome = "not sent: the server stopped before it could be";
      } else if (auto answer = forward_(p.node, p.create, p.uid, p.attributes); !answer) {
        outcome = "not sent: " + answer.error().message;
      } else {
        outcome = dicom::DescribeNAnswer(*answer);
      }
      spdlog::info("MPPS {} of step {} forwarded to {}: {}", p.create ? "N-CREATE" : "N-SET", p.uid, p.node,
                   ToValidUtf8(outcome));
      NoteForwarded(p, outcome);
    } catch (const std::exception&) {
      spdlog::error("MPPS step {}: forwarding to {} failed unexpectedly", p.uid, p.node);
    }
    lock.Lock();
  }
}

void MppsSteps::NoteForwarded(const Pending& p, const std::string& outcome) {
  MutexLock lock(mu_);
  auto existing = db_.GetMpps("received", p.uid);
  if (!existing || !*existing) return;
  MppsRecord m = **existing;
  json history = History(m);
  history.push_back(
      {{"at", Now()}, {"command", p.create ? "N-CREATE" : "N-SET"}, {"forwarded_to", p.node}, {"outcome", outcome}});
  m.history = Dump(history);
  if (auto r = db_.PutMpps(m); !r) spdlog::warn("MPPS step {}: {}", p.uid, r.error().message);
}

Result<dicom::FlatItem> MppsSteps::StartAttributes(const MppsStart& start) const {
  if (!start.item.is_object()) return Fail(Code::kInvalidArgument, "item must be a worklist item (an object)", "item");
  const dicom::FlatItem item = FlatItemFromJson(start.item);
  auto v = [&](const dicom::FlatItem& f, const char* k) {
    auto it = f.values.find(k);
    return it == f.values.end() ? std::string() : it->second;
  };
  dicom::FlatItem step;  // the worklist item's (first) scheduled step
  if (auto s = item.sequences.find("ScheduledProcedureStepSequence"); s != item.sequences.end() && !s->second.empty()) {
    step = s->second.front();
  }
  auto scheduled = [&](const char* k) { return v(step, k).empty() ? v(item, k) : v(step, k); };
  if (v(item, "StudyInstanceUID").empty()) {
    return Fail(Code::kInvalidArgument, "the worklist item has no StudyInstanceUID", "item.StudyInstanceUID");
  }
  const auto [date, time] = LocalDateTime(clock_.Now());
  dicom::FlatItem out;
  // Performed Procedure Step Relationship.
  dicom::FlatItem ssa;
  ssa.values["StudyInstanceUID"] = v(item, "StudyInstanceUID");
  ssa.values["AccessionNumber"] = v(item, "AccessionNumber");
  ssa.values["RequestedProcedureID"] = v(item, "RequestedProcedureID");
  ssa.values["RequestedProcedureDescription"] = v(item, "RequestedProcedureDescription");
  ssa.values["ScheduledProcedureStepID"] = scheduled("ScheduledProcedureStepID");
  ssa.values["ScheduledProcedureStepDescription"] = scheduled("ScheduledProcedureStepDescription");
  ssa.sequences["ReferencedStudySequence"] = {};
  ssa.sequences["ScheduledProtocolCodeSequence"] = Codes(step, "ScheduledProtocolCodeSequence");
  out.sequences["ScheduledStepAttributesSequence"] = {ssa};
  for (const char* k : {"PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex"}) {
    out.values[k] = v(item, k);
  }
  out.sequences["ReferencedPatientSequence"] = {};
  // Performed Procedure Step Information.
  out.values["PerformedProcedureStepID"] = dicom::NewUid().substr(5, 16);  // SH: 16 digits of a fresh UUID
  const std::string station =
      !scheduled("ScheduledStationAETitle").empty() ? scheduled("ScheduledStationAETitle") : start.station_ae_title;
  out.values["PerformedStationAETitle"] = station;
  out.values["PerformedStationName"] = scheduled("ScheduledStationName");
  out.values["PerformedLocation"] = scheduled("ScheduledProcedureStepLocation");
  out.values["PerformedProcedureStepStartDate"] = date;
  out.values["PerformedProcedureStepStartTime"] = time;
  out.values["PerformedProcedureStepEndDate"] = "";
  out.values["PerformedProcedureStepEndTime"] = "";
  out.values["PerformedProcedureStepStatus"] = kInProgress;
  out.values["PerformedProcedureStepDescription"] = scheduled("ScheduledProcedureStepDescription");
  out.values["PerformedProcedureTypeDescription"] = v(item, "RequestedProcedureDescription");
  out.sequences["ProcedureCodeSequence"] = Codes(item, "RequestedProcedureCodeSequence");
  // Image Acquisition Results.
  out.values["Modality"] = scheduled("Modality");
  out.values["StudyID"] = v(item, "RequestedProcedureID").substr(0, 16);
  out.sequences["PerformedProtocolCodeSequence"] = ssa.sequences["ScheduledProtocolCodeSequence"];
  out.sequences["PerformedSeriesSequence"] = {};
  if (auto r = Overrides(start.attributes, out); !r) return tl::unexpected(r.error());
  if (out.values["PerformedProcedureStepStatus"] != kInProgress) {
    return Fail(Code::kInvalidArgument, "a step starts IN PROGRESS", "attributes.PerformedProcedureStepStatus");
  }
  return out;
}

Result<dicom::FlatItem> MppsSteps::EndAttributes(const MppsEnd& end) const {
  if (end.status != "COMPLETED" && end.status != "DISCONTINUED") {
    return Fail(Code::kInvalidArgument, "status must be COMPLETED or DISCONTINUED", "status");
  }
  const auto [date, time] = LocalDateTime(clock_.Now());
  dicom::FlatItem out;
  out.values["PerformedProcedureStepStatus"] = end.status;
  out.values["PerformedProcedureStepEndDate"] = date;
  out.values["PerformedProcedureStepEndTime"] = time;
  std::vector<dicom::FlatItem> series;
  for (const PerformedSeries& s : end.series) {
    dicom::FlatItem item;
    item.values["SeriesInstanceUID"] = s.series_uid;
    item.values["SeriesDescription"] = s.description;
    // Type 1 in the Performed Series Sequence: the description stands in when there is none.
    item.values["ProtocolName"] = !s.protocol_name.empty() ? s.protocol_name
                                  : !s.description.empty() ? s.description
                                                           : "UNSPECIFIED";
    item.values["PerformingPhysicianName"] = "";
    item.values["OperatorsName"] = "";
    item.values["RetrieveAETitle"] = s.retrieve_ae_title;
    std::vector<dicom::FlatItem> images, others;
    for (const auto& [cls, sop] : s.instances) {
      dicom::FlatItem ref;
      ref.values["ReferencedSOPClassUID"] = cls;
      ref.values["ReferencedSOPInstanceUID"] = sop;
      (dicom::IsImageSopClass(cls) ? images : others).push_back(std::move(ref));
    }
    item.sequences["ReferencedImageSequence"] = std::move(images);
    item.sequences["ReferencedNonImageCompositeSOPInstanceSequence"] = std::move(others);
    series.push_back(std::move(item));
  }
  if (end.status == "COMPLETED" || !series.empty()) out.sequences["PerformedSeriesSequence"] = std::move(series);
  if (end.status == "DISCONTINUED") {
    json reason = end.reason.is_object() ? end.reason
                                         : json{{"CodeValue", "110513"},
                                                {"CodingSchemeDesignator", "DCM"},
                                                {"CodeMeaning", "Discontinued for unspecified reason"}};
    if (Str(reason, "CodeValue").empty() || Str(reason, "CodingSchemeDesignator").empty()) {
      return Fail(Code::kInvalidArgument, "reason needs CodeValue and CodingSchemeDesignator (PS3.16 CID 9300)",
                  "reason");
    }
    out.sequences["PerformedProcedureStepDiscontinuationReasonCodeSequence"] = {CodeItem(reason)};
  }
  if (auto r = Overrides(end.attributes, out); !r) return tl::unexpected(r.error());
  return out;
}

Result<MppsRecord> MppsSteps::RecordSent(const std::string& node, const std::string& uid, bool create,
                                         const std::string& dicom_json, const std::string& outcome, bool accepted) {
  MutexLock lock(mu_);
  auto existing = db_.GetMpps("sent", uid);
  if (!existing) return tl::unexpected(existing.error());
  if (!*existing && !accepted) return MppsRecord{};  // a refused N-CREATE leaves nothing to show
  MppsRecord m;
  if (*existing) {
    m = **existing;
  } else {
    m.direction = "sent";
    m.sop_instance_uid = uid;
    m.created_at = Now();
  }
  m.node = node;
  if (accepted) {
    json update = json::parse(dicom_json, nullptr, false);
    if (!update.is_object()) update = json::object();
    update.erase("00080005");
    m = Merge(std::move(m), update);
  } else {
    m.updated_at = Now();
  }
  json history = History(m);
  history.push_back({{"at", m.updated_at},
                     {"command", create ? "N-CREATE" : "N-SET"},
                     {"to", node},
                     {"accepted", accepted},
                     {"outcome", outcome},
                     {"status", m.status}});
  m.history = Dump(history);
  if (auto r = db_.PutMpps(m); !r) return tl::unexpected(r.error());
  return m;
}

json MppsSteps::ToJson(const MppsRecord& m, bool full) {
  json j{{"sop_instance_uid", m.sop_instance_uid},
         {"direction", m.direction},
         {"status", m.status},
         {"node", m.node},
         {"receiver_ae_title", m.receiver_ae},
         {"calling_ae_title", m.calling_ae},
         {"accession_number", m.accession_number},
         {"study_instance_uid", m.study_instance_uid},
         {"patient_id", m.patient_id},
         {"patient_name", m.patient_name},
         {"scheduled_step_id", m.scheduled_step_id},
         {"modality", m.modality},
         {"created_at", m.created_at},
         {"updated_at", m.updated_at},
         {"history", History(m)}};
  if (full) {
    json ds = json::parse(m.attributes, nullptr, false);
    if (!ds.is_object()) ds = json::object();
    j["attributes"] = FlatJsonFromDicomJson(ds);
    j["dicom"] = ds;
  }
  return j;
}

}  // namespace pb
