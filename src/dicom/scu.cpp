#include "dicom/scu.h"
#include "dicom/condition.h"
#include "dicom/tls_files.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <unistd.h>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include <dcmtk/dcmnet/dcmlayer.h>
#include <dcmtk/dcmnet/dcmtrans.h>
#include <dcmtk/dcmnet/dimse.h>
#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/validate.h"

namespace pb::dicom {
namespace {

std::string RejectReason(const T_ASC_RejectParameters& rej, const PeerRequest& rq) {
  switch (rej.reason) {
    case ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED:
      return fmt::format(
          "association rejected: called AE title not recognized (the peer does not answer to "
          "'{}'; check the node's AE title, case matters)",
          rq.called_ae);
    case ASC_REASON_SU_CALLINGAETITLENOTRECOGNIZED:
      return fmt::format(
          "association rejected: calling AE title not recognized (register our AE title '{}' "
          "and this machine's address on the PACS)",
          rq.calling_ae);
    case ASC_REASON_SP_PRES_TEMPORARYCONGESTION:
      return "association rejected: temporary congestion (the PACS is busy; try again later)";
    case ASC_REASON_SP_PRES_LOCALLIMITEXCEEDED:
      return "association rejected: local limit exceeded (the PACS has too many associations)";
    case ASC_REASON_SU_APPCONTEXTNAMENOTSUPPORTED:
      return "association rejected: application context name not supported";
    case ASC_REASON_SP_ACSE_PROTOCOLVERSIONNOTSUPPORTED:
      return "association rejected: protocol version not supported";
    default:
      return fmt::format("association rejected: no reason given ({})",
                         rej.result == ASC_RESULT_REJECTEDTRANSIENT ? "transient" : "permanent");
  }
}

// Resolves the host ourselves first, so "host not found" is told apart from network errors.
// Returns the address to give DCMTK (IPv4 literal when there is one; otherwise the name).
std::string Resolve(const std::string& host, std::string& error) {
  if (IsIpv4Literal(host)) return host;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    error = (rc == EAI_NONAME || rc == EAI_NODATA || rc == EAI_AGAIN || rc == EAI_FAIL)
                ? fmt::format(
                      "host not found: '{}' does not resolve ({}); check the host name "
                      "or use the IP address",
                      host, gai_strerror(rc))
                : fmt::format("host not found: '{}' ({})", host, gai_strerror(rc));
    return {};
  }
  std::string out = host;
  for (addrinfo* p = res; p; p = p->ai_next) {
    if (p->ai_family == AF_INET) {
      char buf[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(p->ai_addr)->sin_addr, buf, sizeof buf);
      out = buf;
      break;
    }
  }
  freeaddrinfo(res);
  if (IsIpv6Literal(out)) {
    error = fmt::format(
        "'{}' is an IPv6 address; outgoing DICOM associations to IPv6 literals "
        "are not supported by this build (use a DNS name)",
        host);
    return {};
  }
  return out;
}

// Sets up the TLS transport for the request; errors name the node field to fix.
// A plain TCP connection whose reads and writes take their bytes from a rate limiter: the
// throttle sits on the transport itself, so C-GET data, C-STORE data and every PDU count.
class PacedConnection : public DcmTCPConnection {
 public:
  PacedConnection(DcmNativeSocketType socket, std::shared_ptr<RateLimiter> limiter)
      : DcmTCPConnection(socket), limiter_(std::move(limiter)) {}
  ssize_t read(void* buf, size_t nbyte) override {
    const ssize_t n = DcmTCPConnection::read(buf, nbyte);
    if (n > 0) limiter_->Acquire(n);
    return n;
  }
  ssize_t write(void* buf, size_t nbyte) override {
    limiter_->Acquire(static_cast<int64_t>(nbyte));
    return DcmTCPConnection::write(buf, nbyte);
  }

 private:
  std::shared_ptr<RateLimiter> limiter_;
};

class PacedLayer : public DcmTransportLayer {
 public:
  explicit PacedLayer(std::shared_ptr<RateLimiter> limiter) : limiter_(std::move(limiter)) {}
  DcmTransportConnection* createConnection(DcmNativeSocketType socket, OFBool secure) override {
    if (secure) return nullptr;
    return new PacedConnection(socket, limiter_);
  }

