#pragma once
// What jobs moved, per node, for GET /metrics: instances and bytes retrieved from a node (every
// instance of a retrieve job that reached the archive, whatever the method) and sent to it
// (confirmed by the node).
#include "core/metrics.h"

namespace pb {

metrics::Family<metrics::Counter>& NodeInstances();  // pacsbridge_node_instances_total{node, direction}
metrics::Family<metrics::Counter>& NodeBytes();      // pacsbridge_node_bytes_total{node, direction}

}  // namespace pb
