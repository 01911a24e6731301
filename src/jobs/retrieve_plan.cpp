#include "jobs/retrieve_plan.h"

#include <fmt/format.h>

#include "dicom/find.h"

namespace pb {
namespace {

constexpr size_t kPlanMaxResults = 1000000;
constexpr size_t kUidsPerRequest = 200;

Result<dicom::FindResult> Query(const dicom::PeerRequest& peer, const char* level,
                                std::vector<std::pair<std::string, std::string>> keys) {
  dicom::FindRequest rq;
  rq.peer = peer;
  rq.level = level;
  rq.keys = std::move(keys);
  rq.charset = "none";  // UIDs only
  rq.max_results = kPlanMaxResults;
  return dicom::Find(rq);
}

std::string Get(const std::map<std::string, std::string>& row, const char* key) {
  auto it = row.find(key);
  return it == row.end() ? std::string() : it->second;
}

// Lists the instances of one series into the plan; false when the PACS does not list them.
Result<bool> ListSeries(const dicom::PeerRequest& peer, const std::string& study,
                        const std::string& series, const std::string& sop_list, RetrievePlan& plan) {
  std::vector<std::pair<std::string, std::string>> keys{
      {"StudyInstanceUID", study}, {"SeriesInstanceUID", series}, {"SOPInstanceUID", sop_list},
      {"SOPClassUID", ""}};
  auto r = Query(peer, "IMAGE", keys);
  if (!r) return tl::unexpected(r.error());
  for (const auto& row : r->rows) {
    std::string sop = Get(row, "SOPInstanceUID");
    if (sop.empty()) continue;
    std::string cls = Get(row, "SOPClassUID");
    plan.instances[sop] = {study, series, cls};
    if (!cls.empty()) plan.sop_classes.insert(cls);
  }
  return true;
}

}  // namespace

Result<RetrievePlan> PlanRetrieve(const dicom::PeerRequest& peer, const RetrieveParams& p) {
  RetrievePlan plan;
  int64_t counted = 0;
  bool counts_complete = true;
  // Series of the request, with their study.
  if (p.level == "STUDY") {
    for (const auto& study : p.uids) {
      auto r = Query(peer, "SERIES", {{"StudyInstanceUID", study}, {"SeriesInstanceUID", ""}});
      if (!r) return tl::unexpected(r.error());
      for (const auto& row : r->rows) {
        std::string series = Get(row, "SeriesInstanceUID");
        if (series.empty()) continue;
        plan.series_study[series] = study;
        std::string n = Get(row, "NumberOfSeriesRelatedInstances");
        if (n.empty()) counts_complete = false;
        else counted += std::atoll(n.c_str());
      }
    }
  } else if (p.level == "SERIES") {
    for (const auto& series : p.uids) {
      std::vector<std::pair<std::string, std::string>> keys{{"SeriesInstanceUID", series}};
      keys.emplace_back("StudyInstanceUID", p.study_uid);
      auto r = Query(peer, "SERIES", keys);
      if (!r) return tl::unexpected(r.error());
      for (const auto& row : r->rows) {
        if (Get(row, "SeriesInstanceUID") != series) continue;
        std::string study = Get(row, "StudyInstanceUID");
        plan.series_study[series] = study.empty() ? p.study_uid : study;
        std::string n = Get(row, "NumberOfSeriesRelatedInstances");
        if (n.empty()) counts_complete = false;
        else counted += std::atoll(n.c_str());
      }
    }
  } else {
    plan.series_study[p.series_uid] = p.study_uid;
    counts_complete = false;
  }
  if (plan.series_study.empty()) {
    return Fail(Code::kNotFound,
                fmt::format("{} has no {} {}", peer.called_ae,
                            p.level == "STUDY" ? "study" : "series", fmt::join(p.uids, ", ")));
  }
  // The instances, series by series (Study Root IMAGE level needs the series UID).
  std::string sop_list = p.level == "IMAGE" ? fmt::format("{}", fmt::join(p.uids, "\\")) : "";
  plan.listed = true;
  for (const auto& [series, study] : plan.series_study) {
    auto listed = ListSeries(peer, study, series, sop_list, plan);
    if (!listed) {
      plan.listed = false;
      plan.instances.clear();
      plan.note = fmt::format("the PACS did not list the instances ({}); the retrieve is checked "
                              "against its instance counts",
                              listed.error().message);
      break;
    }
  }
  if (plan.listed) {
    if (p.level == "IMAGE" && plan.instances.empty()) {
      return Fail(Code::kNotFound, fmt::format("{} has none of the instances asked for", peer.called_ae));
    }
    plan.expected_count = static_cast<int64_t>(plan.instances.size());
  } else if (p.level == "IMAGE") {
    for (const auto& sop : p.uids) plan.instances[sop] = {p.study_uid, p.series_uid, ""};
    plan.listed = true;
    plan.expected_count = static_cast<int64_t>(p.uids.size());
  } else if (counts_complete) {
    plan.expected_count = counted;
  }
  return plan;
}

std::vector<dicom::RetrieveTarget> TargetsFor(const RetrieveParams& p, const RetrievePlan& plan,
                                              const std::set<std::string>& present) {
  std::vector<dicom::RetrieveTarget> out;
  if (!plan.listed || present.empty()) {
    if (p.level == "SERIES") {
      // One request per study: Study Root needs the study of the series.
      std::map<std::string, std::vector<std::string>> by_study;
      for (const auto& s : p.uids) {
        auto it = plan.series_study.find(s);
        by_study[it == plan.series_study.end() ? p.study_uid : it->second].push_back(s);
      }
      for (auto& [study, series] : by_study) out.push_back({"SERIES", series, study, ""});
    } else {
      out.push_back({p.level, p.uids, p.study_uid, p.series_uid});
    }
    return out;
  }
  // Per series: what is missing, and whether all of it is.
  std::map<std::string, std::vector<std::string>> missing, total;
  for (const auto& [sop, where] : plan.instances) {
    total[where.series_uid].push_back(sop);
    if (!present.count(sop)) missing[where.series_uid].push_back(sop);
  }
  std::map<std::string, std::vector<std::string>> whole_series_by_study;
  for (const auto& [series, sops] : missing) {
    const std::string& study = plan.series_study.at(series);
    if (p.level != "IMAGE" && sops.size() == total[series].size()) {
      whole_series_by_study[study].push_back(series);
      continue;
    }
    for (size_t i = 0; i < sops.size(); i += kUidsPerRequest) {
      std::vector<std::string> chunk(sops.begin() + i, sops.begin() + std::min(sops.size(), i + kUidsPerRequest));
      out.push_back({"IMAGE", std::move(chunk), study, series});
    }
  }
  for (auto& [study, series] : whole_series_by_study) out.push_back({"SERIES", series, study, ""});
  return out;
}

}  // namespace pb
