#include "dicom/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>
#include <dcmtk/dcmnet/dul.h>
#include <dcmtk/dcmtls/tlslayer.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/metrics.h"
#include "core/thread_annotations.h"
#include "dicom/associate_rq.h"
#include "dicom/charset.h"
#include "dicom/condition.h"
#include "dicom/flat_item_impl.h"
#include "dicom/negotiation.h"
#include "dicom/network.h"
#include "dicom/query_scp_impl.h"
#include "dicom/store_receive.h"

namespace pb::dicom {
namespace {

using Steady = std::chrono::steady_clock;

// GET /metrics. The receiver label is a configured AE title (the receiver's, or the port's own
// before one is chosen), never the called AE title a peer sent.
metrics::Family<metrics::Counter>& AssociationsTotal() {
  static auto& f = metrics::Default().CounterFamily(
      "pacsbridge_associations_total", "Associations asked of a receiver, by outcome (accepted, rejected).",
      {"receiver", "outcome"});
  return f;
}
metrics::Family<metrics::Gauge>& AssociationsOpen() {
  static auto& f = metrics::Default().GaugeFamily("pacsbridge_associations_open",
                                                  "Associations a receiver is serving now.", {"receiver"});
  return f;
}
metrics::Family<metrics::Counter>& ReceivedInstances() {
  static auto& f = metrics::Default().CounterFamily(
      "pacsbridge_receiver_instances_total",
      "C-STORE requests a receiver answered, by outcome (stored: Success; refused: any other status).",
      {"receiver", "outcome"});
  return f;
}
metrics::Family<metrics::Histogram>& StoreSeconds() {
  static auto& f = metrics::Default().HistogramFamily(
      "pacsbridge_receiver_store_seconds",
      "From a C-STORE request to its Success response: receiving the data set, storing and journaling it.",
      {"receiver"}, {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  return f;
}

// DCMTK takes an already accepted socket only through a process-wide variable, so handing a
// connection to DCMTK is serialized. The critical section ends as soon as DCMTK has read the
// variable: its next step is to ask the network's transport layer for a connection on the
// socket, and our layers (below) end the handoff there. The TLS handshake and the
// A-ASSOCIATE-RQ are then read by each thread on its own, so a peer that stalls in either holds
// up no other.
Mutex g_handoff_mu;
T_ASC_Network* g_network GUARDED_BY(g_handoff_mu) = nullptr;

// The handoff this thread is in, while it holds g_handoff_mu.
thread_local MutexLock* t_handoff = nullptr;

// Runs inside DCMTK (our transport layer) for the lock its caller took: beyond the analysis.
void EndHandoff() NO_THREAD_SAFETY_ANALYSIS {
  if (t_handoff && t_handoff->owns_lock()) {
    dcmExternalSocketHandle.set(DCMNET_INVALID_SOCKET);
    t_handoff->Unlock();
  }
  t_handoff = nullptr;
}

// Transport layers that end the handoff when DCMTK asks them for the connection.
class PlainHandoffLayer : public DcmTransportLayer {
 public:
  DcmTransportConnection* createConnection(DcmNativeSocketType socket, OFBool secure) override {
    EndHandoff();
    return DcmTransportLayer::createConnection(socket, secure);
  }
};

class TlsHandoffLayer : public DcmTLSTransportLayer {
 public:
  using DcmTLSTransportLayer::DcmTLSTransportLayer;
  DcmTransportConnection* createConnection(DcmNativeSocketType socket, OFBool secure) override {
    EndHandoff();
    return DcmTLSTransportLayer::createConnection(socket, secure);
  }
};

constexpr long kMaxPdu = ASC_MAXIMUMPDUSIZE;  // offer the largest PDU DCMTK receives (128 KB)
constexpr size_t kMaxRequestPdu = 64 * 1024;
// Connections a receiver holds before their request is complete, and all receivers together;
// past either, the receiver's longest waiting goes.
constexpr size_t kMaxOpening = 256;
constexpr size_t kMaxOpeningAll = 512;
std::atomic<size_t> g_opening{0};
// DCMTK 3.6.7 as Debian builds it waits on sockets with select(): a descriptor at or above
// FD_SETSIZE would overflow its fd_set, so no such connection is ever handed to it.
constexpr int kMaxDescriptor = FD_SETSIZE - 16;

std::string PeerAddress(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = "?";
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, host, sizeof host);
  } else if (ss.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, host, sizeof host);
  }
  return host;
}

// Where a connection the accept loop holds stands: its whole A-ASSOCIATE-RQ (or, on a TLS port,
// its whole first handshake record) is in the socket buffer, not yet, or it is not what the port
// speaks. Peeks only; never blocks.
enum class Opening { kWaiting, kReady, kRefused };

Opening CheckOpening(int fd, bool tls, std::string& why) {
  // The PDU or record header only; how much has come is asked of the kernel (a peer dripping
  // bytes after a large first part costs no copy of that part per byte).
  unsigned char buf[6] = {};
  const ssize_t n = ::recv(fd, buf, tls ? 5 : 6, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) {
    why = tls ? "closed before sending anything" : "closed before sending an A-ASSOCIATE-RQ";
    return Opening::kRefused;
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return Opening::kWaiting;
    why = std::strerror(errno);
    return Opening::kRefused;
  }
  int queued = 0;
  if (::ioctl(fd, FIONREAD, &queued) != 0) queued = static_cast<int>(n);
  const size_t got = static_cast<size_t>(std::max<ssize_t>(n, queued));
  if (tls) {
    if (buf[0] == 0x01) {
      why = "plain DICOM (an A-ASSOCIATE-RQ) on a TLS port: the peer does not use TLS";
      return Opening::kRefused;
    }
    if (buf[0] != 0x16) {
      why = fmt::format("not a TLS handshake (first byte 0x{:02x})", buf[0]);
      return Opening::kRefused;
    }
    if (got < 5) return Opening::kWaiting;
    const size_t record = 5 + ((size_t{buf[3]} << 8) | buf[4]);  // TLS record header (RFC 8446 5.1)
    return got >= std::min(record, kMaxRequestPdu) ? Opening::kReady : Opening::kWaiting;
  }
  if (buf[0] == 0x16) {
    why = "a TLS handshake on a plain DICOM port: the peer uses TLS, this receiver does not";
    return Opening::kRefused;
  }
  if (buf[0] != 0x01) {
    why = fmt::format("not a DICOM association request (first byte 0x{:02x})", buf[0]);
    return Opening::kRefused;
  }
  if (got < 6) return Opening::kWaiting;
  const uint32_t len = (uint32_t{buf[2]} << 24) | (uint32_t{buf[3]} << 16) | (uint32_t{buf[4]} << 8) | buf[5];
  if (len < 68 || len > 1024 * 1024) {
    why = fmt::format("not a DICOM association request (PDU length {})", len);
    return Opening::kRefused;
  }
  if (got < std::min<size_t>(6 + len, kMaxRequestPdu)) return Opening::kWaiting;
  if (6 + len <= kMaxRequestPdu) {  // the whole request is here: its items must fit together
    std::vector<uint8_t> pdu(6 + len);
    if (::recv(fd, pdu.data(), pdu.size(), MSG_PEEK | MSG_DONTWAIT) != static_cast<ssize_t>(pdu.size())) {
      return Opening::kWaiting;
    }
    if (std::string fault = AssociateRequestFault(pdu); !fault.empty()) {
      why = "malformed A-ASSOCIATE-RQ: " + fault;
      return Opening::kRefused;
    }
  }
  return Opening::kReady;
}

// The TLS layers of TLS receivers live as long as the process, as their DCMTK networks do (a
// network may still be read by an association ending after its receiver was replaced); both are
// kept here, where the process can still reach them.
std::vector<std::unique_ptr<DcmTLSTransportLayer>>& TlsLayers() {
  static std::vector<std::unique_ptr<DcmTLSTransportLayer>> layers GUARDED_BY(g_handoff_mu);
  return layers;
}
std::vector<T_ASC_Network*>& TlsNetworks() REQUIRES(g_handoff_mu) {
  static auto* networks = new std::vector<T_ASC_Network*>;  // never destroyed
  return *networks;
}

// The layer of the plain receivers' shared network, as long as the process.
DcmTransportLayer& PlainLayer() {
  static PlainHandoffLayer layer;
  return layer;
}

std::string SetUpServerTls(const ServerTls& t, DcmTLSTransportLayer& layer) {
  if (layer.setTLSProfile(TSP_Profile_BCP195).bad()) return "TLS profile not available";
  if (layer.setPrivateKeyFile(t.key_file.c_str(), DCF_Filetype_PEM).bad()) {
    return fmt::format("cannot read tls.key_file '{}' (a PEM private key)", t.key_file);
  }
  if (layer.setCertificateFile(t.cert_file.c_str(), DCF_Filetype_PEM).bad()) {
    return fmt::format("cannot read tls.cert_file '{}' (a PEM certificate)", t.cert_file);
  }
  if (!layer.checkPrivateKeyMatchesCertificate()) return "tls.key_file does not match tls.cert_file";
  if (!t.ca_file.empty() && layer.addTrustedCertificateFile(t.ca_file.c_str(), DCF_Filetype_PEM).bad()) {
    return fmt::format("cannot read tls.ca_file '{}' (a PEM certificate)", t.ca_file);
  }
  if (layer.activateCipherSuites().bad()) return "no usable TLS cipher suite";
  layer.setCertificateVerification(t.require_client_cert ? DCV_requireCertificate
                                   : t.ca_file.empty()   ? DCV_ignoreCertificate
                                                         : DCV_checkCertificate);
  return {};
}

void SetNoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// One MPPS N-CREATE or N-SET: its data set (in memory: a few kilobytes) in UTF-8 to the sink,
// the sink's status back, with Error Comment and Error ID as status detail when it refuses.
OFCondition AnswerMpps(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, T_DIMSE_Message& msg, MppsSink& sink,
                       MppsRequest rq) {
  T_ASC_PresentationContext pc;
  const bool on_mpps_context = ASC_findAcceptedPresentationContext(assoc->params, pres, &pc).good() &&
                               std::string(pc.abstractSyntax) == kMppsSopClass;
  const bool has_data = rq.create ? msg.msg.NCreateRQ.DataSetType != DIMSE_DATASET_NULL
                                  : msg.msg.NSetRQ.DataSetType != DIMSE_DATASET_NULL;
  std::unique_ptr<DcmDataset> data;
  if (has_data) {
    DcmDataset* received = nullptr;
    OFCondition cond = DIMSE_receiveDataSetInMemory(assoc, DIMSE_BLOCKING, 0, &pres, &received, nullptr, nullptr);
    data.reset(received);
    if (cond.bad()) return cond;
  }
  NAnswer answer;
  if (!on_mpps_context) {
    answer.status = 0x0118;  // No such SOP Class
    answer.error_comment = "only Modality Performed Procedure Step is taken here";
  } else if (!data) {
    answer.status = rq.create ? 0x0120 : 0x0121;  // Missing attribute (value)
    answer.error_comment = "the request carries no attributes";
  } else {
    if (rq.create) {
      // PS3.4 F.7.2.1.2: without one (DCMTK flags an empty element as given), the SCP makes one.
      rq.sop_instance_uid =
          (msg.msg.NCreateRQ.opts & O_NCREATE_AFFECTEDSOPINSTANCEUID) ? msg.msg.NCreateRQ.AffectedSOPInstanceUID : "";
      if (rq.sop_instance_uid.empty()) rq.sop_instance_uid = NewUid();
    } else {
      rq.sop_instance_uid = msg.msg.NSetRQ.RequestedSOPInstanceUID;
    }
    std::string problem;
    if (!ToUtf8(*data, &problem))
      spdlog::warn("MPPS from {}: attributes not fully decoded: {}", rq.calling_ae, problem);
    rq.attributes = Flatten(*data);
    rq.dicom_json = DicomJson(*data);
    answer = sink.Receive(rq);
  }
  std::unique_ptr<DcmDataset> detail;
  if (!answer.ok() && (!answer.error_comment.empty() || answer.error_id)) {
    detail = std::make_unique<DcmDataset>();
    if (!answer.error_comment.empty()) {
      detail->putAndInsertString(DCM_ErrorComment, answer.error_comment.substr(0, 64).c_str());
    }
    if (answer.error_id) detail->putAndInsertUint16(DCM_ErrorID, answer.error_id);
  }
  T_DIMSE_Message rsp{};
  if (rq.create) {
    rsp.CommandField = DIMSE_N_CREATE_RSP;
    T_DIMSE_N_CreateRSP& r = rsp.msg.NCreateRSP;
    r.MessageIDBeingRespondedTo = msg.msg.NCreateRQ.MessageID;
    OFStandard::strlcpy(r.AffectedSOPClassUID, msg.msg.NCreateRQ.AffectedSOPClassUID, sizeof r.AffectedSOPClassUID);
    OFStandard::strlcpy(r.AffectedSOPInstanceUID, rq.sop_instance_uid.c_str(), sizeof r.AffectedSOPInstanceUID);
    r.DimseStatus = answer.status;
    r.DataSetType = DIMSE_DATASET_NULL;
    r.opts = O_NCREATE_AFFECTEDSOPCLASSUID | (rq.sop_instance_uid.empty() ? 0 : O_NCREATE_AFFECTEDSOPINSTANCEUID);
  } else {
    rsp.CommandField = DIMSE_N_SET_RSP;
    T_DIMSE_N_SetRSP& r = rsp.msg.NSetRSP;
    r.MessageIDBeingRespondedTo = msg.msg.NSetRQ.MessageID;
    OFStandard::strlcpy(r.AffectedSOPClassUID, msg.msg.NSetRQ.RequestedSOPClassUID, sizeof r.AffectedSOPClassUID);
    OFStandard::strlcpy(r.AffectedSOPInstanceUID, msg.msg.NSetRQ.RequestedSOPInstanceUID,
                        sizeof r.AffectedSOPInstanceUID);
    r.DimseStatus = answer.status;
    r.DataSetType = DIMSE_DATASET_NULL;
    r.opts = O_NSET_AFFECTEDSOPCLASSUID | O_NSET_AFFECTEDSOPINSTANCEUID;
  }
  return DIMSE_sendMessageUsingMemoryData(assoc, pres, &rsp, detail.get(), nullptr, nullptr, nullptr);
}

// Runs a Query/Retrieve operation; nothing it throws (a failed allocation on a huge answer)
// leaves the association's thread: the association is then ended.
template <typename F>
OFCondition Guarded(F&& operation) {
  try {
    return operation();
  } catch (const std::exception&) {
    return makeDcmnetCondition(DIMSEC_BADDATA, OF_error, "internal error while answering");
  }
}

struct Connection {
  int fd = -1;
  std::string peer;
  Steady::time_point accepted;
};

}  // namespace

