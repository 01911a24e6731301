#include "receivers/receiver_sink.h"

#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "dicom/anonymize_options.h"
#include "dicom/header.h"
#include "ingest/store_sink.h"

namespace pb {
namespace {

// A stable stand-in for a label taken from identifying data, when that data must not survive.
std::string Pseudonym(const char* prefix, const std::string& value, const std::string& secret) {
  std::string mapped = dicom::MapUid(std::string(prefix) + ":" + value, secret);
  return fmt::format("{}_{}", prefix, mapped.substr(mapped.size() > 12 ? mapped.size() - 12 : 0));
}

}  // namespace

Labels ReceiverSink::Identify(const AttributeLookup& get, const std::string& calling_ae,
                              const std::shared_ptr<const Expectation>& job) const {
  const Receiver& r = *receiver_;
  auto site = site_.site_rules ? site_.site_rules() : nullptr;
  Labels l = Route(r.routing.get(), site.get(), r.default_project, get);
  auto from_job = [&](Labels& out) {
    if (!job) return;
    if (!job->project.empty()) out.project = job->project, out.project_source = LabelSource::kReceiverRule;
    if (!job->subject.empty()) out.subject = job->subject, out.subject_source = LabelSource::kReceiverRule;
    if (!job->session.empty()) out.session = job->session, out.session_source = LabelSource::kReceiverRule;
  };
  if (r.identification == "jobs") from_job(l);
  for (const Processor& p : r.processors) {
    if (p.kind == Processor::Kind::kRelabelFromJob) {
      from_job(l);
    } else if (p.kind == Processor::Kind::kMapAeToProject) {
      if (auto it = p.ae_to_project.find(calling_ae); it != p.ae_to_project.end()) {
        l.project = it->second;
        l.project_source = LabelSource::kReceiverRule;
      }
    }
  }
  if (r.anonymize) {
    // The default rules take the subject from Patient Name and the session from Patient ID: with
    // anonymization those labels would carry the identity into the archive, so they become
    // pseudonyms (stable within the site). Labels from rules an administrator wrote, from
    // "Subject:" comments or from the job are kept as chosen.
    if (l.subject_source == LabelSource::kDefaultRule) l.subject = Pseudonym("SUBJ", l.subject, site_.secret);
    if (l.session_source == LabelSource::kDefaultRule) l.session = Pseudonym("SESS", l.session, site_.secret);
    // A project guessed from Study Description or Accession Number (both removed by the
    // profile) would keep them in the index: anonymized data without a named project goes to
    // the unassigned project instead.
    if (l.project_source == LabelSource::kDefaultRule) {
      l.project = kUnassignedProject;
      l.project_source = LabelSource::kUnassigned;
    }
  }
  return l;
}

std::shared_ptr<const Expectation> ReceiverSink::JobFor(const dicom::IncomingInstance& in, const std::string& study_uid,
                                                        const std::string& series_uid) const {
  const Receiver& r = *receiver_;
  bool wanted = r.identification == "jobs";
  for (const Processor& p : r.processors) wanted = wanted || p.kind == Processor::Kind::kRelabelFromJob;
  if (!wanted) return nullptr;
  return site_.expectations.Match(in.sop_instance_uid, series_uid, study_uid, in.move_originator_ae,
                                  in.move_originator_id);
}

dicom::StoreAnswer ReceiverSink::Store(const dicom::IncomingInstance& in) {
  std::optional<InstanceRecord> header = in.header;
  if (!header) {
    auto h = dicom::ReadHeader(in.temp_file);
    if (!h) {
      std::error_code ec;
      std::filesystem::remove(in.temp_file, ec);
      return AnswerFor({IngestStatus::kInvalid, h.error().message, in.sop_instance_uid}, "receiver " + receiver_->ae_title, in);
    }
    header = std::move(*h);
  }
  std::optional<std::map<uint32_t, std::string>> more;  // other attributes the rules name, read once
  AttributeLookup get = [&](uint32_t tag) -> std::optional<std::string> {
    if (IsRecordTag(tag)) return RecordValue(*header, tag);
    if (!more) {
      std::vector<uint32_t> tags;
      for (const auto* rules : {receiver_->routing.get(), site_.site_rules ? site_.site_rules().get() : nullptr}) {
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
  Labels labels = Identify(get, in.calling_ae, JobFor(in, header->study_uid, header->series_uid));
  IngestSource src;
  src.calling_ae = in.calling_ae;
  src.called_ae = in.called_ae;
  src.peer = in.peer_address;
  src.expected_sop_uid = in.sop_instance_uid;
  src.size = in.file_size;
  src.header = &*header;
  src.move_originator_ae = in.move_originator_ae;
  src.move_originator_id = in.move_originator_id;
  src.project = labels.project;
  src.subject = labels.subject;
  src.session = labels.session;
  return Commit(in.temp_file, src, in);
}

dicom::StoreAnswer ReceiverSink::StoreDataset(const dicom::IncomingInstance& in, dicom::Dataset& data) {
  const Receiver& r = *receiver_;
  const std::string who = "receiver " + r.ae_title;
  auto refuse = [&](IngestStatus status, const std::string& message) {
    return AnswerFor({status, message, in.sop_instance_uid}, who, in);
  };
  const std::string sop = data.Get(0x00080018).value_or("");
  const std::string study = data.Get(0x0020000D).value_or("");
  const std::string series = data.Get(0x0020000E).value_or("");
  if (sop.empty() || study.empty() || series.empty()) {
    return refuse(IngestStatus::kInvalid, fmt::format("the data set has no {}", sop.empty() ? "SOPInstanceUID"
                                                                           : study.empty() ? "StudyInstanceUID"
                                                                                           : "SeriesInstanceUID"));
  }
  if (sop != in.sop_instance_uid) {
    // No UID in the message: this receiver's logs carry no original identifiers.
    return refuse(IngestStatus::kInvalid, "the SOP Instance UID of the data set differs from the C-STORE request's");
  }
  AttributeLookup get = [&](uint32_t tag) -> std::optional<std::string> {
    auto v = data.Get(tag);
    if (v && v->empty()) return std::nullopt;
    return v;
  };
  Labels labels = Identify(get, in.calling_ae, JobFor(in, study, series));
  for (const Processor& p : r.processors) {
    for (const auto& [tag, value] : p.set) {
      if (auto s = data.Set(tag, value); !s) return refuse(IngestStatus::kInvalid, "set_attributes: " + s.error().message);
    }
    for (uint32_t tag : p.clear) {
      if (auto c = data.Clear(tag); !c) return refuse(IngestStatus::kInvalid, "clear_attributes: " + c.error().message);
    }
  }
  if (r.anonymize) {
    AnonymizationChoices choices = r.anonymization;
    if (site_.project_anonymization) {
      if (auto p = site_.project_anonymization(labels.project)) choices = *p;
    }
    dicom::AnonymizeOptions o;
    o.retain_dates = choices.retain_dates;
    o.retain_device_identity = choices.retain_device_identity;
    o.retain_uids = choices.retain_uids;
    o.keep_private_tags = choices.keep_private_tags;
    o.secret = site_.secret;
    o.subject_label = labels.subject.empty() ? "ANONYMOUS" : labels.subject;
    if (auto a = data.Anonymize(o); !a) {
      // The message names the attribute, never its value.
      return refuse(IngestStatus::kFailed, "anonymization failed: " + a.error().message);
    }
  }
  std::filesystem::path temp = site_.pipeline.NewTempPath();
  auto size = data.Write(temp);
  if (!size) {
    spdlog::error("{}: cannot write an instance from {}@{}: {}", who, in.calling_ae, in.peer_address, size.error().message);
    return refuse(IngestStatus::kOutOfSpace, "cannot write the data set to disk (disk full?)");
  }
  IngestSource src;
  src.calling_ae = in.calling_ae;
  src.called_ae = in.called_ae;
  src.peer = in.peer_address;
  src.size = *size;
  src.move_originator_ae = in.move_originator_ae;
  src.move_originator_id = in.move_originator_id;
  src.project = labels.project;
  src.subject = labels.subject;
  src.session = labels.session;
  src.original_sop_uid = sop;
  src.original_study_uid = study;
  src.original_series_uid = series;
  return Commit(temp, src, in);
}

dicom::StoreAnswer ReceiverSink::Commit(const std::filesystem::path& temp, IngestSource& src,
                                        const dicom::IncomingInstance& in) {
  IngestOutcome out = receiver_->direct_archive ? site_.pipeline.Ingest(temp, src)
                                                : site_.staging.Stage(temp, src, receiver_->id);
  return AnswerFor(out, "receiver " + receiver_->ae_title, in);
}

}  // namespace pb
