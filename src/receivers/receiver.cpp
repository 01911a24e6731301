#include "receivers/receiver.h"

#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/validate.h"
#include "dicom/dataset.h"
#include "dicom/tls_files.h"

namespace pb {

namespace {

[[nodiscard]] Result<dicom::ServerTls> TlsFromJson(const nlohmann::json& t) {
  static const std::set<std::string> kKnown{"enabled", "cert_file", "key_file", "require_client_cert", "ca_file"};
  if (!t.is_object()) return Fail(Code::kInvalidArgument, "tls must be an object", "tls");
  dicom::ServerTls out;
  for (auto it = t.begin(); it != t.end(); ++it) {
    const std::string field = "tls." + it.key();
    if (!kKnown.count(it.key())) return Fail(Code::kInvalidArgument, fmt::format("unknown field '{}'", field), field);
    bool flag = it.key() == "enabled" || it.key() == "require_client_cert";
    if (flag ? !it->is_boolean() : !it->is_string()) {
      return Fail(Code::kInvalidArgument, fmt::format("{} must be {}", field, flag ? "true or false" : "a file path"),
                  field);
    }
  }
  out.enabled = t.value("enabled", false);
  out.cert_file = t.value("cert_file", "");
  out.key_file = t.value("key_file", "");
  out.ca_file = t.value("ca_file", "");
  out.require_client_cert = t.value("require_client_cert", false);
  if (!out.enabled) return out;
  if (auto r = dicom::CheckTlsFile(out.cert_file, "tls.cert_file", false); !r) return tl::unexpected(r.error());
  if (auto r = dicom::CheckTlsFile(out.key_file, "tls.key_file", true); !r) return tl::unexpected(r.error());
  if (!out.ca_file.empty()) {
    if (auto r = dicom::CheckTlsFile(out.ca_file, "tls.ca_file", false); !r) return tl::unexpected(r.error());
  }
  if (out.require_client_cert && out.ca_file.empty()) {
    return Fail(Code::kInvalidArgument, "tls.require_client_cert needs tls.ca_file (to check them against)",
                "tls.ca_file");
  }
  return out;
}

}  // namespace

namespace {

[[nodiscard]] Result<bool> Flag(const nlohmann::json& j, const char* key, bool fallback,
                                const std::string& prefix = "") {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean())
    return Fail(Code::kInvalidArgument, fmt::format("{}{} must be true or false", prefix, key), prefix + key);
  return j[key].get<bool>();
}

[[nodiscard]] Result<void> SetFlag(const nlohmann::json& j, const char* key, bool fallback, bool& out) {
  auto f = Flag(j, key, fallback);
  if (!f) return tl::unexpected(f.error());
  out = *f;
  return {};
}

// Rule and whitelist texts: one string with a line per entry, or an array of lines.
[[nodiscard]] Result<std::string> Lines(const nlohmann::json& v, const std::string& field) {
  if (v.is_null()) return std::string();
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string out;
    for (const auto& line : v) {
      if (!line.is_string()) return Fail(Code::kInvalidArgument, fmt::format("{} lines must be strings", field), field);
      out += line.get<std::string>();
      out += '\n';
    }
    return out;
  }
  return Fail(Code::kInvalidArgument, fmt::format("{} must be text, one entry per line", field), field);
}

