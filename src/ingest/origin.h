#pragma once
// What an origin of images (a receiver, a retrieve job, later an upload or an import) asks of
// the one ingest path, as data: how to identify (its own routing rules, a default project, the
// retrieve job that awaits an instance, labels it imposes), how to process and anonymize, and
// whether to stage or archive. Every origin walks the same code (origin_sink.h); the
// differences between origins are these values, never a code path of their own. Plain values.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ingest/routing.h"

namespace pb {

class PendingStores;  // ingest/expectations.h

// One step of custom processing, applied after identification and before anonymization.
struct Processor {
  enum class Kind { kRelabelFromJob, kMapAeToProject, kSetAttributes, kClearAttributes };
  Kind kind = Kind::kRelabelFromJob;
  std::map<std::string, std::string> ae_to_project;   // kMapAeToProject: calling AE → project
  std::vector<std::pair<uint32_t, std::string>> set;  // kSetAttributes: tag → value
  std::vector<uint32_t> clear;                        // kClearAttributes
  bool ChangesData() const { return kind == Kind::kSetAttributes || kind == Kind::kClearAttributes; }
};

struct AnonymizationChoices {
  bool retain_dates = false;  // shifted consistently per patient
  bool retain_device_identity = false;
  bool retain_uids = false;
  bool keep_private_tags = false;
};

struct IngestPolicy {
  std::string name;  // the subject of log lines and refusals: "receiver RESEARCH", "retrieve job 7"
  std::shared_ptr<const RoutingRules> rules;  // the origin's own rules, before the site's; may be null
  std::string default_project;
  bool labels_from_job = false;  // the retrieve job awaiting an instance names its labels
  // Labels the origin imposes (a retrieve job's project, subject, session); empty: identified.
  std::string project, subject, session;
  std::vector<Processor> processors;
  bool anonymize = false;  // PS3.15 Annex E, with `anonymization` (or the project's own options)
  AnonymizationChoices anonymization;
  // Anonymize what is filed in a project that has its own anonymization options, even when the
  // origin does not anonymize (a retrieve into an anonymizing project).
  bool anonymize_in_anonymizing_projects = false;
  // Not empty: an instance identified into another project is refused (Not Authorized): the
  // projects of the account that sends it (STOW-RS).
  std::vector<std::string> writable_projects;
  std::string staging_receiver;  // not empty: collect in the staging area under this receiver
  // Set: the origin checks what reached the archive itself (a retrieve job's C-GET); what it
  // brings may be answered before it is stored, counted here (StoreSink::AnswerBeforeStore).
  std::shared_ptr<PendingStores> answer_first;

  // Whether data sets must come in memory (they may change before they reach the disk);
  // `any_anonymizing_project`: some project has its own anonymization options.
  bool ChangesData(bool any_anonymizing_project) const {
    if (anonymize || (anonymize_in_anonymizing_projects && any_anonymizing_project)) return true;
    for (const Processor& p : processors)
      if (p.ChangesData()) return true;
    return false;
  }
};

}  // namespace pb