struct AssociationServer::Impl {
  ServerOptions opt;
  StoreSink& sink;
  int listen_fd = -1;
  uint16_t bound_port = 0;
  T_ASC_Network* network = nullptr;  // g_network, or this TLS receiver's own (kept for life)
  std::atomic<bool> stopping{false};
  std::atomic<bool> stopped{false};
  std::thread acceptor;
  std::vector<std::thread> workers;
  Mutex mu;
  std::condition_variable cv;
  std::deque<Connection> queue GUARDED_BY(mu);
  // Connections inside DCMTK's handshake and request read, with the time they must be done by:
  // DCMTK's TLS handshake waits without a limit, and a peer that drips its bytes resets every
  // per-read timeout. The accept loop cuts what is overdue.
  struct Watched {
    Steady::time_point deadline;
    bool cut = false;
  };
  Mutex watch_mu;
  std::map<int, Watched> watched GUARDED_BY(watch_mu);  // by our duplicate of the socket
  void CutOverdue();

  Impl(ServerOptions o, StoreSink& s) : opt(std::move(o)), sink(s) {}

  [[nodiscard]] Result<void> Listen();
  void AcceptLoop();
  // To a worker, or to the rejecter when all are busy; false (and `c` kept) while as many
  // connections from its address as a peer may have are in workers' handoff already.
  bool Dispatch(Connection& c);
  // A connection from `peer` is past its handoff (or rejected): the next from there may go.
  void LeftHandoff(const std::string& peer);
  std::map<std::string, int> handing GUARDED_BY(mu);  // per address, connections queued or in handoff
  std::atomic<int> wake_fd{-1};                       // an eventfd the accept loop waits on, poked by LeftHandoff
  void WorkerLoop();
  void Serve(Connection c);
  void Reject(Connection c, T_ASC_RejectParametersReason reason, const char* why);
  struct Handed {
    T_ASC_Association* assoc = nullptr;
    int ours = -1;  // our duplicate of the socket, to cut the connection without waiting
  };
  Handed Handoff(Connection& c);
  void Finish(Handed& h);
  void RejectLoop();
  std::thread rejecter;
  std::deque<Connection> rejects GUARDED_BY(mu);
  std::condition_variable reject_cv;
  void RunAssociation(T_ASC_Association* assoc, const Admission& admission, const std::string& calling,
                      const std::string& peer);
  struct Tally {
    int stored = 0, refused = 0;
  };
};

