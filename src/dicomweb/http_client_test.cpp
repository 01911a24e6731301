// HttpClient against a real HTTP server (cpp-httplib) in this process, on loopback only.
#include "dicomweb/http_client.h"
#include "core/text.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace pb::dicomweb {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Deterministic bytes that are not all alike, so a shifted or dropped chunk shows.
std::string Pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

// What the server saw of one request (before its body: see the upload handler).
struct Seen {
  std::string method, path;
  httplib::Headers headers;
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
  bool Has(const std::string& name) const { return headers.find(name) != headers.end(); }
};

// One cpp-httplib server on `host`, port chosen by the kernel, listening on its own thread.
class TestServer {
 public:
  explicit TestServer(std::string host) : host_(std::move(host)) {
    server_.set_keep_alive_timeout(1);
    // Record every request before it is routed (and before its body is read).
    server_.set_pre_routing_handler([this](const httplib::Request& rq, httplib::Response&) {
      std::lock_guard lock(mu_);
      seen_.push_back({rq.method, rq.path, rq.headers});
      return httplib::Server::HandlerResponse::Unhandled;
    });
  }
  ~TestServer() { Stop(); }

  httplib::Server& routes() { return server_; }

  // False when the address cannot be bound (127.0.0.2 on some hosts).
  bool Start() {
    port_ = server_.bind_to_any_port(host_);
    if (port_ <= 0) return false;
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    return true;
  }

  void Stop() {
    if (!thread_.joinable()) return;
    // stop() only acts once the loop runs; the socket already listens, so this is short.
    while (!server_.is_running()) std::this_thread::sleep_for(1ms);
    server_.stop();
    thread_.join();
  }

  std::string Url(const std::string& path = "") const { return "http://" + host_ + ":" + std::to_string(port_) + path; }
  int port() const { return port_; }

  std::vector<Seen> Requests(const std::string& path = "") {
    std::lock_guard lock(mu_);
    std::vector<Seen> out;
    for (const Seen& s : seen_) {
      if (path.empty() || s.path == path) out.push_back(s);
    }
    return out;
  }

 private:
  std::string host_;
  int port_ = -1;
  httplib::Server server_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<Seen> seen_;
};

// A port on 127.0.0.1 that nothing listens on: bound by us, then released.
int ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    return -1;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

constexpr size_t kStreamBytes = 5u << 20;
constexpr size_t kUploadBytes = 2u << 20;
// RFC 6749 2.3.1 client authentication: base64("client-1:s3cr3t"), computed outside the code.
constexpr const char* kClientBasic = "Basic Y2xpZW50LTE6czNjcjN0";

class HttpClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& s = server_.routes();
    s.Get("/echo", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok", "text/plain"); });
    s.Post("/upload", [this](const httplib::Request& rq, httplib::Response& res) {
      uploaded_bytes_ = rq.body.size();
      res.set_content(rq.body == upload_ ? "same" : "different", "text/plain");
    });
    s.Get("/stream", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("application/octet-stream", [](size_t offset, httplib::DataSink& sink) {
        static const std::string data = Pattern(kStreamBytes, 5);
        const size_t n = std::min<size_t>(64 * 1024, data.size() - offset);
        sink.write(data.data() + offset, n);
        if (offset + n == data.size()) sink.done();
        return true;
      });
    });
    s.Get("/missing", [](const httplib::Request&, httplib::Response& res) {
      res.status = 404;
      res.set_content("no such resource\n" + std::string(400 * 1024, 'x'), "text/plain");
    });
    s.Get("/needauth", [](const httplib::Request&, httplib::Response& res) {
      res.status = 401;
      res.set_header("WWW-Authenticate", "Basic realm=\"R1\"");
      res.set_content("authentication required", "text/plain");
    });
    s.Get("/same-host-redirect",
          [this](const httplib::Request&, httplib::Response& res) { res.set_redirect(server_.Url("/echo"), 307); });
    s.Post("/same-host-redirect-upload",
           [this](const httplib::Request&, httplib::Response& res) { res.set_redirect(server_.Url("/upload"), 307); });
    s.Get("/other-host-redirect",
          [this](const httplib::Request&, httplib::Response& res) { res.set_redirect(other_url_ + "/echo", 307); });
    s.Get("/slow", [this](const httplib::Request&, httplib::Response& res) {
      std::unique_lock lock(slow_mu_);
      slow_cv_.wait_for(lock, 5s, [this] { return slow_release_; });
      res.set_content("late", "text/plain");
    });
    // OAuth2 (RFC 6749 4.4): client credentials with HTTP basic client authentication.
    s.Post("/token", [this](const httplib::Request& rq, httplib::Response& res) {
      if (token_refusal_) {
        res.status = 400;
        res.set_content(*token_refusal_, "application/json");
        return;
      }
      if (rq.get_header_value("Authorization") != kClientBasic ||
          !Contains("&" + rq.body + "&", "&grant_type=client_credentials&")) {
        res.status = 400;
        res.set_content(R"({"error":"invalid_client"})", "application/json");
        return;
      }
      std::lock_guard lock(token_mu_);
      const std::string token = "tok-" + std::to_string(issued_.size() + 1);
      issued_.push_back({token, Steady::now()});
      nlohmann::json j{{"access_token", token}, {"token_type", "Bearer"}};
      if (expires_in_) j["expires_in"] = *expires_in_;
      res.set_content(j.dump(), "application/json");
    });
    s.Get("/protected", [this](const httplib::Request& rq, httplib::Response& res) {
      const std::string auth = rq.get_header_value("Authorization");
      std::lock_guard lock(token_mu_);
      const std::string token = auth.rfind("Bearer ", 0) == 0 ? auth.substr(7) : "";
      bool known = false;
      for (const auto& i : issued_) known = known || i.token == token;
      if (known && (revoke_all_ || (revoke_next_ && revoked_.empty()))) revoked_.insert(token);
      if (!known || revoked_.count(token)) {
        res.status = 401;
        res.set_header("WWW-Authenticate", "Bearer error=\"invalid_token\"");
        return;
      }
      res.set_content("welcome", "text/plain");
    });
    ASSERT_TRUE(server_.Start()) << "cannot bind 127.0.0.1";
    upload_ = Pattern(kUploadBytes, 2);
  }

  void TearDown() override {
    {
      std::lock_guard lock(slow_mu_);
      slow_release_ = true;
    }
    slow_cv_.notify_all();
    server_.Stop();
  }

  Node MakeNode() const {
    Node n;
    n.name = "web";
    n.type = NodeType::kDicomWeb;
    n.url = server_.Url("/dicom-web/");
    n.query_timeout_seconds = 5;
    n.retrieve_timeout_seconds = 5;
    return n;
  }

  Node OAuthNode() const {
    Node n = MakeNode();
    n.auth.type = "oauth2";
    n.auth.token_url = server_.Url("/token");
    n.auth.client_id = "client-1";
    n.auth.client_secret = "s3cr3t";
    return n;
  }

  static HttpRequest Get(const std::string& url) {
    HttpRequest rq;
    rq.url = url;
    rq.what = "the test request";
    return rq;
  }

  // A POST whose body is read in pieces, as a STOW-RS body is.
  HttpRequest StreamedPost(const std::string& url, size_t* offset) {
    HttpRequest rq;
    rq.method = "POST";
    rq.url = url;
    rq.what = "the test upload";
    rq.headers = {"Content-Type: application/octet-stream"};
    rq.body_size = static_cast<int64_t>(upload_.size());
    rq.read_body = [this, offset](char* buf, size_t n) -> Result<size_t> {
      const size_t k = std::min(n, upload_.size() - *offset);
      std::copy_n(upload_.data() + *offset, k, buf);
      *offset += k;
      return k;
    };
    rq.rewind_body = [offset]() -> Result<void> {
      *offset = 0;
      return {};
    };
    return rq;
  }

  size_t TokensIssued() {
    std::lock_guard lock(token_mu_);
    return issued_.size();
  }

  struct Issued {
    std::string token;
    Steady::time_point at;
  };

  TestServer server_{"127.0.0.1"};
  std::string other_url_;  // the 127.0.0.2 server of the redirect test
  std::string upload_;
  std::atomic<size_t> uploaded_bytes_{0};
  std::mutex slow_mu_;
  std::condition_variable slow_cv_;
  bool slow_release_ = false;
  std::mutex token_mu_;
  std::vector<Issued> issued_;
  std::set<std::string> revoked_;
  std::optional<nlohmann::json> expires_in_ = 1;
  std::optional<std::string> token_refusal_;  // the token endpoint's 400 body, when set
  bool revoke_next_ = false, revoke_all_ = false;
};

