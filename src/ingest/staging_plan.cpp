#include "ingest/staging_plan.h"

#include <algorithm>

#include <fmt/format.h>

namespace pb {

FilingPlan PlanFiling(const FilingLabels& routed, const std::map<std::string, int64_t>& staged,
                      const std::map<std::string, FiledSeries>& filed) {
  FilingPlan plan;
  plan.routed = routed;
  auto slot = [&plan](const FilingLabels& l) -> FilingDestination& {
    for (auto& d : plan.destinations)
      if (d.labels == l) return d;
    plan.destinations.push_back(FilingDestination{l, {}, 0, 0, false});
    return plan.destinations.back();
  };
  for (const auto& [uid, count] : staged) {
    auto it = filed.find(uid);
    // A series filed without labels takes the session's (the archive fills empty labels).
    const bool kept = it != filed.end() && !it->second.project.empty();
    FilingDestination& d =
        slot(kept ? FilingLabels{it->second.project, it->second.subject, it->second.session} : routed);
    d.series_uids.push_back(uid);
    d.staged_instances += count;
    if (it != filed.end()) d.archived_instances += it->second.instance_count;
    if (kept) d.already_filed = true;
  }
  std::stable_sort(plan.destinations.begin(), plan.destinations.end(),
                   [&routed](const FilingDestination& a, const FilingDestination& b) {
                     if ((a.labels == routed) != (b.labels == routed)) return a.labels == routed;
                     return a.labels.Path() < b.labels.Path();
                   });
  return plan;
}

FilingLabels FilingPlan::effective() const {
  if (destinations.empty()) return routed;
  if (destinations.size() > 1 && destinations[0].labels == routed) return routed;  // routed ones sort first
  const FilingDestination* most = &destinations[0];
  for (const auto& d : destinations)
    if (d.staged_instances > most->staged_instances) most = &d;
  return most->labels;
}

std::string FilingPlan::Note() const {
  auto part = [this](const FilingDestination& d) {
    std::string s =
        fmt::format("{} series ({} instance(s)) to {}", d.series_uids.size(), d.staged_instances, d.labels.Path());
    if (d.already_filed && !(d.labels == routed)) s += ", where they are already filed";
    if (d.archived_instances > 0) s += fmt::format(", merged with {} instance(s) there", d.archived_instances);
    return s;
  };
  if (destinations.empty()) return "";
  if (split()) {
    std::string s = "split: ";
    for (size_t i = 0; i < destinations.size(); ++i) s += (i ? "; " : "") + part(destinations[i]);
    return s;
  }
  const FilingDestination& d = destinations[0];
  if (!(d.labels == routed)) {
    return fmt::format(
        "filed under {}, where its series are already filed (not {} as routed){}", d.labels.Path(), routed.Path(),
        d.archived_instances > 0 ? fmt::format("; merged with {} instance(s) there", d.archived_instances) : "");
  }
  if (d.archived_instances > 0)
    return fmt::format("merged with {} instance(s) already filed there", d.archived_instances);
  return "";
}

}  // namespace pb