Result<void> AssociationServer::Impl::Listen() {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(opt.port);
  int rc = getaddrinfo(opt.bind.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    return Fail(Code::kInvalidArgument,
                fmt::format("receiver {}: bind address '{}' is not an IP address ({})", opt.ae_title, opt.bind,
                            gai_strerror(rc)),
                "bind");
  }
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1, zero = 0;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (res->ai_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 128) != 0) {
    int err = errno;
    freeaddrinfo(res);
    ::close(fd);
    return Fail(
        err == EADDRINUSE ? Code::kAlreadyExists : Code::kUnavailable,
        fmt::format("receiver {}: cannot listen on {}:{}: {}", opt.ae_title, opt.bind, opt.port, std::strerror(err)),
        "port");
  }
  freeaddrinfo(res);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  bound_port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  listen_fd = fd;
  MutexLock lock(g_handoff_mu);
  T_ASC_Network** target = opt.tls.enabled ? &network : &g_network;
  if (!*target) {
    // With an external socket set, DCMTK creates no listening socket of its own.
    dcmExternalSocketHandle.set(fd);
    OFCondition c = ASC_initializeNetwork(NET_ACCEPTOR, 0, opt.request_timeout_seconds, target);
    dcmExternalSocketHandle.set(DCMNET_INVALID_SOCKET);
    if (c.bad()) return FailCondition(c, "DICOM network setup failed", Code::kInternal);
    if (opt.tls.enabled) TlsNetworks().push_back(*target);
    if (!opt.tls.enabled && ASC_setTransportLayer(*target, &PlainLayer(), 0).bad()) {
      return Fail(Code::kInternal, "DICOM network setup failed: the transport layer was refused");
    }
  }
  if (opt.tls.enabled) {
    auto layer = std::make_unique<TlsHandoffLayer>(NET_ACCEPTOR, nullptr, OFTrue);
    if (std::string why = SetUpServerTls(opt.tls, *layer); !why.empty()) {
      return Fail(Code::kInvalidArgument, fmt::format("receiver {}: TLS: {}", opt.ae_title, why), "tls");
    }
    if (ASC_setTransportLayer(network, layer.get(), 0).bad()) {
      return Fail(Code::kInternal, fmt::format("receiver {}: cannot set up TLS", opt.ae_title), "tls");
    }
    TlsLayers().push_back(std::move(layer));
  } else {
    network = g_network;
  }
  return {};
}

