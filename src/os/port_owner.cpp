#include "os/port_owner.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace pb {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool IsNumber(const char* s) {
  if (!*s) return false;
  for (; *s; ++s)
    if (*s < '0' || *s > '9') return false;
  return true;
}

// The PID whose descriptors include one of `inodes`, or 0.
int ProcessWithSocket(const std::vector<unsigned long>& inodes) {
  DIR* proc = opendir("/proc");
  if (!proc) return 0;
  int found = 0;
  while (dirent* p = readdir(proc)) {
    if (!IsNumber(p->d_name)) continue;
    std::string fd_dir = std::string("/proc/") + p->d_name + "/fd";
    DIR* fds = opendir(fd_dir.c_str());
    if (!fds) continue;
    while (dirent* f = readdir(fds)) {
      char target[64];
      ssize_t n = readlink((fd_dir + "/" + f->d_name).c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      target[n] = 0;
      unsigned long inode = 0;
      if (std::sscanf(target, "socket:[%lu]", &inode) == 1 &&
          std::find(inodes.begin(), inodes.end(), inode) != inodes.end()) {
        found = std::atoi(p->d_name);
        break;
      }
    }
    closedir(fds);
    if (found) break;
  }
  closedir(proc);
  return found;
}

}  // namespace

std::vector<unsigned long> ListeningInodes(const std::string& table, int port) {
  // "  sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout inode"
  // "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 ..."
  std::vector<unsigned long> out;
  std::istringstream lines(table);
  std::string line;
  std::getline(lines, line);  // header
  while (std::getline(lines, line)) {
    std::istringstream f(line);
    std::string sl, local, remote, state, queues, timer, retr, uid, timeout;
    unsigned long inode = 0;
    if (!(f >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode)) continue;
    auto colon = local.rfind(':');
    if (colon == std::string::npos || state != "0A") continue;  // 0A: LISTEN
    if (std::strtol(local.c_str() + colon + 1, nullptr, 16) == port && inode != 0) out.push_back(inode);
  }
  return out;
}

std::optional<PortOwner> FindPortOwner(int port) {
  std::vector<unsigned long> inodes = ListeningInodes(ReadFile("/proc/net/tcp"), port);
  for (unsigned long i : ListeningInodes(ReadFile("/proc/net/tcp6"), port)) inodes.push_back(i);
  if (inodes.empty()) return std::nullopt;
  int pid = ProcessWithSocket(inodes);
  if (pid == 0) return std::nullopt;
  std::string comm = ReadFile(fmt::format("/proc/{}/comm", pid));
  while (!comm.empty() && (comm.back() == '\n' || comm.back() == ' ')) comm.pop_back();
  return PortOwner{pid, comm.empty() ? "?" : comm};
}

std::string DescribePortOwner(int port) {
  auto owner = FindPortOwner(port);
  if (!owner) return "by another program";
  return fmt::format("by {} (PID {})", owner->program, owner->pid);
}

}  // namespace pb
