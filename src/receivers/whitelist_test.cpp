#include "receivers/whitelist.h"

#include <gtest/gtest.h>

namespace pb {
namespace {

Whitelist MustParse(std::string_view text) {
  auto w = Whitelist::Parse(text);
  EXPECT_TRUE(w) << (w ? "" : w.error().message);
  return w ? *w : Whitelist();
}

std::string ParseError(std::string_view text) {
  auto w = Whitelist::Parse(text);
  if (w) return "(parsed)";
  EXPECT_EQ(w.error().code, Code::kInvalidArgument);
  EXPECT_EQ(w.error().field, "whitelist");
  return w.error().message;
}

TEST(Whitelist, EmptyAllowsNobody) {
  Whitelist w = MustParse("");
  EXPECT_EQ(w.size(), 0u);
  EXPECT_FALSE(w.Allows("ANY", "127.0.0.1"));
  EXPECT_FALSE(w.Allows("", "::1"));
  EXPECT_FALSE(Whitelist().Allows("ANY", "127.0.0.1"));
}

TEST(Whitelist, OnlyCommentsAndBlankLinesAllowsNobody) {
  Whitelist w = MustParse("# nobody yet\n\n   \n\t# indented comment\n");
  EXPECT_EQ(w.size(), 0u);
  EXPECT_FALSE(w.Allows("ANY", "127.0.0.1"));
}

TEST(Whitelist, KeepsTheTextAsGiven) {
  std::string text = "  SENDER  \n# c\n10.0.0.1\n";
  EXPECT_EQ(MustParse(text).text(), text);
}

TEST(Whitelist, SkipsCommentsBlankLinesAndTrimsSpacesTabsAndCr) {
  Whitelist w = MustParse("# senders\r\n\r\n   SENDER_A   \r\n\t10.0.0.7\t\r\n  # 10.0.0.8\n");
  EXPECT_EQ(w.size(), 2u);
  EXPECT_TRUE(w.Allows("SENDER_A", "192.0.2.1"));
  EXPECT_TRUE(w.Allows("OTHER", "10.0.0.7"));
  EXPECT_FALSE(w.Allows("OTHER", "10.0.0.8"));
}

TEST(Whitelist, AeTitleMatchesFromAnyAddress) {
  Whitelist w = MustParse("SENDERS_AE");
  EXPECT_TRUE(w.Allows("SENDERS_AE", "192.0.2.1"));
  EXPECT_TRUE(w.Allows("SENDERS_AE", "2001:db8::1"));
  EXPECT_TRUE(w.Allows("SENDERS_AE", "not an address"));
  EXPECT_FALSE(w.Allows("OTHER_AE", "192.0.2.1"));
}

TEST(Whitelist, AeTitleIsCaseSensitive) {
  Whitelist w = MustParse("Senders_AE");
  EXPECT_TRUE(w.Allows("Senders_AE", "10.0.0.1"));
  EXPECT_FALSE(w.Allows("SENDERS_AE", "10.0.0.1"));
  EXPECT_FALSE(w.Allows("senders_ae", "10.0.0.1"));
}

TEST(Whitelist, CallingAeIsTrimmedBeforeComparing) {
  Whitelist w = MustParse("SENDER");
  EXPECT_TRUE(w.Allows("SENDER          ", "10.0.0.1"));  // DICOM pads to 16 with spaces
  EXPECT_TRUE(w.Allows("  SENDER", "10.0.0.1"));
  EXPECT_FALSE(w.Allows("SEND ER", "10.0.0.1"));
}

TEST(Whitelist, AeTitleWithInnerSpaceAndSlash) {
  Whitelist w = MustParse("MY PACS\nA/B");
  EXPECT_TRUE(w.Allows("MY PACS", "10.0.0.1"));
  EXPECT_TRUE(w.Allows("A/B", "10.0.0.1"));
}

TEST(Whitelist, AllDigitTokenWithoutDotIsAnAeTitle) {
  Whitelist w = MustParse("104");
  EXPECT_TRUE(w.Allows("104", "10.0.0.1"));
  EXPECT_FALSE(w.Allows("X", "0.0.0.104"));
}

TEST(Whitelist, Ipv4AddressMatchesAnyAe) {
  Whitelist w = MustParse("192.168.1.2");
  EXPECT_TRUE(w.Allows("ANY", "192.168.1.2"));
  EXPECT_TRUE(w.Allows("", "192.168.1.2"));
  EXPECT_FALSE(w.Allows("ANY", "192.168.1.3"));
  EXPECT_FALSE(w.Allows("ANY", "192.168.1.1"));
}

TEST(Whitelist, Ipv6AddressWithAndWithoutBrackets) {
  Whitelist w = MustParse("2001:db8::5\n[2001:db8::6]");
  EXPECT_EQ(w.size(), 2u);
  EXPECT_TRUE(w.Allows("ANY", "2001:db8::5"));
  EXPECT_TRUE(w.Allows("ANY", "2001:0db8:0000:0000:0000:0000:0000:0005"));
  EXPECT_TRUE(w.Allows("ANY", "2001:db8::6"));
  EXPECT_TRUE(w.Allows("ANY", "[2001:db8::6]"));
  EXPECT_FALSE(w.Allows("ANY", "2001:db8::7"));
}

TEST(Whitelist, AeAtIpv4RequiresBoth) {
  Whitelist w = MustParse("SENDERS_AE@192.168.1.1");
  EXPECT_TRUE(w.Allows("SENDERS_AE", "192.168.1.1"));
  EXPECT_FALSE(w.Allows("SENDERS_AE", "192.168.1.2"));
  EXPECT_FALSE(w.Allows("OTHER", "192.168.1.1"));
}

TEST(Whitelist, AeAtIpv6RequiresBoth) {
  Whitelist w = MustParse("AE@2001:db8::5\nAE2@[2001:db8::6]");
  EXPECT_TRUE(w.Allows("AE", "2001:db8::5"));
  EXPECT_FALSE(w.Allows("AE", "2001:db8::6"));
  EXPECT_TRUE(w.Allows("AE2", "2001:db8::6"));
  EXPECT_FALSE(w.Allows("AE3", "2001:db8::5"));
}

TEST(Whitelist, AeAtAddressToleratesSpacesAroundTheAt) {
  Whitelist w = MustParse("MY AE @ 10.0.0.1");
  EXPECT_TRUE(w.Allows("MY AE", "10.0.0.1"));
}

TEST(Whitelist, AeAtCidrRequiresBoth) {
  Whitelist w = MustParse("SENDER@10.1.0.0/16");
  EXPECT_TRUE(w.Allows("SENDER", "10.1.0.0"));
  EXPECT_TRUE(w.Allows("SENDER", "10.1.255.255"));
  EXPECT_FALSE(w.Allows("SENDER", "10.2.0.0"));
  EXPECT_FALSE(w.Allows("OTHER", "10.1.2.3"));
}

TEST(Whitelist, AeAtIpv6Cidr) {
  Whitelist w = MustParse("SENDER@2001:db8::/32");
  EXPECT_TRUE(w.Allows("SENDER", "2001:db8:ffff::1"));
  EXPECT_FALSE(w.Allows("SENDER", "2001:db9::1"));
  EXPECT_FALSE(w.Allows("OTHER", "2001:db8::1"));
}

TEST(Whitelist, Cidr22Edges) {
  Whitelist w = MustParse("198.51.100.0/22");
  EXPECT_TRUE(w.Allows("X", "198.51.100.0"));    // first
  EXPECT_TRUE(w.Allows("X", "198.51.103.255"));  // last
  EXPECT_TRUE(w.Allows("X", "198.51.102.17"));
  EXPECT_FALSE(w.Allows("X", "198.51.99.255"));  // one below
  EXPECT_FALSE(w.Allows("X", "198.51.104.0"));   // one above
}

TEST(Whitelist, Cidr32IsOneAddress) {
  Whitelist w = MustParse("10.0.0.5/32");
  EXPECT_TRUE(w.Allows("X", "10.0.0.5"));
  EXPECT_FALSE(w.Allows("X", "10.0.0.4"));
  EXPECT_FALSE(w.Allows("X", "10.0.0.6"));
}

TEST(Whitelist, Cidr0IsEveryIpv4Address) {
  Whitelist w = MustParse("0.0.0.0/0");
  EXPECT_TRUE(w.Allows("X", "0.0.0.0"));
  EXPECT_TRUE(w.Allows("X", "255.255.255.255"));
  EXPECT_TRUE(w.Allows("X", "::ffff:10.0.0.1"));  // mapped IPv4 is IPv4
  // IPv4 blocks say nothing about native IPv6 peers.
  EXPECT_FALSE(w.Allows("X", "::1"));
  EXPECT_FALSE(w.Allows("X", "2001:db8::1"));
  EXPECT_FALSE(w.Allows("X", "garbage"));
}

TEST(Whitelist, Ipv6Cidr0IsEveryAddress) {
  Whitelist w = MustParse("::/0");
  EXPECT_TRUE(w.Allows("X", "::"));
  EXPECT_TRUE(w.Allows("X", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
  EXPECT_TRUE(w.Allows("X", "10.0.0.1"));
  EXPECT_FALSE(w.Allows("X", "garbage"));
}

TEST(Whitelist, Ipv6Cidr32Edges) {
  Whitelist w = MustParse("2001:db8::/32");
  EXPECT_TRUE(w.Allows("X", "2001:db8::"));                               // first
  EXPECT_TRUE(w.Allows("X", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));   // last
  EXPECT_FALSE(w.Allows("X", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"));  // one below
  EXPECT_FALSE(w.Allows("X", "2001:db9::"));                              // one above
}

TEST(Whitelist, Ipv6Cidr128IsOneAddress) {
  Whitelist w = MustParse("2001:db8::5/128");
  EXPECT_TRUE(w.Allows("X", "2001:db8::5"));
  EXPECT_FALSE(w.Allows("X", "2001:db8::4"));
  EXPECT_FALSE(w.Allows("X", "2001:db8::6"));
}

TEST(Whitelist, BracketedIpv6Cidr) {
  Whitelist w = MustParse("[2001:db8::]/32");
  EXPECT_TRUE(w.Allows("X", "2001:db8::1"));
  EXPECT_FALSE(w.Allows("X", "2001:db9::1"));
}

TEST(Whitelist, MappedPeerMatchesIpv4Entries) {
  Whitelist w = MustParse("127.0.0.2\n10.0.0.0/8\nAE@192.168.0.0/24");
  EXPECT_TRUE(w.Allows("X", "::ffff:127.0.0.2"));
  EXPECT_FALSE(w.Allows("X", "::ffff:127.0.0.3"));
  EXPECT_TRUE(w.Allows("X", "::ffff:10.255.255.255"));
  EXPECT_FALSE(w.Allows("X", "::ffff:11.0.0.0"));
  EXPECT_TRUE(w.Allows("AE", "::ffff:192.168.0.9"));
  EXPECT_FALSE(w.Allows("X", "::ffff:192.168.0.9"));
  EXPECT_FALSE(w.Allows("AE", "::ffff:192.168.1.9"));
}

TEST(Whitelist, Ipv4PeerMatchesMappedEntries) {
  Whitelist w = MustParse("::ffff:127.0.0.2\n::ffff:10.0.0.0/104");
  EXPECT_TRUE(w.Allows("X", "127.0.0.2"));
  EXPECT_FALSE(w.Allows("X", "127.0.0.1"));
  EXPECT_TRUE(w.Allows("X", "10.1.2.3"));
  EXPECT_FALSE(w.Allows("X", "11.1.2.3"));
}

TEST(Whitelist, LoopbackV4AndV6AreDifferent) {
  Whitelist w = MustParse("127.0.0.1");
  EXPECT_TRUE(w.Allows("X", "127.0.0.1"));
  EXPECT_FALSE(w.Allows("X", "::1"));
  Whitelist w6 = MustParse("::1");
  EXPECT_TRUE(w6.Allows("X", "::1"));
  EXPECT_FALSE(w6.Allows("X", "127.0.0.1"));
}

TEST(Whitelist, AnyEntryMatchingIsEnough) {
  Whitelist w = MustParse("A@10.0.0.1\nB\n2001:db8::/64");
  EXPECT_EQ(w.size(), 3u);
  EXPECT_TRUE(w.Allows("A", "10.0.0.1"));
  EXPECT_TRUE(w.Allows("B", "203.0.113.1"));
  EXPECT_TRUE(w.Allows("C", "2001:db8::abcd"));
  EXPECT_FALSE(w.Allows("A", "10.0.0.2"));
  EXPECT_FALSE(w.Allows("C", "10.0.0.1"));
}

TEST(Whitelist, AddressEntryNeverMatchesAnUnparsablePeer) {
  Whitelist w = MustParse("10.0.0.1\nAE@10.0.0.1");
  EXPECT_FALSE(w.Allows("AE", ""));
  EXPECT_FALSE(w.Allows("AE", "10.0.0.1:104"));
  EXPECT_FALSE(w.Allows("AE", "host.example"));
}

TEST(Whitelist, ErrorPrefixTooLongIpv4) {
  EXPECT_EQ(ParseError("A\n\n10.0.0.0/33"), "line 3: '10.0.0.0/33': prefix length must be 0 to 32");
}

TEST(Whitelist, ErrorPrefixTooLongIpv6) {
  EXPECT_EQ(ParseError("2001:db8::/129"), "line 1: '2001:db8::/129': prefix length must be 0 to 128");
}

TEST(Whitelist, ErrorPrefixNotANumber) {
  EXPECT_EQ(ParseError("10.0.0.0/"), "line 1: '10.0.0.0/': prefix length must be 0 to 32");
  // Found by the whitelist fuzz target: a long prefix overflowed an int before it was refused.
  EXPECT_EQ(ParseError("10.0.0.0/16666666666"), "line 1: '10.0.0.0/16666666666': prefix length must be 0 to 32");
  EXPECT_EQ(ParseError("# x\n10.0.0.0/-1"), "line 2: '10.0.0.0/-1': prefix length must be 0 to 32");
  EXPECT_EQ(ParseError("10.0.0.0/8x"), "line 1: '10.0.0.0/8x': prefix length must be 0 to 32");
}

TEST(Whitelist, ErrorBackslashInAeTitle) {
  EXPECT_EQ(ParseError("OK\nA\\B"), "line 2: 'A\\B': an AE title has no backslash");
}

TEST(Whitelist, ErrorAeTitleTooLong) {
  EXPECT_EQ(ParseError("ABCDEFGHIJKLMNOPQ"),
            "line 1: 'ABCDEFGHIJKLMNOPQ': an AE title has at most 16 characters (this one has 17)");
}

TEST(Whitelist, ErrorAeTitleControlCharacterOrNonAscii) {
  EXPECT_EQ(ParseError("A\vB"), "line 1: 'A\vB': an AE title has no control characters (tab, ...)");
  EXPECT_EQ(ParseError("M\xc3\xbcller"),
            "line 1: 'M\xc3\xbcller': an AE title is plain ASCII (the DICOM default character set)");
}

TEST(Whitelist, ErrorBrokenIpv4IsNotAnAeTitle) {
  EXPECT_EQ(ParseError("A\nB\nC\n300.1.1.1"), "line 4: '300.1.1.1' is not an IP address or AE title");
  EXPECT_EQ(ParseError("10.0.0"), "line 1: '10.0.0' is not an IP address or AE title");
  EXPECT_EQ(ParseError("1.2.3.4.5"), "line 1: '1.2.3.4.5' is not an IP address or AE title");
  EXPECT_EQ(ParseError("10.0.0/24"), "line 1: '10.0.0/24' is not an IP address or AE title");
}

TEST(Whitelist, ErrorBrokenIpv6IsNotAnAeTitle) {
  EXPECT_EQ(ParseError("2001:db8:::1"), "line 1: '2001:db8:::1' is not an IP address or AE title");
  EXPECT_EQ(ParseError("[2001:db8::g]"), "line 1: '[2001:db8::g]' is not an IPv6 address");
}

TEST(Whitelist, ErrorBracketedIpv4) {
  EXPECT_EQ(ParseError("[10.0.0.1]"), "line 1: '[10.0.0.1]': brackets are only for IPv6 addresses");
}

TEST(Whitelist, ErrorHostBitsSetNamesTheBlock) {
  EXPECT_EQ(ParseError("A\nB\nC\nD\n10.0.0.1/24"), "line 5: '10.0.0.1/24' has host bits set; the block is 10.0.0.0/24");
  EXPECT_EQ(ParseError("198.51.101.0/22"), "line 1: '198.51.101.0/22' has host bits set; the block is 198.51.100.0/22");
  EXPECT_EQ(ParseError("2001:db8::1/32"), "line 1: '2001:db8::1/32' has host bits set; the block is 2001:db8::/32");
  EXPECT_EQ(ParseError("1.2.3.4/0"), "line 1: '1.2.3.4/0' has host bits set; the block is 0.0.0.0/0");
  EXPECT_EQ(ParseError("AE@10.0.0.1/8"), "line 1: '10.0.0.1/8' has host bits set; the block is 10.0.0.0/8");
}

TEST(Whitelist, ErrorAeAtSomethingElse) {
  EXPECT_EQ(ParseError("AE@pacs.example.org"),
            "line 1: 'pacs.example.org' after '@' is not an IP address or CIDR block (host names "
            "are not accepted)");
  EXPECT_EQ(ParseError("AE@300.1.1.1"), "line 1: '300.1.1.1' is not an IP address");
  // The last '@' splits: "A@B" is the AE title; "B" is no address.
  EXPECT_EQ(ParseError("A@B@10.0.0.1"), "(parsed)");
  EXPECT_EQ(ParseError("A@10.0.0.1@B"),
            "line 1: 'B' after '@' is not an IP address or CIDR block (host names are not "
            "accepted)");
}

TEST(Whitelist, AtSplitsOnTheLastAt) {
  Whitelist w = MustParse("A@B@10.0.0.1");
  EXPECT_TRUE(w.Allows("A@B", "10.0.0.1"));
  EXPECT_FALSE(w.Allows("A", "10.0.0.1"));
}

TEST(Whitelist, ErrorEmptySideOfAt) {
  EXPECT_EQ(ParseError("@10.0.0.1"), "line 1: '@10.0.0.1': no AE title before '@'");
  EXPECT_EQ(ParseError("  AE@  "), "line 1: 'AE@': no address after '@' (write AE@address)");
}

TEST(Whitelist, ErrorBadAeBeforeAt) {
  EXPECT_EQ(ParseError("A\\B@10.0.0.1"), "line 1: 'A\\B': an AE title has no backslash");
}

TEST(Whitelist, ErrorTrailingCommentIsRefused) {
  EXPECT_EQ(ParseError("10.0.0.1 # lab"),
            "line 1: '10.0.0.1 # lab': one entry per line; a comment goes on its own line "
            "starting with '#'");
}

}  // namespace
}  // namespace pb