void AssociationServer::Impl::CutOverdue() {
  const auto now = Steady::now();
  MutexLock lock(watch_mu);
  for (auto& [fd, w] : watched) {
    if (!w.cut && now >= w.deadline) {
      w.cut = true;
      ::shutdown(fd, SHUT_RDWR);  // DCMTK's blocked read returns; the connection ends
    }
  }
}

bool AssociationServer::Impl::Dispatch(Connection& c) {
  MutexLock lock(mu);
  // One address may keep at most half the workers in handoffs (a whole TLS ClientHello
  // followed by silence holds one for the request timeout); the rest wait in the accept loop.
  const int per_peer = std::max(1, opt.workers / 2);
  if (queue.size() < static_cast<size_t>(opt.workers)) {
    int& n = handing[c.peer];
    if (n >= per_peer) return false;
    ++n;
    queue.push_back(std::move(c));
    cv.notify_one();
    return true;
  }
  if (rejects.size() >= 32) {  // a flood: no answer is better than unbounded work
    spdlog::warn("receiver {}: connection from {} closed: too many waiting rejections", opt.ae_title, c.peer);
    ::close(c.fd);
    return true;
  }
  rejects.push_back(std::move(c));
  reject_cv.notify_one();
  return true;
}

void AssociationServer::Impl::LeftHandoff(const std::string& peer) {
  {
    MutexLock lock(mu);
    auto it = handing.find(peer);
    if (it != handing.end() && --it->second <= 0) handing.erase(it);
  }
  if (const int fd = wake_fd.load(); fd >= 0) (void)::eventfd_write(fd, 1);
}

