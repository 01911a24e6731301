#pragma once
// Where a staged session's series will actually be filed once archived. The archive keeps a
// series under the labels it was first filed with (archive/records.h FiledSeries), so a series
// already filed elsewhere stays there: the session is then filed elsewhere (every series
// already filed under one other set of labels) or split (some here, some there), and a series
// filed under the same labels merges with what is there. The staging view shows this plan,
// not the labels routing asked for. Pure; thread-safe.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "archive/records.h"

namespace pb {

struct FilingLabels {
  std::string project, subject, session;
  bool operator==(const FilingLabels&) const = default;
  std::string Path() const { return project + "/" + subject + "/" + session; }
};

struct FilingDestination {
  FilingLabels labels;
  std::vector<std::string> series_uids;
  int64_t staged_instances = 0;    // from this session
  int64_t archived_instances = 0;  // already in the archive under these labels, in those series
  bool already_filed = false;      // the series were filed under these labels before
};

struct FilingPlan {
  FilingLabels routed;                          // what routing gave the session
  std::vector<FilingDestination> destinations;  // routed labels first, then by path
  bool split() const { return destinations.size() > 1; }
  // The labels to show for the session: its one destination; when split, the routed labels if
  // some series get them, else those of the destination with the most staged instances.
  FilingLabels effective() const;
  // One line for people: empty when everything goes where routing said, into new series.
  std::string Note() const;
};

// `staged`: series UID → instances staged in the session; `filed`: what the archive has of
// those series (GetFiledSeries).
FilingPlan PlanFiling(const FilingLabels& routed, const std::map<std::string, int64_t>& staged,
                      const std::map<std::string, FiledSeries>& filed);

}  // namespace pb
