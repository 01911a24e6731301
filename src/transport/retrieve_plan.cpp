#include "transport/retrieve_plan.h"

#include <fmt/format.h>

#include "core/validate.h"
#include "dicom/find.h"

namespace pb {
namespace {

constexpr size_t kPlanMaxResults = 1000000;
constexpr size_t kUidsPerRequest = 200;

std::string Get(const std::map<std::string, std::string>& row, const char* key) {
  auto it = row.find(key);
  return it == row.end() ? std::string() : it->second;
}

// Lists the instances of one series into the plan; false when the PACS does not list them.
[[nodiscard]] Result<bool> ListSeries(const PlanQuery& query, const std::string& study, const std::string& series,
                                      const std::string& sop_list, RetrievePlan& plan) {
  std::vector<std::pair<std::string, std::string>> keys{
      {"StudyInstanceUID", study}, {"SeriesInstanceUID", series}, {"SOPInstanceUID", sop_list}, {"SOPClassUID", ""}};
  auto r = query("IMAGE", keys);
  if (!r) return tl::unexpected(r.error());
  for (const auto& row : *r) {
    std::string sop = Get(row, "SOPInstanceUID");
    if (sop.empty()) continue;
    std::string cls = Get(row, "SOPClassUID");
    plan.instances[sop] = {study, series, cls};
    if (!cls.empty()) plan.sop_classes.insert(cls);
  }
  return true;
}

}  // namespace

PlanQuery DimsePlanQuery(const dicom::PeerRequest& peer, bool sop_classes) {
  return [peer, sop_classes](const std::string& level,
                             const std::vector<std::pair<std::string, std::string>>& keys) -> Result<std::vector<Row>> {
    dicom::FindRequest rq;
    rq.peer = peer;
    rq.level = level;
    rq.keys = keys;
    // Only what the plan reads: every computed key costs the PACS a look at the study's
    // instances (Orthanc: ~5 ms for SOPClassesInStudy of 500 instances).
    rq.default_keys = false;
    if (level == "STUDY") {
      rq.keys.emplace_back("NumberOfStudyRelatedInstances", "");
      if (sop_classes) rq.keys.emplace_back("SOPClassesInStudy", "");
    } else if (level == "SERIES") {
      rq.keys.emplace_back("NumberOfSeriesRelatedInstances", "");
    }
    rq.charset = "none";  // UIDs only
    rq.max_results = kPlanMaxResults;
    auto r = dicom::Find(rq);
    if (!r) return tl::unexpected(r.error());
    return std::move(r->rows);
  };
}

std::string DimseWhere(const dicom::PeerRequest& peer) {
  return fmt::format("the PACS ({}@{})", peer.called_ae, JoinHostPort(peer.host, peer.port));
}

[[nodiscard]] Result<RetrievePlan> PlanCounts(const PlanQuery& query, const std::string& where,
                                              const RetrieveParams& p) {
  RetrievePlan plan;
  int64_t counted = 0;
  bool counts_complete = true;
  auto count = [&](const std::map<std::string, std::string>& row, const char* key) {
    std::string n = Get(row, key);
    if (n.empty())
      counts_complete = false;
    else
      counted += std::atoll(n.c_str());
  };
  if (p.level == "STUDY") {
    for (const auto& study : p.uids) {
      auto r = query("STUDY", {{"StudyInstanceUID", study}});
      if (!r) return tl::unexpected(r.error());
      bool found = false;
      for (const auto& row : *r) {
        if (Get(row, "StudyInstanceUID") != study) continue;
        found = true;
        count(row, "NumberOfStudyRelatedInstances");
        if (std::string n = Get(row, "NumberOfStudyRelatedInstances"); !n.empty()) {
          plan.study_counts[study] = std::atoll(n.c_str());
        }
        std::string classes = Get(row, "SOPClassesInStudy");
        for (size_t start = 0; start < classes.size();) {
          size_t end = std::min(classes.find('\\', start), classes.size());
          if (end > start) plan.sop_classes.insert(classes.substr(start, end - start));
          start = end + 1;
        }
      }
      if (!found) return Fail(Code::kNotFound, fmt::format("{} has no study {}", where, study));
    }
  } else if (p.level == "SERIES") {
    for (const auto& series : p.uids) {
      auto r = query("SERIES", {{"SeriesInstanceUID", series}, {"StudyInstanceUID", p.study_uid}});
      if (!r) return tl::unexpected(r.error());
      for (const auto& row : *r) {
        if (Get(row, "SeriesInstanceUID") != series) continue;
        std::string study = Get(row, "StudyInstanceUID");
        plan.series_study[series] = study.empty() ? p.study_uid : study;
        count(row, "NumberOfSeriesRelatedInstances");
      }
      if (!plan.series_study.count(series)) {
        return Fail(Code::kNotFound, fmt::format("{} has no series {}", where, series));
      }
    }
  } else {
    plan.series_study[p.series_uid] = p.study_uid;
    counts_complete = false;
  }
  if (counts_complete) plan.expected_count = counted;
  return plan;
}

[[nodiscard]] Result<void> ListInstances(const PlanQuery& query, const std::string& where, const RetrieveParams& p,
                                         RetrievePlan& plan) {
  if (p.level == "STUDY") {  // the series of the studies, for the IMAGE-level queries
    for (const auto& study : p.uids) {
      auto r = query("SERIES", {{"StudyInstanceUID", study}, {"SeriesInstanceUID", ""}});
      if (!r) {
        plan.note = fmt::format(
            "the node did not list the series ({}); the retrieve is checked "
            "against its instance counts",
            r.error().message);
        return {};
      }
      for (const auto& row : *r) {
        std::string series = Get(row, "SeriesInstanceUID");
        if (!series.empty()) plan.series_study[series] = study;
      }
    }
  }
  std::string sop_list = p.level == "IMAGE" ? fmt::format("{}", fmt::join(p.uids, "\\")) : "";
  RetrievePlan listed = plan;
  listed.instances.clear();
  for (const auto& [series, study] : plan.series_study) {
    auto ok = ListSeries(query, study, series, sop_list, listed);
    if (!ok) {
      if (p.level == "IMAGE") {  // the caller's list is the list
        for (const auto& sop : p.uids) plan.instances[sop] = {p.study_uid, p.series_uid, ""};
        plan.listed = true;
        plan.expected_count = static_cast<int64_t>(p.uids.size());
        return {};
      }
      plan.note = fmt::format(
          "the node did not list the instances ({}); the retrieve is checked "
          "against its instance counts",
          ok.error().message);
      return {};
    }
  }
  if (p.level == "IMAGE" && listed.instances.empty()) {
    return Fail(Code::kNotFound, fmt::format("{} has none of the instances asked for", where));
  }
  listed.listed = true;
  listed.expected_count = static_cast<int64_t>(listed.instances.size());
  listed.note.clear();
  plan = std::move(listed);
  return {};
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
