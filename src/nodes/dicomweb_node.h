#pragma once
// Internal to src/nodes: the fields only a DICOMweb node uses (roots, auth, extra headers, AE
// title headers, STOW-RS batches, timeouts, proxy, redirects), read, checked and written for
// node.cpp, so that node.h stays the one public model. Pure functions, thread-safe.
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/result.h"
#include "nodes/json_reader.h"
#include "nodes/node.h"

namespace pb {

// Reads the DICOMweb-only scalar fields. Any node may carry them (a DIMSE node ignores them);
// type errors are reported through `r`.
void ReadDicomWebFields(JsonReader& r, Node& n);

// Checks and normalizes what a DICOMweb node needs beyond the common fields: `url` and the
// roots, the optional AE titles, what `auth.type` requires, header names and values, the
// integer ranges, the proxy. Errors name the field ("auth.token_url", "headers[1].name").
[[nodiscard]] Result<void> ValidateDicomWebFields(Node& n);

// Adds the DICOMweb fields to `j`; secrets only `with_secrets`, `has_*` booleans otherwise.
void WriteDicomWebFields(const Node& n, bool with_secrets, nlohmann::json& j);

// An RFC 7230 token (what an HTTP header name is): one or more of ALPHA DIGIT !#$%&'*+-.^_`|~
bool IsHttpToken(std::string_view s);

}  // namespace pb
