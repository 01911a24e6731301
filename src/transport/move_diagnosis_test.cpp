#include "transport/move_diagnosis.h"

#include <gtest/gtest.h>

namespace pb {
namespace {

using Outcome = AssociationAttempt::Outcome;

MoveEvidence Base() {
  MoveEvidence e;
  e.where = "node 'pacs' (10.0.0.5:104)";
  e.pacs_ae = "PACS";
  e.pacs_host = "10.0.0.5";
  e.destination = "PACSBRIDGE";
  e.our_ae = "PACSBRIDGE";
  e.our_port = 8104;
  e.our_address = "10.0.0.7";
  e.status = 0xC000;
  e.status_text = "0xC000 (failure)";
  return e;
}

AssociationAttempt Seen(uint16_t port, std::string called, Outcome o, std::string calling = "PACS") {
  return AssociationAttempt{
      std::chrono::steady_clock::now(), port, std::move(called), std::move(calling), "10.0.0.5", o};
}

TEST(ExplainEmptyMove, WrongCaseOfOurAeTitleIsNamedAsSuch) {
  MoveEvidence e = Base();
  e.seen = {Seen(8104, "pacsbridge", Outcome::kUnknownCalledAe)};
  EXPECT_EQ(ExplainEmptyMove(e),
            "node 'pacs' (10.0.0.5:104): the PACS tried to send to AE title 'pacsbridge' at our port 8104; our "
            "receiver is 'PACSBRIDGE' (case matters): correct it on the PACS");
}

TEST(ExplainEmptyMove, AnotherAeTitleAtOurPort) {
  MoveEvidence e = Base();
  e.seen = {Seen(8104, "GATEWAY", Outcome::kUnknownCalledAe)};
  EXPECT_NE(ExplainEmptyMove(e).find("tried to send to AE title 'GATEWAY' at our port 8104, which no receiver of "
                                     "ours has; our receiver there is 'PACSBRIDGE'"),
            std::string::npos);
}

TEST(ExplainEmptyMove, OurAeTitleAtAnotherOfOurPortsNamesThePort) {
  MoveEvidence e = Base();
  e.seen = {Seen(11112, "PACSBRIDGE", Outcome::kUnknownCalledAe)};
  EXPECT_NE(ExplainEmptyMove(e).find("at our port 11112; our receiver 'PACSBRIDGE' listens on port 8104: correct the "
                                     "port on the PACS"),
            std::string::npos)
      << ExplainEmptyMove(e);
}

TEST(ExplainEmptyMove, AWhitelistRefusalIsOurs) {
  MoveEvidence e = Base();
  e.seen = {Seen(8104, "PACSBRIDGE", Outcome::kCallingAeNotAllowed, "ORTHANC")};
  EXPECT_NE(ExplainEmptyMove(e).find("as 'ORTHANC' from 10.0.0.5, and the receiver's whitelist refused it"),
            std::string::npos);
}

TEST(ExplainEmptyMove, FailedSubOperationsWithNoConnectionPointAtAddressPortFirewall) {
  MoveEvidence e = Base();
  e.failed_suboperations = 3;
  std::string m = ExplainEmptyMove(e);
  EXPECT_NE(m.find("the PACS did not connect to 10.0.0.7:8104: check the address and port it has for us, and "
                   "firewalls (C-MOVE 0xC000 (failure), 3 sub-operation(s) failed)"),
            std::string::npos)
      << m;
  // Somebody else's association on another port is no evidence for this one.
  e.seen = {Seen(4242, "OTHER", Outcome::kUnknownCalledAe)};
  EXPECT_EQ(ExplainEmptyMove(e), m);
  // Nor is another sender's, on our port, whatever its outcome.
  AssociationAttempt other = Seen(8104, "pacsbridge", Outcome::kUnknownCalledAe, "MODALITY");
  other.peer_address = "10.0.0.99";
  AssociationAttempt accepted = Seen(8104, "PACSBRIDGE", Outcome::kAccepted, "MODALITY");
  accepted.peer_address = "10.0.0.99";
  e.seen = {other, accepted};
  EXPECT_EQ(ExplainEmptyMove(e), m);
  // The PACS seen from an IPv6 listener still counts.
  AssociationAttempt mapped = Seen(8104, "pacsbridge", Outcome::kUnknownCalledAe, "OTHER_AE");
  mapped.peer_address = "::ffff:10.0.0.5";
  e.seen = {mapped};
  EXPECT_NE(ExplainEmptyMove(e).find("(case matters)"), std::string::npos);
}

TEST(ExplainEmptyMove, AnOutrightRefusalKeepsWhatToRegister) {
  MoveEvidence e = Base();
  e.status = 0xA801;
  e.status_text = "0xA801 (refused: move destination unknown)";
  EXPECT_EQ(ExplainEmptyMove(e),
            "node 'pacs' (10.0.0.5:104) does not know the move destination 'PACSBRIDGE' (status 0xA801). Ask the "
            "PACS administrator to register: AE title PACSBRIDGE, host 10.0.0.7, port 8104 (our receiver)");
  // A plain failure and no connection: the PACS may lack the destination or have a wrong
  // address for it (Orthanc answers 0xC000 without sub-operations for both).
  e.status = 0xC000;
  e.status_text = "0xC000 (failure)";
  std::string m = ExplainEmptyMove(e);
  EXPECT_NE(m.find("the PACS did not connect to 10.0.0.7:8104: check the address and port it has for us, and "
                   "firewalls; or it does not know 'PACSBRIDGE' as a move destination (C-MOVE 0xC000 (failure))"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("register: AE title PACSBRIDGE, host 10.0.0.7, port 8104"), std::string::npos) << m;
  // It did connect (accepted), yet nothing was stored and nothing failed: it refused.
  e.seen = {Seen(8104, "PACSBRIDGE", Outcome::kAccepted)};
  EXPECT_NE(ExplainEmptyMove(e).find("refused the C-MOVE to 'PACSBRIDGE' with status 0xC000 (failure) and sent "
                                     "nothing"),
            std::string::npos);
}

TEST(ExplainEmptyMove, EvidenceBeatsTheStatus) {
  MoveEvidence e = Base();
  e.status = 0xA801;
  e.seen = {Seen(8104, "pacsbridge", Outcome::kUnknownCalledAe)};
  EXPECT_NE(ExplainEmptyMove(e).find("(case matters)"), std::string::npos);
}

}  // namespace
}  // namespace pb