// --- what every request carries ---

TEST_F(HttpClientTest, BasicAuthSendsRfc7617Credentials) {
  Node n = MakeNode();
  n.auth.type = "basic";
  n.auth.username = "Aladdin";
  n.auth.password = "open sesame";
  HttpClient client(n, "BRIDGE");
  HttpRequest rq = Get(server_.Url("/echo"));
  auto r = client.Perform(rq);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ok");
  auto seen = server_.Requests("/echo");
  ASSERT_EQ(seen.size(), 1u) << "basic credentials go with the first request, not after a 401";
  // RFC 7617 section 2's example.
  EXPECT_EQ(seen[0].Header("Authorization"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
}

TEST_F(HttpClientTest, BearerTokenExtraAndAeTitleHeaders) {
  Node n = MakeNode();
  n.auth.type = "bearer";
  n.auth.token = "eyJhbGciOi.payload.sig";
  n.headers = {{"X-Tenant", "radiology"}, {"X-Api-Key", "k1"}};
  n.ae_title = "PACS1";
  n.calling_ae_header = "X-Calling-AE";
  n.called_ae_header = "X-Called-AE";
  HttpClient client(n, "BRIDGE");
  HttpRequest rq = Get(server_.Url("/echo"));
  rq.headers = {"Accept: application/dicom+json"};
  auto r = client.Perform(rq);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  auto seen = server_.Requests("/echo");
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].Header("Authorization"), "Bearer eyJhbGciOi.payload.sig");
  EXPECT_EQ(seen[0].Header("X-Tenant"), "radiology");
  EXPECT_EQ(seen[0].Header("X-Api-Key"), "k1");
  EXPECT_EQ(seen[0].Header("X-Calling-AE"), "BRIDGE");
  EXPECT_EQ(seen[0].Header("X-Called-AE"), "PACS1");
  EXPECT_EQ(seen[0].Header("Accept"), "application/dicom+json");
}

TEST_F(HttpClientTest, NoAuthSendsNoAuthorization) {
  HttpClient client(MakeNode(), "BRIDGE");
  HttpRequest rq = Get(server_.Url("/echo"));
  ASSERT_TRUE(client.Perform(rq).has_value());
  auto seen = server_.Requests("/echo");
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_FALSE(seen[0].Has("Authorization"));
}

TEST_F(HttpClientTest, StreamedUploadArrivesWholeWithoutExpect) {
  HttpClient client(MakeNode(), "BRIDGE");
  size_t offset = 0;
  HttpRequest rq = StreamedPost(server_.Url("/upload"), &offset);
  auto r = client.Perform(rq);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "same") << "the server got other bytes than were sent";
  auto seen = server_.Requests("/upload");
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_FALSE(seen[0].Has("Expect")) << seen[0].Header("Expect");
  EXPECT_EQ(seen[0].Header("Content-Length"), std::to_string(kUploadBytes));
  EXPECT_EQ(uploaded_bytes_.load(), kUploadBytes);
}

// --- OAuth2 ---