// Accepts, and holds each new connection until its whole request is in the socket buffer: a
// connection that sends nothing, or drips its request, costs a descriptor here and never a
// worker, so 200 silent connections do not keep a modality out (before, each held one of the
// receiver's workers for the whole opening budget). Edge-triggered epoll: a connection with part of
// its request in the buffer is looked at again only when more arrives.
void AssociationServer::Impl::AcceptLoop() {
  struct Waiting {
    Connection c;
    Steady::time_point deadline;
    bool ready = false;  // complete, waiting for its address's earlier connections to leave handoff
  };
  std::map<int, Waiting> opening;
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.fd = listen_fd;
  const int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event wev{};
  wev.events = EPOLLIN;
  wev.data.fd = wake;
  if (ep < 0 || wake < 0 || ::epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &lev) != 0 ||
      ::epoll_ctl(ep, EPOLL_CTL_ADD, wake, &wev) != 0) {
    spdlog::error("receiver {}: cannot watch its port ({}); not accepting", opt.ae_title, std::strerror(errno));
    if (ep >= 0) ::close(ep);
    if (wake >= 0) ::close(wake);
    return;
  }
  wake_fd = wake;
  const int flags = ::fcntl(listen_fd, F_GETFL);
  ::fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK);  // accept until none is left, never block
  auto drop = [&](std::map<int, Waiting>::iterator it, const std::string& why, bool warn) {
    if (warn)
      spdlog::warn("receiver {}: connection from {} closed: {}", opt.ae_title, it->second.c.peer, why);
    else
      spdlog::info("receiver {}: connection from {} closed: {}", opt.ae_title, it->second.c.peer, why);
    ::close(it->first);  // also leaves the epoll set
    g_opening.fetch_sub(1);
    return opening.erase(it);
  };
  auto oldest = [&] {
    return std::min_element(opening.begin(), opening.end(),
                            [](const auto& a, const auto& b) { return a.second.deadline < b.second.deadline; });
  };
  Steady::time_point last_fd_warning{};
  // `closed`: the peer has shut its side, so what is not in the buffer never comes.
  auto look = [&](std::map<int, Waiting>::iterator it, bool closed) {
    std::string why;
    switch (CheckOpening(it->first, opt.tls.enabled, why)) {
      case Opening::kWaiting:
        if (closed) {
          drop(it,
               opt.tls.enabled ? "closed in the middle of its TLS handshake"
                               : "closed before its A-ASSOCIATE-RQ was complete",
               false);
        }
        return;
      case Opening::kRefused:
        drop(it, why, false);
        return;
      case Opening::kReady:
        ::epoll_ctl(ep, EPOLL_CTL_DEL, it->first, nullptr);
        if (!Dispatch(it->second.c)) {
          it->second.ready = true;  // tried again as that address's handoffs end
          return;
        }
        g_opening.fetch_sub(1);
        opening.erase(it);
        return;
    }
  };
  std::array<epoll_event, 64> events;
  while (!stopping) {
    CutOverdue();
    const auto now = Steady::now();
    for (auto it = opening.begin(); it != opening.end();) {
      if (now < it->second.deadline) {
        ++it;
        continue;
      }
      it = drop(it,
                it->second.ready  ? fmt::format("waited {} s behind other connections from the same address",
                                                opt.request_timeout_seconds)
                : opt.tls.enabled ? fmt::format("no TLS handshake within {} s", opt.request_timeout_seconds)
                                  : fmt::format("no complete A-ASSOCIATE-RQ within {} s", opt.request_timeout_seconds),
                it->second.ready);
    }
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 200);
    for (auto it = opening.begin(); it != opening.end();) {  // complete ones whose address's turn came
      if (it->second.ready && Dispatch(it->second.c)) {
        g_opening.fetch_sub(1);
        it = opening.erase(it);
      } else {
        ++it;
      }
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[static_cast<size_t>(i)].data.fd;
      if (fd == wake) {
        eventfd_t ignored = 0;
        (void)::eventfd_read(wake, &ignored);
        continue;
      }
      if (fd != listen_fd) {
        const uint32_t what = events[static_cast<size_t>(i)].events;
        if (auto it = opening.find(fd); it != opening.end()) look(it, (what & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
        continue;
      }
      for (int accepted = 0; accepted < 64; ++accepted) {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        int cfd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
        if (cfd < 0) {
          if (errno == EMFILE || errno == ENFILE) {
            // The connection stays in the backlog and the port stays readable: pause rather than
            // spin (held connections free descriptors as their time runs out), and say so once.
            if (Steady::now() - last_fd_warning > std::chrono::seconds(10)) {
              last_fd_warning = Steady::now();
              spdlog::warn("receiver {}: cannot accept connections: {}", opt.ae_title, std::strerror(errno));
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
          }
          break;
        }
        if (cfd >= kMaxDescriptor && !opening.empty()) {
          // Too high for DCMTK's select(): a held connection's lower descriptor is freed for it.
          drop(oldest(), "too many descriptors open; the connection waiting longest goes", true);
          const int low = ::fcntl(cfd, F_DUPFD_CLOEXEC, 0);
          if (low >= 0 && low < kMaxDescriptor) {
            ::close(cfd);
            cfd = low;
          } else if (low >= 0) {
            ::close(low);
          }
        }
        if (cfd >= kMaxDescriptor) {
          spdlog::warn(
              "receiver {}: connection from {} closed: the process has {} descriptors open, more than "
              "DCMTK can wait on",
              opt.ae_title, PeerAddress(cfd), cfd);
          ::close(cfd);
          continue;
        }
        SetNoDelay(cfd);
        if (!opening.empty() && (opening.size() >= kMaxOpening || g_opening.load() >= kMaxOpeningAll)) {
          // A flood of silent connections: the one waiting longest goes (a modality sends its
          // request within milliseconds of connecting).
          drop(oldest(),
               fmt::format("{} connections opening at once; the one waiting longest goes",
                           opening.size() >= kMaxOpening ? opening.size() : g_opening.load()),
               true);
        }
        g_opening.fetch_add(1);
        Waiting w{Connection{cfd, PeerAddress(cfd), Steady::now()},
                  Steady::now() + std::chrono::seconds(opt.request_timeout_seconds)};
        auto [it, _] = opening.emplace(cfd, std::move(w));
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLET | EPOLLRDHUP;
        ev.data.fd = cfd;
        if (::epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev) != 0) {
          drop(it, std::strerror(errno), true);
          continue;
        }
        look(it, false);  // the request may have come with the connection (epoll reports a close)
      }
    }
  }
  for (auto& [fd, w] : opening) ::close(fd);
  g_opening.fetch_sub(opening.size());
  wake_fd = -1;
  ::close(wake);
  ::close(ep);
}

