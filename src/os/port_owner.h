#pragma once
// Which program listens on a TCP port of this machine, for start-up errors that name it
// ("port 8080 is in use by orthanc (PID 4242)"). Read from /proc: the listening sockets of
// /proc/net/tcp and tcp6, then the process whose file descriptors include that socket. A process
// of another user is found only when we may read its /proc entries (root may). Thread-safe.
#include <optional>
#include <string>
#include <vector>

namespace pb {

struct PortOwner {
  int pid = 0;
  std::string program;  // /proc/PID/comm
};

std::optional<PortOwner> FindPortOwner(int port);

// "by orthanc (PID 4242)", or "by another program" when it cannot be found.
std::string DescribePortOwner(int port);

// The socket inodes listening on `port` in a /proc/net/tcp-style table (pure, for tests).
std::vector<unsigned long> ListeningInodes(const std::string& proc_net_tcp, int port);

}  // namespace pb
