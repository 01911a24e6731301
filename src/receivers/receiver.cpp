#include "receivers/receiver.h"

#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/validate.h"
#include "dicom/network.h"
#include "dicom/tls_files.h"
#include "ingest/store_sink.h"

namespace pb {

namespace {

Result<dicom::ServerTls> TlsFromJson(const nlohmann::json& t) {
  static const std::set<std::string> kKnown{"enabled", "cert_file", "key_file", "require_client_cert", "ca_file"};
  if (!t.is_object()) return Fail(Code::kInvalidArgument, "tls must be an object", "tls");
  dicom::ServerTls out;
  for (auto it = t.begin(); it != t.end(); ++it) {
    const std::string field = "tls." + it.key();
    if (!kKnown.count(it.key())) return Fail(Code::kInvalidArgument, fmt::format("unknown field '{}'", field), field);
    bool flag = it.key() == "enabled" || it.key() == "require_client_cert";
    if (flag ? !it->is_boolean() : !it->is_string()) {
      return Fail(Code::kInvalidArgument, fmt::format("{} must be {}", field, flag ? "true or false" : "a file path"), field);
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

Result<Receiver> ReceiverFromJson(const nlohmann::json& j) {
  static const std::set<std::string> kKnown{
      "id", "ae_title", "port", "bind", "enabled", "locked", "whitelist_enabled", "whitelist",
      "routing", "identification", "processors", "anonymize", "direct_archive", "tls"};
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
  if (!j.contains("port") || !j["port"].is_number_integer()) {
    return Fail(Code::kInvalidArgument, "port must be an integer", "port");
  }
  auto port = ValidatePort(j["port"].get<int64_t>(), "port");
  if (!port) return tl::unexpected(port.error());
  r.port = *port;
  if (j.contains("bind")) {
    if (!j["bind"].is_string()) return Fail(Code::kInvalidArgument, "bind must be a string", "bind");
    std::string b = Trim(j["bind"].get<std::string>());
    if (b.size() > 2 && b.front() == '[' && b.back() == ']') b = b.substr(1, b.size() - 2);
    if (!IsIpv4Literal(b) && !IsIpv6Literal(b)) {
      return Fail(Code::kInvalidArgument,
                  fmt::format("bind '{}' must be an IP address of this machine (0.0.0.0 or :: "
                              "for all)", b),
                  "bind");
    }
    r.bind = b;
  }
  if (j.contains("enabled")) {
    if (!j["enabled"].is_boolean()) return Fail(Code::kInvalidArgument, "enabled must be true or false", "enabled");
    r.enabled = j["enabled"].get<bool>();
  }
  // Accepted by name (they are part of the contract) but refused when switched on: a whitelist
  // or anonymization that is silently not applied would be worse than an error.
  for (const char* key : {"whitelist_enabled", "anonymize"}) {
    if (j.contains(key) && !(j[key].is_boolean() && !j[key].get<bool>())) {
      return Fail(Code::kInvalidArgument,
                  fmt::format("{} is not available in this version; remove it or set it to false", key),
                  key);
    }
  }
  if (j.contains("tls") && !j["tls"].is_null()) {
    auto tls = TlsFromJson(j["tls"]);
    if (!tls) return tl::unexpected(tls.error());
    r.tls = *tls;
  }
  for (const char* key : {"whitelist", "routing", "processors"}) {
    if (!j.contains(key)) continue;
    const auto& v = j[key];
    bool unset = v.is_null() || v.empty() || (v.is_string() && v.get<std::string>().empty());
    if (!unset) {
      return Fail(Code::kInvalidArgument,
                  fmt::format("{} is not available in this version; remove it", key), key);
    }
  }
  r.id = r.ae_title + "@" + std::to_string(r.port);
  return r;
}

nlohmann::json ReceiverToJson(const Receiver& r) {
  return {{"id", r.id},       {"ae_title", r.ae_title}, {"port", r.port},
          {"bind", r.bind},   {"enabled", r.enabled},   {"locked", r.locked},
          {"whitelist_enabled", false}, {"whitelist", ""}, {"anonymize", false},
          {"direct_archive", true},
          {"tls", {{"enabled", r.tls.enabled}, {"cert_file", r.tls.cert_file}, {"key_file", r.tls.key_file},
                   {"ca_file", r.tls.ca_file}, {"require_client_cert", r.tls.require_client_cert}}}};
}

ReceiverService::ReceiverService(IngestPipeline& pipeline, int workers)
    : pipeline_(pipeline), workers_(workers), sink_(std::make_unique<PipelineSink>(pipeline, "")) {}

ReceiverService::~ReceiverService() { Stop(); }

Result<void> ReceiverService::Start(const std::vector<ConfigEntry>& config) {
  for (const ConfigEntry& e : config) {
    auto r = ReceiverFromJson(e.json);
    if (!r) {
      std::string where = e.source;
      auto it = e.key_lines.find(r.error().field);
      if (it != e.key_lines.end()) where = where.substr(0, where.rfind(':')) + ":" + std::to_string(it->second);
      return Fail(Code::kInvalidArgument,
                  fmt::format("{}: [[receivers]] {}: {}", where, r.error().field, r.error().message),
                  r.error().field);
    }
    r->locked = true;
    for (const Receiver& o : receivers_) {
      if (o.port == r->port) {
        return Fail(Code::kInvalidArgument,
                    fmt::format("{}: [[receivers]] port {} is used by receiver {} too", e.source,
                                r->port, o.ae_title),
                    "port");
      }
    }
    receivers_.push_back(*r);
  }
  for (const Receiver& r : receivers_) {
    if (!r.enabled) continue;
    dicom::ServerOptions opt;
    opt.ae_title = r.ae_title;
    opt.bind = r.bind;
    opt.port = r.port;
    opt.workers = workers_;
    opt.tls = r.tls;
    opt.preferred_transfer_syntax = preferred_;
    auto server = std::make_unique<dicom::AssociationServer>(opt, *sink_);
    if (auto s = server->Start(); !s) return s;
    spdlog::info("receiver {} listening on {}:{}{}", r.ae_title, r.bind, server->port(),
                 r.tls.enabled ? " (TLS)" : "");
    servers_.push_back(std::move(server));
  }
  return {};
}

void ReceiverService::Stop() {
  for (auto& s : servers_) s->Stop();
  servers_.clear();
}

std::vector<Receiver> ReceiverService::List() const { return receivers_; }

Result<Receiver> ReceiverService::Get(const std::string& id) const {
  for (const Receiver& r : receivers_) {
    if (r.id == id || r.ae_title == id) return r;
  }
  return Fail(Code::kNotFound, fmt::format("no receiver '{}'", id), "id");
}

}  // namespace pb