TEST_F(HttpClientTest, OAuth2TokenIsCachedForItsLifetimeThenRenewed) {
  HttpClient client(OAuthNode(), "BRIDGE");
  for (int i = 0; i < 2; ++i) {
    HttpRequest rq = Get(server_.Url("/protected"));
    auto r = client.Perform(rq);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_EQ(r->status, 200) << i;
  }
  EXPECT_EQ(TokensIssued(), 1u) << "two requests within the token's lifetime";
  auto tokens = server_.Requests("/token");
  ASSERT_EQ(tokens.size(), 1u);
  EXPECT_EQ(tokens[0].Header("Content-Type"), "application/x-www-form-urlencoded");
  for (const Seen& s : server_.Requests("/protected")) EXPECT_EQ(s.Header("Authorization"), "Bearer tok-1");

  // expires_in 1: wait until a second has passed since the server issued it (and a bit more).
  Steady::time_point issued;
  {
    std::lock_guard lock(token_mu_);
    issued = issued_.at(0).at;
  }
  std::this_thread::sleep_until(issued + 1100ms);
  HttpRequest rq = Get(server_.Url("/protected"));
  auto r = client.Perform(rq);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(TokensIssued(), 2u) << "an expired token was used again";
  EXPECT_EQ(server_.Requests("/protected").back().Header("Authorization"), "Bearer tok-2");
}

TEST_F(HttpClientTest, OAuth2RevokedTokenIsReplacedOnce) {
  expires_in_ = 3600;
  revoke_next_ = true;  // the first token the server sees is refused from then on
  HttpClient client(OAuthNode(), "BRIDGE");
  HttpRequest rq = Get(server_.Url("/protected"));
  auto r = client.Perform(rq);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(TokensIssued(), 2u);
  auto seen = server_.Requests("/protected");
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].Header("Authorization"), "Bearer tok-1");
  EXPECT_EQ(seen[1].Header("Authorization"), "Bearer tok-2");
  // The refused token is not used again.
  HttpRequest again = Get(server_.Url("/protected"));
  auto r2 = client.Perform(again);
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->status, 200);
  EXPECT_EQ(TokensIssued(), 2u);
}

TEST_F(HttpClientTest, OAuth2TriesOnlyOnceMoreWhenEveryTokenIsRefused) {
  expires_in_ = 3600;
  revoke_all_ = true;
  HttpClient client(OAuthNode(), "BRIDGE");
  HttpRequest rq = Get(server_.Url("/protected"));
  auto r = client.Perform(rq);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(server_.Requests("/protected").size(), 2u);
  EXPECT_EQ(TokensIssued(), 2u);
  EXPECT_TRUE(Contains(client.Explain(rq, *r), "newly fetched token")) << client.Explain(rq, *r);
}

TEST_F(HttpClientTest, OAuth2WrongClientSecretIsPermissionDenied) {
  Node n = OAuthNode();
  n.auth.client_secret = "wrong";
  HttpClient client(n, "BRIDGE");
  HttpRequest rq = Get(server_.Url("/protected"));
  auto r = client.Perform(rq);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Code::kPermissionDenied);
  EXPECT_TRUE(Contains(r.error().message, "invalid_client")) << r.error().message;
  EXPECT_TRUE(server_.Requests("/protected").empty());
}

TEST_F(HttpClientTest, OAuth2HugeExpiresInIsNotFatal) {
  // A token endpoint may say anything; the lifetime arithmetic must not overflow (UBSan).
  expires_in_ = nlohmann::json(9223372036854775807LL);
  HttpClient client(OAuthNode(), "BRIDGE");
  for (int i = 0; i < 2; ++i) {
    HttpRequest rq = Get(server_.Url("/protected"));
    auto r = client.Perform(rq);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_EQ(TokensIssued(), 1u);
}

TEST_F(HttpClientTest, OAuth2RefusalWithOddJsonTypesIsAnErrorNotAThrow) {
  // RFC 6749 5.2 says "error" is a string; a server that sends something else must not crash us.
  token_refusal_ = R"({"error": 42, "error_description": ["x"]})";
  HttpClient client(OAuthNode(), "BRIDGE");
  HttpRequest rq = Get(server_.Url("/protected"));
  Result<HttpResponse> r = Fail(Code::kInternal, "not run");
  ASSERT_NO_THROW(r = client.Perform(rq));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Code::kPermissionDenied);
  EXPECT_TRUE(Contains(r.error().message, "HTTP 400")) << r.error().message;
}

