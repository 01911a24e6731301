#include "os/port_owner.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace pb {
namespace {

TEST(ListeningInodes, ReadsOnlyListeningSocketsOfThePort) {
  // Lines as the kernel writes them (net/ipv4/tcp_ipv4.c): port 8080 = 0x1F90, state 0A = LISTEN,
  // 01 = ESTABLISHED.
  const std::string table =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
      "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4711 1 0 100 0 0 10 "
      "0\n"
      "   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4712 1 0 20 4 30 10 "
      "-1\n"
      "   2: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4713 1 0 100 0 0 10 "
      "0\n";
  EXPECT_EQ(ListeningInodes(table, 8080), std::vector<unsigned long>{4711});
  EXPECT_EQ(ListeningInodes(table, 8081), std::vector<unsigned long>{4713});
  EXPECT_TRUE(ListeningInodes(table, 80).empty());
  EXPECT_TRUE(ListeningInodes("", 8080).empty());
  EXPECT_TRUE(ListeningInodes("header\ngarbage line\n", 8080).empty());
}

TEST(FindPortOwner, NamesThisProcessForASocketItListensOn) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(s, 1), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(getsockname(s, reinterpret_cast<sockaddr*>(&a), &len), 0);
  int port = ntohs(a.sin_port);
  auto owner = FindPortOwner(port);
  ASSERT_TRUE(owner.has_value());
  EXPECT_EQ(owner->pid, getpid());
  EXPECT_FALSE(owner->program.empty());
  EXPECT_NE(DescribePortOwner(port).find("(PID " + std::to_string(getpid()) + ")"), std::string::npos);
  close(s);
  EXPECT_FALSE(FindPortOwner(port).has_value());
  EXPECT_EQ(DescribePortOwner(port), "by another program");
}

}  // namespace
}  // namespace pb
