#include "dicom/retrieve.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace pb::dicom {
namespace {

constexpr const char* kCt = "1.2.840.10008.5.1.4.1.1.2";
constexpr const char* kMr = "1.2.840.10008.5.1.4.1.1.4";
constexpr const char* kExplicit = "1.2.840.10008.1.2.1";
constexpr const char* kImplicit = "1.2.840.10008.1.2";
constexpr const char* kJpegLsLossless = "1.2.840.10008.1.2.4.80";

TEST(GetContexts, KnownClassesGetOneContextPerSyntaxPreferredFirst) {
  GetRequest rq;
  rq.sop_classes = {kCt, kMr};
  rq.preferred_transfer_syntax = kJpegLsLossless;
  auto contexts = ProposedGetContexts(rq);
  ASSERT_GT(contexts.size(), 5u);
  EXPECT_EQ(contexts[0].first, "1.2.840.10008.5.1.4.1.2.2.3");  // Study Root GET
  std::map<std::string, std::vector<std::string>> by_class;
  for (size_t i = 1; i < contexts.size(); ++i) {
    EXPECT_EQ(contexts[i].second.find(','), std::string::npos) << "one syntax per context";
    by_class[contexts[i].first].push_back(contexts[i].second);
  }
  ASSERT_EQ(by_class.size(), 2u);
  for (const auto& [cls, syntaxes] : by_class) {
    EXPECT_EQ(syntaxes.front(), kJpegLsLossless) << cls;
    EXPECT_EQ(syntaxes[1], kExplicit) << cls;
    EXPECT_EQ(syntaxes[2], kImplicit) << cls;
    EXPECT_EQ(std::set<std::string>(syntaxes.begin(), syntaxes.end()).size(), syntaxes.size());
  }
}

TEST(GetContexts, StaysWithinThe128ContextLimit) {
  GetRequest rq;
  for (int i = 1; i <= 90; ++i) rq.sop_classes.push_back("1.2.3." + std::to_string(i));
  auto contexts = ProposedGetContexts(rq);
  EXPECT_LE(contexts.size(), 128u);
  rq.sop_classes.resize(3);
  EXPECT_LE(ProposedGetContexts(rq).size(), 128u);
  EXPECT_GT(ProposedGetContexts(rq).size(), 3u * 3);  // few classes: compressed syntaxes too
}

TEST(GetContexts, UnknownClassesGetCommonStorageClassesUncompressed) {
  GetRequest rq;  // no SOP classes known
  auto contexts = ProposedGetContexts(rq);
  EXPECT_LE(contexts.size(), 128u);
  std::set<std::string> classes, syntaxes;
  for (size_t i = 1; i < contexts.size(); ++i) {
    classes.insert(contexts[i].first);
    syntaxes.insert(contexts[i].second);
  }
  EXPECT_TRUE(classes.count(kCt));
  EXPECT_TRUE(classes.count(kMr));
  EXPECT_EQ(syntaxes, (std::set<std::string>{kExplicit, kImplicit}));
}

TEST(TransferSyntaxNames, UidKeywordAndDcmtkNameAreAccepted) {
  EXPECT_EQ(TransferSyntaxUid(kJpegLsLossless), kJpegLsLossless);
  EXPECT_EQ(TransferSyntaxUid("JPEGLSLossless"), kJpegLsLossless);
  EXPECT_EQ(TransferSyntaxUid("JPEG-LS Lossless"), kJpegLsLossless);
  EXPECT_EQ(TransferSyntaxUid("ImplicitVRLittleEndian"), kImplicit);
  EXPECT_EQ(TransferSyntaxUid("nonsense"), "");
  EXPECT_EQ(TransferSyntaxUid(""), "");
}

}  // namespace
}  // namespace pb::dicom
