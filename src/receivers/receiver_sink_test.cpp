#include "receivers/receiver_sink.h"
#include "archive/testing.h"

#include "ingest/origin_sink.h"

#include <gtest/gtest.h>

namespace pb {
namespace {

class OriginSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pb-rsink-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    blobs_ = std::make_unique<BlobStore>(dir_);
    ASSERT_TRUE(blobs_->Prepare());
    db_ = std::move(*OpenTestDatabase(dir_));
    pipeline_ = std::make_unique<IngestPipeline>(*blobs_, *db_, IngestOptions{});
    staging_ = std::make_unique<StagingArea>(*pipeline_, *db_, *blobs_, [](const std::string&) { return 60; });
    site_ = std::make_unique<IngestSite>(
        IngestSite{*pipeline_, *staging_, expectations_, [this] { return site_rules_; }, "0123456789abcdef0123",
                   [this](const std::string& project) -> std::optional<AnonymizationChoices> {
                     auto it = project_options_.find(project);
                     if (it == project_options_.end()) return std::nullopt;
                     return it->second;
                   },
                   [this] { return !project_options_.empty(); }});
  }
  void TearDown() override {
    site_.reset();
    staging_.reset();
    pipeline_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  Labels Identify(const nlohmann::json& receiver, std::map<uint32_t, std::string> attrs,
                  const std::string& calling = "SCANNER", std::shared_ptr<const Expectation> job = nullptr) {
    auto r = ReceiverFromJson(receiver);
    EXPECT_TRUE(r) << r.error().message;
    return IdentifyAs(ReceiverPolicy(*r), std::move(attrs), calling, job).labels;
  }
  OriginSink::Identity IdentifyAs(std::shared_ptr<const IngestPolicy> policy, std::map<uint32_t, std::string> attrs,
                                  const std::string& calling = "SCANNER",
                                  std::shared_ptr<const Expectation> job = nullptr) {
    OriginSink sink(std::move(policy), *site_);
    return sink.Identify(
        [&](uint32_t tag) -> std::optional<std::string> {
          auto it = attrs.find(tag);
          if (it == attrs.end()) return std::nullopt;
          return it->second;
        },
        calling, job);
  }

  std::filesystem::path dir_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<IngestPipeline> pipeline_;
  std::unique_ptr<StagingArea> staging_;
  ExpectationRegistry expectations_;
  std::shared_ptr<const RoutingRules> site_rules_ = std::make_shared<RoutingRules>();
  std::map<std::string, AnonymizationChoices> project_options_;
  std::unique_ptr<IngestSite> site_;
};

const std::map<uint32_t, std::string> kPlain{
    {0x00081030, "Brain MRI"}, {0x00100010, "Doe^John"}, {0x00100020, "PID77"}, {0x00080050, "ACC1"}};

TEST_F(OriginSinkTest, DefaultRulesWithoutAnonymization) {
  Labels l = Identify({{"ae_title", "R"}, {"anonymize", false}}, kPlain);
  EXPECT_EQ(l.project, "Brain_MRI");
  EXPECT_EQ(l.subject, "Doe_John");
  EXPECT_EQ(l.session, "PID77");
}

TEST_F(OriginSinkTest, AnonymizationPseudonymizesIdentityLabelsAndGuessesNoProject) {
  Labels l = Identify({{"ae_title", "R"}}, kPlain);
  EXPECT_EQ(l.project, "Unassigned");
  EXPECT_EQ(l.subject.rfind("SUBJ_", 0), 0u) << l.subject;
  EXPECT_EQ(l.session.rfind("SESS_", 0), 0u) << l.session;
  EXPECT_EQ(l.subject.find("Doe"), std::string::npos);
  EXPECT_EQ(l.session.find("PID77"), std::string::npos);
  // Stable: the same patient gets the same pseudonym; another patient another one.
  EXPECT_EQ(Identify({{"ae_title", "R"}}, kPlain).subject, l.subject);
  auto other = kPlain;
  other[0x00100010] = "Roe^Jane";
  EXPECT_NE(Identify({{"ae_title", "R"}}, other).subject, l.subject);
}

TEST_F(OriginSinkTest, ChosenLabelsAreKeptWhenAnonymizing) {
  auto attrs = kPlain;
  attrs[0x00104000] = "Project: P1 Subject: S1 Session: E1";
  Labels l = Identify({{"ae_title", "R"}}, attrs);
  EXPECT_EQ(l.project, "P1");
  EXPECT_EQ(l.subject, "S1");
  EXPECT_EQ(l.session, "E1");
  Labels ruled = Identify(
      {{"ae_title", "R"}, {"routing", {{"subject", "(0010,0020):^PID(\\d+)"}}}, {"default_project", "Lab"}}, kPlain);
  EXPECT_EQ(ruled.subject, "77");  // a rule the administrator wrote is trusted
  EXPECT_EQ(ruled.project, "Lab");
}

TEST_F(OriginSinkTest, SiteRulesApplyAfterTheReceiversOwn) {
  auto site = std::make_shared<RoutingRules>();
  site->project = *ParseRoutingRules("(0008,0050):^(ACC\\d)", "routing.project");
  site_rules_ = site;
  EXPECT_EQ(Identify({{"ae_title", "R"}, {"anonymize", false}}, kPlain).project, "ACC1");
  EXPECT_EQ(
      Identify({{"ae_title", "R"}, {"anonymize", false}, {"routing", {{"project", "(0008,1030):^(\\w+)"}}}}, kPlain)
          .project,
      "Brain");
}

TEST_F(OriginSinkTest, ProcessorsAndJobs) {
  nlohmann::json mapped{
      {"ae_title", "R"},
      {"anonymize", false},
      {"processors", nlohmann::json::array({{{"type", "map_ae_to_project"}, {"map", {{"CT1", "Liver"}}}}})}};
  EXPECT_EQ(Identify(mapped, kPlain, "CT1").project, "Liver");
  EXPECT_EQ(Identify(mapped, kPlain, "MR1").project, "Brain_MRI");

  auto job = std::make_shared<Expectation>();
  job->project = "Import";
  job->subject = "S9";
  nlohmann::json by_jobs{{"ae_title", "R"}, {"anonymize", false}, {"identification", "jobs"}};
  Labels l = Identify(by_jobs, kPlain, "PACS", job);
  EXPECT_EQ(l.project, "Import");
  EXPECT_EQ(l.subject, "S9");
  EXPECT_EQ(l.session, "PID77");  // not set by the job: the rules decide
  // "rules" ignores the job unless relabel_from_job is asked for.
  EXPECT_EQ(Identify({{"ae_title", "R"}, {"anonymize", false}}, kPlain, "PACS", job).project, "Brain_MRI");
  nlohmann::json relabel{
      {"ae_title", "R"}, {"anonymize", false}, {"processors", nlohmann::json::array({{{"type", "relabel_from_job"}}})}};
  EXPECT_EQ(Identify(relabel, kPlain, "PACS", job).project, "Import");
}

TEST(Expectations, MatchByMoveOriginatorThenUids) {
  ExpectationRegistry reg;
  auto a = std::make_shared<Expectation>();
  a->job_id = 1;
  a->calling_ae = "PB";
  a->study_uids = {"1.1"};
  auto b = std::make_shared<Expectation>();
  b->job_id = 2;
  b->series_uids = {"2.1.1"};
  ExpectationScope sa(reg, a), sb(reg, b);
  reg.AddMessageId(sa.token(), 7);
  EXPECT_EQ(reg.Match("x", "2.1.1", "9.9", "PB", 7)->job_id, 1);  // the C-MOVE it came from
  EXPECT_EQ(reg.Match("x", "2.1.1", "9.9", "PB", 8)->job_id, 2);
  EXPECT_EQ(reg.Match("x", "y", "1.1", "", -1)->job_id, 1);
  EXPECT_EQ(reg.Match("x", "y", "z", "", -1), nullptr);
  reg.AddSopUids(sb.token(), {"3.3.3"});
  EXPECT_EQ(reg.Match("3.3.3", "y", "z", "", -1)->job_id, 2);
}

// A retrieve job is an origin like a receiver: the same rules, its labels imposed.
std::shared_ptr<IngestPolicy> JobPolicy(const std::string& project = "") {
  auto p = std::make_shared<IngestPolicy>();
  p->name = "retrieve job 1";
  p->project = project;
  p->anonymize_in_anonymizing_projects = true;
  return p;
}

TEST_F(OriginSinkTest, EveryOriginGetsTheSameIdentification) {
  // A receiver with default settings and a retrieve job without labels file alike.
  Labels by_receiver = Identify({{"ae_title", "R"}, {"anonymize", false}}, kPlain);
  Labels by_job = IdentifyAs(JobPolicy(), kPlain).labels;
  EXPECT_EQ(std::tie(by_job.project, by_job.subject, by_job.session),
            std::tie(by_receiver.project, by_receiver.subject, by_receiver.session));
  // The site's rules apply to both.
  auto site = std::make_shared<RoutingRules>();
  site->project = *ParseRoutingRules("(0008,0050):^(ACC\\d+)$", "routing.project");
  site_rules_ = site;
  EXPECT_EQ(IdentifyAs(JobPolicy(), kPlain).labels.project, "ACC1");
  EXPECT_EQ(Identify({{"ae_title", "R"}, {"anonymize", false}}, kPlain).project, "ACC1");
}

TEST_F(OriginSinkTest, AJobsLabelsAreImposed) {
  auto p = JobPolicy("TRIAL");
  p->subject = "S01";
  Labels l = IdentifyAs(p, kPlain).labels;
  EXPECT_EQ(std::tie(l.project, l.subject, l.session), std::tie("TRIAL", "S01", "PID77"));
}

TEST_F(OriginSinkTest, ARetrieveIntoAnAnonymizingProjectIsAnonymized) {
  project_options_["TRIAL"] = AnonymizationChoices{true, false, false, false};
  auto id = IdentifyAs(JobPolicy("TRIAL"), kPlain);
  EXPECT_TRUE(id.anonymize);
  EXPECT_TRUE(id.choices.retain_dates);  // the project's own options
  // Subject and session from Patient Name and ID become pseudonyms, as for a receiver.
  EXPECT_EQ(id.labels.subject.rfind("SUBJ_", 0), 0u) << id.labels.subject;
  EXPECT_EQ(id.labels.session.rfind("SESS_", 0), 0u) << id.labels.session;
  EXPECT_EQ(id.labels.project, "TRIAL");
  // Data sets come in memory for such origins (nothing original reaches the disk).
  EXPECT_TRUE(OriginSink(JobPolicy("TRIAL"), *site_).WantsDataset());
  // A project without its own options: filed as received, bit for bit, while TRIAL anonymizes.
  EXPECT_FALSE(IdentifyAs(JobPolicy("OTHER"), kPlain).anonymize);
  EXPECT_FALSE(OriginSink(JobPolicy("OTHER"), *site_).WantsDataset());
  // Without a project imposed, any could be chosen by the rules: data comes in memory.
  EXPECT_TRUE(OriginSink(JobPolicy(""), *site_).WantsDataset());
  project_options_.clear();
  EXPECT_FALSE(OriginSink(JobPolicy(""), *site_).WantsDataset());
}

}  // namespace
}  // namespace pb