// --- answers ---

TEST_F(HttpClientTest, SuccessBodyIsStreamedInChunks) {
  HttpClient client(MakeNode(), "BRIDGE");
  HttpRequest rq = Get(server_.Url("/stream"));
  rq.phase = Phase::kTransfer;
  int heads = 0, chunks = 0;
  bool body_before_head = false;
  std::string got;
  rq.on_head = [&](long status, const std::map<std::string, std::string>& headers) -> Result<void> {
    ++heads;
    EXPECT_EQ(status, 200);
    auto it = headers.find("content-type");
    EXPECT_TRUE(it != headers.end() && it->second == "application/octet-stream");
    return {};
  };
  rq.on_body = [&](std::string_view chunk) -> Result<void> {
    body_before_head = body_before_head || heads == 0;
    ++chunks;
    got.append(chunk);
    return {};
  };
  auto r = client.Perform(rq);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(heads, 1);
  EXPECT_FALSE(body_before_head);
  EXPECT_GT(chunks, 1);
  EXPECT_EQ(got.size(), kStreamBytes);
  EXPECT_TRUE(got == Pattern(kStreamBytes, 5)) << "streamed bytes differ from those sent";
  EXPECT_TRUE(r->body.empty()) << "a streamed body is also kept: " << r->body.size() << " bytes";
  EXPECT_EQ(AsciiLower(r->Header("transfer-encoding")), "chunked");
}

TEST_F(HttpClientTest, OnBodyRefusalStopsTheTransferWithItsError) {
  HttpClient client(MakeNode(), "BRIDGE");
  HttpRequest rq = Get(server_.Url("/stream"));
  rq.phase = Phase::kTransfer;
  rq.on_body = [](std::string_view) -> Result<void> { return Fail(Code::kOutOfSpace, "disk full"); };
  auto r = client.Perform(rq);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Code::kOutOfSpace);
  EXPECT_EQ(r.error().message, "disk full");
}

TEST_F(HttpClientTest, NotFoundBodyIsKeptBoundedAndExplained) {
  HttpClient client(MakeNode(), "BRIDGE");
  HttpRequest rq = Get(server_.Url("/missing"));
  bool streamed = false;
  rq.on_body = [&](std::string_view) -> Result<void> {
    streamed = true;
    return {};
  };
  rq.on_head = [&](long, const std::map<std::string, std::string>&) -> Result<void> {
    streamed = true;
    return {};
  };
  auto r = client.Perform(rq);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->status, 404);
  EXPECT_FALSE(streamed) << "an error answer went to the 2xx callbacks";
  EXPECT_EQ(r->body.size(), HttpClient::kMaxKeptBody);
  EXPECT_EQ(r->body.rfind("no such resource\nxxx", 0), 0u);
  const std::string why = client.Explain(rq, *r);
  EXPECT_TRUE(Contains(why, "404")) << why;
  EXPECT_TRUE(Contains(why, "DICOMweb root")) << why;
  EXPECT_TRUE(Contains(why, rq.url)) << why;
}

TEST_F(HttpClientTest, UnauthorizedNamesRealmAndScheme) {
  Node n = MakeNode();
  n.auth.type = "basic";
  n.auth.username = "alice";
  n.auth.password = "pw";
  HttpClient client(n, "BRIDGE");
  HttpRequest rq = Get(server_.Url("/needauth"));
  auto r = client.Perform(rq);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->status, 401);
  const std::string why = client.Explain(rq, *r);
  EXPECT_TRUE(Contains(why, "401")) << why;
  EXPECT_TRUE(Contains(why, "R1")) << why;
  EXPECT_TRUE(Contains(AsciiLower(why), "basic")) << why;
  EXPECT_TRUE(Contains(why, "alice")) << why;

  HttpClient anonymous(MakeNode(), "BRIDGE");
  HttpRequest rq2 = Get(server_.Url("/needauth"));
  auto r2 = anonymous.Perform(rq2);
  ASSERT_TRUE(r2.has_value());
  const std::string why2 = anonymous.Explain(rq2, *r2);
  EXPECT_TRUE(Contains(why2, "R1")) << why2;
  EXPECT_TRUE(Contains(AsciiLower(why2), "basic")) << why2;
}