void AssociationServer::Impl::WorkerLoop() {
  while (true) {
    Connection c;
    {
      MutexLock lock(mu);
      cv.wait(lock, [&]() REQUIRES(mu) { return stopping || !queue.empty(); });
      if (stopping) return;  // Stop() closes what is still queued
      c = std::move(queue.front());
      queue.pop_front();
    }
    if (Steady::now() - c.accepted > std::chrono::seconds(opt.max_queue_wait_seconds)) {
      const std::string peer = c.peer;
      Reject(std::move(c), ASC_REASON_SP_PRES_TEMPORARYCONGESTION, "waited too long for a worker");
      LeftHandoff(peer);
    } else {
      Serve(std::move(c));
    }
  }
}

AssociationServer::Impl::Handed AssociationServer::Impl::Handoff(Connection& c) {
  // The accept loop handed over a connection whose request (TLS: first record) is complete;
  // what DCMTK still reads (the handshake's next flight, a request over 64 KB) has one budget.
  const auto deadline = Steady::now() + std::chrono::seconds(opt.request_timeout_seconds);
  struct Left {  // on every way out: the next connection from this address may be handed over
    Impl& impl;
    std::string peer;
    ~Left() { impl.LeftHandoff(peer); }
  } left{*this, c.peer};
  Handed h;
  h.ours = ::dup(c.fd);  // DCMTK owns c.fd from now on; ours lets us cut the connection
  if (h.ours >= 0) {
    MutexLock lock(watch_mu);
    Watched w{deadline};
    if (stopping) {  // the accept loop no longer watches: nothing new starts
      w.cut = true;
      ::shutdown(h.ours, SHUT_RDWR);
    }
    watched[h.ours] = w;
  }
  OFCondition cond;
  {
    MutexLock lock(g_handoff_mu);
    t_handoff = &lock;
    dcmExternalSocketHandle.set(c.fd);
    // Ends the handoff from inside (our transport layer), before the handshake and the request.
    cond = ASC_receiveAssociation(network, &h.assoc, kMaxPdu, nullptr, nullptr, opt.tls.enabled ? OFTrue : OFFalse,
                                  DUL_NOBLOCK, opt.request_timeout_seconds);
    EndHandoff();  // when DCMTK failed before it asked for the connection
  }
  bool cut = false;
  if (h.ours >= 0) {
    MutexLock lock(watch_mu);
    cut = watched[h.ours].cut;
    watched.erase(h.ours);
  }
  if (cut) {
    spdlog::info("receiver {}: connection from {} closed: no {}A-ASSOCIATE-RQ within {} s", opt.ae_title, c.peer,
                 opt.tls.enabled ? "TLS handshake and " : "complete ", opt.request_timeout_seconds);
    Finish(h);
    return {};
  }
  if (cond.bad()) {
    spdlog::info("receiver {}: bad association request from {}: {}", opt.ae_title, c.peer, ConditionText(cond));
    Finish(h);
    return {};
  }
  return h;
}

// Ends an association without waiting for the peer: DCMTK's drop would otherwise wait up to
// minutes for a peer that keeps its socket open after a rejection or release.
void AssociationServer::Impl::Finish(Handed& h) {
  if (h.ours >= 0) ::shutdown(h.ours, SHUT_RDWR);
  if (h.assoc) {
    ASC_dropSCPAssociation(h.assoc);
    ASC_destroyAssociation(&h.assoc);
  }
  if (h.ours >= 0) ::close(h.ours);
  h = {};
}

void AssociationServer::Impl::Reject(Connection c, T_ASC_RejectParametersReason reason, const char* why) {
  Handed h = Handoff(c);
  if (!h.assoc) return;
  spdlog::warn("receiver {}: rejected association from {}: {}", opt.ae_title, c.peer, why);
  T_ASC_RejectParameters rej{ASC_RESULT_REJECTEDTRANSIENT, ASC_SOURCE_SERVICEPROVIDER_PRESENTATION_RELATED, reason};
  ASC_rejectAssociation(h.assoc, &rej);
  Finish(h);
}

// Rejections of connections beyond the pool and its queue run here, off the accept loop, so a
// peer that is slow to send its request cannot hold up the others.
void AssociationServer::Impl::RejectLoop() {
  while (true) {
    Connection c;
    {
      MutexLock lock(mu);
      reject_cv.wait(lock, [&]() REQUIRES(mu) { return stopping || !rejects.empty(); });
      if (stopping) return;
      c = std::move(rejects.front());
      rejects.pop_front();
    }
    Reject(std::move(c), ASC_REASON_SP_PRES_TEMPORARYCONGESTION, "all workers busy and queue full");
  }
}

