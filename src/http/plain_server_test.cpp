#include "http/plain_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <future>
#include <string>
#include <thread>

#include "http/errors.h"

namespace pb::http {
namespace {

using namespace std::chrono_literals;

// A PlainServer on a free port of 127.0.0.1, run by a thread of its own.
class Served {
 public:
  explicit Served(PlainServer& srv) : srv_(srv) {
    port_ = srv_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { srv_.listen_after_bind(); });
    while (!srv_.is_running()) std::this_thread::sleep_for(1ms);
  }
  ~Served() { Stop(); }
  void Stop() {
    if (!thread_.joinable()) return;
    srv_.stop();
    thread_.join();
  }
  int port() const { return port_; }

 private:
  PlainServer& srv_;
  int port_ = -1;
  std::thread thread_;
};

// A raw TCP connection to 127.0.0.1:port.
class Client {
 public:
  explicit Client(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~Client() { ::close(fd_); }
  bool connected() const { return connected_; }
  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Everything the server sends until it closes the connection (or sends `until`), or until
  // `limit` passes.
  std::string ReadToEnd(std::chrono::milliseconds limit = 10s) { return ReadUntil({}, limit); }
  std::string ReadUntil(const std::string& until, std::chrono::milliseconds limit = 10s) {
    std::string got;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    char buf[65536];
    while (std::chrono::steady_clock::now() < deadline && (until.empty() || got.find(until) == std::string::npos)) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  }

 private:
  int fd_;
  bool connected_ = false;
};

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Requests a client sends back to back in one write are each answered, in order: bytes of the
// next request read along with one request are kept for it, not dropped with the request.
TEST(PlainServer, PipelinedRequestsOnOneConnectionAreEachAnswered) {
  PlainServer srv;
  srv.Get("/a", [](const httplib::Request&, httplib::Response& res) { res.set_content("first-answer", "text/plain"); });
  srv.Get("/b",
          [](const httplib::Request&, httplib::Response& res) { res.set_content("second-answer", "text/plain"); });
  Served served(srv);
  Client c(served.port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  const std::string got = c.ReadToEnd();
  EXPECT_EQ(Count(got, "HTTP/1.1 200 OK"), 2u) << got;
  const size_t first = got.find("first-answer"), second = got.find("second-answer");
  ASSERT_NE(first, std::string::npos) << got;
  ASSERT_NE(second, std::string::npos) << got;
  EXPECT_LT(first, second);
}

// A body many times the read buffer, sent in odd-sized pieces, reaches a streaming handler whole
// and in order, with Content-Length and with chunked transfer coding; the peer's address is the
// socket's.
TEST(PlainServer, LargeBodiesReachAStreamingHandlerWholeAndInOrder) {
  PlainServer srv;
  std::string remote;
  srv.Post("/up", [&](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
    uint64_t sum = 0, count = 0;
    reader([&](const char* data, size_t n) {
      for (size_t i = 0; i < n; ++i) sum = sum * 31 + static_cast<unsigned char>(data[i]), ++count;
      return true;
    });
    remote = req.remote_addr + ":" + std::to_string(req.remote_port);
    res.set_content(std::to_string(count) + " " + std::to_string(sum), "text/plain");
  });
  Served served(srv);
  std::string body(5 * 1024 * 1024 + 17, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>((i * 7919) >> 3);
  uint64_t sum = 0;
  for (unsigned char ch : body) sum = sum * 31 + ch;
  const std::string expected = std::to_string(body.size()) + " " + std::to_string(sum);

  {
    Client c(served.port());
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.Send("POST /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\n\r\n"));
    for (size_t at = 0; at < body.size(); at += 7777) ASSERT_TRUE(c.Send(std::string_view(body).substr(at, 7777)));
    const std::string got = c.ReadToEnd();
    EXPECT_NE(got.find("HTTP/1.1 200 OK"), std::string::npos) << got.substr(0, 200);
    EXPECT_NE(got.find("\r\n\r\n" + expected), std::string::npos) << got.substr(0, 200);
    EXPECT_EQ(remote.rfind("127.0.0.1:", 0), 0u) << remote;
    EXPECT_NE(remote, "127.0.0.1:0");
  }
  {
    Client c(served.port());
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.Send("POST /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"));
    for (size_t at = 0; at < body.size(); at += 100003) {
      const std::string_view piece = std::string_view(body).substr(at, 100003);
      char size[32];
      std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
      ASSERT_TRUE(c.Send(size));
      ASSERT_TRUE(c.Send(piece));
      ASSERT_TRUE(c.Send("\r\n"));
    }
    ASSERT_TRUE(c.Send("0\r\n\r\n"));
    const std::string got = c.ReadToEnd();
    EXPECT_NE(got.find("\r\n\r\n" + expected), std::string::npos) << got.substr(0, 200);
  }
}

// A body cut short (the peer closes before Content-Length bytes) ends the handler's read with a
// failure, and the server goes on answering others.
TEST(PlainServer, ABodyCutShortFailsTheReadAndTheServerGoesOn) {
  PlainServer srv;
  std::promise<bool> read_whole;
  srv.Post("/up", [&](const httplib::Request&, httplib::Response& res, const httplib::ContentReader& reader) {
    size_t got = 0;
    const bool whole = reader([&](const char*, size_t n) {
      got += n;
      return true;
    });
    read_whole.set_value(whole);
    res.set_content(std::to_string(got), "text/plain");
  });
  srv.Get("/ok", [](const httplib::Request&, httplib::Response& res) { res.set_content("still-here", "text/plain"); });
  Served served(srv);
  {
    Client c(served.port());
    ASSERT_TRUE(c.Send("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + std::string(300000, 'x')));
  }  // closed
  auto outcome = read_whole.get_future();
  ASSERT_EQ(outcome.wait_for(10s), std::future_status::ready) << "the handler's read never ended";
  EXPECT_FALSE(outcome.get());
  Client c(served.port());
  ASSERT_TRUE(c.Send("GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  EXPECT_NE(c.ReadToEnd().find("still-here"), std::string::npos);
}

// A connection kept alive with no request pending does not hold up a stop for the keep-alive
// timeout (5 s): its thread sees the stop within a fraction of a second.
TEST(PlainServer, AnIdleKeptAliveConnectionDoesNotHoldUpAStop) {
  PlainServer srv;
  srv.Get("/a", [](const httplib::Request&, httplib::Response& res) { res.set_content("a", "text/plain"); });
  Served served(srv);
  Client c(served.port());
  ASSERT_TRUE(c.Send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
  // The answer read, the connection stays open and idle.
  EXPECT_NE(c.ReadUntil("\r\n\r\na").find("HTTP/1.1 200 OK"), std::string::npos);
  const auto start = std::chrono::steady_clock::now();
  served.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

// An answer written whole before the connection closes (CloseAfterAnswer) is read by offset
// when the request has a Range: one past its end sends nothing of what lies beyond (under
// AddressSanitizer a read past it fails the test).
TEST(PlainServer, ARangePastACloseAfterAnswerSendsNothingBeyondIt) {
  PlainServer srv;
  srv.Get("/refused", [](const httplib::Request&, httplib::Response& res) {
    SendError(res, 403, "not for you");
    CloseAfterAnswer(res);
  });
  Served served(srv);
  for (const char* range : {"bytes=5-9", "bytes=100000-100099", "bytes=0-99999"}) {
    Client c(served.port());
    ASSERT_TRUE(c.Send(std::string("GET /refused HTTP/1.1\r\nHost: x\r\nRange: ") + range + "\r\n\r\n"));
    const std::string got = c.ReadToEnd();
    const size_t head = got.find("\r\n\r\n");
    ASSERT_NE(head, std::string::npos) << range << ": " << got;
    const std::string body = got.substr(head + 4);
    EXPECT_EQ(body.find('\0'), std::string::npos) << range;
    EXPECT_LE(body.size(), 100u) << range;  // at most the error's own few bytes
  }
}

}  // namespace
}  // namespace pb::http