[[nodiscard]] Result<std::vector<Processor>> ProcessorsFromJson(const nlohmann::json& list) {
  if (!list.is_array()) return Fail(Code::kInvalidArgument, "processors must be a list", "processors");
  std::vector<Processor> out;
  for (size_t i = 0; i < list.size(); ++i) {
    const auto& p = list[i];
    const std::string field = fmt::format("processors[{}]", i);
    if (!p.is_object() || !p.contains("type") || !p["type"].is_string()) {
      return Fail(Code::kInvalidArgument,
                  fmt::format("{} must be an object with a type (relabel_from_job, map_ae_to_project, "
                              "set_attributes or clear_attributes)",
                              field),
                  field + ".type");
    }
    const std::string type = p["type"].get<std::string>();
    Processor proc;
    std::set<std::string> allowed{"type"};
    if (type == "relabel_from_job") {
      proc.kind = Processor::Kind::kRelabelFromJob;
    } else if (type == "map_ae_to_project") {
      proc.kind = Processor::Kind::kMapAeToProject;
      allowed.insert("map");
      if (!p.contains("map") || !p["map"].is_object()) {
        return Fail(Code::kInvalidArgument, fmt::format("{}.map must be an object of AE title: project", field),
                    field + ".map");
      }
      for (auto it = p["map"].begin(); it != p["map"].end(); ++it) {
        auto ae = ValidateAeTitle(it.key(), field + ".map");
        if (!ae) return tl::unexpected(ae.error());
        if (!it->is_string() || CleanLabel(it->get<std::string>()) != it->get<std::string>()) {
          return Fail(
              Code::kInvalidArgument,
              fmt::format("{}.map: the project for '{}' must be a label of letters, digits, _ and -", field, *ae),
              field + ".map");
        }
        proc.ae_to_project[*ae] = it->get<std::string>();
      }
    } else if (type == "set_attributes") {
      proc.kind = Processor::Kind::kSetAttributes;
      allowed.insert("attributes");
      if (!p.contains("attributes") || !p["attributes"].is_object()) {
        return Fail(Code::kInvalidArgument,
                    fmt::format("{}.attributes must be an object of tag or keyword: value", field),
                    field + ".attributes");
      }
      for (auto it = p["attributes"].begin(); it != p["attributes"].end(); ++it) {
        auto tag = dicom::ParseTag(it.key());
        if (!tag) {
          return Fail(Code::kInvalidArgument,
                      fmt::format("{}.attributes: '{}' is not a tag (gggg,eeee) or a DICOM keyword", field, it.key()),
                      field + ".attributes");
        }
        if ((*tag >> 16) == 0x0002 || *tag == 0x7fe00010 || *tag == 0x00080016 || *tag == 0x00080018) {
          return Fail(Code::kInvalidArgument, fmt::format("{}.attributes: {} cannot be set", field, it.key()),
                      field + ".attributes");
        }
        if (!it->is_string())
          return Fail(Code::kInvalidArgument, fmt::format("{}.attributes: values are strings", field),
                      field + ".attributes");
        proc.set.emplace_back(*tag, it->get<std::string>());
      }
    } else if (type == "clear_attributes") {
      proc.kind = Processor::Kind::kClearAttributes;
      allowed.insert("attributes");
      if (!p.contains("attributes") || !p["attributes"].is_array()) {
        return Fail(Code::kInvalidArgument, fmt::format("{}.attributes must be a list of tags or keywords", field),
                    field + ".attributes");
      }
      for (const auto& t : p["attributes"]) {
        auto tag = t.is_string() ? dicom::ParseTag(t.get<std::string>()) : std::nullopt;
        if (!tag) {
          return Fail(Code::kInvalidArgument,
                      fmt::format("{}.attributes: {} is not a tag (gggg,eeee) or a DICOM keyword", field, t.dump()),
                      field + ".attributes");
        }
        if ((*tag >> 16) == 0x0002 || *tag == 0x7fe00010 || *tag == 0x00080016 || *tag == 0x00080018 ||
            *tag == 0x0020000d || *tag == 0x0020000e) {
          return Fail(Code::kInvalidArgument,
                      fmt::format("{}.attributes: {} cannot be cleared", field, t.get<std::string>()),
                      field + ".attributes");
        }
        proc.clear.push_back(*tag);
      }
    } else {
      return Fail(
          Code::kInvalidArgument,
          fmt::format(
              "{}.type '{}' is unknown: relabel_from_job, map_ae_to_project, set_attributes or clear_attributes", field,
              type),
          field + ".type");
    }
    for (auto it = p.begin(); it != p.end(); ++it) {
      if (!allowed.count(it.key())) {
        return Fail(Code::kInvalidArgument, fmt::format("unknown field '{}.{}'", field, it.key()),
                    field + "." + it.key());
      }
    }
    out.push_back(std::move(proc));
  }
  return out;
}

