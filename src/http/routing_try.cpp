// POST /api/routing/try: which project, subject and session some attributes (or an instance of
// the archive) would be filed under, and what decided each. It runs the ingest path's own
// identification (OriginSink::Identify) with the receiver's settings, optionally with rules as
// they are being edited, so the answer is what an arrival would get.
#include <httplib.h>

#include <map>
#include <set>

#include <fmt/format.h>

#include "dicom/dataset.h"
#include "dicom/header.h"
#include "http/api.h"
#include "http/errors.h"
#include "http/router.h"
#include "ingest/origin_sink.h"
#include "receivers/receiver_sink.h"

namespace pb::http {
namespace {

// A rules object's text for one label ("project"...): a string, or an array of lines.
std::string RuleText(const nlohmann::json& rules, const char* key) {
  if (!rules.is_object() || !rules.contains(key)) return {};
  const auto& v = rules[key];
  if (v.is_string()) return v.get<std::string>();
  std::string text;
  if (v.is_array()) {
    for (const auto& line : v) text += (line.is_string() ? line.get<std::string>() : "") + "\n";
  }
  return text;
}

// Line `n` (1-based) of `text`, trimmed.
std::string LineOf(const std::string& text, int n) {
  size_t pos = 0;
  for (int i = 1; i < n && pos != std::string::npos; ++i) {
    pos = text.find('\n', pos);
    if (pos != std::string::npos) ++pos;
  }
  if (pos == std::string::npos || pos > text.size()) return {};
  std::string line = text.substr(pos, text.find('\n', pos) - pos);
  const auto first = line.find_first_not_of(" \t\r");
  const auto last = line.find_last_not_of(" \t\r");
  return first == std::string::npos ? "" : line.substr(first, last - first + 1);
}

const char* SourceName(LabelSource s) {
  switch (s) {
    case LabelSource::kReceiverRule:
      return "receiver_rule";
    case LabelSource::kSiteRule:
      return "site_rule";
    case LabelSource::kComment:
      return "comment";
    case LabelSource::kReceiverDefault:
      return "receiver_default";
    case LabelSource::kDefaultRule:
      return "default_rule";
    case LabelSource::kUnassigned:
      return "unassigned";
    case LabelSource::kNone:
      break;
  }
  return "none";
}

struct Decided {
  const char* label;  // "project", "subject", "session"
  std::string value;
  LabelSource source;
  uint32_t tag;
  int line;
};

nlohmann::json Explain(const Decided& d, const std::string& rule, bool pseudonym, bool anonymized) {
  const std::string keyword = d.tag ? dicom::TagKeyword(d.tag) : "";
  const std::string attribute =
      d.tag ? (keyword.empty() ? dicom::TagString(d.tag) : keyword + " " + dicom::TagString(d.tag)) : "";
  std::string why;
  switch (d.source) {
    case LabelSource::kReceiverRule:
      why = d.line ? fmt::format("line {} of the receiver's {} rules matched {}", d.line, d.label, attribute)
                   : fmt::format("set by the receiver (a processor or a label it imposes)");
      break;
    case LabelSource::kSiteRule:
      why = fmt::format("line {} of the site-wide {} rules matched {}", d.line, d.label, attribute);
      break;
    case LabelSource::kComment:
      why = fmt::format("\"{}{}: ...\" in {}", static_cast<char>(d.label[0] - 'a' + 'A'), d.label + 1, attribute);
      break;
    case LabelSource::kReceiverDefault:
      why = "no rule matched: the receiver's default project";
      break;
    case LabelSource::kDefaultRule:
      why = fmt::format("no rule matched: taken from {}", attribute);
      if (pseudonym) why += ", as a pseudonym (the data is anonymized, the label must not identify the patient)";
      break;
    case LabelSource::kUnassigned:
      why = anonymized ? "no rule named a project, and anonymized data is not filed by its Study Description or "
                         "Accession Number: the Unassigned project"
                       : "nothing gave a project: the Unassigned project";
      break;
    case LabelSource::kNone:
      why = fmt::format("no rule and no attribute gave a {}", d.label);
      break;
  }
  return {{"value", d.value},
          {"source", SourceName(d.source)},
          {"tag", d.tag ? nlohmann::json(dicom::TagString(d.tag)) : nlohmann::json(nullptr)},
          {"keyword", keyword.empty() ? nlohmann::json(nullptr) : nlohmann::json(keyword)},
          {"rule", rule.empty() ? nlohmann::json(nullptr) : nlohmann::json(rule)},
          {"line", d.line ? nlohmann::json(d.line) : nlohmann::json(nullptr)},
          {"pseudonym", pseudonym},
          {"explanation", why}};
}

}  // namespace

void AddRoutingTryRoute(Router& r, Services& s) {
  r.Post(
      "/api/routing/try", Access::kReadOnly,
      [&s](const httplib::Request&, httplib::Response& res, const std::string& raw) {
        auto body = ParseBody(raw, res);
        if (!body) return;
        if (!body->is_object()) return SendError(res, 400, "the body must be a JSON object");
        static const std::set<std::string> kFields{"receiver",   "routing",          "default_project",  "site_routing",
                                                   "attributes", "sop_instance_uid", "calling_ae_title", "anonymize"};
        for (auto it = body->begin(); it != body->end(); ++it) {
          if (!kFields.count(it.key()))
            return SendError(res, 400, fmt::format("unknown field '{}'", it.key()), it.key());
        }
        auto text_field = [&](const char* key, std::string& out) {
          if (!body->contains(key) || (*body)[key].is_null()) return true;
          if (!(*body)[key].is_string()) {
            SendError(res, 400, fmt::format("{} must be a string", key), key);
            return false;
          }
          out = (*body)[key].get<std::string>();
          return true;
        };

        // The receiver's settings, or none: only the rules given and the site's, nothing anonymized.
        Receiver base;
        base.anonymize = false;
        std::string receiver_id, default_project, sop_uid, calling_ae;
        if (!text_field("receiver", receiver_id) || !text_field("default_project", default_project) ||
            !text_field("sop_instance_uid", sop_uid) || !text_field("calling_ae_title", calling_ae)) {
          return;
        }
        nlohmann::json receiver_rules{{"project", ""}, {"subject", ""}, {"session", ""}};
        if (!receiver_id.empty()) {
          auto found = s.receivers.Get(receiver_id);
          if (!found) return SendError(res, found.error());
          base = *found;
          receiver_rules = {
              {"project", base.routing_project}, {"subject", base.routing_subject}, {"session", base.routing_session}};
        }
        if (body->contains("routing")) {
          auto rules = ParseSiteRouting((*body)["routing"]);  // its errors name "routing.<label>"
          if (!rules) return SendError(res, rules.error());
          base.routing = *rules;
          receiver_rules = (*body)["routing"];
        }
        if (body->contains("default_project") && !default_project.empty() &&
            CleanLabel(default_project) != default_project) {
          return SendError(res, 400, "a project is a label of letters, digits, _ and - (at most 64)",
                           "default_project");
        }
        if (body->contains("default_project")) base.default_project = default_project;
        if (body->contains("anonymize")) {
          if (!(*body)["anonymize"].is_boolean())
            return SendError(res, 400, "anonymize must be true or false", "anonymize");
          base.anonymize = (*body)["anonymize"].get<bool>();
        }
        nlohmann::json site_text = s.receivers.SiteRouting();
        auto site_rules = s.receivers.SiteRules();
        if (body->contains("site_routing")) {
          auto rules = ParseSiteRouting((*body)["site_routing"]);
          if (!rules) {
            Error e = rules.error();
            if (e.field.rfind("routing", 0) == 0) e.field = "site_" + e.field;
            return SendError(res, e);
          }
          site_rules = *rules;
          site_text = (*body)["site_routing"];
        }

        // The attributes: given, or read from an instance of the archive.
        const bool given = body->contains("attributes");
        if (given == !sop_uid.empty()) {
          return SendError(res, 400, "give either attributes (keyword or tag: value) or sop_instance_uid",
                           "attributes");
        }
        std::map<uint32_t, std::string> values;
        if (given) {
          const auto& a = (*body)["attributes"];
          if (!a.is_object())
            return SendError(res, 400, "attributes must be an object of keyword or tag: value", "attributes");
          for (auto it = a.begin(); it != a.end(); ++it) {
            auto tag = dicom::ParseTag(it.key());
            if (!tag) {
              return SendError(res, 400,
                               fmt::format("unknown attribute '{}': write a DICOM keyword such as PatientName or a tag "
                                           "(gggg,eeee)",
                                           it.key()),
                               "attributes." + it.key());
            }
            if (!it->is_string()) {
              return SendError(res, 400, fmt::format("the value of {} must be a string", it.key()),
                               "attributes." + it.key());
            }
            values[*tag] = it->get<std::string>();
          }
        } else {
          (void)s.pipeline.Flush(std::chrono::seconds(2));
          auto row = s.db.GetInstance(sop_uid);
          if (!row) return SendError(res, row.error());
          if (!*row)
            return SendError(res, 404, fmt::format("no instance {} in the archive", sop_uid), "sop_instance_uid");
          std::vector<uint32_t> tags = DefaultRoutingTags();
          for (const RoutingRules* rules : {base.routing.get(), site_rules.get()}) {
            if (!rules) continue;
            for (const auto* list : {&rules->project, &rules->subject, &rules->session}) {
              for (const RoutingRule& rule : *list) tags.push_back(rule.tag);
            }
          }
          auto read = dicom::ReadAttributes(s.blobs.Absolute((*row)->file_path), tags);
          if (!read) return SendError(res, 500, "the stored file cannot be read");
          values = std::move(*read);
        }

        // The ingest path's own identification, with these settings.
        IngestSite site = s.receivers.site();
        site.site_rules = [site_rules] { return site_rules; };
        OriginSink sink(ReceiverPolicy(base), site);
        std::map<uint32_t, std::string> consulted;
        AttributeLookup get = [&](uint32_t tag) -> std::optional<std::string> {
          auto it = values.find(tag);
          if (it == values.end()) return std::nullopt;
          consulted[tag] = it->second;
          return it->second;
        };
        const OriginSink::Identity id = sink.Identify(get, calling_ae, nullptr);
        const Labels& l = id.labels;

        nlohmann::json out{{"anonymize", id.anonymize}};
        const Decided decided[] = {{"project", l.project, l.project_source, l.project_tag, l.project_line},
                                   {"subject", l.subject, l.subject_source, l.subject_tag, l.subject_line},
                                   {"session", l.session, l.session_source, l.session_tag, l.session_line}};
        for (const Decided& d : decided) {
          std::string rule;
          if (d.line && d.source == LabelSource::kReceiverRule)
            rule = LineOf(RuleText(receiver_rules, d.label), d.line);
          if (d.line && d.source == LabelSource::kSiteRule) rule = LineOf(RuleText(site_text, d.label), d.line);
          // The default rules' subject and session become pseudonyms when the data is anonymized.
          const auto v = values.find(d.tag);
          const bool pseudonym =
              d.source == LabelSource::kDefaultRule && v != values.end() && CleanLabel(v->second) != d.value;
          out[d.label] = Explain(d, rule, pseudonym, id.anonymize);
        }
        nlohmann::json seen = nlohmann::json::object();
        for (const auto& [tag, value] : consulted) seen[dicom::TagString(tag)] = value;
        out["attributes"] = std::move(seen);
        SendJson(res, 200, out);
      });
}

}  // namespace pb::http
