#include "nodes/url.h"

#include <curl/curl.h>

#include <memory>

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

}  // namespace

Result<std::string> ValidateBaseUrl(std::string_view raw, const std::string& field) {
  const std::string url(Trimmed(raw));
  const std::string shown = Shown(url);
  const std::string example = "e.g. http://host:8042/dicom-web/ (Orthanc), "
                              "http://host:8080/dcm4chee-arc/aets/DCM4CHEE/rs/ (dcm4chee)";
  auto fail = [&](const std::string& why) {
    return Fail(Code::kInvalidArgument, fmt::format("{} '{}' {}; give the DICOMweb root, {}", field, shown, why, example),
                field);
  };
  if (url.empty()) return Fail(Code::kInvalidArgument, fmt::format("{} is required: the DICOMweb root, {}", field, example), field);
  std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
  if (!u) return Fail(Code::kInternal, "cannot allocate a URL parser");
  CURLUcode rc = curl_url_set(u.get(), CURLUPART_URL, url.c_str(), CURLU_NON_SUPPORT_SCHEME);
  switch (rc) {
    case CURLUE_OK: break;
    case CURLUE_BAD_SCHEME:
    case CURLUE_NO_SCHEME: return fail("does not start with http:// or https://");
    case CURLUE_NO_HOST: return fail("has no host");
    case CURLUE_BAD_PORT_NUMBER: return fail("has an invalid port");
    default: return fail("is not a valid URL");
  }
  Part scheme = Get(u.get(), CURLUPART_SCHEME);
  std::string s = scheme ? scheme.get() : "";
  if (s != "http" && s != "https") return fail("does not start with http:// or https://");
  if (!Get(u.get(), CURLUPART_HOST)) return fail("has no host");
  if (Get(u.get(), CURLUPART_USER) || Get(u.get(), CURLUPART_PASSWORD)) {
    return Fail(Code::kInvalidArgument,
                fmt::format("{}: put the user name and password in auth (basic), not in the URL (a URL is shown "
                            "to everyone who may read the node)",
                            field),
                field);
  }
  if (Get(u.get(), CURLUPART_QUERY)) return fail("has a query (?...); the root takes none");
  if (Get(u.get(), CURLUPART_FRAGMENT) || url.find('#') != std::string::npos) return fail("has a fragment (#...)");
  // What libcurl understood, so that paths appended later mean what they say.
  Part normalized = Get(u.get(), CURLUPART_URL);
  if (!normalized) return fail("is not a valid URL");
  return std::string(normalized.get());
}

}  // namespace pb