void AssociationServer::Impl::Serve(Connection c) {
  Handed h = Handoff(c);
  if (!h.assoc) return;
  T_ASC_Association* assoc = h.assoc;
  char calling[65] = {0}, called[65] = {0};
  ASC_getAPTitles(assoc->params, calling, sizeof calling, called, sizeof called, nullptr, 0);
  std::string called_ae = called, calling_ae = calling;
  auto done = [&] { Finish(h); };
  auto reject = [&](T_ASC_RejectParametersReason reason) {  // rejected-permanent, by the service user
    T_ASC_RejectParameters rej{ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER, reason};
    ASC_rejectAssociation(assoc, &rej);
    done();
  };
  // What DCMTK cannot answer with an A-ASSOCIATE-AC (PS3.8 9.3.2: an application context and
  // both AE titles are mandatory) is rejected here, naming why; acknowledging it would fail
  // inside DCMTK (and leak the answer it had begun).
  const bool no_context = assoc->params->DULparams.applicationContextName[0] == '\0';
  if (no_context || calling_ae.empty()) {
    const char* why = no_context ? "no application context name" : "an empty calling AE title";
    spdlog::warn("receiver {}: rejected association from {}: {}", opt.ae_title, c.peer, why);
    AssociationsTotal().With({opt.ae_title, "rejected"}).Add();
    reject(no_context ? ASC_REASON_SU_APPCONTEXTNAMENOTSUPPORTED : ASC_REASON_SU_CALLINGAETITLENOTRECOGNIZED);
    return;
  }
  Admission admission;
  if (opt.admit) {
    admission = opt.admit(called_ae, calling_ae, c.peer);
  } else if (called_ae == opt.ae_title) {
    admission.verdict = Admission::Verdict::kAccept;
    admission.sink = std::shared_ptr<StoreSink>(&sink, [](StoreSink*) {});
    if (opt.preferred_transfer_syntax) admission.preferred_transfer_syntax = opt.preferred_transfer_syntax(calling_ae);
    admission.name = opt.ae_title;
  }
  if (admission.verdict != Admission::Verdict::kAccept) {
    bool unknown_called = admission.verdict == Admission::Verdict::kUnknownCalledAe;
    if (unknown_called) {
      spdlog::warn("receiver {}: rejected association from {}@{}: called AE title '{}' not recognized", opt.ae_title,
                   calling_ae, c.peer, called_ae);
    } else {
      spdlog::warn(
          "receiver {}: rejected association from {}@{}: calling AE title not recognized "
          "(not on the whitelist)",
          admission.name, calling_ae, c.peer);
    }
    AssociationsTotal()
        .With({unknown_called || admission.name.empty() ? opt.ae_title : admission.name, "rejected"})
        .Add();
    reject(unknown_called ? ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED : ASC_REASON_SU_CALLINGAETITLENOTRECOGNIZED);
    return;
  }
  AcceptContexts(assoc->params, admission.preferred_transfer_syntax, admission.mpps != nullptr,
                 admission.query != nullptr);
  if (ASC_countAcceptedPresentationContexts(assoc->params) == 0) {
    spdlog::warn("receiver {}: association from {}@{} proposed nothing we accept", admission.name, calling_ae, c.peer);
  }
  OFCondition cond = ASC_acknowledgeAssociation(assoc);
  if (cond.bad()) {
    spdlog::warn("receiver {}: cannot acknowledge association from {}: {}", admission.name, c.peer,
                 ConditionText(cond));
    done();
    return;
  }
  spdlog::debug("receiver {}: association from {}@{} accepted", admission.name, calling_ae, c.peer);
  AssociationsTotal().With({admission.name, "accepted"}).Add();
  metrics::Gauge& open = AssociationsOpen().With({admission.name});
  open.Add(1);
  RunAssociation(assoc, admission, calling_ae, c.peer);
  open.Add(-1);
  done();
}

