#include "ingest/origin_sink.h"

#include <algorithm>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "dicom/anonymize_options.h"
#include "dicom/dataset.h"
#include "dicom/header.h"
#include "dicom/network.h"
#include "ingest/store_sink.h"

namespace pb {
namespace {

// A stable stand-in for a label taken from identifying data, when that data must not survive.
std::string Pseudonym(const char* prefix, const std::string& value, const std::string& secret) {
  std::string mapped = dicom::MapUid(std::string(prefix) + ":" + value, secret);
  return fmt::format("{}_{}", prefix, mapped.substr(mapped.size() > 12 ? mapped.size() - 12 : 0));
}

void Impose(Labels& l, const std::string& project, const std::string& subject, const std::string& session) {
  if (!project.empty()) l.project = project, l.project_source = LabelSource::kReceiverRule;
  if (!subject.empty()) l.subject = subject, l.subject_source = LabelSource::kReceiverRule;
  if (!session.empty()) l.session = session, l.session_source = LabelSource::kReceiverRule;
}

}  // namespace

OriginSink::OriginSink(std::shared_ptr<const IngestPolicy> policy, IngestSite& site)
    : policy_(std::move(policy)), site_(site) {
  bool anonymizing = site_.any_anonymizing_project && site_.any_anonymizing_project();
  if (policy_->anonymize_in_anonymizing_projects && !policy_->project.empty() && site_.project_anonymization) {
    // The origin imposes the project: whether it anonymizes is known now, so data for other
    // projects stays bit-preserving.
    anonymizing = site_.project_anonymization(policy_->project).has_value();
  }
  wants_dataset_ = policy_->ChangesData(anonymizing);
}

OriginSink::Identity OriginSink::Identify(const AttributeLookup& get, const std::string& calling_ae,
                                          const std::shared_ptr<const Expectation>& job) const {
  const IngestPolicy& p = *policy_;
  auto site = site_.site_rules ? site_.site_rules() : nullptr;
  Labels l = Route(p.rules.get(), site.get(), p.default_project, get);
  auto from_job = [&](Labels& out) {
    if (job) Impose(out, job->project, job->subject, job->session);
  };
  if (p.labels_from_job || (job && job->impose)) from_job(l);
  for (const Processor& proc : p.processors) {
    if (proc.kind == Processor::Kind::kRelabelFromJob) {
      from_job(l);
    } else if (proc.kind == Processor::Kind::kMapAeToProject) {
      if (auto it = proc.ae_to_project.find(calling_ae); it != proc.ae_to_project.end()) {
        l.project = it->second;
        l.project_source = LabelSource::kReceiverRule;
      }
    }
  }
  Impose(l, p.project, p.subject, p.session);
  if (job && job->impose) Impose(l, job->project, job->subject, job->session);
  Identity id{l, p.anonymize, p.anonymization, {}};
  if (job && job->impose) id.set = job->set_attributes;
  // The patient's identity leaves the data when it is anonymized, or when the origin or the job
  // replaces Patient Name or Patient ID (an import's subject): no label may keep it either.
  bool identity_replaced = !id.set.empty();
  for (const Processor& proc : p.processors) {
    for (const auto& [tag, _] : proc.set)
      identity_replaced = identity_replaced || tag == 0x00100010 || tag == 0x00100020;
  }
  // A project guessed from Study Description or Accession Number (both removed by the profile)
  // would keep them in the index: anonymized data without a named project goes to the
  // unassigned project instead.
  if ((id.anonymize || identity_replaced) && id.labels.project_source == LabelSource::kDefaultRule) {
    id.labels.project = kUnassignedProject;
    id.labels.project_source = LabelSource::kUnassigned;
  }
  if (site_.project_anonymization) {
    if (auto own = site_.project_anonymization(id.labels.project)) {
      id.choices = *own;
      if (p.anonymize_in_anonymizing_projects) id.anonymize = true;
    }
  }
  if (id.anonymize || identity_replaced) {
    // The default rules take the subject from Patient Name and the session from Patient ID: with
    // anonymization (or a replaced identity) those labels would carry the identity into the
    // archive, so they become pseudonyms (stable within the site). Labels from rules an administrator wrote, from
    // "Subject:" comments or from the job are kept as chosen.
    if (id.labels.subject_source == LabelSource::kDefaultRule) {
      id.labels.subject = Pseudonym("SUBJ", id.labels.subject, site_.secret);
    }
    if (id.labels.session_source == LabelSource::kDefaultRule) {
      id.labels.session = Pseudonym("SESS", id.labels.session, site_.secret);
    }
  }
  return id;
}

OriginSink::Awaited OriginSink::AwaitedBy(const dicom::IncomingInstance& in, const std::string& study_uid,
                                          const std::string& series_uid) const {
  Awaited a;
  a.expectation = site_.expectations.Match(in.sop_instance_uid, series_uid, study_uid, in.move_originator_ae,
                                           in.move_originator_id, &a.by_originator);
  return a;
}

std::shared_ptr<const Expectation> OriginSink::JobFor(const Awaited& awaited) const {
  // Every origin looks: a job that imposes its labels (an import's row) is followed whatever the
  // origin's identification; the others only where the origin identifies by jobs.
  // Imposing needs the PACS's word that the instance is the job's (Move Originator): a store of
  // the same study by someone else keeps its own labels and data.
  const auto& job = awaited.expectation;
  bool wanted = policy_->labels_from_job;
  for (const Processor& p : policy_->processors) wanted = wanted || p.kind == Processor::Kind::kRelabelFromJob;
  if (job && job->impose && !awaited.by_originator) {
    if (!wanted) return nullptr;
    auto plain = std::make_shared<Expectation>(*job);  // its labels as any job's, nothing imposed
    plain->impose = false;
    plain->set_attributes.clear();
    return plain;
  }
  return wanted || (job && job->impose) ? job : nullptr;
}

dicom::StoreAnswer OriginSink::Discard(const dicom::IncomingInstance& in, const Expectation& e) const {
  if (!in.temp_file.empty()) {
    std::error_code ec;
    std::filesystem::remove(in.temp_file, ec);
  }
  if (e.discarded) e.discarded->Add();
  // No UID here: only that something the self-test asked for came, and from whom.
  spdlog::debug("{}: discarded an instance from {}@{} that a C-MOVE self-test asked for", policy_->name, in.calling_ae,
                in.peer_address);
  return {dicom::status::kSuccess, ""};
}

namespace {

class CountedPendingStore : public dicom::StoreSink::PendingStore {
 public:
  explicit CountedPendingStore(std::shared_ptr<PendingStores> stores) : stores_(std::move(stores)) { stores_->Add(); }
  ~CountedPendingStore() override {
    if (!finished_) stores_->Done(false);
  }
  void Finished(bool stored) override {
    if (finished_) return;
    finished_ = true;
    stores_->Done(stored);
  }
  CountedPendingStore(const CountedPendingStore&) = delete;
  CountedPendingStore& operator=(const CountedPendingStore&) = delete;