 private:
  std::shared_ptr<RateLimiter> limiter_;
};

std::string SetUpTls(const PeerRequest& rq, std::unique_ptr<DcmTLSTransportLayer>& layer) {
  layer = std::make_unique<DcmTLSTransportLayer>(NET_REQUESTOR, nullptr, OFTrue);
  if (layer->setTLSProfile(TSP_Profile_BCP195).bad()) return "TLS profile not available";
  if (!rq.tls_ca_file.empty()) {
    if (layer->addTrustedCertificateFile(rq.tls_ca_file.c_str(), DCF_Filetype_PEM).bad()) {
      return fmt::format("cannot read tls.ca_file '{}' (a PEM certificate)", rq.tls_ca_file);
    }
  } else {
    (void)layer->addTrustedCertificateDir("/etc/ssl/certs", DCF_Filetype_PEM);
  }
  if (!rq.tls_cert_file.empty()) {
    if (layer->setPrivateKeyFile(rq.tls_key_file.c_str(), DCF_Filetype_PEM).bad()) {
      return fmt::format("cannot read tls.key_file '{}' (a PEM private key)", rq.tls_key_file);
    }
    if (layer->setCertificateFile(rq.tls_cert_file.c_str(), DCF_Filetype_PEM).bad()) {
      return fmt::format("cannot read tls.cert_file '{}' (a PEM certificate)", rq.tls_cert_file);
    }
    if (!layer->checkPrivateKeyMatchesCertificate()) {
      return "tls.key_file does not match tls.cert_file";
    }
  }
  if (layer->activateCipherSuites().bad()) return "no usable TLS cipher suite";
  layer->setCertificateVerification(rq.tls_verify_peer ? DCV_requireCertificate : DCV_ignoreCertificate);
  return {};
}

// After a failed handshake, a second one that accepts any certificate, only to see what the
// peer is: whether it speaks TLS at all, and what is wrong with its certificate (expired, not
// yet valid, or from an issuer we do not trust).
struct TlsProbe {
  bool speaks_tls = false;
  std::string certificate_problem;
};

TlsProbe Probe(const std::string& address, uint16_t port, int timeout_seconds) {
  TlsProbe probe;
  const std::string fallback =
      "certificate not trusted (check tls.ca_file: it must hold the CA "
      "that issued the peer's certificate)";
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(address.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) {
    probe.certificate_problem = fallback;
    return probe;
  }
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{timeout_seconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  bool connected = fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) == 0;
  freeaddrinfo(res);
  std::string& out = probe.certificate_problem;
  out = fallback;
  SSL_CTX* ctx = connected ? SSL_CTX_new(TLS_client_method()) : nullptr;
  SSL* ssl = ctx ? SSL_new(ctx) : nullptr;
  if (ssl) {
    SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) == 1) {
      probe.speaks_tls = true;
      if (X509* cert = SSL_get_peer_certificate(ssl)) {
        char issuer[256] = "", subject[256] = "";
        X509_NAME_oneline(X509_get_issuer_name(cert), issuer, sizeof issuer);
        X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
        auto when = [](const ASN1_TIME* t) {
          BIO* b = BIO_new(BIO_s_mem());
          ASN1_TIME_print(b, t);
          char buf[64] = "";
          int n = BIO_read(b, buf, sizeof buf - 1);
          BIO_free(b);
          return std::string(buf, n > 0 ? n : 0);
        };
        if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
          out = fmt::format("certificate expired (on {}; subject {})", when(X509_get0_notAfter(cert)), subject);
        } else if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
          out =
              fmt::format("certificate not yet valid (from {}; subject {})", when(X509_get0_notBefore(cert)), subject);
        } else {
          out = fmt::format(
              "certificate not trusted (issuer {}; subject {}): put the issuer's "
              "certificate in tls.ca_file",
              issuer, subject);
        }
        X509_free(cert);
      }
      SSL_shutdown(ssl);
    }
    SSL_free(ssl);
  }
  if (ctx) SSL_CTX_free(ctx);
  if (fd >= 0) ::close(fd);
  return probe;
}

