#include "http/plain_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>

namespace pb::http {
namespace {

constexpr size_t kReadBuffer = 128 * 1024;
constexpr int kStopCheckMs = 100;  // how often an idle keep-alive connection looks for a stop

int Millis(time_t sec, time_t usec) { return static_cast<int>(sec * 1000 + usec / 1000); }

// poll() for `events` for at most `ms`: > 0 ready, 0 timed out, < 0 failed.
int PollFor(socket_t sock, short events, int ms) {
  pollfd p{sock, events, 0};
  int r = 0;
  do {
    r = ::poll(&p, 1, ms);
  } while (r < 0 && errno == EINTR);
  return r;
}

void IpAndPort(const sockaddr_storage& addr, socklen_t len, std::string& ip, int& port) {
  if (addr.ss_family != AF_INET && addr.ss_family != AF_INET6) return;
  char host[NI_MAXHOST] = {};
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&addr), len, host, sizeof host, nullptr, 0, NI_NUMERICHOST) !=
      0) {
    return;
  }
  ip = host;
  port = ntohs(addr.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in*>(&addr)->sin_port
                                         : reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
}

// One connection's stream: reads come from a buffer filled kReadBuffer bytes at a time.
class ConnectionStream final : public httplib::Stream {
 public:
  ConnectionStream(socket_t sock, int read_ms, int write_ms) : sock_(sock), read_ms_(read_ms), write_ms_(write_ms) {}

  bool is_readable() const override { return begin_ < end_ || PollFor(sock_, POLLIN, read_ms_) > 0; }

  // As the library's: the socket takes data, and the peer has not closed the connection.
  bool is_writable() const override {
    if (PollFor(sock_, POLLOUT, write_ms_) <= 0) return false;
    if (PollFor(sock_, POLLIN, 0) == 0) return true;
    char c = 0;
    ssize_t n = 0;
    do {
      n = ::recv(sock_, &c, 1, MSG_PEEK);
    } while (n < 0 && errno == EINTR);
    return n > 0;
  }

  ssize_t read(char* ptr, size_t size) override {
    if (begin_ == end_) {
      if (PollFor(sock_, POLLIN, read_ms_) <= 0) return -1;
      if (size >= kReadBuffer) return Recv(ptr, size);  // large enough to take directly
      if (!buffer_) buffer_ = std::make_unique<char[]>(kReadBuffer);
      const ssize_t n = Recv(buffer_.get(), kReadBuffer);
      if (n <= 0) return n;
      begin_ = 0;
      end_ = static_cast<size_t>(n);
    }
    const size_t n = std::min(size, end_ - begin_);
    std::memcpy(ptr, buffer_.get() + begin_, n);
    begin_ += n;
    return static_cast<ssize_t>(n);
  }

  // One poll and one send: a peer that has gone makes the send fail (EPIPE, no signal).
  ssize_t write(const char* ptr, size_t size) override {
    if (PollFor(sock_, POLLOUT, write_ms_) <= 0) return -1;
    ssize_t n = 0;
    do {
      n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (::getpeername(sock_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) IpAndPort(addr, len, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(sock_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) IpAndPort(addr, len, ip, port);
  }
  socket_t socket() const override { return sock_; }

  // Whether a next request has begun within `idle_sec`: at once when its first bytes were read
  // with the last one's; false when the peer stays quiet that long or the server stops.
  bool AwaitRequest(time_t idle_sec, const std::atomic<socket_t>& listener) const {
    if (listener == INVALID_SOCKET) return false;  // stopping: no further request, read or not
    if (begin_ < end_) return true;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(idle_sec);
    while (listener != INVALID_SOCKET) {
      const int r = PollFor(sock_, POLLIN, kStopCheckMs);
      if (r != 0) return r > 0;  // readable (a request, or the peer's close: the library sees which)
      if (std::chrono::steady_clock::now() >= deadline) return false;
    }
    return false;
  }

 private:
  ssize_t Recv(char* into, size_t size) {
    ssize_t n = 0;
    do {
      n = ::recv(sock_, into, size, 0);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  socket_t sock_;
  int read_ms_, write_ms_;
  std::unique_ptr<char[]> buffer_;  // made at the first read that needs it
  size_t begin_ = 0, end_ = 0;      // the unread bytes in buffer_
};

}  // namespace

bool PlainServer::process_and_close_socket(socket_t sock) {
  bool ok = false;
  {
    ConnectionStream stream(sock, Millis(read_timeout_sec_, read_timeout_usec_),
                            Millis(write_timeout_sec_, write_timeout_usec_));
    for (size_t left = keep_alive_max_count_; left > 0; --left) {
      if (!stream.AwaitRequest(keep_alive_timeout_sec_, svr_sock_)) break;
      bool closed = false;
      ok = process_request(stream, left == 1, closed, nullptr);
      if (!ok || closed) break;
    }
  }
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ok;
}

}  // namespace pb::http
