#pragma once
// The registry of remote nodes: locked entries from the config file merged with entries created
// through the API (stored in the index database). Enforces the rules that span nodes: unique
// names, one default query/retrieve and one default storage node, AE-title ambiguity warnings.
// Thread-safe.
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "archive/database.h"
#include "core/config_entry.h"
#include "core/thread_annotations.h"
#include "nodes/node.h"

namespace pb {

struct NodeChange {
  Node node;
  std::vector<std::string> warnings;
};

class NodeRegistry {
 public:
  // Validates the config entries (errors name file and line) and loads the stored nodes.
  [[nodiscard]] static Result<std::unique_ptr<NodeRegistry>> Create(Database& db,
                                                                    const std::vector<ConfigEntry>& config);

  std::vector<Node> List() const;
  [[nodiscard]] Result<Node> Get(const std::string& name) const;
  // `dry_run`: every check, nothing stored (the UI's live validation).
  [[nodiscard]] Result<NodeChange> Add(const nlohmann::json& body, bool dry_run = false);
  // Applies a partial update (fields not given keep their value).
  [[nodiscard]] Result<NodeChange> Update(const std::string& name, const nlohmann::json& patch, bool dry_run = false);
  [[nodiscard]] Result<void> Remove(const std::string& name);
  // Reads the stored nodes again: what other instances on the same index changed (config entries
  // stay as they are). Returns whether anything had changed.
  [[nodiscard]] Result<bool> Reload();
  // Remembers the retrieve method that worked for the node under "auto" (survives restarts).
  [[nodiscard]] Result<void> SetRetrieveMethodLearned(const std::string& name, const std::string& method);
  // Keeps a connection test in the history of the node named `name`, under the registry's
  // lock, so that a rename or delete meanwhile cannot misfile it (kNotFound when it is gone).
  [[nodiscard]] Result<void> RecordTest(const std::string& name, const NodeTestRecord& test, int keep);

 private:
  NodeRegistry(Database& db) : db_(db) {}
  [[nodiscard]] Result<NodeChange> Store(Node node, const std::string& replaces, bool dry_run = false) REQUIRES(mu_);
  std::vector<std::string> Warnings(const Node& n) const REQUIRES(mu_);
  Node* Find(const std::string& name) REQUIRES(mu_);
  const Node* Find(const std::string& name) const REQUIRES(mu_);

  // The stored nodes that can be used, with their learned state (reads the database; no lock).
  std::vector<Node> ParseStored(const std::vector<std::pair<std::string, std::string>>& stored) const;
  // Adds them (a config entry of the same name wins).
  void AddStored(std::vector<Node> parsed) REQUIRES(mu_);

  Database& db_;
  mutable Mutex mu_;
  std::vector<std::pair<std::string, std::string>> stored_ GUARDED_BY(mu_);  // as last read
  uint64_t local_changes_ GUARDED_BY(mu_) = 0;  // changes made here (a Reload's read may be older)
  std::vector<Node> nodes_ GUARDED_BY(mu_);
};

}  // namespace pb
