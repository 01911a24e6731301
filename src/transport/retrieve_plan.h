#pragma once
// Before a retrieve: what the PACS says exists (IMAGE-level C-FIND, or the series' instance
// counts when it does not list instances), and which requests fetch what is still missing from
// our archive. The list is what the end of the job is verified against.
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/result.h"
#include "dicom/peer.h"
#include "dicom/retrieve.h"

namespace pb {

struct RetrieveParams {
  std::string node, level, method;
  std::vector<std::string> uids;
  std::string study_uid, series_uid;
  std::string project, subject, session;  // where to file what arrives (empty: routing decides)
  // The labels hold whatever identification a receiver uses, and Patient Name and Patient ID of
  // what arrives become the subject (an import's rows).
  bool relabel_patient = false;
  bool impose_labels = false;  // the labels hold whatever identification the receiver uses
};

struct ExpectedInstance {
  std::string study_uid, series_uid, sop_class_uid;
};

struct RetrievePlan {
  bool listed = false;                                // `instances` is the PACS's full list
  std::map<std::string, ExpectedInstance> instances;  // SOP Instance UID → where it belongs
  std::optional<int64_t> expected_count;              // from the list, or from instance counts
  std::map<std::string, int64_t> study_counts;        // STUDY level: each study's instance count
  std::map<std::string, std::string> series_study;    // series → study, as the PACS said
  std::set<std::string> sop_classes;
  std::string note;  // why the list is missing, when it is
};

// How the planner asks a node (any transport): a find at a level with matching keys (a key with
// an empty value is a return key), all rows, UIDs only.
using Row = std::map<std::string, std::string>;
using PlanQuery = std::function<Result<std::vector<Row>>(const std::string& level,
                                                         const std::vector<std::pair<std::string, std::string>>& keys)>;

// Asks the node what the request covers in two halves, so the list can be fetched while the
// data already flows: counts, series and (at STUDY level, when the node gives
// SOPClassesInStudy) the SOP classes, kNotFound when it has none of it; then the instance list
// (IMAGE-level finds per series) added to `plan`. When the node does not list instances,
// ListInstances leaves `listed` false and says why in `note`. `where` names the node in
// messages ("the PACS (ORTHANC@127.0.0.1:4242)").
[[nodiscard]] Result<RetrievePlan> PlanCounts(const PlanQuery& query, const std::string& where,
                                              const RetrieveParams& p);
[[nodiscard]] Result<void> ListInstances(const PlanQuery& query, const std::string& where, const RetrieveParams& p,
                                         RetrievePlan& plan);

// The same over C-FIND (Study Root) to a DIMSE peer; `sop_classes`: a STUDY-level find asks
// for SOPClassesInStudy too (what a C-GET proposes).
PlanQuery DimsePlanQuery(const dicom::PeerRequest& peer, bool sop_classes);
std::string DimseWhere(const dicom::PeerRequest& peer);

// The C-GET/C-MOVE requests for the instances not `present` yet: the original request when
// nothing is here; otherwise whole series where a series is missing entirely, and instance
// lists for the rest.
std::vector<dicom::RetrieveTarget> TargetsFor(const RetrieveParams& p, const RetrievePlan& plan,
                                              const std::set<std::string>& present);

}  // namespace pb
