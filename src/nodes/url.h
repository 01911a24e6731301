#pragma once
// The base URL of a DICOMweb node, checked with libcurl's URL parser (not by prefix): http or
// https, a host, no credentials (they belong in `auth`, which is never returned), no query or
// fragment. Thread-safe.
#include <string>
#include <string_view>

#include "core/result.h"

namespace pb {

// The URL as given, trimmed; errors name `field` and say what to write instead.
Result<std::string> ValidateBaseUrl(std::string_view url, const std::string& field);

}  // namespace pb
