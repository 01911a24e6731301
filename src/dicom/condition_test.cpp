#include "dicom/condition.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include <dcmtk/dcmdata/dcerror.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/cond.h>
#include <dcmtk/dcmnet/dcmtrans.h>
#include <dcmtk/dcmnet/diutil.h>
#include <gtest/gtest.h>

namespace pb::dicom {
namespace {

// A loopback listening socket on a free port; `accept_and_close` answers every connection by
// closing it at once.
class Listener {
 public:
  explicit Listener(bool accept_and_close) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 4), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (accept_and_close) {
      closer_ = std::thread([this] {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c >= 0) ::close(c);
      });
    }
  }
  ~Listener() {
    ::shutdown(fd_, SHUT_RDWR);
    if (closer_.joinable()) closer_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  // Closes the socket: the port is then free, and nothing listens on it.
  int ClosedPort() {
    ::close(fd_);
    fd_ = -1;
    return port_;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread closer_;
};

// What DCMTK's own association request answers for a peer at 127.0.0.1:port.
OFCondition RequestAssociation(int port, int timeout_seconds) {
  T_ASC_Network* net = nullptr;
  T_ASC_Parameters* params = nullptr;
  T_ASC_Association* assoc = nullptr;
  OFCondition c = ASC_initializeNetwork(NET_REQUESTOR, 0, timeout_seconds, &net);
  EXPECT_TRUE(c.good());
  ASC_createAssociationParameters(&params, ASC_DEFAULTMAXPDU);
  ASC_setAPTitles(params, "PACSBRIDGE", "PEER", nullptr);
  const std::string peer = "127.0.0.1:" + std::to_string(port);
  ASC_setPresentationAddresses(params, "localhost", peer.c_str());
  const char* ts[] = {UID_LittleEndianImplicitTransferSyntax};
  ASC_addPresentationContext(params, 1, UID_VerificationSOPClass, ts, 1);
  dcmConnectionTimeout.set(timeout_seconds);
  c = ASC_requestAssociation(net, params, &assoc);
  if (assoc) {
    ASC_dropAssociation(assoc);
    ASC_destroyAssociation(&assoc);
  } else {
    ASC_destroyAssociationParameters(&params);
  }
  ASC_dropNetwork(&net);
  return c;
}

TEST(Condition, DcmtksNamedConditionsMapByIdentity) {
  EXPECT_EQ(Classify(EC_Normal), NetFault::kNone);
  EXPECT_EQ(Classify(DUL_PEERABORTEDASSOCIATION), NetFault::kAborted);
  EXPECT_EQ(Classify(DUL_READTIMEOUT), NetFault::kTimeout);
  EXPECT_EQ(Classify(DIMSE_NODATAAVAILABLE), NetFault::kTimeout);
  EXPECT_EQ(Classify(DUL_NETWORKCLOSED), NetFault::kClosed);
  EXPECT_EQ(Classify(DUL_ASSOCIATIONREJECTED), NetFault::kRejected);
  EXPECT_EQ(CodeOf(DUL_PEERABORTEDASSOCIATION, Code::kInternal), Code::kAborted);
  EXPECT_EQ(CodeOf(DUL_READTIMEOUT, Code::kInternal), Code::kTimeout);
  EXPECT_EQ(CodeOf(DUL_NETWORKCLOSED, Code::kInternal), Code::kUnavailable);
  // A data set's condition is no network fault: the caller's code stands.
  EXPECT_EQ(Classify(EC_IllegalCall), NetFault::kOther);
  EXPECT_EQ(CodeOf(EC_IllegalCall, Code::kInvalidArgument), Code::kInvalidArgument);
}

TEST(Condition, ErrorsSayWhatWasDoneThenDcmtksWords) {
  const Error e = ConditionError(DUL_PEERABORTEDASSOCIATION, "C-FIND to PACS@127.0.0.1:104 failed");
  EXPECT_EQ(e.code, Code::kAborted);
  EXPECT_EQ(e.message,
            std::string("C-FIND to PACS@127.0.0.1:104 failed: ") + OFCondition(DUL_PEERABORTEDASSOCIATION).text());
  EXPECT_EQ(FailCondition(EC_IllegalCall, "cannot set (0010,0010)", Code::kInvalidArgument).value().code,
            Code::kInvalidArgument);
}

// The conditions DCMTK really returns when it connects, classified.
TEST(Condition, AClosedPortIsRefused) {
  Listener l(false);
  const int port = l.ClosedPort();
  const OFCondition c = RequestAssociation(port, 5);
  EXPECT_EQ(Classify(c), NetFault::kRefused) << c.text();
  EXPECT_EQ(CodeOf(c, Code::kInternal), Code::kUnavailable);
}

TEST(Condition, APeerThatNeverAnswersTimesOut) {
  Listener l(false);  // the kernel completes the connection; nobody reads the request
  const OFCondition c = RequestAssociation(l.port(), 1);
  EXPECT_EQ(Classify(c), NetFault::kTimeout) << c.text();
  EXPECT_EQ(CodeOf(c, Code::kInternal), Code::kTimeout);
}

TEST(Condition, APeerThatHangsUpAborted) {
  Listener l(true);
  const OFCondition c = RequestAssociation(l.port(), 5);
  EXPECT_EQ(Classify(c), NetFault::kAborted) << c.text();
  EXPECT_EQ(CodeOf(c, Code::kInternal), Code::kAborted);
}

}  // namespace
}  // namespace pb::dicom
