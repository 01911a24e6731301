#pragma once
// URLs (of DICOMweb nodes, of our DICOMweb server's public root), checked with libcurl's URL
// parser (not by prefix): no credentials in any of them (a node's belong in `auth`, which is
// never returned; a URL is shown to everyone who may read the node). Errors name the field, never echo a password, and
// say what to write instead. Thread-safe.
#include <string>
#include <string_view>

#include "core/result.h"

namespace pb {

// A DICOMweb root (`url`, `qido_root`, `wado_root`, `stow_root`): http or https, a host, no query
// or fragment. Returns the URL as libcurl understood it (trimmed; "http://h:1" becomes
// "http://h:1/").
[[nodiscard]] Result<std::string> ValidateBaseUrl(std::string_view url, const std::string& field);

// Another HTTP endpoint (the OAuth2 `auth.token_url`): http or https, a host, any path (with or
// without a trailing slash), a query allowed, no fragment.
[[nodiscard]] Result<std::string> ValidateEndpointUrl(std::string_view url, const std::string& field);

// A proxy (`proxy`): http://, https://, socks5:// or socks5h://, a host and an optional port,
// nothing after them. "" (no proxy) stays "".
[[nodiscard]] Result<std::string> ValidateProxyUrl(std::string_view url, const std::string& field);

}  // namespace pb