[[nodiscard]] Result<std::shared_ptr<const RoutingRules>> RulesFromJson(const nlohmann::json& j,
                                                                        const std::string& prefix, std::string* texts) {
  if (!j.is_null() && !j.is_object()) {
    return Fail(Code::kInvalidArgument,
                fmt::format("{} must be an object with project, subject and session rules", prefix), prefix);
  }
  auto rules = std::make_shared<RoutingRules>();
  int i = 0;
  for (const char* key : {"project", "subject", "session"}) {
    const std::string field = prefix + "." + key;
    std::string text;
    if (j.is_object() && j.contains(key)) {
      auto t = Lines(j[key], field);
      if (!t) return tl::unexpected(t.error());
      text = *t;
    }
    auto parsed = ParseRoutingRules(text, field);
    if (!parsed) return tl::unexpected(parsed.error());
    (i == 0 ? rules->project : i == 1 ? rules->subject : rules->session) = std::move(*parsed);
    texts[i++] = text;
  }
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() != "project" && it.key() != "subject" && it.key() != "session") {
        return Fail(Code::kInvalidArgument, fmt::format("unknown field '{}.{}'", prefix, it.key()),
                    prefix + "." + it.key());
      }
    }
  }
  return std::shared_ptr<const RoutingRules>(rules);
}

}  // namespace

[[nodiscard]] Result<AnonymizationChoices> AnonymizationFromJson(const nlohmann::json& a, const std::string& field) {
  if (!a.is_object()) return Fail(Code::kInvalidArgument, fmt::format("{} must be an object", field), field);
  static const std::set<std::string> kOptions{"retain_dates", "retain_device_identity", "retain_uids",
                                              "keep_private_tags"};
  for (auto it = a.begin(); it != a.end(); ++it) {
    if (!kOptions.count(it.key())) {
      return Fail(Code::kInvalidArgument, fmt::format("unknown field '{}.{}'", field, it.key()),
                  field + "." + it.key());
    }
  }
  AnonymizationChoices out;
  const std::string prefix = field + ".";
  for (auto [key, member] :
       {std::pair{"retain_dates", &out.retain_dates}, std::pair{"retain_device_identity", &out.retain_device_identity},
        std::pair{"retain_uids", &out.retain_uids}, std::pair{"keep_private_tags", &out.keep_private_tags}}) {
    auto f = Flag(a, key, false, prefix);
    if (!f) return tl::unexpected(f.error());
    *member = *f;
  }
  return out;
}

nlohmann::json AnonymizationToJson(const AnonymizationChoices& a) {
  return {{"retain_dates", a.retain_dates},
          {"retain_device_identity", a.retain_device_identity},
          {"retain_uids", a.retain_uids},
          {"keep_private_tags", a.keep_private_tags}};
}

bool Receiver::ChangesData() const {
  if (anonymize) return true;
  for (const Processor& p : processors) {
    if (p.ChangesData()) return true;
  }
  return false;
}