// --- redirects ---

TEST_F(HttpClientTest, SameHostRedirectIsFollowed) {
  HttpClient client(MakeNode(), "BRIDGE");
  HttpRequest rq = Get(server_.Url("/same-host-redirect"));
  auto r = client.Perform(rq);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ok");
  EXPECT_EQ(server_.Requests("/echo").size(), 1u);
}

TEST_F(HttpClientTest, SameHostRedirectOfAStreamedPostSendsTheBodyAgain) {
  // 307 keeps the method and the body (RFC 9110 15.4.8): the body is read again from the start.
  HttpClient client(MakeNode(), "BRIDGE");
  size_t offset = 0;
  HttpRequest rq = StreamedPost(server_.Url("/same-host-redirect-upload"), &offset);
  auto r = client.Perform(rq);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "same");
  auto seen = server_.Requests("/upload");
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
}

TEST_F(HttpClientTest, RedirectToAnotherHostIsRefusedUnlessAllowed) {
  TestServer other("127.0.0.2");
  other.routes().Get("/echo",
                     [](const httplib::Request&, httplib::Response& res) { res.set_content("other", "text/plain"); });
  if (!other.Start()) GTEST_SKIP() << "127.0.0.2 cannot be bound here; the other-host redirect is not tested";
  // Set before any request reaches the handler that reads it.
  other_url_ = other.Url();

  HttpClient strict(MakeNode(), "BRIDGE");
  HttpRequest rq = Get(server_.Url("/other-host-redirect"));
  auto r = strict.Perform(rq);
  ASSERT_FALSE(r.has_value()) << "followed to " << other_url_;
  EXPECT_TRUE(Contains(r.error().message, "redirects to another host are refused")) << r.error().message;
  EXPECT_TRUE(Contains(r.error().message, "127.0.0.2")) << r.error().message;
  EXPECT_TRUE(other.Requests().empty()) << "the other host was contacted";

  Node lenient = MakeNode();
  lenient.allow_redirects = true;
  HttpClient follows(lenient, "BRIDGE");
  HttpRequest rq2 = Get(server_.Url("/other-host-redirect"));
  auto r2 = follows.Perform(rq2);
  ASSERT_TRUE(r2.has_value()) << r2.error().message;
  EXPECT_EQ(r2->status, 200);
  EXPECT_EQ(r2->body, "other");
  EXPECT_EQ(other.Requests("/echo").size(), 1u);
}

// --- failures without an HTTP answer ---

TEST_F(HttpClientTest, ClosedPortIsConnectionRefused) {
  const int port = ClosedPort();
  ASSERT_GT(port, 0);
  Node n = MakeNode();
  n.url = "http://127.0.0.1:" + std::to_string(port) + "/dicom-web/";
  HttpClient client(n, "BRIDGE");
  HttpRequest rq = Get(n.url + "studies");
  auto r = client.Perform(rq);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Code::kUnavailable);
  EXPECT_TRUE(Contains(r.error().message, "connection refused")) << r.error().message;
  EXPECT_TRUE(Contains(r.error().message, std::to_string(port))) << r.error().message;
}

TEST_F(HttpClientTest, QueryTimeoutIsATimeoutNamingTheSetting) {
  Node n = MakeNode();
  n.query_timeout_seconds = 1;
  HttpClient client(n, "BRIDGE");
  HttpRequest rq = Get(server_.Url("/slow"));
  const auto start = Steady::now();
  auto r = client.Perform(rq);
  const auto took = Steady::now() - start;
  ASSERT_FALSE(r.has_value()) << "answered with " << r->status;
  EXPECT_EQ(r.error().code, Code::kTimeout);
  EXPECT_TRUE(Contains(r.error().message, "query_timeout_seconds")) << r.error().message;
  EXPECT_LT(took, 3s);
  EXPECT_GE(took, 900ms);
}

}  // namespace
}  // namespace pb::dicomweb