void AssociationServer::Impl::RunAssociation(T_ASC_Association* assoc, const Admission& admission,
                                             const std::string& calling, const std::string& peer) {
  const std::string& name = admission.name;
  char called_title[65] = {0};
  ASC_getAPTitles(assoc->params, nullptr, 0, called_title, sizeof called_title, nullptr, 0);
  const std::string called_ae = called_title;
  int idle = 0;
  Tally tally;
  metrics::Counter& stored = ReceivedInstances().With({name, "stored"});
  metrics::Counter& refused = ReceivedInstances().With({name, "refused"});
  metrics::Histogram& store_seconds = StoreSeconds().With({name});
  SpareFile spare;  // the next data set's temp file, made after each stored one
  auto start = Steady::now();
  struct Report {  // one line per association that carried data, however it ends
    const std::string& self_name;
    const std::string& calling;
    const std::string& peer;
    const Tally& tally;
    Steady::time_point start;
    ~Report() {
      if (tally.stored + tally.refused == 0) return;
      double s = std::chrono::duration<double>(Steady::now() - start).count();
      spdlog::info("receiver {}: association from {}@{}: {} stored, {} refused in {:.1f} s", self_name, calling, peer,
                   tally.stored, tally.refused, s);
    }
  } report{name, calling, peer, tally, start};
  while (true) {
    T_DIMSE_Message msg;
    T_ASC_PresentationContextID pres = 0;
    DcmDataset* detail = nullptr;  // status detail of a command; never used by a request
    OFCondition cond = DIMSE_receiveCommand(assoc, DIMSE_NONBLOCKING, 1, &pres, &msg, &detail);
    std::unique_ptr<DcmDataset> owned_detail(detail);
    if (cond == DIMSE_NODATAAVAILABLE) {
      if (stopping || ++idle >= opt.idle_timeout_seconds) {
        spdlog::debug("receiver {}: closing {} association from {}", name, stopping ? "(shutdown)" : "idle", peer);
        ASC_abortAssociation(assoc);
        return;
      }
      continue;
    }
    idle = 0;
    if (cond == DUL_PEERREQUESTEDRELEASE) {
      ASC_acknowledgeRelease(assoc);
      return;
    }
    if (cond == DUL_PEERABORTEDASSOCIATION) return;
    if (cond.bad()) {
      spdlog::info("receiver {}: association from {}@{} ended: {}", name, calling, peer, ConditionText(cond));
      ASC_abortAssociation(assoc);
      return;
    }
    switch (msg.CommandField) {
      case DIMSE_C_ECHO_RQ:
        cond = DIMSE_sendEchoResponse(assoc, pres, &msg.msg.CEchoRQ, STATUS_Success, nullptr);
        break;
      case DIMSE_C_STORE_RQ: {
        uint16_t answered = 0;
        StoreContext ctx{"receiver " + name, calling, called_ae, peer};
        ctx.spare = &spare;
        const auto asked = Steady::now();
        if (ReceiveStore(assoc, pres, msg.msg.CStoreRQ, *admission.sink, ctx, answered) == StoreEnd::kAssociationLost)
          return;
        (answered == status::kSuccess ? tally.stored : tally.refused)++;
        (answered == status::kSuccess ? stored : refused).Add();
        if (answered == status::kSuccess)
          store_seconds.Observe(std::chrono::duration<double>(Steady::now() - asked).count());
        break;
      }
      case DIMSE_C_CANCEL_RQ:
        // A C-CANCEL that crossed the final response of what it cancels (PS3.4 lets it come at
        // any time): nothing is left to stop.
        spdlog::debug("receiver {}: late C-CANCEL from {}@{} ignored", name, calling, peer);
        break;
      case DIMSE_C_FIND_RQ:
        if (admission.query) {
          cond = Guarded([&] {
            return AnswerFind(
                assoc, pres, msg.msg.CFindRQ, *admission.query,
                FindContext{"receiver " + name, calling, called_ae, peer, opt.dimse_timeout_seconds, &stopping});
          });
          if (cond.bad()) {
            spdlog::info("receiver {}: C-FIND from {}@{} not completed: {}", name, calling, peer, ConditionText(cond));
          }
          break;
        }
        spdlog::info("receiver {}: C-FIND from {}@{} but Query/Retrieve is off; aborting", name, calling, peer);
        ASC_abortAssociation(assoc);
        return;
      case DIMSE_C_GET_RQ:
      case DIMSE_C_MOVE_RQ:
        if (admission.retrieve) {
          FindContext ctx{"receiver " + name, calling, called_ae, peer, opt.dimse_timeout_seconds, &stopping};
          const bool get = msg.CommandField == DIMSE_C_GET_RQ;
          cond = Guarded([&] {
            return get ? AnswerGet(assoc, pres, msg.msg.CGetRQ, *admission.retrieve, ctx)
                       : AnswerMove(assoc, pres, msg.msg.CMoveRQ, *admission.retrieve, ctx);
          });
          if (cond.bad()) {
            spdlog::info("receiver {}: {} from {}@{} not completed: {}", name, get ? "C-GET" : "C-MOVE", calling, peer,
                         ConditionText(cond));
          }
          break;
        }
        spdlog::info("receiver {}: C-GET or C-MOVE from {}@{} but Query/Retrieve is off; aborting", name, calling,
                     peer);
        ASC_abortAssociation(assoc);
        return;
      case DIMSE_N_CREATE_RQ:
      case DIMSE_N_SET_RQ:
        if (admission.mpps) {
          cond = AnswerMpps(
              assoc, pres, msg, *admission.mpps,
              MppsRequest{
                  msg.CommandField == DIMSE_N_CREATE_RQ, {}, calling, called_ae, peer, {}, {}, admission.mpps_forward});
          if (cond.bad()) {
            spdlog::info("receiver {}: MPPS from {}@{} not completed: {}", name, calling, peer, ConditionText(cond));
          }
          break;
        }
        [[fallthrough]];
      default:
        spdlog::info("receiver {}: unsupported DIMSE command 0x{:04x} from {}; aborting", name,
                     static_cast<unsigned>(msg.CommandField), peer);
        ASC_abortAssociation(assoc);
        return;
    }
    if (cond.bad()) {
      ASC_abortAssociation(assoc);
      return;
    }
  }
}

AssociationServer::AssociationServer(ServerOptions options, StoreSink& sink)
    : impl_(std::make_unique<Impl>(std::move(options), sink)) {}

AssociationServer::~AssociationServer() { Stop(); }

Result<void> AssociationServer::Start() {
  if (auto r = impl_->Listen(); !r) return r;
  for (int i = 0; i < impl_->opt.workers; ++i) impl_->workers.emplace_back([this] { impl_->WorkerLoop(); });
  impl_->rejecter = std::thread([this] { impl_->RejectLoop(); });
  impl_->acceptor = std::thread([this] { impl_->AcceptLoop(); });
  return {};
}

void AssociationServer::StopAccepting() {
  impl_->stopping = true;
  if (impl_->acceptor.joinable()) impl_->acceptor.join();
  {
    // Connections still in their handshake or request are not running associations: cut.
    MutexLock lock(impl_->watch_mu);
    for (auto& [fd, w] : impl_->watched) {
      if (!w.cut) ::shutdown(fd, SHUT_RDWR);
      w.cut = true;
    }
  }
  // Closed now, not after the running associations: new connections are refused at once.
  if (impl_->listen_fd >= 0) ::close(impl_->listen_fd);
  impl_->listen_fd = -1;
}

void AssociationServer::Stop() {
  if (impl_->stopped.exchange(true)) return;
  StopAccepting();
  {
    MutexLock lock(impl_->mu);  // so no waiter misses the notification
  }
  impl_->cv.notify_all();
  impl_->reject_cv.notify_all();
  for (auto& t : impl_->workers)
    if (t.joinable()) t.join();
  if (impl_->rejecter.joinable()) impl_->rejecter.join();
  MutexLock lock(impl_->mu);
  for (auto& c : impl_->queue) ::close(c.fd);
  for (auto& c : impl_->rejects) ::close(c.fd);
  impl_->queue.clear();
  impl_->rejects.clear();
  if (impl_->listen_fd >= 0) ::close(impl_->listen_fd);
  impl_->listen_fd = -1;
}

uint16_t AssociationServer::port() const { return impl_->bound_port; }

}  // namespace pb::dicom