 private:
  std::shared_ptr<PendingStores> stores_;
  bool finished_ = false;
};

}  // namespace

std::unique_ptr<dicom::StoreSink::PendingStore> OriginSink::AnswerBeforeStore(const dicom::IncomingInstance& in) {
  if (!in.header) return nullptr;
  if (policy_->answer_first) return std::make_unique<CountedPendingStore>(policy_->answer_first);
  if (in.move_originator_ae.empty()) return nullptr;
  const Awaited awaited = AwaitedBy(in, in.header->study_uid, in.header->series_uid);
  if (!awaited.by_originator || !awaited.expectation || awaited.expectation->discard ||
      !awaited.expectation->pending_stores) {
    return nullptr;
  }
  return std::make_unique<CountedPendingStore>(awaited.expectation->pending_stores);
}

dicom::StoreAnswer OriginSink::Store(const dicom::IncomingInstance& in) {
  std::optional<InstanceRecord> header = in.header;
  if (!header) {
    auto h = dicom::ReadHeader(in.temp_file);
    if (!h) {
      std::error_code ec;
      std::filesystem::remove(in.temp_file, ec);
      return AnswerFor({IngestStatus::kInvalid, h.error().message, in.sop_instance_uid}, policy_->name, in);
    }
    header = std::move(*h);
  }
  std::optional<std::map<uint32_t, std::string>> more;  // other attributes the rules name, read once
  AttributeLookup get = [&](uint32_t tag) -> std::optional<std::string> {
    if (IsRecordTag(tag)) return RecordValue(*header, tag);
    if (!more) {
      std::vector<uint32_t> tags;
      for (const auto* rules : {policy_->rules.get(), site_.site_rules ? site_.site_rules().get() : nullptr}) {
        if (!rules) continue;
        for (const auto* list : {&rules->project, &rules->subject, &rules->session}) {
          for (const RoutingRule& rule : *list) tags.push_back(rule.tag);
        }
      }
      auto read = dicom::ReadAttributes(in.temp_file, tags);
      more = read ? std::move(*read) : std::map<uint32_t, std::string>{};
    }
    auto it = more->find(tag);
    if (it == more->end()) return std::nullopt;
    return it->second;
  };
  const Awaited awaited = AwaitedBy(in, header->study_uid, header->series_uid);
  if (awaited.expectation && awaited.expectation->discard) return Discard(in, *awaited.expectation);
  auto job = JobFor(awaited);
  Identity id = Identify(get, in.calling_ae, job);
  if (auto refused = RefuseProject(id.labels.project, in)) {
    std::error_code ec;
    std::filesystem::remove(in.temp_file, ec);
    return *refused;
  }
  if (id.anonymize || !id.set.empty()) {
    // The data came as a file (a project gained its own anonymization options after the
    // association opened, or the job that awaits it relabels the patient): read it into memory
    // and take the path that changes data.
    auto data = dicom::Dataset::Read(in.temp_file);
    std::error_code ec;
    std::filesystem::remove(in.temp_file, ec);
    if (!data) return AnswerFor({IngestStatus::kInvalid, data.error().message, in.sop_instance_uid}, policy_->name, in);
    return StoreDatasetFor(in, **data, job);
  }
  IngestSource src;
  src.calling_ae = in.calling_ae;
  src.called_ae = in.called_ae;
  src.peer = in.peer_address;
  src.expected_sop_uid = in.sop_instance_uid;
  src.size = in.file_size;
  src.header = &*header;
  src.move_originator_ae = in.move_originator_ae;
  src.move_originator_id = in.move_originator_id;
  src.answered = in.answered;
  src.project = id.labels.project;
  src.subject = id.labels.subject;
  src.session = id.labels.session;
  return Commit(in.temp_file, src, in);
}

dicom::StoreAnswer OriginSink::StoreDataset(const dicom::IncomingInstance& in, dicom::Dataset& data) {
  const Awaited awaited = AwaitedBy(in, data.Get(0x0020000D).value_or(""), data.Get(0x0020000E).value_or(""));
  if (awaited.expectation && awaited.expectation->discard) return Discard(in, *awaited.expectation);
  return StoreDatasetFor(in, data, JobFor(awaited));
}

dicom::StoreAnswer OriginSink::StoreDatasetFor(const dicom::IncomingInstance& in, dicom::Dataset& data,
                                               const std::shared_ptr<const Expectation>& job) {
  const IngestPolicy& p = *policy_;
  auto refuse = [&](IngestStatus status, const std::string& message) {
    return AnswerFor({status, message, in.sop_instance_uid}, p.name, in);
  };
  const std::string sop = data.Get(0x00080018).value_or("");
  const std::string study = data.Get(0x0020000D).value_or("");
  const std::string series = data.Get(0x0020000E).value_or("");
  if (sop.empty() || study.empty() || series.empty()) {
    return refuse(IngestStatus::kInvalid, fmt::format("the data set has no {}", sop.empty()     ? "SOPInstanceUID"
                                                                                : study.empty() ? "StudyInstanceUID"
                                                                                                : "SeriesInstanceUID"));
  }
  if (sop != in.sop_instance_uid) {
    // No UID in the message: anonymizing origins' logs carry no original identifiers.
    return refuse(IngestStatus::kInvalid, "the SOP Instance UID of the data set differs from the C-STORE request's");
  }
  AttributeLookup get = [&](uint32_t tag) -> std::optional<std::string> {
    auto v = data.Get(tag);
    if (v && v->empty()) return std::nullopt;
    return v;
  };
  Identity id = Identify(get, in.calling_ae, job);
  if (auto refused = RefuseProject(id.labels.project, in)) return *refused;
  for (const Processor& proc : p.processors) {
    for (const auto& [tag, value] : proc.set) {
      if (auto s = data.Set(tag, value); !s)
        return refuse(IngestStatus::kInvalid, "set_attributes: " + s.error().message);
    }
    for (uint32_t tag : proc.clear) {
      if (auto c = data.Clear(tag); !c) return refuse(IngestStatus::kInvalid, "clear_attributes: " + c.error().message);
    }
  }
  for (const auto& [tag, value] : id.set) {
    if (auto s = data.Set(tag, value); !s) return refuse(IngestStatus::kInvalid, "relabel: " + s.error().message);
  }
  if (id.anonymize) {
    dicom::AnonymizeOptions o;
    o.retain_dates = id.choices.retain_dates;
    o.retain_device_identity = id.choices.retain_device_identity;
    o.retain_uids = id.choices.retain_uids;
    o.keep_private_tags = id.choices.keep_private_tags;
    o.secret = site_.secret;
    o.subject_label = id.labels.subject.empty() ? "ANONYMOUS" : id.labels.subject;
    if (auto a = data.Anonymize(o); !a) {
      // The message names the attribute, never its value.
      return refuse(IngestStatus::kFailed, "anonymization failed: " + a.error().message);
    }
  }
  std::filesystem::path temp = site_.pipeline.NewTempPath();
  auto size = data.Write(temp);
  if (!size) {
    spdlog::error("{}: cannot write an instance from {}@{}: {}", p.name, in.calling_ae, in.peer_address,
                  size.error().message);
    return refuse(IngestStatus::kOutOfSpace, "cannot write the data set to disk (disk full?)");
  }
  IngestSource src;
  src.calling_ae = in.calling_ae;
  src.called_ae = in.called_ae;
  src.peer = in.peer_address;
  src.size = *size;
  src.move_originator_ae = in.move_originator_ae;
  src.move_originator_id = in.move_originator_id;
  src.answered = in.answered;
  src.project = id.labels.project;
  src.subject = id.labels.subject;
  src.session = id.labels.session;
  src.original_sop_uid = sop;
  src.original_study_uid = study;
  src.original_series_uid = series;
  dicom::StoreAnswer answer = Commit(temp, src, in);
  answer.changed = true;
  answer.stored_sop_uid = data.Get(0x00080018).value_or(sop);
  answer.stored_study_uid = data.Get(0x0020000D).value_or(study);
  answer.stored_series_uid = data.Get(0x0020000E).value_or(series);
  return answer;
}

std::optional<dicom::StoreAnswer> OriginSink::RefuseProject(const std::string& project,
                                                            const dicom::IncomingInstance& in) const {
  const auto& allowed = policy_->writable_projects;
  if (allowed.empty() || std::find(allowed.begin(), allowed.end(), project) != allowed.end()) return std::nullopt;
  return AnswerFor({IngestStatus::kNotAuthorized,
                    fmt::format("the instance would be filed in project '{}', which is not one of the sender's ({})",
                                project, fmt::join(allowed, ", ")),
                    in.sop_instance_uid},
                   policy_->name, in);
}

dicom::StoreAnswer OriginSink::Commit(const std::filesystem::path& temp, IngestSource& src,
                                      const dicom::IncomingInstance& in) {
  // One commit, two targets: the archive, or the receiver's session in the staging area.
  const IngestTarget target =
      policy_->staging_receiver.empty() ? IngestTarget::Archive() : site_.staging.Target(policy_->staging_receiver);
  return AnswerFor(site_.pipeline.Ingest(temp, src, target), policy_->name, in);
}

}  // namespace pb
