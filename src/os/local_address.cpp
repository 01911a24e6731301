#include "os/local_address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include <fmt/format.h>

namespace pb {
namespace {

struct AddrInfoFree {
  void operator()(addrinfo* p) const { freeaddrinfo(p); }
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string Text(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    if (!inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf)) return "";
    return buf;
  }
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
  if (!inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf)) return "";
  std::string s = buf;
  if (s.rfind("::ffff:", 0) == 0 && s.find('.') != std::string::npos) s = s.substr(7);
  return s;
}

}  // namespace

[[nodiscard]] Result<std::string> LocalAddressToward(const std::string& host, uint16_t port) {
  std::string name = host;
  if (name.size() > 2 && name.front() == '[' && name.back() == ']') name = name.substr(1, name.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port == 0 ? 104 : port);
  if (int rc = getaddrinfo(name.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return Fail(Code::kInvalidArgument, fmt::format("'{}' does not resolve: {}", host, gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, AddrInfoFree> list(found);
  int last_errno = 0;
  for (const addrinfo* ai = list.get(); ai; ai = ai->ai_next) {
    Fd fd(socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
      last_errno = errno;
      continue;
    }
    // connect() on a UDP socket only chooses the route and the source address.
    if (connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      last_errno = errno;
      continue;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      last_errno = errno;
      continue;
    }
    std::string text = Text(ss);
    if (!text.empty()) return text;
  }
  return Fail(Code::kUnavailable, fmt::format("no route toward '{}'{}", host,
                                              last_errno ? ": " + std::string(std::strerror(last_errno)) : ""));
}

}  // namespace pb