// The name the peer's certificate is for, when it is not `host`; "" when it matches.
std::string HostMismatch(T_ASC_Association* assoc, const std::string& host) {
  unsigned long len = ASC_getPeerCertificateLength(assoc);
  if (len == 0) return "the peer sent no certificate";
  std::vector<unsigned char> der(len);
  ASC_getPeerCertificate(assoc, der.data(), len);
  const unsigned char* p = der.data();
  std::unique_ptr<X509, void (*)(X509*)> cert(d2i_X509(nullptr, &p, static_cast<long>(len)), X509_free);
  if (!cert) return "the peer's certificate cannot be read";
  bool ok = IsIpv4Literal(host) || IsIpv6Literal(host)
                ? X509_check_ip_asc(cert.get(), host.c_str(), 0) == 1
                : X509_check_host(cert.get(), host.c_str(), host.size(), 0, nullptr) == 1;
  if (ok) return {};
  char subject[256] = "";
  X509_NAME_oneline(X509_get_subject_name(cert.get()), subject, sizeof subject);
  std::string names;
  if (auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr))) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
      std::string name;
      if (g->type == GEN_DNS) {
        name = reinterpret_cast<const char*>(ASN1_STRING_get0_data(g->d.dNSName));
      } else if (g->type == GEN_IPADD && g->d.iPAddress->length == 4) {
        const unsigned char* ip = ASN1_STRING_get0_data(g->d.iPAddress);
        name = fmt::format("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3]);
      }
      if (name.empty()) continue;
      if (!names.empty()) names += ", ";
      names += name;
    }
    GENERAL_NAMES_free(sans);
  }
  return fmt::format(
      "host name does not match the certificate: we connected to '{}', the "
      "certificate is for {}{}{} (fix the node's host, or set tls.verify_hostname "
      "to false)",
      host, subject, names.empty() ? "" : ", alternative names: ", names);
}

}  // namespace

ScuAssociation::~ScuAssociation() {
  if (open_) Abort();
  if (assoc_) {
    ASC_destroyAssociation(&assoc_);
  } else if (params_) {
    ASC_destroyAssociationParameters(&params_);
  }
  if (net_) ASC_dropNetwork(&net_);
}

T_ASC_PresentationContextID ScuAssociation::ContextFor(const char* abstract_syntax) const {
  return ASC_findAcceptedPresentationContextID(assoc_, abstract_syntax);
}

// The source address the kernel picks for the peer's address: a connected UDP socket sends
// nothing, and DCMTK does not expose the association's own socket.
std::string ScuAssociation::LocalAddress() const {
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICHOST;
  addrinfo* res = nullptr;
  if (getaddrinfo(address_.c_str(), std::to_string(port_).c_str(), &hints, &res) != 0) return {};
  std::string out;
  int fd = ::socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "";
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, host, sizeof host);
      } else if (ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, host, sizeof host);
      }
    }
    out = host;
  }
  if (fd >= 0) ::close(fd);
  freeaddrinfo(res);
  return out;
}

void ScuAssociation::Release() {
  if (open_) ASC_releaseAssociation(assoc_);
  open_ = false;
}

void ScuAssociation::Abort() {
  if (open_) ASC_abortAssociation(assoc_);
  open_ = false;
}