[[nodiscard]] Result<Receiver> ReceiverFromJson(const nlohmann::json& j, ReceiverOrigin origin) {
  static const std::set<std::string> kKnown{"id",
                                            "ae_title",
                                            "port",
                                            "bind",
                                            "enabled",
                                            "locked",
                                            "status",
                                            "whitelist_enabled",
                                            "whitelist",
                                            "routing",
                                            "identification",
                                            "processors",
                                            "anonymize",
                                            "anonymization",
                                            "direct_archive",
                                            "default_project",
                                            "staging_idle_seconds",
                                            "tls",
                                            "mpps",
                                            "mpps_forward",
                                            "query_retrieve",
                                            "query_retrieve_projects",
                                            "query_names_ignore_case"};
  if (!j.is_object()) return Fail(Code::kInvalidArgument, "a receiver must be an object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!kKnown.count(it.key())) {
      return Fail(Code::kInvalidArgument, fmt::format("unknown field '{}'", it.key()), it.key());
    }
  }
  Receiver r;
  if (!j.contains("ae_title") || !j["ae_title"].is_string()) {
    return Fail(Code::kInvalidArgument, "ae_title must be a string", "ae_title");
  }
  auto ae = ValidateAeTitle(j["ae_title"].get<std::string>(), "ae_title");
  if (!ae) return tl::unexpected(ae.error());
  r.ae_title = *ae;
  if (j.contains("port")) {
    if (!j["port"].is_number_integer()) return Fail(Code::kInvalidArgument, "port must be an integer", "port");
    int64_t port = j["port"].get<int64_t>();
    if (origin == ReceiverOrigin::kApi && (port < 1024 || port > 49151)) {
      return Fail(Code::kInvalidArgument,
                  fmt::format("port {} is outside 1024 to 49151 (below: system ports; above: "
                              "the range the system uses for outgoing connections)",
                              port),
                  "port");
    }
    auto valid = ValidatePort(port, "port");
    if (!valid) return tl::unexpected(valid.error());
    r.port = *valid;
  } else if (origin == ReceiverOrigin::kConfig) {
    return Fail(Code::kInvalidArgument, "port must be an integer", "port");
  }
  if (j.contains("bind")) {
    if (!j["bind"].is_string()) return Fail(Code::kInvalidArgument, "bind must be a string", "bind");
    std::string b = Trim(j["bind"].get<std::string>());
    if (b.size() > 2 && b.front() == '[' && b.back() == ']') b = b.substr(1, b.size() - 2);
    if (!IsIpv4Literal(b) && !IsIpv6Literal(b)) {
      return Fail(Code::kInvalidArgument,
                  fmt::format("bind '{}' must be an IP address of this machine (0.0.0.0 or :: "
                              "for all)",
                              b),
                  "bind");
    }
    r.bind = b;
  }
  if (auto f = SetFlag(j, "enabled", true, r.enabled); !f) return tl::unexpected(f.error());
  if (j.contains("tls") && !j["tls"].is_null()) {
    auto tls = TlsFromJson(j["tls"]);
    if (!tls) return tl::unexpected(tls.error());
    r.tls = *tls;
  }
  if (auto f = SetFlag(j, "whitelist_enabled", false, r.whitelist_enabled); !f) return tl::unexpected(f.error());
  if (j.contains("whitelist")) {
    auto text = Lines(j["whitelist"], "whitelist");
    if (!text) return tl::unexpected(text.error());
    auto wl = Whitelist::Parse(*text);
    if (!wl) return tl::unexpected(wl.error());
    r.whitelist_text = *text;
    r.whitelist = std::make_shared<Whitelist>(std::move(*wl));
  }
  std::string texts[3];
  auto rules = RulesFromJson(j.contains("routing") ? j["routing"] : nlohmann::json(), "routing", texts);
  if (!rules) return tl::unexpected(rules.error());
  r.routing = *rules;
  r.routing_project = texts[0];
  r.routing_subject = texts[1];
  r.routing_session = texts[2];
  if (j.contains("default_project") && !j["default_project"].is_null()) {
    const auto& v = j["default_project"];
    if (!v.is_string() || CleanLabel(v.get<std::string>()) != v.get<std::string>()) {
      return Fail(Code::kInvalidArgument, "default_project must be a label of letters, digits, _ and - (at most 64)",
                  "default_project");
    }
    r.default_project = v.get<std::string>();
  }
  if (j.contains("identification") && !j["identification"].is_null()) {
    const auto& v = j["identification"];
    if (!v.is_string() || (v.get<std::string>() != "rules" && v.get<std::string>() != "jobs")) {
      return Fail(Code::kInvalidArgument, "identification must be \"rules\" or \"jobs\"", "identification");
    }
    r.identification = v.get<std::string>();
  }
  if (j.contains("processors") && !j["processors"].is_null()) {
    auto procs = ProcessorsFromJson(j["processors"]);
    if (!procs) return tl::unexpected(procs.error());
    r.processors = std::move(*procs);
    r.processors_json = j["processors"];
  }
  if (auto f = SetFlag(j, "anonymize", origin == ReceiverOrigin::kApi, r.anonymize); !f)
    return tl::unexpected(f.error());
  if (j.contains("anonymization") && !j["anonymization"].is_null()) {
    auto a = AnonymizationFromJson(j["anonymization"], "anonymization");
    if (!a) return tl::unexpected(a.error());
    r.anonymization = *a;
  }
  if (auto f = SetFlag(j, "direct_archive", true, r.direct_archive); !f) return tl::unexpected(f.error());
  if (auto f = SetFlag(j, "mpps", false, r.mpps); !f) return tl::unexpected(f.error());
  if (j.contains("mpps_forward") && !j["mpps_forward"].is_null()) {
    if (!j["mpps_forward"].is_string()) {
      return Fail(Code::kInvalidArgument, "mpps_forward must be the name of a node (mpps on), or empty",
                  "mpps_forward");
    }
    r.mpps_forward = Trim(j["mpps_forward"].get<std::string>());
    if (!r.mpps_forward.empty() && !r.mpps) {
      return Fail(Code::kInvalidArgument, "mpps_forward needs mpps on: only MPPS the receiver accepts is forwarded",
                  "mpps_forward");
    }
  }
  if (auto f = SetFlag(j, "query_retrieve", false, r.query_retrieve); !f) return tl::unexpected(f.error());
  if (auto f = SetFlag(j, "query_names_ignore_case", false, r.query_names_ignore_case); !f) {
    return tl::unexpected(f.error());
  }
  if (j.contains("query_retrieve_projects") && !j["query_retrieve_projects"].is_null()) {
    const auto& v = j["query_retrieve_projects"];
    const char* what = "query_retrieve_projects must be a list of project labels (letters, digits, _ and -)";
    if (!v.is_array()) return Fail(Code::kInvalidArgument, what, "query_retrieve_projects");
    for (const auto& p : v) {
      if (!p.is_string() || p.get<std::string>().empty() || CleanLabel(p.get<std::string>()) != p.get<std::string>()) {
        return Fail(Code::kInvalidArgument, what, "query_retrieve_projects");
      }
      r.query_retrieve_projects.push_back(p.get<std::string>());
    }
    if (!r.query_retrieve_projects.empty() && !r.query_retrieve) {
      return Fail(Code::kInvalidArgument,
                  "query_retrieve_projects needs query_retrieve on: it limits what Query/Retrieve shows",
                  "query_retrieve_projects");
    }
  }
  if (j.contains("staging_idle_seconds") && !j["staging_idle_seconds"].is_null()) {
    const auto& v = j["staging_idle_seconds"];
    if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 7 * 24 * 3600) {
      return Fail(Code::kInvalidArgument, "staging_idle_seconds must be 1 to 604800", "staging_idle_seconds");
    }
    r.staging_idle_seconds = static_cast<int>(v.get<int64_t>());
  }
  r.id = r.ae_title + "@" + std::to_string(r.port);
  return r;
}

