#pragma once
// A receiver as an origin of the one ingest path: its settings turned into the IngestPolicy that
// ingest/origin_sink.h applies (its routing rules and default project, identification by jobs,
// processors, anonymization, staging or direct archive). Pure; thread-safe.
#include <memory>

#include "ingest/origin.h"
#include "receivers/receiver.h"

namespace pb {

std::shared_ptr<const IngestPolicy> ReceiverPolicy(const Receiver& r);

}  // namespace pb
