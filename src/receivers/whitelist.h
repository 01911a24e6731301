#pragma once
// Which callers a receiver accepts: a list of AE titles, IP addresses and CIDR blocks, alone or
// combined as AE@address. Pure logic (no DCMTK, no sockets): the receiver asks Allows() with the
// calling AE title and the peer address of each association request.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace pb {

class Whitelist {
 public:
  // An empty whitelist: allows nobody.
  Whitelist() = default;

  // One entry per line; blank lines and lines starting with '#' are ignored; surrounding spaces
  // (and tabs, and the '\r' of CRLF files) are trimmed. Entry forms:
  //   SENDERS_AE                    the AE title, from any address
  //   192.168.1.2                   IPv4 address, any AE title
  //   2001:db8::5   [2001:db8::5]   IPv6 address, any AE title
  //   198.51.100.0/22  2001:db8::/32  [2001:db8::]/32   CIDR block, any AE title
  //   SENDERS_AE@192.168.1.1  AE@2001:db8::5  AE@10.0.0.0/8   both must match
  // A token that parses as an IP address (optionally /prefix) is an address; anything else must
  // be a valid AE title (ValidateAeTitle). Tokens shaped like an address but broken ("300.1.1.1",
  // "10.0.0", "2001:db8:::1") are errors, not AE titles; an all-digit token without a dot
  // ("104") is an AE title. The last '@' splits AE and address, so an AE title containing '@'
  // can only be written with an address ("A@B@10.0.0.1" is AE "A@B"); alone it is refused.
  // Comments go on their own line: "10.0.0.1 # lab" is refused rather than read as the AE title
  // "10.0.0.1 # lab". A block with host bits set ("10.0.0.1/24") is refused, the message naming
  // the block meant, because silently widening or narrowing it hides typos.
  // Error: Fail(kInvalidArgument, "line N: <reason>", "whitelist").
  [[nodiscard]] static Result<Whitelist> Parse(std::string_view text);

  // calling_ae: as received (DICOM pads with spaces; those are trimmed, case matters).
  // peer_address: textual IP without port as produced by inet_ntop ("127.0.0.1", "::1",
  // "::ffff:127.0.0.2"); brackets are tolerated. IPv4-mapped IPv6 peers match IPv4 entries and
  // IPv4 peers match ::ffff: entries. An entry with only an AE title matches from any address
  // (even one that does not parse); an entry with an address never matches an unparsable peer.
  bool Allows(std::string_view calling_ae, std::string_view peer_address) const;

  size_t size() const { return entries_.size(); }
  const std::string& text() const { return text_; }  // the text as given

 private:
  // IPv4 is kept as IPv4-mapped IPv6 (::ffff:a.b.c.d, prefix + 96), so mapped peers and
  // entries compare with one code path.
  struct Block {
    std::array<uint8_t, 16> bytes{};
    int prefix = 128;
  };
  struct Entry {
    std::string ae;  // empty: any AE title
    bool has_block = false;
    Block block;
  };

  std::vector<Entry> entries_;
  std::string text_;
};

}  // namespace pb
