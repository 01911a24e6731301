#include "nodes/registry.h"
#include "archive/testing.h"

#include <gtest/gtest.h>

namespace pb {
namespace {

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pb-reg-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    db_ = std::move(*OpenTestDatabase(dir_));
  }
  void TearDown() override {
    reg_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  NodeRegistry& Reg(std::vector<ConfigEntry> config = {}) {
    auto r = NodeRegistry::Create(*db_, config);
    EXPECT_TRUE(r) << r.error().message;
    reg_ = std::move(*r);
    return *reg_;
  }
  static nlohmann::json Node(const std::string& name, const std::string& ae, int port) {
    return {{"name", name}, {"ae_title", ae},    {"host", "127.0.0.1"},
            {"port", port}, {"queryable", true}, {"storable", true}};
  }
  std::filesystem::path dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<NodeRegistry> reg_;
};

TEST_F(RegistryTest, NewDefaultClearsThePreviousOne) {
  auto& reg = Reg();
  auto a = Node("a", "A", 104);
  a["default_storage"] = true;
  a["default_query_retrieve"] = true;
  ASSERT_TRUE(reg.Add(a));
  auto b = Node("b", "B", 104);
  b["default_storage"] = true;
  ASSERT_TRUE(reg.Add(b));
  EXPECT_FALSE(reg.Get("a")->default_storage);
  EXPECT_TRUE(reg.Get("a")->default_query_retrieve);  // the other flag is untouched
  EXPECT_TRUE(reg.Get("b")->default_storage);
  // And it survives a restart (stored, not only in memory).
  auto& again = Reg();
  EXPECT_FALSE(again.Get("a")->default_storage);
}

TEST_F(RegistryTest, SameAeTitleElsewhereWarns) {
  auto& reg = Reg();
  ASSERT_TRUE(reg.Add(Node("a", "PACS", 104)));
  auto same = reg.Add(Node("b", "PACS", 104));  // same host and port: no ambiguity
  ASSERT_TRUE(same);
  EXPECT_TRUE(same->warnings.empty());
  auto other = reg.Add(Node("c", "PACS", 105));
  ASSERT_TRUE(other);
  ASSERT_EQ(other->warnings.size(), 1u);
  EXPECT_NE(other->warnings[0].find("'a'"), std::string::npos);
  EXPECT_NE(other->warnings[0].find("'b'"), std::string::npos);
}

TEST_F(RegistryTest, DuplicateNameConflicts) {
  auto& reg = Reg();
  ASSERT_TRUE(reg.Add(Node("a", "A", 104)));
  EXPECT_EQ(reg.Add(Node("a", "B", 104)).error().code, Code::kAlreadyExists);
}

TEST_F(RegistryTest, ConfigNodesAreLocked) {
  ConfigEntry e{Node("cfg", "CFG", 104), "pb.toml:10", {}};
  auto& reg = Reg({e});
  ASSERT_TRUE(reg.Get("cfg")->locked);
  EXPECT_EQ(reg.Update("cfg", {{"description", "x"}}).error().code, Code::kLocked);
  EXPECT_EQ(reg.Remove("cfg").error().code, Code::kLocked);
  EXPECT_NE(reg.Remove("cfg").error().message.find("config file"), std::string::npos);
  EXPECT_EQ(reg.Add(Node("cfg", "X", 1)).error().code, Code::kAlreadyExists);
}

TEST_F(RegistryTest, InvalidConfigNodeNamesFileLineAndField) {
  ConfigEntry e{Node("cfg", "THIS_TITLE_IS_TOO_LONG", 104), "pb.toml:10", {{"ae_title", 12}}};
  auto r = NodeRegistry::Create(*db_, {e});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("pb.toml:12"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("ae_title"), std::string::npos);
}

TEST_F(RegistryTest, PartialUpdateKeepsOtherFieldsAndRenames) {
  auto& reg = Reg();
  ASSERT_TRUE(reg.Add(Node("a", "A", 104)));
  auto u = reg.Update("a", {{"description", "main PACS"}, {"name", "main"}});
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->node.ae_title, "A");
  EXPECT_FALSE(reg.Get("a"));
  EXPECT_EQ(reg.Get("main")->description, "main PACS");
  auto& again = Reg();
  EXPECT_TRUE(again.Get("main"));
  EXPECT_FALSE(again.Get("a"));
}

TEST_F(RegistryTest, InvalidUpdateChangesNothing) {
  auto& reg = Reg();
  ASSERT_TRUE(reg.Add(Node("a", "A", 104)));
  auto u = reg.Update("a", {{"port", 0}});
  ASSERT_FALSE(u);
  EXPECT_EQ(u.error().field, "port");
  EXPECT_EQ(reg.Get("a")->port, 104);
}

TEST_F(RegistryTest, LockedDefaultIsNotTakenOver) {
  auto cfg = Node("cfg", "CFG", 104);
  cfg["default_storage"] = true;
  auto& reg = Reg({ConfigEntry{cfg, "pb.toml:1", {}}});
  auto b = Node("b", "B", 104);
  b["default_storage"] = true;
  auto r = reg.Add(b);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "default_storage");
  EXPECT_TRUE(reg.Get("cfg")->default_storage);
}

TEST_F(RegistryTest, ATypeIsChosenAtCreationAndAChangeIsRefused) {
  auto& reg = Reg();
  ASSERT_TRUE(reg.Add(Node("a", "A", 104)));
  auto u = reg.Update("a", {{"type", "dicomweb"}, {"url", "https://pacs/dicom-web"}});
  ASSERT_FALSE(u);
  EXPECT_EQ(u.error().code, Code::kInvalidArgument);
  EXPECT_EQ(u.error().field, "type");
  EXPECT_NE(u.error().message.find("chosen when it is created"), std::string::npos) << u.error().message;
  EXPECT_EQ(reg.Get("a")->type, NodeType::kDimse);
  // Naming the type it has is no change.
  EXPECT_TRUE(reg.Update("a", {{"type", "dimse"}, {"description", "x"}}));
}

