#include "jobs/job_request.h"
#include "archive/testing.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace pb {
namespace {

class ChooseNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pb-choose-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto db = OpenTestDatabase(dir_);
    ASSERT_TRUE(db) << db.error().message;
    db_ = std::move(*db);
    auto reg = NodeRegistry::Create(*db_, {});
    ASSERT_TRUE(reg) << reg.error().message;
    reg_ = std::move(*reg);
  }
  void TearDown() override {
    reg_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  void AddWeb(const std::string& name, nlohmann::json extra) {
    nlohmann::json j{{"name", name},
                     {"type", "dicomweb"},
                     {"url", "http://127.0.0.1:8042/dicom-web/"},
                     {"queryable", true},
                     {"storable", true}};
    j.update(extra);
    auto r = reg_->Add(j);
    ASSERT_TRUE(r) << r.error().message;
  }
  std::filesystem::path dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<NodeRegistry> reg_;
};

TEST_F(ChooseNodeTest, DicomWebNodeWithoutWadoOrQidoCannotBeRetrievedFrom) {
  AddWeb("no-wado", {{"wado", false}});
  AddWeb("no-qido", {{"qido", false}});
  auto r = ChooseNode(*reg_, {{"node", "no-wado"}}, NodeRole::kQueryRetrieve);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kConflict);
  EXPECT_EQ(r.error().field, "node");
  EXPECT_EQ(r.error().message,
            "node 'no-wado' cannot be retrieved from: its wado capability is off (set wado to true)");
  r = ChooseNode(*reg_, {{"node", "no-qido"}}, NodeRole::kQueryRetrieve);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kConflict);
  EXPECT_NE(r.error().message.find("its qido capability is off (set qido to true)"), std::string::npos);
  // Sending does not need them.
  auto send = ChooseNode(*reg_, {{"node", "no-wado"}}, NodeRole::kStorage);
  ASSERT_TRUE(send) << send.error().message;
  EXPECT_EQ(send->name, "no-wado");
}

TEST_F(ChooseNodeTest, DicomWebNodeWithoutStowCannotTakeASend) {
  AddWeb("no-stow", {{"stow", false}});
  auto r = ChooseNode(*reg_, {{"node", "no-stow"}}, NodeRole::kStorage);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kConflict);
  EXPECT_EQ(r.error().field, "node");
  EXPECT_EQ(r.error().message, "node 'no-stow' cannot take a send: its stow capability is off (set stow to true)");
  auto retrieve = ChooseNode(*reg_, {{"node", "no-stow"}}, NodeRole::kQueryRetrieve);  // needs only qido and wado
  ASSERT_TRUE(retrieve) << retrieve.error().message;
  EXPECT_EQ(retrieve->name, "no-stow");
}

TEST_F(ChooseNodeTest, DefaultNodeIsCheckedToo) {
  AddWeb("default-web", {{"stow", false}, {"default_storage", true}});
  auto r = ChooseNode(*reg_, nlohmann::json::object(), NodeRole::kStorage);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kConflict);
  EXPECT_NE(r.error().message.find("'default-web'"), std::string::npos);
}

TEST_F(ChooseNodeTest, DimseNodesIgnoreTheDicomWebFlags) {
  ASSERT_TRUE(reg_->Add({{"name", "pacs"},
                         {"ae_title", "PACS"},
                         {"host", "127.0.0.1"},
                         {"port", 104},
                         {"queryable", true},
                         {"storable", true},
                         {"wado", false},
                         {"stow", false}}));
  EXPECT_TRUE(ChooseNode(*reg_, {{"node", "pacs"}}, NodeRole::kQueryRetrieve));
  EXPECT_TRUE(ChooseNode(*reg_, {{"node", "pacs"}}, NodeRole::kStorage));
}

}  // namespace
}  // namespace pb
