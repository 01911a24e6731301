#include "jobs/job_metrics.h"

namespace pb {

metrics::Family<metrics::Counter>& NodeInstances() {
  static auto& f = metrics::Default().CounterFamily(
      "pacsbridge_node_instances_total",
      "Instances retrieved from a node into the archive, or sent to it and confirmed, by retrieve and send jobs.",
      {"node", "direction"});
  return f;
}

metrics::Family<metrics::Counter>& NodeBytes() {
  static auto& f = metrics::Default().CounterFamily(
      "pacsbridge_node_bytes_total", "Bytes of the instances counted by pacsbridge_node_instances_total.",
      {"node", "direction"});
  return f;
}

}  // namespace pb