nlohmann::json ReceiverToJson(const Receiver& r) {
  return {{"id", r.id},
          {"ae_title", r.ae_title},
          {"port", r.port},
          {"bind", r.bind},
          {"enabled", r.enabled},
          {"locked", r.locked},
          {"whitelist_enabled", r.whitelist_enabled},
          {"whitelist", r.whitelist_text},
          {"routing", {{"project", r.routing_project}, {"subject", r.routing_subject}, {"session", r.routing_session}}},
          {"default_project", r.default_project},
          {"identification", r.identification},
          {"processors", r.processors_json},
          {"anonymize", r.anonymize},
          {"anonymization", AnonymizationToJson(r.anonymization)},
          {"direct_archive", r.direct_archive},
          {"staging_idle_seconds", r.staging_idle_seconds},
          {"mpps", r.mpps},
          {"mpps_forward", r.mpps_forward},
          {"query_retrieve", r.query_retrieve},
          {"query_retrieve_projects", r.query_retrieve_projects},
          {"query_names_ignore_case", r.query_names_ignore_case},
          {"tls",
           {{"enabled", r.tls.enabled},
            {"cert_file", r.tls.cert_file},
            {"key_file", r.tls.key_file},
            {"ca_file", r.tls.ca_file},
            {"require_client_cert", r.tls.require_client_cert}}}};
}

[[nodiscard]] Result<Receiver> PatchReceiver(const Receiver& base, const nlohmann::json& patch) {
  if (!patch.is_object()) return Fail(Code::kInvalidArgument, "a receiver must be an object");
  nlohmann::json merged = ReceiverToJson(base);
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    if ((it.key() == "routing" || it.key() == "anonymization" || it.key() == "tls") && it->is_object() &&
        merged[it.key()].is_object()) {
      for (auto f = it->begin(); f != it->end(); ++f) merged[it.key()][f.key()] = *f;
    } else {
      merged[it.key()] = *it;
    }
  }
  // Switching Query/Retrieve off takes its project window with it (given on its own, a window
  // without Query/Retrieve is still refused).
  if (patch.contains("query_retrieve") && patch["query_retrieve"] == false &&
      !patch.contains("query_retrieve_projects")) {
    merged["query_retrieve_projects"] = nlohmann::json::array();
  }
  auto r = ReceiverFromJson(merged, ReceiverOrigin::kApi);
  if (!r) return r;
  r->id = base.id;
  return r;
}

[[nodiscard]] Result<std::shared_ptr<const RoutingRules>> ParseSiteRouting(const nlohmann::json& j) {
  std::string texts[3];
  return RulesFromJson(j, "routing", texts);
}

}  // namespace pb
