#pragma once
// Modality Performed Procedure Steps (PS3.4 Annex F, IHE RAD Scheduled Workflow), the steps we
// send for a worklist item and those modalities report to our receivers, kept in the index
// (migration 008) as DICOM JSON with the columns lists need.
//
// Received steps (the SCP side, MppsSink): an N-CREATE must be new and IN PROGRESS; an N-SET
// must name a step we hold that is still IN PROGRESS (a COMPLETED or DISCONTINUED step cannot
// change again: 0110 with Error ID A710, PS3.4 F.7.2.2.4). What is accepted is merged into the
// step. Sent steps: what to send is built here from the worklist item (N-CREATE) and from what
// was produced (N-SET); the routes send it and record the peer's answer. Thread-safe.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "archive/database.h"
#include "core/clock.h"
#include "core/thread_annotations.h"
#include "dicom/flat_item.h"
#include "dicom/server.h"

namespace pb {

// A series produced by the procedure, for the Performed Series Sequence.
struct PerformedSeries {
  std::string series_uid, description, protocol_name, retrieve_ae_title;
  std::vector<std::pair<std::string, std::string>> instances;  // SOP Class UID, SOP Instance UID
};

// What starts a step: the worklist item as POST /api/nodes/{name}/worklist gives it, and what
// the caller adds or overrides (keyword → value at the top level).
struct MppsStart {
  nlohmann::json item;
  nlohmann::json attributes = nlohmann::json::object();
  std::string station_ae_title;  // ours, unless the item or the caller name the performing station
};

// What ends it (N-SET): COMPLETED with the series produced, or DISCONTINUED with a reason from
// PS3.16 CID 9300 (default 110513 "Discontinued for unspecified reason").
struct MppsEnd {
  std::string status;
  std::vector<PerformedSeries> series;
  nlohmann::json reason;  // {"CodeValue", "CodingSchemeDesignator", "CodeMeaning"} or null
  nlohmann::json attributes = nlohmann::json::object();
};

class MppsSteps : public dicom::MppsSink {
 public:
  MppsSteps(Database& db, const Clock& clock) : db_(db), clock_(clock) {}
  ~MppsSteps() override { StopForwarding(); }

  // Sends one request to a node; the MPPS manager role passes accepted requests on with it.
  using Forward = std::function<Result<dicom::NAnswer>(const std::string& node, bool create, const std::string& uid,
                                                       const dicom::FlatItem& attributes)>;
  // Requests a receiver with mpps_forward accepted are passed on to that node, in the order they
  // came, by a thread of its own (the modality's answer never waits for the next system); each
  // outcome goes into the received step's history. Call before receivers start.
  void StartForwarding(Forward send);
  // Sends what is queued (for up to 10 s; the rest is noted as not sent), then stops.
  void StopForwarding();

  // A modality's N-CREATE or N-SET to one of our receivers.
  dicom::NAnswer Receive(const dicom::MppsRequest& request) override;

  // The N-CREATE data set for a worklist item (PS3.4 F.7.2.1 Table F.7.2-1, type 1 and 2
  // attributes; the Scheduled Step Attributes from the item). kInvalidArgument naming the field.
  [[nodiscard]] Result<dicom::FlatItem> StartAttributes(const MppsStart& start) const;
  // The N-SET data set that ends a step.
  [[nodiscard]] Result<dicom::FlatItem> EndAttributes(const MppsEnd& end) const;

  // Records what we sent to `node` once the peer answered: a new step (create) or the update of
  // one (N-SET), with the attempt in its history either way when the step is known.
  [[nodiscard]] Result<MppsRecord> RecordSent(const std::string& node, const std::string& uid, bool create,
                                              const std::string& dicom_json, const std::string& outcome, bool accepted);

  // The API's view: the columns, the history, and with `full` the attributes flattened
  // (keyword → value) and as DICOM JSON.
  static nlohmann::json ToJson(const MppsRecord& m, bool full);

 private:
  dicom::NAnswer ReceiveChecked(const dicom::MppsRequest& request);
  MppsRecord Merge(MppsRecord m, const nlohmann::json& update) const;
  std::string Now() const;

  struct Pending {
    std::string node, uid;
    bool create = true;
    dicom::FlatItem attributes;
  };
  void ForwardLoop();
  void NoteForwarded(const Pending& p, const std::string& outcome);

  Database& db_;
  const Clock& clock_;
  Mutex mu_;  // one check-and-write at a time

  Mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Pending> queue_ GUARDED_BY(queue_mu_);
  bool stopping_ GUARDED_BY(queue_mu_) = false;
  std::chrono::steady_clock::time_point stop_deadline_ GUARDED_BY(queue_mu_);
  Forward forward_;
  std::thread forwarder_;
};

// DICOM JSON → keyword → value and sequences, the form the API uses for data sets.
nlohmann::json FlatJsonFromDicomJson(const nlohmann::json& dataset);
// The reverse of the API's form of a worklist item (values strings, sequences lists of
// objects; other members such as "dicom" or "mpps" ignored).
dicom::FlatItem FlatItemFromJson(const nlohmann::json& j);

}  // namespace pb
