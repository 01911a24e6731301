#include "nodes/registry.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "core/thread_annotations.h"
#include "core/validate.h"

namespace pb {

namespace {
Error LockedError(const Node& n) {
  return Error{Code::kLocked,
               fmt::format("node '{}' comes from the config file and is read-only here; change it "
                           "in the config file and restart",
                           n.name),
               "name"};
}
}  // namespace

Result<std::unique_ptr<NodeRegistry>> NodeRegistry::Create(Database& db, const std::vector<ConfigEntry>& config) {
  std::unique_ptr<NodeRegistry> reg(new NodeRegistry(db));
  MutexLock lock(reg->mu_);  // not shared yet; the analysis wants it held all the same
  for (const ConfigEntry& e : config) {
    auto n = NodeFromJson(e.json);
    if (!n) {
      std::string where = e.source;
      auto it = e.key_lines.find(n.error().field.substr(0, n.error().field.find_first_of(".[")));
      if (it != e.key_lines.end()) where = where.substr(0, where.rfind(':')) + ":" + std::to_string(it->second);
      return Fail(Code::kInvalidArgument,
                  fmt::format("{}: [[nodes]] {}: {}", where, n.error().field, n.error().message), n.error().field);
    }
    n->locked = true;
    if (reg->Find(n->name)) {
      return Fail(Code::kInvalidArgument, fmt::format("{}: [[nodes]] name '{}' is used twice", e.source, n->name),
                  "name");
    }
    for (const Node& other : reg->nodes_) {
      if ((n->default_query_retrieve && other.default_query_retrieve) ||
          (n->default_storage && other.default_storage)) {
        return Fail(Code::kInvalidArgument,
                    fmt::format("{}: [[nodes]] '{}' and '{}' are both marked default", e.source, n->name, other.name));
      }
    }
    reg->nodes_.push_back(std::move(*n));
  }
  auto stored = db.LoadNodes();
  if (!stored) return tl::unexpected(stored.error());
  reg->AddStored(reg->ParseStored(*stored));
  reg->stored_ = std::move(*stored);
  for (Node& n : reg->nodes_) {  // the config entries' learned state (stored ones have theirs)
    if (n.locked) {
      if (auto learned = db.GetNodeState(n.name, "retrieve_method")) n.retrieve_method_learned = *learned;
    }
  }
  return reg;
}

std::vector<Node> NodeRegistry::ParseStored(const std::vector<std::pair<std::string, std::string>>& stored) const {
  std::vector<Node> out;
  for (const auto& [name, body] : stored) {
    auto j = nlohmann::json::parse(body, nullptr, false);
    auto n = j.is_discarded() ? Result<Node>(Fail(Code::kInternal, "unreadable")) : NodeFromJson(j);
    if (!n && n.error().field.rfind("schedule", 0) == 0) {
      // Schedules were stored unchecked before they were used: one that does not parse is set
      // aside (the node stays always available) rather than the node lost.
      spdlog::warn("node '{}': its stored schedule is ignored ({}: {}); set a new one", name, n.error().field,
                   n.error().message);
      j.erase("schedule");
      n = NodeFromJson(j);
    }
    if (!n) {
      // Kept in the database, so nothing is lost: fixing the rule or the row brings it back.
      spdlog::error("node '{}' in the database cannot be used and is not listed: {}: {}", name, n.error().field,
                    n.error().message);
      continue;
    }
    if (auto learned = db_.GetNodeState(n->name, "retrieve_method")) n->retrieve_method_learned = *learned;
    out.push_back(std::move(*n));
  }
  return out;
}

void NodeRegistry::AddStored(std::vector<Node> parsed) {
  for (Node& n : parsed) {
    if (Find(n.name)) continue;  // a config entry with the same name wins
    nodes_.push_back(std::move(n));
  }
}

Result<bool> NodeRegistry::Reload() {
  // Read without the lock (jobs ask the registry for node policies while they hold their own);
  // a change made here meanwhile makes what was read older than what is held: it is not applied
  // (the next round reads again).
  uint64_t changes_before = 0;
  {
    MutexLock lock(mu_);
    changes_before = local_changes_;
  }
  auto stored = db_.LoadNodes();
  if (!stored) return tl::unexpected(stored.error());
  {
    MutexLock lock(mu_);
    if (*stored == stored_) return false;
  }
  std::vector<Node> parsed = ParseStored(*stored);
  MutexLock lock(mu_);
  if (local_changes_ != changes_before) return false;
  std::erase_if(nodes_, [](const Node& n) { return !n.locked; });
  AddStored(std::move(parsed));
  stored_ = std::move(*stored);
  return true;
}

Result<void> NodeRegistry::SetRetrieveMethodLearned(const std::string& name, const std::string& method) {
  MutexLock lock(mu_);
  Node* n = Find(name);
  if (!n) return Fail(Code::kNotFound, fmt::format("no node named '{}'", name), "name");
  if (n->retrieve_method_learned == method) return {};
  if (auto r = db_.SetNodeState(name, "retrieve_method", method); !r) return r;
  n->retrieve_method_learned = method;
  ++local_changes_;
  return {};
}

Result<void> NodeRegistry::RecordTest(const std::string& name, const NodeTestRecord& test, int keep) {
  MutexLock lock(mu_);
  if (!Find(name)) return Fail(Code::kNotFound, fmt::format("no node named '{}' any more", name), "name");
  return db_.AddNodeTest(name, test, keep);
}

Node* NodeRegistry::Find(const std::string& name) {
  for (Node& n : nodes_)
    if (n.name == name) return &n;
  return nullptr;
}
const Node* NodeRegistry::Find(const std::string& name) const {
  for (const Node& n : nodes_)
    if (n.name == name) return &n;
  return nullptr;
}

std::vector<Node> NodeRegistry::List() const {
  MutexLock lock(mu_);
  std::vector<Node> out = nodes_;
  std::sort(out.begin(), out.end(), [](const Node& a, const Node& b) { return a.name < b.name; });
  return out;
}

Result<Node> NodeRegistry::Get(const std::string& name) const {
  MutexLock lock(mu_);
  if (const Node* n = Find(name)) return *n;
  return Fail(Code::kNotFound, fmt::format("no node named '{}'", name), "name");
}

std::vector<std::string> NodeRegistry::Warnings(const Node& n) const {
  if (n.type != NodeType::kDimse) return {};
  std::vector<std::string> others;
  for (const Node& o : nodes_) {
    if (o.name == n.name || o.type != NodeType::kDimse || o.ae_title != n.ae_title) continue;
    if (o.host != n.host || o.port != n.port) {
      others.push_back(fmt::format("'{}' ({})", o.name, JoinHostPort(o.host, o.port)));
    }
  }
  if (others.empty()) return {};
  return {
      fmt::format("AE title '{}' is also used by node {} at another address: a PACS that "
                  "sends C-MOVE results by AE title cannot tell them apart",
                  n.ae_title, fmt::join(others, ", "))};
}

Result<NodeChange> NodeRegistry::Store(Node node, const std::string& replaces, bool dry_run) {
  // Making a node the default takes the flag from the previous one, unless that one is locked.
  std::vector<Node*> cleared;
  for (Node& o : nodes_) {
    if (o.name == replaces || o.name == node.name) continue;
    bool qr = node.default_query_retrieve && o.default_query_retrieve;
    bool st = node.default_storage && o.default_storage;
    if ((qr || st) && o.locked) {
      return Fail(Code::kLocked,
                  fmt::format("node '{}' from the config file is the default {} node; change "
                              "the config file to move the default",
                              o.name, qr ? "query/retrieve" : "storage"),
                  qr ? "default_query_retrieve" : "default_storage");
    }
  }
  node.locked = false;
  if (dry_run) return NodeChange{node, Warnings(node)};
  for (Node& o : nodes_) {
    if (o.name == replaces || o.name == node.name) continue;
    bool changed = false;
    if (node.default_query_retrieve && o.default_query_retrieve) o.default_query_retrieve = false, changed = true;
    if (node.default_storage && o.default_storage) o.default_storage = false, changed = true;
    if (changed) {
      if (auto r = db_.SaveNode(o.name, NodeToJson(o, true).dump()); !r) return tl::unexpected(r.error());
      cleared.push_back(&o);
    }
  }
  node.locked = false;
  if (auto r = db_.SaveNode(node.name, NodeToJson(node, true).dump(), replaces); !r) {
    return tl::unexpected(r.error());
  }
  ++local_changes_;
  NodeChange change{node, Warnings(node)};
  if (Node* existing = Find(replaces.empty() ? node.name : replaces))
    *existing = node;
  else
    nodes_.push_back(node);
  return change;
}

Result<NodeChange> NodeRegistry::Add(const nlohmann::json& body, bool dry_run) {
  auto n = NodeFromJson(body);
  if (!n) return tl::unexpected(n.error());
  MutexLock lock(mu_);
  if (const Node* existing = Find(n->name)) {
    return Fail(
        Code::kAlreadyExists,
        fmt::format("a node named '{}' exists already{}", n->name, existing->locked ? " (from the config file)" : ""),
        "name");
  }
  if (dry_run) return Store(std::move(*n), {}, true);
  // A new node starts afresh: no learned state or test history left by an earlier node of the
  // same name (removed from the config file, or deleted by an older version).
  if (auto r = db_.DeleteNode(n->name); !r) return tl::unexpected(r.error());
  return Store(std::move(*n), {});
}

Result<NodeChange> NodeRegistry::Update(const std::string& name, const nlohmann::json& patch, bool dry_run) {
  if (!patch.is_object()) return Fail(Code::kInvalidArgument, "the body must be a JSON object");
  MutexLock lock(mu_);
  Node* existing = Find(name);
  if (!existing) return Fail(Code::kNotFound, fmt::format("no node named '{}'", name), "name");
  if (existing->locked) return tl::unexpected(LockedError(*existing));
  nlohmann::json merged = NodeToJson(*existing, true);
  // The type decides every other field: it is chosen when the node is created.
  if (patch.contains("type") && patch["type"] != merged["type"]) {
    return Fail(Code::kInvalidArgument,
                fmt::format("the type of node '{}' is {}: a node's type is chosen when it is created; remove it and "
                            "add it again to change it",
                            name, merged["type"].get<std::string>()),
                "type");
  }
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    if (it->is_object() && merged.contains(it.key()) && merged[it.key()].is_object()) {
      merged[it.key()].update(*it);  // nested objects (tls, auth) merge field by field
    } else {
      merged[it.key()] = *it;
    }
  }
  auto n = NodeFromJson(merged);
  if (!n) return tl::unexpected(n.error());
  n->retrieve_method_learned = existing->retrieve_method_learned;
  if (n->name != name && Find(n->name)) {
    return Fail(Code::kAlreadyExists, fmt::format("a node named '{}' exists already", n->name), "name");
  }
  return Store(std::move(*n), name, dry_run);
}

Result<void> NodeRegistry::Remove(const std::string& name) {
  MutexLock lock(mu_);
  Node* existing = Find(name);
  if (!existing) return Fail(Code::kNotFound, fmt::format("no node named '{}'", name), "name");
  if (existing->locked) return tl::unexpected(LockedError(*existing));
  if (auto r = db_.DeleteNode(name); !r) return tl::unexpected(r.error());
  ++local_changes_;
  nodes_.erase(std::remove_if(nodes_.begin(), nodes_.end(), [&](const Node& n) { return n.name == name; }),
               nodes_.end());
  return {};
}

}  // namespace pb
