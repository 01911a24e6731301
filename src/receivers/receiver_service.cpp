#include "receivers/receiver_service.h"

#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/thread_annotations.h"
#include "os/port_owner.h"
#include "receivers/archive_query.h"

namespace pb {
namespace {

bool SameTls(const dicom::ServerTls& a, const dicom::ServerTls& b);

// Two receivers on one port need different AE titles and the same bind address and TLS
// settings (they share one listener).
bool CannotShare(const Receiver& a, const Receiver& b) {
  return a.port == b.port && (a.ae_title == b.ae_title || a.bind != b.bind || !SameTls(a.tls, b.tls));
}

bool SameTls(const dicom::ServerTls& a, const dicom::ServerTls& b) {
  return a.enabled == b.enabled && a.cert_file == b.cert_file && a.key_file == b.key_file && a.ca_file == b.ca_file &&
         a.require_client_cert == b.require_client_cert;
}

constexpr const char* kRoutingKey = "routing";
constexpr const char* kProjectAnonymizationKey = "project_anonymization";

}  // namespace

ReceiverService::ReceiverService(IngestPipeline& pipeline, Database& db, StagingArea& staging,
                                 ExpectationRegistry& expectations, int workers, std::string secret)
    : db_(db),
      workers_(workers),
      site_{pipeline,
            staging,
            expectations,
            [this] { return SiteRules(); },
            std::move(secret),
            [this](const std::string& project) { return ProjectAnonymization(project); },
            [this] {
              MutexLock lock(mu_);
              return !project_anonymization_.empty();
            }},
      fallback_(pipeline, ""),
      site_rules_(std::make_shared<RoutingRules>()),
      site_routing_json_({{"project", ""}, {"subject", ""}, {"session", ""}}) {}

ReceiverService::~ReceiverService() { Stop(); }

Result<void> ReceiverService::Start(const std::vector<ConfigEntry>& config) {
  MutexLock change(change_mu_);
  std::vector<std::shared_ptr<const Receiver>> all;
  for (const ConfigEntry& e : config) {
    auto r = ReceiverFromJson(e.json, ReceiverOrigin::kConfig);
    if (!r) {
      std::string where = e.source;
      auto it = e.key_lines.find(r.error().field.substr(0, r.error().field.find_first_of(".[")));
      if (it != e.key_lines.end()) where = where.substr(0, where.rfind(':')) + ":" + std::to_string(it->second);
      return Fail(Code::kInvalidArgument,
                  fmt::format("{}: [[receivers]] {}: {}", where, r.error().field, r.error().message), r.error().field);
    }
    r->locked = true;
    for (const auto& o : all) {
      if (CannotShare(*o, *r)) {
        return Fail(
            Code::kInvalidArgument,
            fmt::format("{}: [[receivers]] port {} is used by receiver {} too{}", e.source, r->port, o->ae_title,
                        o->ae_title == r->ae_title ? " (same AE title)" : " with another bind address or TLS setting"),
            "port");
      }
    }
    if (r->port < 1024 || r->port > 49151) {
      spdlog::warn(
          "receiver {}: port {} is outside 1024 to 49151; it may collide with system services or outgoing "
          "connections",
          r->ae_title, r->port);
    }
    all.push_back(std::make_shared<Receiver>(std::move(*r)));
  }
  config_receivers_ = all;
  auto stored = ReadStored();
  if (!stored) return tl::unexpected(stored.error());
  Apply(*stored, std::move(all));
  (void)Reconcile(0, /*log_failures=*/false);  // the server reports what did not start
  // A port another program held may come free: try again, quietly, until it does.
  retry_ = std::make_unique<PeriodicTask>(kRetryPeriod, [this] { RetryFailedPorts(); });
  return {};
}

Result<ReceiverService::Stored> ReceiverService::ReadStored() {
  Stored out;
  auto receivers = db_.LoadReceivers();
  if (!receivers) return tl::unexpected(receivers.error());
  out.receivers = std::move(*receivers);
  auto routing = db_.GetSetting(kRoutingKey);
  if (!routing) return tl::unexpected(routing.error());
  out.routing = std::move(*routing);
  auto projects = db_.GetSetting(kProjectAnonymizationKey);
  if (!projects) return tl::unexpected(projects.error());
  out.projects = std::move(*projects);
  return out;
}

void ReceiverService::Apply(const Stored& stored, std::vector<std::shared_ptr<const Receiver>> all) {
  std::map<std::string, std::string> held_back;  // id → why (a conflict with a config receiver)
  for (const auto& [id, body] : stored.receivers) {
    auto j = nlohmann::json::parse(body, nullptr, false);
    auto r = j.is_discarded() ? Result<Receiver>(Fail(Code::kInvalidArgument, "stored text is not JSON"))
                              : ReceiverFromJson(j, ReceiverOrigin::kApi);
    if (!r) {
      spdlog::error("receiver {} in the database cannot be used: {}", id, r.error().message);
      continue;
    }
    r->id = std::to_string(id);
    // A config receiver added later may have taken this one's AE title + port, or its port with
    // another bind address or TLS setting: the stored one stays listed but does not start.
    for (const auto& o : all) {
      if (r->enabled && o->enabled && CannotShare(*o, *r)) {
        std::string why =
            fmt::format("conflicts with receiver {} ({}@{}); change its port", o->id, o->ae_title, o->port);
        spdlog::error("receiver {} ({}@{}) not started: {}", r->id, r->ae_title, r->port, why);
        r->enabled = false;
        held_back[r->id] = why;
        break;
      }
    }
    all.push_back(std::make_shared<Receiver>(std::move(*r)));
  }
  // None stored: no rules (labels from the receivers alone), as at construction.
  std::shared_ptr<const RoutingRules> rules = std::make_shared<RoutingRules>();
  nlohmann::json routing_json = {{"project", ""}, {"subject", ""}, {"session", ""}};
  bool routing_usable = true;
  if (!stored.routing.empty()) {
    auto j = nlohmann::json::parse(stored.routing, nullptr, false);
    auto parsed = j.is_discarded()
                      ? Result<std::shared_ptr<const RoutingRules>>(Fail(Code::kInvalidArgument, "not JSON"))
                      : ParseSiteRouting(j);
    if (parsed) {
      rules = *parsed;
      routing_json = j;
    } else {
      routing_usable = false;  // the rules in use stay
      spdlog::error("the stored site routing rules cannot be used: {}", parsed.error().message);
    }
  }
  std::map<std::string, AnonymizationChoices> projects;
  if (!stored.projects.empty()) {
    auto j = nlohmann::json::parse(stored.projects, nullptr, false);
    for (auto it = j.is_object() ? j.begin() : j.end(); it != j.end(); ++it) {
      auto a = AnonymizationFromJson(*it, "anonymization");
      if (a)
        projects[it.key()] = *a;
      else
        spdlog::error("project {}: stored anonymization options cannot be used: {}", it.key(), a.error().message);
    }
  }
  stored_ = stored;
  MutexLock lock(mu_);
  receivers_ = std::move(all);
  // Listening failures are found again by the next Reconcile; conflicts are known now.
  errors_ = std::move(held_back);
  if (routing_usable) {
    site_rules_ = rules;
    site_routing_json_ = routing_json;
  }
  project_anonymization_ = std::move(projects);
}

Result<bool> ReceiverService::Reload() {
  MutexLock change(change_mu_);
  auto stored = ReadStored();
  if (!stored) return tl::unexpected(stored.error());
  if (*stored == stored_) return false;
  Apply(*stored, config_receivers_);
  (void)Reconcile(0, /*log_failures=*/true);
  return true;
}

void ReceiverService::RetryFailedPorts() {
  {
    MutexLock lock(mu_);
    bool any = false;
    for (const auto& r : receivers_) any = any || (r->enabled && errors_.count(r->id) > 0);
    if (!any) return;
  }
  MutexLock change(change_mu_);
  (void)Reconcile(0, /*log_failures=*/false);
}

std::optional<AnonymizationChoices> ReceiverService::ProjectAnonymization(const std::string& project) const {
  MutexLock lock(mu_);
  auto it = project_anonymization_.find(project);
  if (it == project_anonymization_.end()) return std::nullopt;
  return it->second;
}

Result<void> ReceiverService::SetProjectAnonymization(const std::string& project,
                                                      const std::optional<AnonymizationChoices>& a) {
  MutexLock change(change_mu_);
  nlohmann::json all = nlohmann::json::object();
  {
    MutexLock lock(mu_);
    auto copy = project_anonymization_;
    if (a)
      copy[project] = *a;
    else
      copy.erase(project);
    for (const auto& [name, options] : copy) all[name] = AnonymizationToJson(options);
  }
  if (auto s = db_.SetSetting(kProjectAnonymizationKey, all.dump()); !s) return s;
  MutexLock lock(mu_);
  if (a)
    project_anonymization_[project] = *a;
  else
    project_anonymization_.erase(project);
  return {};
}

void ReceiverService::Stop() {
  retry_.reset();  // before change_mu_: a retry in progress takes it
  MutexLock change(change_mu_);
  for (auto& [_, l] : listeners_) l.server->StopAccepting();
  for (auto& [_, l] : listeners_) l.server->Stop();
  listeners_.clear();
  retiring_.JoinAll();
}

Result<void> ReceiverService::Reconcile(uint16_t must_open, bool log_failures) {
  struct Want {
    std::string bind;
    dicom::ServerTls tls;
    std::vector<std::string> ids, titles;
  };
  std::map<uint16_t, Want> want;
  {
    MutexLock lock(mu_);
    for (const auto& r : receivers_) {
      if (!r->enabled) continue;
      Want& w = want[r->port];
      if (w.ids.empty()) {
        w.bind = r->bind;
        w.tls = r->tls;
      }
      w.ids.push_back(r->id);
      w.titles.push_back(r->ae_title);
    }
  }
  for (auto it = listeners_.begin(); it != listeners_.end();) {
    auto w = want.find(it->first);
    if (w == want.end() || w->second.bind != it->second.bind || !SameTls(w->second.tls, it->second.tls)) {
      // The port closes now; running associations finish on their own thread, so a change
      // never waits for a transfer (nor holds up other changes).
      it->second.server->StopAccepting();
      spdlog::info("stopped listening on {}:{}", it->second.bind, it->first);
      std::shared_ptr<dicom::AssociationServer> retiring(std::move(it->second.server));
      retiring_.Add([retiring] { retiring->Stop(); });
      it = listeners_.erase(it);
    } else {
      ++it;
    }
  }
  Result<void> result;
  for (const auto& [port, w] : want) {
    if (listeners_.count(port)) {
      MutexLock lock(mu_);
      for (const auto& id : w.ids) errors_.erase(id);
      continue;
    }
    dicom::ServerOptions opt;
    opt.ae_title = fmt::format("{}", fmt::join(w.titles, ","));
    opt.bind = w.bind;
    opt.port = port;
    opt.workers = workers_;
    opt.tls = w.tls;
    const uint16_t p = port;
    opt.admit = [this, p](const std::string& called, const std::string& calling, const std::string& peer) {
      return Admit(p, called, calling, peer);
    };
    auto server = std::make_unique<dicom::AssociationServer>(opt, fallback_);
    auto started = server->Start();
    // Who holds the port is read from /proc before taking mu_ (Admit needs it meanwhile).
    std::string why = started ? ""
                      : started.error().code == Code::kAlreadyExists
                          ? fmt::format("port {} is already in use on {} ({})", port, w.bind, DescribePortOwner(port))
                          : started.error().message;
    MutexLock lock(mu_);
    if (!started) {
      if (log_failures)
        spdlog::error("receiver {}: not listening: {}", opt.ae_title, why);
      else
        spdlog::debug("receiver {}: not listening: {}", opt.ae_title, why);
      for (const auto& id : w.ids) errors_[id] = why;
      if (port == must_open && result) result = Fail(started.error().code, why, "port");
      continue;
    }
    for (const auto& id : w.ids) errors_.erase(id);
    spdlog::info("receiver {} listening on {}:{}{}", opt.ae_title, w.bind, server->port(),
                 w.tls.enabled ? " (TLS)" : "");
    listeners_.emplace(port, Listener{w.bind, w.tls, std::move(server)});
  }
  return result;
}

dicom::Admission ReceiverService::Admit(uint16_t port, const std::string& called, const std::string& calling,
                                        const std::string& peer) {
  dicom::Admission a = Decide(port, called, calling, peer);
  using Verdict = dicom::Admission::Verdict;
  using Outcome = AssociationAttempt::Outcome;
  attempts_.Record({std::chrono::steady_clock::now(), port, called, calling, peer,
                    a.verdict == Verdict::kAccept            ? Outcome::kAccepted
                    : a.verdict == Verdict::kUnknownCalledAe ? Outcome::kUnknownCalledAe
                                                             : Outcome::kCallingAeNotAllowed});
  return a;
}

dicom::Admission ReceiverService::Decide(uint16_t port, const std::string& called, const std::string& calling,
                                         const std::string& peer) {
  dicom::Admission a;
  std::shared_ptr<const Receiver> r;
  {
    MutexLock lock(mu_);
    for (const auto& c : receivers_) {
      if (c->enabled && c->port == port && c->ae_title == called) r = c;
    }
  }
  if (!r) {
    a.name = called;
    return a;
  }
  a.name = r->ae_title;
  if (r->whitelist_enabled && !r->whitelist->Allows(calling, peer)) {
    a.verdict = dicom::Admission::Verdict::kCallingAeNotAllowed;
    return a;
  }
  a.verdict = dicom::Admission::Verdict::kAccept;
  a.sink = std::make_shared<OriginSink>(ReceiverPolicy(*r), site_);
  if (preferred_) a.preferred_transfer_syntax = preferred_(calling);
  if (r->query_retrieve) {
    auto qr = std::make_shared<ArchiveQuerySink>(site_.pipeline, db_, r->query_retrieve_projects,
                                                 r->query_names_ignore_case, move_destinations_);
    a.query = qr;
    a.retrieve = qr;
  }
  if (r->mpps) {
    a.mpps = mpps_;
    a.mpps_forward = r->mpps_forward;
  }
  return a;
}

const Receiver* ReceiverService::Find(const std::string& id) const {
  const Receiver* by_title = nullptr;
  int titles = 0;
  for (const auto& r : receivers_) {
    if (r->id == id || fmt::format("{}@{}", r->ae_title, r->port) == id) return r.get();
    if (r->ae_title == id) {
      by_title = r.get();
      ++titles;
    }
  }
  return titles == 1 ? by_title : nullptr;
}

std::vector<Receiver> ReceiverService::List() const {
  MutexLock lock(mu_);
  std::vector<Receiver> out;
  for (const auto& r : receivers_) out.push_back(*r);
  return out;
}

Result<Receiver> ReceiverService::Get(const std::string& id) const {
  MutexLock lock(mu_);
  if (const Receiver* r = Find(id)) return *r;
  return Fail(Code::kNotFound, NotFoundMessage(id), "id");
}

std::string ReceiverService::NotFoundMessage(const std::string& id) const {
  std::vector<std::string> same;
  for (const auto& r : receivers_) {
    if (r->ae_title == id) same.push_back(r->id);
  }
  if (same.size() > 1) {
    return fmt::format("AE title {} is used by several receivers (ids {}): give the id or AE@port", id,
                       fmt::join(same, ", "));
  }
  return fmt::format("no receiver '{}'", id);
}

std::string ReceiverService::Status(const std::string& id) const {
  MutexLock lock(mu_);
  const Receiver* r = Find(id);
  if (!r) return "unknown";
  if (auto it = errors_.find(r->id); it != errors_.end()) return "error: " + it->second;
  if (!r->enabled) return "disabled";
  return "listening";
}

std::vector<ReceiverService::Problem> ReceiverService::NotListening() const {
  MutexLock lock(mu_);
  std::vector<Problem> out;
  for (const auto& r : receivers_) {
    if (auto it = errors_.find(r->id); it != errors_.end()) out.push_back(Problem{*r, it->second});
  }
  return out;
}

nlohmann::json ReceiverService::ToJson(const Receiver& r) const {
  nlohmann::json j = ReceiverToJson(r);
  j["status"] = Status(r.id);
  return j;
}

int ReceiverService::IdleSeconds(const std::string& id) const {
  MutexLock lock(mu_);
  const Receiver* r = Find(id);
  return r ? r->staging_idle_seconds : 60;
}

Result<void> ReceiverService::CheckConflicts(const Receiver& r, const std::string& replacing) const {
  MutexLock lock(mu_);
  for (const auto& o : receivers_) {
    if (o->id == replacing || !CannotShare(*o, r)) continue;
    if (o->ae_title == r.ae_title) {
      return Fail(Code::kAlreadyExists,
                  fmt::format("receiver {} already has AE title {} on port {}", o->id, r.ae_title, r.port), "port");
    }
    return Fail(Code::kConflict,
                fmt::format("port {} is used by receiver {} ({}) with bind {}{}: receivers sharing a port share "
                            "its bind address and TLS settings",
                            r.port, o->id, o->ae_title, o->bind, o->tls.enabled ? " and TLS" : ""),
                "port");
  }
  return {};
}

Result<Receiver> ReceiverService::Create(const nlohmann::json& body, bool dry_run) {
  MutexLock change(change_mu_);
  auto r = ReceiverFromJson(body, ReceiverOrigin::kApi);
  if (!r) return r;
  if (auto c = CheckConflicts(*r, ""); !c) return tl::unexpected(c.error());
  if (dry_run) return r;
  auto id = db_.InsertReceiver(ReceiverToJson(*r).dump());
  if (!id) return tl::unexpected(id.error());
  r->id = std::to_string(*id);
  auto shared = std::make_shared<const Receiver>(*r);
  {
    MutexLock lock(mu_);
    receivers_.push_back(shared);
  }
  if (auto started = Reconcile(r->enabled ? r->port : 0); !started) {
    {
      MutexLock lock(mu_);
      receivers_.pop_back();
      errors_.erase(r->id);
    }
    (void)db_.DeleteReceiver(*id);
    return tl::unexpected(started.error());
  }
  spdlog::info("receiver {} ({}@{}) created", r->id, r->ae_title, r->port);
  return *r;
}

Result<Receiver> ReceiverService::Update(const std::string& id, const nlohmann::json& patch, bool dry_run) {
  MutexLock change(change_mu_);
  std::shared_ptr<const Receiver> old;
  {
    MutexLock lock(mu_);
    const Receiver* found = Find(id);
    if (!found) return Fail(Code::kNotFound, NotFoundMessage(id), "id");
    for (const auto& r : receivers_) {
      if (r.get() == found) old = r;
    }
  }
  if (old->locked) {
    return Fail(Code::kLocked, fmt::format("receiver {} comes from the config file and is read-only", old->id));
  }
  Receiver base = *old;
  {
    // Held back at start by a conflict: it is stored as enabled, and a change may resolve it.
    MutexLock lock(mu_);
    if (errors_.count(old->id) && !old->enabled) base.enabled = true;
  }
  auto r = PatchReceiver(base, patch);
  if (!r) return r;
  if (auto c = CheckConflicts(*r, old->id); !c) return tl::unexpected(c.error());
  if (dry_run) return r;
  auto replace = [&](const std::shared_ptr<const Receiver>& with) {
    MutexLock lock(mu_);
    for (auto& e : receivers_) {
      if (e->id == old->id) e = with;
    }
  };
  replace(std::make_shared<const Receiver>(*r));
  bool listen_change =
      r->enabled && (!old->enabled || old->port != r->port || old->bind != r->bind || !SameTls(old->tls, r->tls));
  if (auto started = Reconcile(listen_change ? r->port : 0); !started) {
    replace(old);
    {
      MutexLock lock(mu_);
      errors_.erase(old->id);  // back as it was: its own failure is the answer, not its status
    }
    (void)Reconcile();
    return tl::unexpected(started.error());
  }
  if (auto saved = db_.UpdateReceiver(std::stoll(old->id), ReceiverToJson(*r).dump()); !saved) {
    // Not stored: the receiver stays as it was, in memory and on the network.
    replace(old);
    (void)Reconcile();
    return tl::unexpected(saved.error());
  }
  if (!r->enabled) {
    MutexLock lock(mu_);
    errors_.erase(r->id);
  }
  spdlog::info("receiver {} ({}@{}) changed", r->id, r->ae_title, r->port);
  return *r;
}

Result<void> ReceiverService::Remove(const std::string& id) {
  MutexLock change(change_mu_);
  std::string key;
  {
    MutexLock lock(mu_);
    const Receiver* found = Find(id);
    if (!found) return Fail(Code::kNotFound, NotFoundMessage(id), "id");
    if (found->locked) {
      return Fail(Code::kLocked, fmt::format("receiver {} comes from the config file and is read-only", found->id));
    }
    key = found->id;
  }
  if (auto d = db_.DeleteReceiver(std::stoll(key)); !d) return d;
  {
    MutexLock lock(mu_);
    std::erase_if(receivers_, [&](const auto& r) { return r->id == key; });
    errors_.erase(key);
  }
  (void)Reconcile();
  spdlog::info("receiver {} removed", key);
  return {};
}

nlohmann::json ReceiverService::SiteRouting() const {
  MutexLock lock(mu_);
  return site_routing_json_;
}

std::shared_ptr<const RoutingRules> ReceiverService::SiteRules() const {
  MutexLock lock(mu_);
  return site_rules_;
}

Result<nlohmann::json> ReceiverService::SetSiteRouting(const nlohmann::json& body) {
  // Two changes at once must reach the database and the memory in the same order.
  MutexLock change(change_mu_);
  auto rules = ParseSiteRouting(body);
  if (!rules) return tl::unexpected(rules.error());
  nlohmann::json stored{{"project", ""}, {"subject", ""}, {"session", ""}};
  for (const char* k : {"project", "subject", "session"}) {
    if (body.contains(k) && body[k].is_string()) stored[k] = body[k];
    if (body.contains(k) && body[k].is_array()) {
      std::string text;
      for (const auto& line : body[k]) text += line.get<std::string>() + "\n";
      stored[k] = text;
    }
  }
  if (auto s = db_.SetSetting(kRoutingKey, stored.dump()); !s) return tl::unexpected(s.error());
  MutexLock lock(mu_);
  site_rules_ = *rules;
  site_routing_json_ = stored;
  return stored;
}

}  // namespace pb
