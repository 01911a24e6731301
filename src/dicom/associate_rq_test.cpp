// PDUs built here byte by byte from PS3.8 9.3.2 (A-ASSOCIATE-RQ) and 9.3.2.2 (presentation
// context item and its sub-items), not from the code under test.
#include "dicom/associate_rq.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace pb::dicom {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes Item(uint8_t type, const Bytes& payload) {
  Bytes b{type, 0, static_cast<uint8_t>(payload.size() >> 8), static_cast<uint8_t>(payload.size() & 0xff)};
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

Bytes Text(const std::string& s) { return Bytes(s.begin(), s.end()); }

Bytes operator+(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A presentation context item: id, three reserved bytes, then the sub-items.
Bytes Context(uint8_t type, uint8_t id, const Bytes& subitems, uint8_t result = 0) {
  return Item(type, Bytes{id, 0, result, 0} + subitems);
}

// Type 01, reserved, 4-byte length, then protocol version 1, reserved, called and calling AE
// titles (16 bytes each), 32 reserved bytes, then the items.
Bytes Request(const Bytes& items) {
  Bytes fixed{0x00, 0x01, 0, 0};
  fixed = fixed + Text("ANY-SCP         ") + Text("ECHOSCU         ") + Bytes(32, 0);
  const Bytes body = fixed + items;
  const auto n = static_cast<uint32_t>(body.size());
  return Bytes{0x01,
               0,
               static_cast<uint8_t>(n >> 24),
               static_cast<uint8_t>(n >> 16),
               static_cast<uint8_t>(n >> 8),
               static_cast<uint8_t>(n)} +
         body;
}

const Bytes kAppContext = Item(0x10, Text("1.2.840.10008.3.1.1.1"));
const Bytes kEcho = Item(0x30, Text("1.2.840.10008.1.1"));
const Bytes kExplicit = Item(0x40, Text("1.2.840.10008.1.2.1"));
const Bytes kUserInfo = Item(0x50, Item(0x51, Bytes{0, 0, 0x40, 0}) + Item(0x52, Text("1.2.3.4")));

std::string Fault(const Bytes& pdu) { return AssociateRequestFault(pdu); }

TEST(AssociateRequest, WellFormedRequestsPass) {
  EXPECT_EQ(Fault(Request(kAppContext + Context(0x20, 1, kEcho + kExplicit + Item(0x40, Text("1.2.840.10008.1.2"))) +
                          kUserInfo)),
            "");
  EXPECT_EQ(Fault(Request({})), "");  // no items: DCMTK's to refuse, not a fit problem
  // An item type this check does not know, that fits, is DCMTK's to judge.
  EXPECT_EQ(Fault(Request(kAppContext + Item(0x99, Bytes(7, 0xEE)) + kUserInfo)), "");
  // A 64-byte UID is as long as one may be.
  EXPECT_EQ(Fault(Request(Context(0x20, 1, kEcho + Item(0x40, Bytes(64, '1'))))), "");
}

TEST(AssociateRequest, FixedFieldsCutShort) {
  Bytes pdu = Request({});
  pdu.resize(60);
  EXPECT_NE(Fault(pdu).find("60 bytes"), std::string::npos) << Fault(pdu);
}

TEST(AssociateRequest, ItemsRunningPastTheEndAreRefused) {
  Bytes pdu = Request(kAppContext + Context(0x20, 1, kEcho + kExplicit));
  pdu.resize(pdu.size() - 3);  // the last item claims 3 bytes more than there are
  const std::string why = Fault(pdu);
  EXPECT_NE(why.find("item 0x20 at byte 99"), std::string::npos) << why;  // 74 + 25 (application context)
  Bytes tail = Request(kAppContext) + Bytes{0x50, 0};                     // a header cut after 2 of its 4 bytes
  EXPECT_NE(Fault(tail).find("cut short"), std::string::npos) << Fault(tail);
}

TEST(AssociateRequest, MalformedPresentationContextsAreRefused) {
  // A transfer syntax sub-item claiming 40 bytes where its context holds 19.
  Bytes lying{0x40, 0, 0, 40};
  lying = lying + Text("1.2.840.10008.1.2.1");
  std::string why = Fault(Request(Context(0x20, 1, kEcho + lying) + kUserInfo));
  EXPECT_NE(why.find("sub-item 0x40"), std::string::npos) << why;
  // 65 bytes of transfer syntax UID.
  why = Fault(Request(Context(0x20, 1, kEcho + Item(0x40, Bytes(65, '1')))));
  EXPECT_NE(why.find("transfer syntax"), std::string::npos) << why;
  why = Fault(Request(Context(0x20, 1, Item(0x30, Bytes(100, '1')) + kExplicit)));
  EXPECT_NE(why.find("abstract syntax"), std::string::npos) << why;
  // A context shorter than its own 4 fixed bytes.
  why = Fault(Request(Item(0x20, Bytes{1, 0})));
  EXPECT_NE(why.find("fewer than 4"), std::string::npos) << why;
  // A sub-item header cut by the end of its context.
  why = Fault(Request(Context(0x20, 1, kEcho + Bytes{0x40, 0})));
  EXPECT_NE(why.find("cut short"), std::string::npos) << why;
}

TEST(AssociateRequest, ContextsWithoutTransferSyntaxesAreRefused) {
  // PS3.8 9.3.2.2: one abstract syntax and one or more transfer syntaxes.
  std::string why = Fault(Request(kAppContext + Context(0x20, 3, kEcho) + kUserInfo));
  EXPECT_NE(why.find("presentation context 3 at byte 99 proposes no transfer syntax"), std::string::npos) << why;
  // An A-ASSOCIATE-AC's context item (0x21) has no place in a request.
  why = Fault(Request(kAppContext + Context(0x21, 1, kExplicit, 3)));
  EXPECT_NE(why.find("0x21"), std::string::npos) << why;
}

TEST(AssociateRequest, UserInformationSubItemsMustHoldTheirFields) {
  auto with = [](const Bytes& subitems) {
    return Fault(Request(kAppContext + Context(0x20, 1, kEcho + kExplicit) + Item(0x50, subitems)));
  };
  // Role selection (PS3.7 D.3.3.4): UID length, UID, SCU role, SCP role.
  const Bytes ct = Text("1.2.840.10008.5.1.4.1.1.2");
  Bytes role = Bytes{0, static_cast<uint8_t>(ct.size())} + ct + Bytes{0, 1};
  EXPECT_EQ(with(Item(0x51, Bytes{0, 0, 0x40, 0}) + Item(0x54, role)), "");
  role[1] = static_cast<uint8_t>(ct.size() + 3);  // the UID claims more than its sub-item holds
  EXPECT_NE(with(Item(0x54, role)).find("role selection"), std::string::npos);
  // Extended negotiation (PS3.7 D.3.3.5): UID length, UID, application information.
  Bytes ext = Bytes{0, static_cast<uint8_t>(ct.size())} + ct + Bytes{1, 0, 1};
  EXPECT_EQ(with(Item(0x56, ext)), "");
  ext[1] = 200;
  EXPECT_NE(with(Item(0x56, ext)).find("extended negotiation"), std::string::npos);
  EXPECT_NE(with(Item(0x56, Bytes{0})).find("extended negotiation"), std::string::npos);
  // A maximum length sub-item needs its 4 bytes; an implementation class UID at most 64.
  EXPECT_NE(with(Item(0x52, Text("1.2.3")) + Bytes{0x51, 0, 0, 0}).find("maximum length"), std::string::npos);
  EXPECT_NE(with(Item(0x52, Bytes(65, '1'))).find("0x52"), std::string::npos);
  // One user identity (PS3.7 D.3.3.7), one user information item.
  const Bytes identity = Item(0x58, Bytes{1, 0, 0, 4, 'u', 's', 'e', 'r', 0, 0});
  EXPECT_EQ(with(identity), "");
  EXPECT_NE(with(identity + identity).find("second user identity"), std::string::npos);
  EXPECT_NE(Fault(Request(kAppContext + Context(0x20, 1, kEcho + kExplicit) + kUserInfo + kUserInfo))
                .find("second user information"),
            std::string::npos);
}

}  // namespace
}  // namespace pb::dicom
