#include "nodes/dicomweb_node.h"

#include <cctype>
#include <string>

#include <fmt/format.h>

#include "core/url.h"
#include "core/validate.h"

namespace pb {
namespace {

using nlohmann::json;

struct IntField {
  const char* key;
  int Node::*member;
  int min, max, fallback;
};
constexpr IntField kIntFields[] = {
    {"stow_batch_instances", &Node::stow_batch_instances, 1, 10000, 100},
    {"stow_batch_mb", &Node::stow_batch_mb, 1, 4096, 64},
    {"query_timeout_seconds", &Node::query_timeout_seconds, 1, 3600, 30},
    {"retrieve_timeout_seconds", &Node::retrieve_timeout_seconds, 1, 3600, 120},
};

// Headers the transport sets itself: a node may not replace them.
constexpr const char* kOwnHeaders[] = {"Content-Type", "Content-Length",    "Accept",
                                       "Host",         "Transfer-Encoding", "Expect"};

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// CR, LF and NUL would end a header line early (header injection); other controls are refused too.
bool HasControl(std::string_view s) {
  for (unsigned char c : s) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) return true;
  }
  return false;
}

// A header name we may send: a token, and none the transport or `auth` sets.
[[nodiscard]] Result<void> CheckHeaderName(std::string& name, const std::string& field, const Node& n) {
  name = Trim(name);
  if (name.empty()) {
    return Fail(Code::kInvalidArgument, fmt::format("{} is empty: give the header's name, e.g. X-Api-Key", field),
                field);
  }
  if (!IsHttpToken(name)) {
    return Fail(Code::kInvalidArgument,
                fmt::format("{} '{}' is not an HTTP header name: letters, digits and !#$%&'*+-.^_`|~ only, "
                            "no spaces, no ':'",
                            field, name),
                field);
  }
  for (const char* own : kOwnHeaders) {
    if (EqualsIgnoreCase(name, own)) {
      return Fail(
          Code::kInvalidArgument,
          fmt::format("{} '{}' is set by PACS Bridge itself on every request; it cannot be replaced", field, name),
          field);
    }
  }
  if (n.auth.type != "none" && EqualsIgnoreCase(name, "Authorization")) {
    return Fail(Code::kInvalidArgument,
                fmt::format("{} 'Authorization' would replace the one auth.type '{}' sends: use auth, or set "
                            "auth.type to none to send your own",
                            field, n.auth.type),
                field);
  }
  return {};
}

[[nodiscard]] Result<void> ValidateAuth(NodeAuth& a) {
  auto required = [&](const char* field, const char* why) {
    return Fail(Code::kInvalidArgument, fmt::format("{} is required when auth.type is {}{}", field, a.type, why),
                field);
  };
  if (!Trim(a.token_url).empty()) {
    auto url = ValidateEndpointUrl(a.token_url, "auth.token_url");
    if (!url) return tl::unexpected(url.error());
    a.token_url = *url;
  } else {
    a.token_url.clear();
  }
  if (a.type == "basic") {
    if (a.username.empty()) return required("auth.username", " (auth.password may be empty)");
    if (a.username.find(':') != std::string::npos) {
      return Fail(Code::kInvalidArgument,
                  "auth.username must not contain ':' (HTTP basic authentication ends the user name with it)",
                  "auth.username");
    }
    if (HasControl(a.username)) {
      return Fail(Code::kInvalidArgument, "auth.username must not contain control characters", "auth.username");
    }
  } else if (a.type == "bearer") {
    if (a.token.empty()) return required("auth.token", ": the token sent as 'Authorization: Bearer <token>'");
    if (HasControl(a.token)) {
      return Fail(Code::kInvalidArgument, "auth.token must not contain line breaks or other control characters",
                  "auth.token");
    }
  } else if (a.type == "oauth2") {
    if (a.token_url.empty()) {
      return required("auth.token_url", ": the token endpoint, e.g. https://login.example.org/oauth2/token");
    }
    if (Trim(a.client_id).empty()) return required("auth.client_id", " (client credentials grant)");
    if (a.client_secret.empty()) return required("auth.client_secret", " (client credentials grant)");
  }
  return {};
}

[[nodiscard]] Result<void> ValidateHeaders(Node& n) {
  for (size_t i = 0; i < n.headers.size(); ++i) {
    auto& [name, value] = n.headers[i];
    const std::string field = fmt::format("headers[{}].name", i);
    if (auto c = CheckHeaderName(name, field, n); !c) return c;
    for (size_t k = 0; k < i; ++k) {
      if (EqualsIgnoreCase(n.headers[k].first, name)) {
        return Fail(Code::kInvalidArgument,
                    fmt::format("{} '{}' is given twice (also headers[{}]): give each header once", field, name, k),
                    field);
      }
    }
    if (HasControl(value)) {
      return Fail(Code::kInvalidArgument,
                  fmt::format("headers[{}].value must not contain line breaks, NUL or other control characters", i),
                  fmt::format("headers[{}].value", i));
    }
  }
  for (auto [field, name] : {std::pair<const char*, std::string*>{"calling_ae_header", &n.calling_ae_header},
                             {"called_ae_header", &n.called_ae_header}}) {
    *name = Trim(*name);
    if (name->empty()) continue;
    if (auto c = CheckHeaderName(*name, field, n); !c) return c;
    for (size_t k = 0; k < n.headers.size(); ++k) {
      if (EqualsIgnoreCase(n.headers[k].first, *name)) {
        return Fail(Code::kInvalidArgument,
                    fmt::format("{} '{}' is also set in headers[{}]: remove it there", field, *name, k), field);
      }
    }
  }
  if (!n.calling_ae_header.empty() && EqualsIgnoreCase(n.calling_ae_header, n.called_ae_header)) {
    return Fail(Code::kInvalidArgument, "called_ae_header and calling_ae_header must be two different headers",
                "called_ae_header");
  }
  if (!n.called_ae_header.empty() && n.ae_title.empty()) {
    return Fail(Code::kInvalidArgument,
                fmt::format("called_ae_header '{}' carries the node's AE title: set ae_title too (or clear "
                            "called_ae_header)",
                            n.called_ae_header),
                "called_ae_header");
  }
  return {};
}

}  // namespace

