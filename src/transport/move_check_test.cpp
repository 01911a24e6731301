#include "transport/move_check.h"

#include <gtest/gtest.h>

namespace pb {
namespace {

// The C-MOVE of one instance of node "pacs" (PACS at 10.0.0.5) to our receiver PB at
// 10.0.0.9:11112, answered with `status` and counts (PS3.4 C.4.2.1.5).
MoveFacts Facts(uint16_t status, int completed, int failed, int warning, bool arrived) {
  MoveFacts f;
  f.node = "pacs";
  f.pacs_ae = "PACS";
  f.pacs_host = "10.0.0.5";
  f.calling_ae = "PBCALL";
  f.destination = "PB";
  f.our_host = "10.0.0.9";
  f.our_port = 11112;
  f.answer.status = status;
  f.answer.counts = {0, completed, failed, warning};
  f.arrived = arrived;
  f.latency_ms = 42;
  return f;
}

void ExpectNames(const MoveCheck& c, const std::vector<std::string>& parts) {
  for (const auto& p : parts) EXPECT_NE(c.message.find(p), std::string::npos) << p << " not in: " << c.message;
}

TEST(ClassifyMove, AnArrivedInstanceMeansThePacsKnowsAndReachesUs) {
  MoveCheck c = ClassifyMove(Facts(0x0000, 1, 0, 0, true));
  EXPECT_EQ(c.ok, std::optional<bool>(true));
  EXPECT_EQ(c.outcome, "known");
  ExpectNames(c, {"node 'pacs' knows PB and reaches us at 10.0.0.9:11112", "42 ms"});
  nlohmann::json j = c.ToJson();
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["status"], "0x0000");
  EXPECT_EQ(j["completed"], 1);
  EXPECT_EQ(j["failed"], 0);
  EXPECT_EQ(j["instance_arrived"], true);
  EXPECT_EQ(j["destination"], (nlohmann::json{{"ae_title", "PB"}, {"host", "10.0.0.9"}, {"port", 11112}}));
  EXPECT_EQ(j["latency_ms"], 42);
}

TEST(ClassifyMove, MoveDestinationUnknownSaysWhatToRegister) {
  MoveCheck c = ClassifyMove(Facts(0xA801, 0, 0, 0, false));
  EXPECT_EQ(c.ok, std::optional<bool>(false));
  EXPECT_EQ(c.outcome, "unknown_destination");
  ExpectNames(c, {"does not know the move destination PB", "0xA801", "AE title PB, host 10.0.0.9, port 11112"});
}

TEST(ClassifyMove, SuccessWithoutTheInstanceMeansAWrongAddress) {
  for (const MoveFacts& f : {Facts(0x0000, 1, 0, 0, false), Facts(0x0000, 0, 0, 0, false)}) {
    MoveCheck c = ClassifyMove(f);
    EXPECT_EQ(c.outcome, "not_delivered");
    EXPECT_EQ(c.ok, std::optional<bool>(false));
    ExpectNames(c, {"knows the AE title PB but sends to an address that does not reach us", "10.0.0.9:11112"});
  }
}

TEST(ClassifyMove, FailedSubOperationsMeanAWrongAddress) {
  for (uint16_t status : {uint16_t{0xA702}, uint16_t{0xB000}, uint16_t{0xC000}}) {
    MoveCheck c = ClassifyMove(Facts(status, 0, 1, 0, false));
    EXPECT_EQ(c.outcome, "not_delivered") << status;
    ExpectNames(c, {"sends to an address that does not reach us", "failed 1"});
  }
}

TEST(ClassifyMove, AFailureWithNothingAttemptedIsARefusalNamingTheCauses) {
  MoveFacts f = Facts(0xC000, 0, 0, 0, false);
  MoveCheck c = ClassifyMove(f);
  EXPECT_EQ(c.ok, std::optional<bool>(false));
  EXPECT_EQ(c.outcome, "refused");
  ExpectNames(c, {"refused the C-MOVE", "0xC000", "does not know the move destination PB",
                  "address it has for it does not reach us", "calling AE title PBCALL may not move",
                  "AE title PB, host 10.0.0.9, port 11112"});
  f.answer.counts = {-1, -1, -1, -1};  // counts not given
  EXPECT_EQ(ClassifyMove(f).outcome, "refused");
  EXPECT_EQ(ClassifyMove(f).ToJson()["completed"], nullptr);
}

TEST(ClassifyMove, WhatOurReceiversRefusedIsNamed) {
  MoveFacts f = Facts(0xA702, 0, 1, 0, false);
  f.seen.push_back({std::chrono::steady_clock::now(), 11112, "pb", "PACS", "10.0.0.5",
                    AssociationAttempt::Outcome::kUnknownCalledAe});
  MoveCheck c = ClassifyMove(f);
  EXPECT_EQ(c.outcome, "not_delivered");
  ExpectNames(c, {"'pb'", "case matters"});
}

TEST(ClassifyMove, AnUnknownHostIsSaidSo) {
  MoveFacts f = Facts(0xA801, 0, 0, 0, false);
  f.our_host.clear();
  MoveCheck c = ClassifyMove(f);
  ExpectNames(c, {"host this machine's address, port 11112"});
  EXPECT_EQ(c.ToJson()["destination"]["host"], nullptr);
}

TEST(MoveReceiver, TheDestinationMustBeAnEnabledListeningReceiver) {
  Node n;
  n.name = "pacs";
  MoveCheckContext ctx;
  Receiver a;
  a.id = "a";
  a.ae_title = "PB";
  a.port = 11112;
  Receiver b = a;
  b.id = "b";
  b.port = 11113;
  ctx.receivers = {a, b};
  ctx.listening = [](const Receiver& r) { return r.id != "a"; };
  auto r = MoveReceiver(n, "PB", ctx);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, "b");                     // a does not listen
  EXPECT_FALSE(MoveReceiver(n, "pb", ctx));  // AE titles are case sensitive
  n.listen_port = 11112;
  EXPECT_FALSE(MoveReceiver(n, "PB", ctx));  // the node names a port where nothing listens
  ctx.receivers[1].enabled = false;
  n.listen_port = 0;
  EXPECT_FALSE(MoveReceiver(n, "PB", ctx));
}

TEST(RunMoveCheck, ADicomWebNodeHasNoMove) {
  Node n;
  n.name = "web";
  n.type = NodeType::kDicomWeb;
  ExpectationRegistry reg;
  MoveCheckContext ctx;
  ctx.expectations = &reg;
  auto c = RunMoveCheck(n, ctx);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, Code::kConflict);
  EXPECT_NE(c.error().message.find("DICOMweb"), std::string::npos);
}

TEST(RunMoveCheck, NoReceiverOfOursIsAnAnswerNotAnError) {
  Node n;
  n.name = "pacs";
  n.ae_title = "PACS";
  n.host = "127.0.0.1";
  n.port = 9;  // never asked: the receiver is checked first
  ExpectationRegistry reg;
  MoveCheckContext ctx;
  ctx.our_ae_title = "PACSBRIDGE";
  ctx.expectations = &reg;
  auto c = RunMoveCheck(n, ctx);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->ok, std::optional<bool>(false));
  EXPECT_EQ(c->outcome, "no_receiver");
  EXPECT_NE(c->message.find("no receiver of ours that is enabled and listening is called PACSBRIDGE"),
            std::string::npos)
      << c->message;
  EXPECT_EQ(c->ToJson()["status"], nullptr);
  EXPECT_EQ(c->ToJson()["destination"]["port"], nullptr);
}

}  // namespace
}  // namespace pb
