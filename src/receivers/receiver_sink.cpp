#include "receivers/receiver_sink.h"

namespace pb {

std::shared_ptr<const IngestPolicy> ReceiverPolicy(const Receiver& r) {
  auto p = std::make_shared<IngestPolicy>();
  p->name = "receiver " + r.ae_title;
  p->rules = r.routing;
  p->default_project = r.default_project;
  p->labels_from_job = r.identification == "jobs";
  p->processors = r.processors;
  p->anonymize = r.anonymize;
  p->anonymization = r.anonymization;
  if (!r.direct_archive) p->staging_receiver = r.id;
  return p;
}

}  // namespace pb
