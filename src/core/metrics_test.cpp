// Expected text from the Prometheus text exposition format 0.0.4 (HELP/TYPE lines, label
// escaping of \ " and newline, cumulative histogram buckets ending in le="+Inf", _sum, _count).
#include "core/metrics.h"

#include <gtest/gtest.h>

namespace pb::metrics {
namespace {

TEST(Metrics, CountersAndGaugesWithLabels) {
  Registry r;
  auto& stored = r.CounterFamily("pb_test_stored_total", "Instances stored.", {"receiver"});
  stored.With({"A"}).Add();
  stored.With({"A"}).Add(2);
  stored.With({"B\"\\\n"}).Add();
  r.GaugeFamily("pb_test_open", "Open now.", {}).With({}).Add(3);
  r.GaugeFamily("pb_test_open", "Open now.", {}).With({}).Add(-1);
  EXPECT_EQ(r.Text(),
            "# HELP pb_test_open Open now.\n"
            "# TYPE pb_test_open gauge\n"
            "pb_test_open 2\n"
            "# HELP pb_test_stored_total Instances stored.\n"
            "# TYPE pb_test_stored_total counter\n"
            "pb_test_stored_total{receiver=\"A\"} 3\n"
            "pb_test_stored_total{receiver=\"B\\\"\\\\\\n\"} 1\n");
}

TEST(Metrics, HistogramBucketsAreCumulative) {
  Registry r;
  auto& h = r.HistogramFamily("pb_test_seconds", "Durations.", {}, {0.1, 1}).With({});
  h.Observe(0.05);
  h.Observe(0.1);  // on a bound: counted in it (le = less or equal)
  h.Observe(0.5);
  h.Observe(7);
  EXPECT_EQ(r.Text(),
            "# HELP pb_test_seconds Durations.\n"
            "# TYPE pb_test_seconds histogram\n"
            "pb_test_seconds_bucket{le=\"0.1\"} 2\n"
            "pb_test_seconds_bucket{le=\"1\"} 3\n"
            "pb_test_seconds_bucket{le=\"+Inf\"} 4\n"
            "pb_test_seconds_sum 7.65\n"
            "pb_test_seconds_count 4\n");
}

TEST(Metrics, CollectorsAreReadWhenScrapedAndGoWithTheirHandle) {
  Registry r;
  int depth = 4;
  {
    auto reg = r.AddCollector("pb_test_queue", "Queued.", {"state"}, [&] {
      return Samples{{{"queued"}, static_cast<double>(depth)}};
    });
    depth = 5;
    EXPECT_EQ(r.Text(),
              "# HELP pb_test_queue Queued.\n# TYPE pb_test_queue gauge\npb_test_queue{state=\"queued\"} 5\n");
  }
  EXPECT_EQ(r.Text(), "");
}

TEST(Metrics, ACollectorMayBeACounter) {
  Registry r;
  auto reg = r.AddCollector(
      "pb_test_waited_seconds_total", "Waited.", {},
      [] {
        return Samples{{{}, 1.5}};
      },
      "counter");
  EXPECT_EQ(r.Text(),
            "# HELP pb_test_waited_seconds_total Waited.\n# TYPE pb_test_waited_seconds_total counter\n"
            "pb_test_waited_seconds_total 1.5\n");
}

}  // namespace
}  // namespace pb::metrics
