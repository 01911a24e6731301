#pragma once
// Validation of the values people type into node and receiver forms. Each function returns the
// normalized value or an Error whose `field` is the name passed in, so the message can point at
// the exact input that is wrong.
#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"

namespace pb {

// AE titles: leading/trailing spaces are removed; 1..16 characters; no backslash and no control
// characters. Case is kept and matters: "orthanc" and "ORTHANC" are different AE titles.
[[nodiscard]] Result<std::string> ValidateAeTitle(std::string_view value, std::string_view field = "ae_title");

// A bare host: IPv4 address, IPv6 address (with or without [brackets]) or a DNS name. Anything
// with a scheme (http://) or a path is refused with a hint to give the bare host. IPv6 comes
// back without brackets.
[[nodiscard]] Result<std::string> ValidateHost(std::string_view value, std::string_view field = "host");

// A TCP port of a remote peer or one of our listeners: 1..65535.
[[nodiscard]] Result<uint16_t> ValidatePort(int64_t value, std::string_view field = "port");

// A DICOM UID: 1..64 characters, digits and dots, no empty component, no leading zero.
bool IsValidUid(std::string_view uid);

bool IsIpv6Literal(std::string_view host);
bool IsIpv4Literal(std::string_view host);

// "host:port" for messages and DCMTK; IPv6 literals get brackets.
std::string JoinHostPort(std::string_view host, uint16_t port);

std::string Trim(std::string_view s);

// Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
bool IsValidUtf8(std::string_view s);
// `s` with each byte that is not part of well-formed UTF-8 replaced by U+FFFD.
std::string ToValidUtf8(std::string_view s);

}  // namespace pb
