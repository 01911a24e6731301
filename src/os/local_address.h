#pragma once
// Our own address as a remote host would see it: the source address the kernel picks for a
// route to that host. A UDP socket connect()ed toward it gives it without sending anything
// (no packet leaves, nothing needs to listen there). For messages that tell a PACS administrator
// what to register for us. Thread-safe.
#include <cstdint>
#include <string>

#include "core/result.h"

namespace pb {

// The local IP address (IPv4 dotted, or IPv6 without brackets; an IPv4-mapped IPv6 address as
// IPv4) of a route toward `host` (a name or an address). Errors: kInvalidArgument when the host
// does not resolve, kUnavailable when no route leads there.
[[nodiscard]] Result<std::string> LocalAddressToward(const std::string& host, uint16_t port);

}  // namespace pb