[[nodiscard]] Result<std::unique_ptr<ScuAssociation>> Associate(const PeerRequest& rq,
                                                                const std::vector<ProposedContext>& contexts) {
  // A PACS at its association limit (or congested) rejects transiently: it is worth a few
  // more tries, a little later, before calling it a failure (parallel sends, or a PACS that
  // counts associations that just ended until it reaps them).
  for (int attempt = 0;; ++attempt) {
    bool busy = false;
    auto once = [&]() -> Result<std::unique_ptr<ScuAssociation>> {
      auto fail = [](std::string why) { return Fail(Code::kUnavailable, std::move(why)); };
      std::string resolve_error;
      std::string address = Resolve(rq.host, resolve_error);
      if (address.empty()) return fail(resolve_error);
      std::unique_ptr<ScuAssociation> a(new ScuAssociation);
      a->where_ = JoinHostPort(rq.host, rq.port);
      a->address_ = address;
      a->port_ = rq.port;
      const std::string& where = a->where_;

      OFCondition cond = ASC_initializeNetwork(NET_REQUESTOR, 0, rq.timeout_seconds, &a->net_);
      if (cond.bad()) return fail(fmt::format("cannot initialize the network: {}", ConditionText(cond)));
      // The largest PDU DCMTK receives (128 KB, as our receivers offer): a C-GET's data comes in
      // 8 times fewer PDUs than at DCMTK's default of 16 KB.
      cond = ASC_createAssociationParameters(&a->params_, ASC_MAXIMUMPDUSIZE);
      if (cond.bad()) return fail(ConditionText(cond));
      if (rq.tls) {
        if (std::string why = SetUpTls(rq, a->tls_); !why.empty()) return fail("TLS set-up: " + why);
        ASC_setTransportLayer(a->net_, a->tls_.get(), 0);
        ASC_setTransportLayerType(a->params_, OFTrue);
      } else if (rq.limiter) {
        a->paced_ = std::make_unique<PacedLayer>(rq.limiter);
        ASC_setTransportLayer(a->net_, a->paced_.get(), 0);
      }
      ASC_setAPTitles(a->params_, rq.calling_ae.c_str(), rq.called_ae.c_str(), nullptr);
      std::string peer = fmt::format("{}:{}", address, rq.port);
      ASC_setPresentationAddresses(a->params_, "localhost", peer.c_str());
      T_ASC_PresentationContextID id = 1;
      for (const ProposedContext& c : contexts) {
        std::vector<const char*> ts = c.transfer_syntaxes;
        ASC_addPresentationContext(a->params_, id, c.abstract_syntax, ts.data(), static_cast<int>(ts.size()), c.role);
        id += 2;
      }

      dcmConnectionTimeout.set(rq.timeout_seconds);
      cond = ASC_requestAssociation(a->net_, a->params_, &a->assoc_);
      if (cond.bad()) {
        const std::string text = ConditionText(cond);
        const NetFault fault = Classify(cond);
        if (rq.tls && (fault == NetFault::kTls || fault == NetFault::kTlsCertificate)) {
          TlsProbe probe = Probe(address, rq.port, rq.timeout_seconds);
          if (fault == NetFault::kTlsCertificate) {
            return fail(fmt::format("TLS handshake failed with {}: {}", where, probe.certificate_problem));
          }
          if (!probe.speaks_tls) {
            return fail(
                fmt::format("TLS handshake failed with {}: the peer does not speak TLS on this "
                            "port ({}); use its TLS port or switch tls.enabled off",
                            where, text));
          }
          return fail(
              fmt::format("TLS handshake failed with {}: {} (the peer speaks TLS but refused "
                          "ours: it may require a client certificate (tls.cert_file, "
                          "tls.key_file) that it trusts)",
                          where, text));
        }
        if (cond == DUL_ASSOCIATIONREJECTED) {
          T_ASC_RejectParameters rej;
          ASC_getRejectParameters(a->params_, &rej);
          busy = rej.result == ASC_RESULT_REJECTEDTRANSIENT && (rej.reason == ASC_REASON_SP_PRES_LOCALLIMITEXCEEDED ||
                                                                rej.reason == ASC_REASON_SP_PRES_TEMPORARYCONGESTION);
          // A transient rejection (busy, congested) may pass; a permanent one (an AE title the
          // peer does not know, a context it does not support) will not until someone acts.
          return Fail(rej.result == ASC_RESULT_REJECTEDTRANSIENT ? Code::kUnavailable : Code::kPermissionDenied,
                      RejectReason(rej, rq));
        }
        if (fault == NetFault::kRefused) {
          return fail(
              fmt::format("connection refused by {} (nothing listens on that port: is the "
                          "PACS running, and is the port right?)",
                          where));
        }
        if (fault == NetFault::kTimeout) {
          return Fail(Code::kTimeout,
                      fmt::format("timed out after {} s {} {} (a firewall, a wrong address, or not a DICOM port?)",
                                  rq.timeout_seconds,
                                  cond == DUL_READTIMEOUT ? "waiting for the association answer from" : "connecting to",
                                  where));
        }
        if (fault == NetFault::kAborted) {
          return Fail(Code::kAborted, fmt::format("the peer at {} aborted the association request (it may not "
                                                  "accept our calling AE title '{}'{})",
                                                  where, rq.calling_ae, rq.tls ? "" : ", or it expects TLS"));
        }
        if (fault == NetFault::kUnreachable) {
          return fail(fmt::format("{} is unreachable from this machine ({})", where, text));
        }
        return fail(fmt::format("cannot associate with {}: {}", where, text));
      }
      a->open_ = true;
      if (rq.tls && rq.tls_verify_peer && rq.tls_verify_hostname) {
        if (std::string why = HostMismatch(a->assoc_, rq.host); !why.empty()) {
          return fail(fmt::format("TLS with {}: {}", where, why));
        }
      }
      if (ASC_countAcceptedPresentationContexts(a->params_) == 0) {
        std::string names;
        for (const ProposedContext& c : contexts) {
          const char* n = dcmFindNameOfUID(c.abstract_syntax);
          if (!names.empty()) names += ", ";
          names += n ? n : c.abstract_syntax;
        }
        // The peer offers none of it: asking again will not change that.
        return Fail(Code::kUnsupported,
                    fmt::format("no presentation context accepted (the peer does not accept {})", names));
      }
      return a;
    };
    auto a = once();
    if (a || !busy || attempt == 3) return a;
    std::this_thread::sleep_for(std::chrono::milliseconds(250 * (attempt + 1)));
  }
}

std::string DescribeCertificateProblem(const std::string& address, uint16_t port, int timeout_seconds) {
  return Probe(address, port, timeout_seconds).certificate_problem;
}

}  // namespace pb::dicom