bool IsHttpToken(std::string_view s) {
  static constexpr std::string_view kSpecials = "!#$%&'*+-.^_`|~";
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && kSpecials.find(c) == std::string_view::npos) return false;
  }
  return true;
}

void ReadDicomWebFields(JsonReader& r, Node& n) {
  r.Str("url", n.url);
  r.Bool("qido", n.qido);
  r.Bool("wado", n.wado);
  r.Bool("stow", n.stow);
  r.Bool("stow_multipart", n.stow_multipart);
  r.Str("qido_root", n.qido_root);
  r.Str("wado_root", n.wado_root);
  r.Str("stow_root", n.stow_root);
  r.Str("calling_ae_header", n.calling_ae_header);
  r.Str("called_ae_header", n.called_ae_header);
  for (const auto& f : kIntFields) r.Int(f.key, n.*f.member);
  r.Str("proxy", n.proxy);
  r.Bool("allow_redirects", n.allow_redirects);
}

[[nodiscard]] Result<void> ValidateDicomWebFields(Node& n) {
  auto url = ValidateBaseUrl(n.url, "url");
  if (!url) return tl::unexpected(url.error());
  n.url = *url;
  for (auto [field, root] : {std::pair<const char*, std::string*>{"qido_root", &n.qido_root},
                             {"wado_root", &n.wado_root},
                             {"stow_root", &n.stow_root}}) {
    if (Trim(*root).empty()) {
      root->clear();
      continue;
    }
    auto r = ValidateBaseUrl(*root, field);
    if (!r) return tl::unexpected(r.error());
    *root = *r;
  }
  // Optional here: only the AE title headers use them.
  for (auto [field, value] :
       {std::pair<const char*, std::string*>{"ae_title", &n.ae_title}, {"calling_ae_title", &n.calling_ae_title}}) {
    if (Trim(*value).empty()) {
      value->clear();
      continue;
    }
    auto v = ValidateAeTitle(*value, field);
    if (!v) return tl::unexpected(v.error());
    *value = *v;
  }
  if (auto a = ValidateAuth(n.auth); !a) return a;
  if (auto h = ValidateHeaders(n); !h) return h;
  for (const auto& f : kIntFields) {
    const int v = n.*f.member;
    if (v < f.min || v > f.max) {
      return Fail(Code::kInvalidArgument,
                  fmt::format("{} must be between {} and {} (default {})", f.key, f.min, f.max, f.fallback), f.key);
    }
  }
  auto proxy = ValidateProxyUrl(n.proxy, "proxy");
  if (!proxy) return tl::unexpected(proxy.error());
  n.proxy = *proxy;
  return {};
}

void WriteDicomWebFields(const Node& n, bool with_secrets, json& j) {
  j["url"] = n.url;
  j["qido_root"] = n.qido_root;
  j["wado_root"] = n.wado_root;
  j["stow_root"] = n.stow_root;
  j["qido"] = n.qido;
  j["wado"] = n.wado;
  j["stow"] = n.stow;
  j["stow_multipart"] = n.stow_multipart;
  j["ae_title"] = n.ae_title;
  j["calling_ae_title"] = n.calling_ae_title;
  j["calling_ae_header"] = n.calling_ae_header;
  j["called_ae_header"] = n.called_ae_header;
  json a{{"type", n.auth.type},
         {"username", n.auth.username},
         {"token_url", n.auth.token_url},
         {"client_id", n.auth.client_id},
         {"scope", n.auth.scope}};
  if (with_secrets) {
    a["password"] = n.auth.password;
    a["token"] = n.auth.token;
    a["client_secret"] = n.auth.client_secret;
  } else {
    a["has_password"] = !n.auth.password.empty();
    a["has_token"] = !n.auth.token.empty();
    a["has_client_secret"] = !n.auth.client_secret.empty();
  }
  j["auth"] = a;
  j["headers"] = json::array();
  for (const auto& [k, v] : n.headers) j["headers"].push_back({{"name", k}, {"value", v}});
  for (const auto& f : kIntFields) j[f.key] = n.*f.member;
  j["timeout_seconds"] = n.timeout_seconds;
  j["max_associations"] = n.max_associations;
  j["max_results"] = n.max_results;
  j["preferred_transfer_syntax"] = n.preferred_transfer_syntax;
  j["proxy"] = n.proxy;
  j["allow_redirects"] = n.allow_redirects;
}

}  // namespace pb
