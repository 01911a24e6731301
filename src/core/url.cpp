#include "core/url.h"

#include <curl/curl.h>

#include <memory>
#include <set>

#include <fmt/format.h>

namespace pb {
namespace {

struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
struct PartDeleter {
  void operator()(char* p) const { curl_free(p); }
};
using Part = std::unique_ptr<char, PartDeleter>;
using Url = std::unique_ptr<CURLU, UrlDeleter>;

// One component of a parsed URL, or null when it has none.
Part Get(CURLU* u, CURLUPart what) {
  char* out = nullptr;
  if (curl_url_get(u, what, &out, 0) != CURLUE_OK) return Part();
  return Part(out);
}

std::string_view Trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The URL for messages: any user information before the host masked.
std::string Shown(const std::string& url) {
  size_t start = url.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  size_t end = url.find_first_of("/?#", start);
  size_t at = url.rfind('@', end == std::string::npos ? std::string::npos : end);
  if (at == std::string::npos || at < start) return url;
  return url.substr(0, start) + "***" + url.substr(at);
}

// What one kind of URL allows, and the examples its errors show.
struct UrlRules {
  std::set<std::string> schemes;
  const char* schemes_text;  // "http:// or https://"
  const char* what;          // "the DICOMweb root"
  const char* example;
  const char* credentials;  // what to do with a user name and password found in the URL
  bool query = false;
};

// Parses `url` (already trimmed, not empty) by `rules`; the parsed URL or an error naming `field`.
[[nodiscard]] Result<Url> Parse(const std::string& url, const std::string& field, const UrlRules& rules) {
  const std::string shown = Shown(url);
  auto fail = [&](const std::string& why) {
    return Fail(Code::kInvalidArgument,
                fmt::format("{} '{}' {}; give {}, {}", field, shown, why, rules.what, rules.example), field);
  };
  const std::string bad_scheme = fmt::format("does not start with {}", rules.schemes_text);
  Url u(curl_url());
  if (!u) return Fail(Code::kInternal, "cannot allocate a URL parser");
  CURLUcode rc = curl_url_set(u.get(), CURLUPART_URL, url.c_str(), CURLU_NON_SUPPORT_SCHEME);
  switch (rc) {
    case CURLUE_OK:
      break;
    case CURLUE_BAD_SCHEME:
    case CURLUE_NO_SCHEME:
      return fail(bad_scheme);
    case CURLUE_NO_HOST:
      return fail("has no host");
    case CURLUE_BAD_PORT_NUMBER:
      return fail("has an invalid port");
    default:
      return fail("is not a valid URL");
  }
  Part scheme = Get(u.get(), CURLUPART_SCHEME);
  if (!scheme || !rules.schemes.count(scheme.get())) return fail(bad_scheme);
  if (!Get(u.get(), CURLUPART_HOST)) return fail("has no host");
  if (Get(u.get(), CURLUPART_USER) || Get(u.get(), CURLUPART_PASSWORD)) {
    return Fail(Code::kInvalidArgument,
                fmt::format("{}: {}, not in the URL (a URL is shown to everyone who may read the node)", field,
                            rules.credentials),
                field);
  }
  if (!rules.query && Get(u.get(), CURLUPART_QUERY)) return fail("has a query (?...); it takes none");
  if (Get(u.get(), CURLUPART_FRAGMENT) || url.find('#') != std::string::npos) return fail("has a fragment (#...)");
  return u;
}

// What libcurl understood, so that paths appended later mean what they say.
[[nodiscard]] Result<std::string> Normalized(CURLU* u, const std::string& field) {
  Part normalized = Get(u, CURLUPART_URL);
  if (!normalized) return Fail(Code::kInvalidArgument, fmt::format("{} is not a valid URL", field), field);
  return std::string(normalized.get());
}

const UrlRules kRoot{{"http", "https"},
                     "http:// or https://",
                     "the DICOMweb root",
                     "e.g. http://host:8042/dicom-web/ (Orthanc), "
                     "http://host:8080/dcm4chee-arc/aets/DCM4CHEE/rs/ (dcm4chee)",
                     "put the user name and password in auth (basic)"};
const UrlRules kEndpoint{{"http", "https"},
                         "http:// or https://",
                         "the URL of the token endpoint",
                         "e.g. https://login.example.org/oauth2/token",
                         "put the client's credentials in auth.client_id and auth.client_secret",
                         true};
const UrlRules kProxy{{"http", "https", "socks5", "socks5h"},
                      "http://, https://, socks5:// or socks5h://",
                      "the proxy's address",
                      "e.g. http://proxy.example.org:3128 or socks5h://127.0.0.1:1080",
                      "a proxy that asks for a user name and password is not supported: allow this host on the proxy"};

}  // namespace

[[nodiscard]] Result<std::string> ValidateBaseUrl(std::string_view raw, const std::string& field) {
  const std::string url(Trimmed(raw));
  if (url.empty()) {
    return Fail(Code::kInvalidArgument, fmt::format("{} is required: {}, {}", field, kRoot.what, kRoot.example), field);
  }
  auto u = Parse(url, field, kRoot);
  if (!u) return tl::unexpected(u.error());
  return Normalized(u->get(), field);
}

[[nodiscard]] Result<std::string> ValidateEndpointUrl(std::string_view raw, const std::string& field) {
  const std::string url(Trimmed(raw));
  if (url.empty()) {
    return Fail(Code::kInvalidArgument, fmt::format("{} is required: {}, {}", field, kEndpoint.what, kEndpoint.example),
                field);
  }
  auto u = Parse(url, field, kEndpoint);
  if (!u) return tl::unexpected(u.error());
  return Normalized(u->get(), field);
}

[[nodiscard]] Result<std::string> ValidateProxyUrl(std::string_view raw, const std::string& field) {
  const std::string url(Trimmed(raw));
  if (url.empty()) return url;
  auto u = Parse(url, field, kProxy);
  if (!u) return tl::unexpected(u.error());
  Part path = Get(u->get(), CURLUPART_PATH);
  if (path && std::string_view(path.get()) != "/" && *path.get() != '\0') {
    return Fail(Code::kInvalidArgument,
                fmt::format("{} '{}' has a path; a proxy is only a scheme, a host and a port, {}", field, Shown(url),
                            kProxy.example),
                field);
  }
  return url;  // as given: libcurl would add a "/" that a proxy has no use for
}

}  // namespace pb