TEST_F(RegistryTest, AnUpdateThatOmitsASecretKeepsTheStoredOne) {
  auto& reg = Reg();
  nlohmann::json web{{"name", "web"},
                     {"type", "dicomweb"},
                     {"url", "https://pacs/dicom-web/"},
                     {"auth", {{"type", "bearer"}, {"token", "tok-1"}}}};
  ASSERT_TRUE(reg.Add(web));
  // A partial update, and one that sends back what the API showed (has_token, no token).
  auto u = reg.Update("web", {{"description", "x"}, {"auth", {{"type", "bearer"}}}});
  ASSERT_TRUE(u) << u.error().field << ": " << u.error().message;
  EXPECT_EQ(reg.Get("web")->auth.token, "tok-1");
  nlohmann::json shown = NodeToApiJson(*reg.Get("web"), "PACSBRIDGE");
  shown["stow_batch_mb"] = 8;
  u = reg.Update("web", shown);
  ASSERT_TRUE(u) << u.error().field << ": " << u.error().message;
  EXPECT_EQ(reg.Get("web")->auth.token, "tok-1");
  EXPECT_EQ(reg.Get("web")->stow_batch_mb, 8);
  // Stored, not only in memory.
  auto& again = Reg();
  EXPECT_EQ(again.Get("web")->auth.token, "tok-1");
  EXPECT_EQ(again.Get("web")->stow_batch_mb, 8);
  // A new secret replaces it; a change of auth type needs what the new type needs.
  ASSERT_TRUE(again.Update("web", {{"auth", {{"token", "tok-2"}}}}));
  EXPECT_EQ(again.Get("web")->auth.token, "tok-2");
  auto oauth =
      again.Update("web", {{"auth", {{"type", "oauth2"}, {"token_url", "https://login/token"}, {"client_id", "c"}}}});
  ASSERT_FALSE(oauth);
  EXPECT_EQ(oauth.error().field, "auth.client_secret");
  EXPECT_EQ(again.Get("web")->auth.type, "bearer");
}

TEST_F(RegistryTest, InvalidConfigHeaderNamesItsLine) {
  nlohmann::json web{{"name", "web"},
                     {"type", "dicomweb"},
                     {"url", "https://pacs/dicom-web/"},
                     {"headers", {{{"name", "X-A"}, {"value", "1"}}, {{"name", "Bad Name"}, {"value", "2"}}}}};
  auto r = NodeRegistry::Create(*db_, {ConfigEntry{web, "pb.toml:10", {{"headers", 14}}}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "headers[1].name");
  EXPECT_NE(r.error().message.find("pb.toml:14"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace pb

namespace pb {
namespace {

TEST_F(RegistryTest, TestsAreKeptOnlyForTheNodeAsItIsNamedNow) {
  auto& reg = Reg();
  ASSERT_TRUE(reg.Add(Node("a", "A", 104)));
  NodeTestRecord t;
  t.at = "2026-12-03T08:00:00Z";
  t.ok = true;
  t.message = "Connection established";
  ASSERT_TRUE(reg.RecordTest("a", t, 10));
  ASSERT_TRUE(reg.Update("a", {{"name", "b"}}));
  auto gone = reg.RecordTest("a", t, 10);  // an echo that started before the rename
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, Code::kNotFound);
  EXPECT_EQ(db_->NodeTests("b", 10)->size(), 1u);
  EXPECT_TRUE(db_->NodeTests("a", 10)->empty());

  // Rows left under a name by something else (an older version, a node removed from the
  // config file) do not pass to a new node of that name.
  ASSERT_TRUE(db_->AddNodeTest("c", t, 10));
  ASSERT_TRUE(db_->SetNodeState("c", "retrieve_method", "c-move"));
  ASSERT_TRUE(reg.Add(Node("c", "C", 104)));
  EXPECT_TRUE(db_->NodeTests("c", 10)->empty());
  EXPECT_EQ(reg.Get("c")->retrieve_method_learned, "");
}

TEST_F(RegistryTest, AnotherInstancesChangesAreReadAgainAndConfigNodesStay) {
  ConfigEntry e{Node("cfg", "CFG", 104), "pb.toml:10", {}};
  auto& here = Reg({e});
  auto there = NodeRegistry::Create(*db_, {});  // another instance on the same index
  ASSERT_TRUE(there);
  auto unchanged = here.Reload();
  ASSERT_TRUE(unchanged) << unchanged.error().message;
  EXPECT_FALSE(*unchanged);

  ASSERT_TRUE((*there)->Add(Node("pacs", "PACS", 104)));
  EXPECT_FALSE(here.Get("pacs"));  // not before it is read again
  auto added = here.Reload();
  ASSERT_TRUE(added) << added.error().message;
  EXPECT_TRUE(*added);
  ASSERT_TRUE(here.Get("pacs"));
  EXPECT_EQ(here.Get("pacs")->port, 104);
  EXPECT_TRUE(here.Get("cfg")->locked);

  ASSERT_TRUE((*there)->Update("pacs", {{"port", 11112}}));
  ASSERT_TRUE(*here.Reload());
  EXPECT_EQ(here.Get("pacs")->port, 11112);

  ASSERT_TRUE((*there)->Remove("pacs"));
  ASSERT_TRUE(*here.Reload());
  EXPECT_FALSE(here.Get("pacs"));
  EXPECT_TRUE(here.Get("cfg"));
  EXPECT_FALSE(*here.Reload());  // nothing new since
}

}  // namespace
}  // namespace pb
