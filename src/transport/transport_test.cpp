#include "transport/transport.h"
#include "transport/connection_check.h"

#include <set>

#include <gtest/gtest.h>

#include "core/validate.h"

namespace pb {
namespace {

TEST(UidThatCannotExist, IsAValidUuidDerivedUidAndNeverRepeats) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    std::string uid = UidThatCannotExist();
    // PS3.5 9.1: digits and dots, no leading zero in a component, at most 64 characters;
    // B.2: a UUID's integer under the root 2.25.
    EXPECT_TRUE(IsValidUid(uid)) << uid;
    EXPECT_LE(uid.size(), 64u) << uid;
    EXPECT_EQ(uid.rfind("2.25.", 0), 0u) << uid;
    EXPECT_NE(uid[5], '0') << uid;
    seen.insert(uid);
  }
  EXPECT_EQ(seen.size(), 200u);
}

TEST(ConnectionTest, AllChecksOkIsEstablished) {
  ConnectionTest t{{{"echo", "ok", "C-ECHO answered in 3 ms", 3}, {"find", "ok", "may query", 5}}};
  EXPECT_TRUE(t.ok());
  EXPECT_EQ(t.Summary(), "Connection established");
  auto j = t.ToJson();
  EXPECT_EQ(j["latency_ms"], 3);
  EXPECT_EQ(j["checks"].size(), 2u);
  EXPECT_EQ(j["checks"][1]["outcome"], "ok");
}

TEST(ConnectionTest, ARefusedQueryAfterAGoodEchoSaysBoth) {
  ConnectionTest t{{{"echo", "ok", "C-ECHO answered in 3 ms", 3},
                    {"find", "failed", "queries are refused for calling AE title 'X': aborted", 4}}};
  EXPECT_FALSE(t.ok());
  EXPECT_EQ(t.Summary(), "Connection failed: C-ECHO works, but queries are refused for calling AE title 'X': aborted");
  EXPECT_EQ(t.ToJson()["ok"], false);
}

TEST(ConnectionTest, AFailedEchoIsTheReasonAndSkippedChecksDoNotFail) {
  ConnectionTest t{{{"echo", "failed", "connection refused", 0}, {"find", "skipped", "the echo failed", 0}}};
  EXPECT_EQ(t.Summary(), "Connection failed: connection refused");
  ConnectionTest skipped{{{"echo", "ok", "fine", 1}, {"find", "skipped", "the node is not queryable", 0}}};
  EXPECT_TRUE(skipped.ok());
}

}  // namespace
}  // namespace pb

namespace pb {
namespace {

TEST(TransportFor, ChoosesByTheNodesType) {
  Node dimse;
  dimse.name = "pacs";
  dimse.type = NodeType::kDimse;
  auto t = TransportFor(dimse, TransportContext{"PACSBRIDGE", {}, {}});
  ASSERT_TRUE(t) << t.error().message;
  // C-GET proposes the SOP classes it expects ("auto" may use C-GET); C-MOVE and WADO-RS ask by
  // UID alone.
  RetrieveParams by_get, by_auto, by_move;
  by_get.method = "c-get";
  by_auto.method = "auto";
  by_move.method = "c-move";
  EXPECT_TRUE((*t)->FetchNeedsSopClasses(by_get));
  EXPECT_TRUE((*t)->FetchNeedsSopClasses(by_auto));
  EXPECT_FALSE((*t)->FetchNeedsSopClasses(by_move));
  EXPECT_FALSE((*t)->ListingIsCheap());  // a fresh retrieve is checked against the counts first

  Node web;
  web.name = "cloud";
  web.type = NodeType::kDicomWeb;
  web.url = "http://127.0.0.1:9/dicom-web/";
  web.qido = false;
  auto w = TransportFor(web, TransportContext{"PACSBRIDGE", {}, {}});
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_FALSE((*w)->FetchNeedsSopClasses(by_get));
  EXPECT_FALSE((*w)->ListingIsCheap());  // the job checks a fresh fetch against the counts first
  // A node without QIDO-RS is not searched (no request is made), and the error names it.
  auto found = (*w)->Find(FindQuery{"STUDY", {}, 0});
  ASSERT_FALSE(found);
  EXPECT_EQ(found.error().code, Code::kUnsupported);
  EXPECT_EQ(found.error().message, "node 'cloud' cannot be queried: its qido capability is off");
}

}  // namespace
}  // namespace pb
