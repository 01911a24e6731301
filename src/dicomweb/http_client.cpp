#include "dicomweb/http_client.h"

#include "core/rate_limiter.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include <curl/curl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/text.h"
#include "core/thread_annotations.h"
#include "dicom/tls_files.h"

namespace pb::dicomweb {
namespace {

using Steady = std::chrono::steady_clock;

std::string TrimSpace(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

// Printable text of at most `max` characters, on one line (a server's message in ours).
std::string Printable(std::string_view s, size_t max = 200) {
  std::string out;
  for (char c : s) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    unsigned char u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? ' ' : c;
  }
  return TrimSpace(out);
}

Error Err(Code code, std::string message, std::string field = {}) {
  return Error{code, std::move(message), std::move(field)};
}

// A 2xx answer kept whole (a QIDO-RS result, a store response) may be this large.
constexpr size_t kMaxSuccessBody = 256u << 20;

void CurlGlobalInit() {
  static const bool done = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();
  (void)done;
}

// A URL's parts through libcurl's URL API.
struct UrlParts {
  std::string scheme, host, port;
};
bool ParseUrl(const std::string& url, UrlParts& out) {
  CURLU* u = curl_url();
  if (!u) return false;
  bool ok = curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK;
  auto get = [&](CURLUPart part, std::string& value, unsigned flags) {
    char* s = nullptr;
    if (curl_url_get(u, part, &s, flags) == CURLUE_OK && s) {
      value = s;
      curl_free(s);
    }
  };
  if (ok) {
    get(CURLUPART_SCHEME, out.scheme, 0);
    get(CURLUPART_HOST, out.host, 0);
    get(CURLUPART_PORT, out.port, CURLU_DEFAULT_PORT);
  }
  curl_url_cleanup(u);
  return ok && !out.host.empty();
}

// The `realm` of a WWW-Authenticate header ("" when none).
std::string RealmOf(const std::string& challenge) {
  std::string lower = AsciiLower(challenge);
  size_t at = lower.find("realm=");
  if (at == std::string::npos) return {};
  std::string_view rest = std::string_view(challenge).substr(at + 6);
  if (!rest.empty() && rest.front() == '"') {
    rest.remove_prefix(1);
    return Printable(rest.substr(0, rest.find('"')), 80);
  }
  return Printable(rest.substr(0, rest.find_first_of(", ")), 80);
}

// A string member of a JSON object body ("" when the body is not such an object, or the member
// is absent or not a string): network JSON is read without ever throwing.
std::string StringField(const std::string& body, const char* key) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return {};
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The message inside an error answer: a JSON document's usual fields, or the first line of
// plain text; an HTML page is named as such.
std::string ServerMessage(const HttpResponse& r) {
  const std::string type = AsciiLower(r.content_type());
  if (r.body.empty()) return {};
  if (type.find("html") != std::string::npos || AsciiLower(r.body.substr(0, 200)).find("<html") != std::string::npos) {
    return "the server answered with an HTML page";
  }
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_discarded()) {
    std::vector<std::string> parts;
    std::function<void(const nlohmann::json&, int)> pick = [&](const nlohmann::json& o, int depth) {
      if (!o.is_object() || depth > 2) return;
      for (const char* k :
           {"Message", "message", "error", "title", "Details", "detail", "error_description", "errorMessage"}) {
        auto it = o.find(k);
        if (it != o.end() && it->is_string() && !it->get<std::string>().empty()) {
          parts.push_back(Printable(it->get<std::string>(), 160));
        } else if (it != o.end() && it->is_object()) {
          pick(*it, depth + 1);
        }
      }
    };
    pick(j, 0);
    std::string out;
    for (const auto& p : parts) {
      if (out.find(p) != std::string::npos) continue;
      if (!out.empty()) out += "; ";
      out += p;
    }
    if (!out.empty()) return out;
  }
  return Printable(std::string_view(r.body).substr(0, r.body.find('\n')));
}

}  // namespace

std::string HttpResponse::content_type() const { return Header("content-type"); }

std::string HttpResponse::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

std::string OriginOf(const std::string& url) {
  UrlParts p;
  if (!ParseUrl(url, p)) return {};
  return AsciiLower(p.scheme + "://" + p.host + ":" + p.port);
}

TokenCache& TokenCache::Instance() {
  static TokenCache cache;
  return cache;
}

TokenCache::Token TokenCache::Get(const std::string& key) {
  MutexLock lock(mu_);
  auto it = tokens_.find(key);
  if (it == tokens_.end() || it->second.expires <= Steady::now()) return {};
  return it->second;
}

void TokenCache::Put(const std::string& key, Token token) {
  MutexLock lock(mu_);
  tokens_[key] = std::move(token);
}

void TokenCache::Drop(const std::string& key, const std::string& value) {
  MutexLock lock(mu_);
  auto it = tokens_.find(key);
  if (it != tokens_.end() && it->second.value == value) tokens_.erase(it);
}

struct HttpClient::Handle {
  CURL* curl = nullptr;
  char errbuf[CURL_ERROR_SIZE] = "";
  ~Handle() {
    if (curl) curl_easy_cleanup(curl);
  }
};

// What one transfer collects, shared with libcurl's callbacks.
struct Transfer {
  CURL* curl = nullptr;
  HttpRequest* request = nullptr;
  HttpResponse response;
  std::string reason;  // the status line's reason phrase
  bool head_done = false;
  bool streaming = false;      // a 2xx body goes to on_body
  std::optional<Error> error;  // a callback's refusal
  bool canceled = false;
  std::shared_ptr<RateLimiter> limiter;  // paces the body both ways (transfers only)

  // Waits until `bytes` may pass the node's limit; false when canceled meanwhile.
  bool Pace(size_t bytes) {
    if (!limiter) return true;
    if (limiter->Acquire(static_cast<int64_t>(bytes), request->cancel)) return true;
    canceled = true;
    return false;
  }

  // Called before the first byte of the body (and once more after the transfer when there was
  // none): decides where the body goes.
  bool StartBody() {
    if (head_done) return true;
    head_done = true;
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    response.status = status;
    streaming = status >= 200 && status < 300 && request->on_body;
    if (status >= 200 && status < 300 && request->on_head) {
      if (auto r = request->on_head(status, response.headers); !r) {
        error = r.error();
        return false;
      }
    }
    return true;
  }
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new answer (after 100 Continue or an authentication round): start over.
    t->response.headers.clear();
    size_t sp = line.find(' ');
    size_t sp2 = sp == std::string_view::npos ? sp : line.find(' ', sp + 1);
    t->reason = sp2 == std::string_view::npos ? "" : Printable(line.substr(sp2 + 1), 60);
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string name = AsciiLower(TrimSpace(line.substr(0, colon)));
    std::string value = TrimSpace(line.substr(colon + 1));
    auto [it, inserted] = t->response.headers.emplace(name, value);
    if (!inserted) it->second += ", " + value;
  }
  return size * n;
}

size_t OnWrite(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  if (!t->StartBody()) return 0;
  if (!t->Pace(len)) return 0;
  if (t->streaming) {
    if (auto r = t->request->on_body(std::string_view(data, len)); !r) {
      t->error = r.error();
      return 0;
    }
    return len;
  }
  const bool success = t->response.status >= 200 && t->response.status < 300;
  const size_t cap = success ? kMaxSuccessBody : HttpClient::kMaxKeptBody;
  const size_t room = cap - std::min(cap, t->response.body.size());
  if (success && len > room) {
    t->error = Err(Code::kUnavailable, fmt::format("the answer is larger than {} MB", kMaxSuccessBody >> 20));
    return 0;
  }
  t->response.body.append(data, std::min(len, room));  // an error page is kept in part
  return len;
}

size_t OnRead(char* buffer, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  auto r = t->request->read_body(buffer, size * n);
  if (!r) {
    t->error = r.error();
    return CURL_READFUNC_ABORT;
  }
  if (!t->Pace(*r)) return CURL_READFUNC_ABORT;
  return *r;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (t->request->cancel && t->request->cancel()) {
    t->canceled = true;
    return 1;  // aborts the transfer
  }
  return 0;
}

int OnSeek(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  if (offset != 0 || origin != SEEK_SET || !t->request->rewind_body) return CURL_SEEKFUNC_CANTSEEK;
  return t->request->rewind_body() ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_FAIL;
}

HttpClient::HttpClient(Node node, std::string calling_ae) : node_(std::move(node)), calling_ae_(std::move(calling_ae)) {
  CurlGlobalInit();
}

HttpClient::~HttpClient() = default;

std::unique_ptr<HttpClient::Handle> HttpClient::Acquire() {
  {
    MutexLock lock(mu_);
    if (!idle_.empty()) {
      auto h = std::move(idle_.back());
      idle_.pop_back();
      return h;
    }
  }
  auto h = std::make_unique<Handle>();
  h->curl = curl_easy_init();
  return h;
}

void HttpClient::Release(std::unique_ptr<Handle> handle) {
  MutexLock lock(mu_);
  idle_.push_back(std::move(handle));
}

std::string HttpClient::AuthDescription() const {
  const NodeAuth& a = node_.auth;
  if (a.type == "basic") return fmt::format("basic authentication as '{}'", a.username);
  if (a.type == "bearer") return "a bearer token";
  if (a.type == "oauth2") return fmt::format("an OAuth2 token of client '{}' from {}", a.client_id, a.token_url);
  return "no authentication";
}

// Where the OAuth2 token of this node's client is cached (the secret only as a hash).
std::string HttpClient::TokenKey() const {
  const NodeAuth& a = node_.auth;
  return fmt::format("{}\n{}\n{}\n{}", a.token_url, a.client_id, a.scope, std::hash<std::string>{}(a.client_secret));
}

Result<std::string> HttpClient::BearerToken(bool fresh) {
  const NodeAuth& a = node_.auth;
  if (a.type == "bearer") return a.token;
  const std::string key = TokenKey();
  if (!fresh) {
    TokenCache::Token t = TokenCache::Instance().Get(key);
    if (!t.value.empty()) return t.value;
  }
  // RFC 6749 4.4: client credentials, the client authenticated with HTTP basic (2.3.1); a
  // server that wants them in the form instead gets them there on a second try.
  auto escape = [](CURL* c, const std::string& s) {
    char* e = curl_easy_escape(c, s.c_str(), static_cast<int>(s.size()));
    std::string out = e ? e : "";
    curl_free(e);
    return out;
  };
  HttpResponse last;
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto h = Acquire();
    CURL* c = h->curl;
    HttpRequest rq;
    rq.method = "POST";
    rq.url = a.token_url;
    rq.what = "the token request";
    rq.headers = {"Content-Type: application/x-www-form-urlencoded", "Accept: application/json"};
    rq.body = "grant_type=client_credentials";
    if (!a.scope.empty()) rq.body += "&scope=" + escape(c, a.scope);
    if (attempt == 1)
      rq.body += "&client_id=" + escape(c, a.client_id) + "&client_secret=" + escape(c, a.client_secret);
    Transfer t;
    // The token request carries the client's credentials, never a token.
    t.curl = c;
    t.request = &rq;
    Configure(*h, a.token_url, Phase::kQuery);
    const std::string id = escape(c, a.client_id), secret = escape(c, a.client_secret);  // RFC 6749 2.3.1
    if (attempt == 0) {
      curl_easy_setopt(c, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
      curl_easy_setopt(c, CURLOPT_USERNAME, id.c_str());
      curl_easy_setopt(c, CURLOPT_PASSWORD, secret.c_str());
    }
    curl_slist* headers = nullptr;
    for (const auto& hd : rq.headers) headers = curl_slist_append(headers, hd.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq.body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(rq.body.size()));
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnWrite);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) t.StartBody();
    curl_slist_free_all(headers);
    std::string detail = h->errbuf;
    Release(std::move(h));
    if (rc != CURLE_OK) {
      Error e = TransportError(rc, detail, a.token_url, 0);
      e.message = fmt::format("the token endpoint {} cannot be reached: {}", a.token_url, e.message);
      return tl::unexpected(e);
    }
    last = std::move(t.response);
    // Only a refusal of the client's authentication is worth a second try with the
    // credentials in the form (RFC 6749 5.2: invalid_client).
    if (last.status != 401 && !(last.status == 400 && StringField(last.body, "error") == "invalid_client")) break;
  }
  if (last.status != 200) {
    std::string why = Printable(StringField(last.body, "error"), 60);
    if (std::string d = StringField(last.body, "error_description"); !d.empty()) {
      why += (why.empty() ? "" : ": ") + Printable(d, 160);
    }
    if (why.empty()) why = ServerMessage(last);
    return Fail(
        Code::kPermissionDenied,
        fmt::format("the token endpoint {} refused the client credentials of client '{}': HTTP {}{}{}", a.token_url,
                    a.client_id, last.status, why.empty() ? "" : " ", why.empty() ? "" : "(" + why + ")"));
  }
  auto j = nlohmann::json::parse(last.body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("access_token") || !j["access_token"].is_string()) {
    return Fail(Code::kUnavailable,
                fmt::format("the token endpoint {} answered without an access_token (RFC 6749 5.1)", a.token_url));
  }
  if (j.contains("token_type") && j["token_type"].is_string() &&
      AsciiLower(j["token_type"].get<std::string>()) != "bearer") {
    return Fail(Code::kUnsupported,
                fmt::format("the token endpoint {} issued a '{}' token; only bearer tokens are used", a.token_url,
                            Printable(j["token_type"].get<std::string>(), 40)));
  }
  const std::string value = j["access_token"].get<std::string>();
  // RFC 6750 2.1 b64token: nothing that could end the header or start another.
  if (value.empty() ||
      value.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=") !=
          std::string::npos) {
    return Fail(
        Code::kUnavailable,
        fmt::format("the token endpoint {} issued a token with characters a bearer token cannot have (RFC 6750 2.1)",
                    a.token_url));
  }
  int64_t lifetime = 3600;
  if (auto e = j.find("expires_in"); e != j.end() && e->is_number()) {
    const double v = e->get<double>();  // clamped: a year at most, never negative
    lifetime = v <= 0 ? 0 : v >= 31536000.0 ? 31536000 : static_cast<int64_t>(v);
  }
  // Renew a little before the end, so a token never expires on the way.
  const int64_t margin_ms = std::min<int64_t>(30'000, lifetime * 100);
  TokenCache::Token token{value,
                          Steady::now() + std::chrono::milliseconds(std::max<int64_t>(0, lifetime * 1000 - margin_ms))};
  TokenCache::Instance().Put(key, token);
  return token.value;
}

Result<HttpResponse> HttpClient::Perform(HttpRequest& request) {
  std::string url = request.url;
  const std::string home = OriginOf(request.url);
  bool fresh_token = false;
  for (int hops = 0;;) {
    auto h = Acquire();
    std::string redirect;
    // Credentials and the node's headers go only to the node's own origin.
    auto r = PerformOnce(*h, request, url, fresh_token, OriginOf(url) == home, redirect);
    Release(std::move(h));
    if (!r) return r;
    auto rewind = [&]() -> Result<void> {
      if (request.rewind_body) return request.rewind_body();
      return {};
    };
    if (r->status == 401 && node_.auth.type == "oauth2" && !fresh_token) {
      // The token may have been revoked or expired early: one more try with a new one.
      fresh_token = true;
      if (auto w = rewind(); !w) return tl::unexpected(w.error());
      continue;
    }
    if (r->status >= 300 && r->status < 400 && !redirect.empty()) {
      if (++hops > 5) {
        return Fail(Code::kUnavailable,
                    fmt::format("{}: more than 5 redirects (last to {})", request.what, OriginOf(redirect)));
      }
      if (url.rfind("https:", 0) == 0 && AsciiLower(redirect.substr(0, 6)) != "https:") {
        return Fail(Code::kUnavailable,
                    fmt::format("the server redirected {} from https to plain http ({}); that is always refused",
                                request.what.empty() ? "the request" : request.what, OriginOf(redirect)));
      }
      if (OriginOf(redirect) != OriginOf(url) && !node_.allow_redirects) {
        return Fail(Code::kUnavailable,
                    fmt::format("the server redirected {} to another host ({}); redirects to another host are "
                                "refused (set the node's allow_redirects to follow them, or fix its url)",
                                request.what.empty() ? "the request" : request.what, OriginOf(redirect)));
      }
      if (r->status == 303) {
        request.method = "GET";
        request.body.clear();
        request.read_body = nullptr;
        request.body_size = -1;
      }
      if (auto w = rewind(); !w) return tl::unexpected(w.error());
      url = redirect;
      continue;
    }
    return r;
  }
}

void HttpClient::Configure(Handle& h, const std::string& url, Phase phase) const {
  CURL* c = h.curl;
  curl_easy_reset(c);  // options go; the connection cache stays
  h.errbuf[0] = 0;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h.errbuf);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "PACS-Bridge");
  curl_easy_setopt(c, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(c, CURLOPT_PROXY, node_.proxy.c_str());  // "" also ignores the environment
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, node_.tls.verify_peer ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, node_.tls.verify_hostname ? 2L : 0L);
  if (!node_.tls.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, node_.tls.ca_file.c_str());
  if (!node_.tls.cert_file.empty()) {
    curl_easy_setopt(c, CURLOPT_SSLCERT, node_.tls.cert_file.c_str());
    curl_easy_setopt(c, CURLOPT_SSLKEY, node_.tls.key_file.c_str());
  }
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, static_cast<long>(node_.timeout_seconds));
  if (phase == Phase::kQuery) {
    curl_easy_setopt(c, CURLOPT_TIMEOUT, static_cast<long>(node_.query_timeout_seconds));
  } else {
    // Larger buffers: fewer callbacks and system calls for bodies of hundreds of MB.
    curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(node_.retrieve_timeout_seconds));
  }
}

Result<HttpResponse> HttpClient::PerformOnce(Handle& h, HttpRequest& rq, const std::string& url, bool fresh_token,
                                             bool home, std::string& redirect_to) {
  CURL* c = h.curl;
  if (!c) return Fail(Code::kInternal, "the HTTP client cannot start");
  Transfer t;
  t.curl = c;
  t.request = &rq;
  // WADO-RS and STOW-RS bodies share the node's byte rate with every other transfer to it.
  if (rq.phase == Phase::kTransfer) t.limiter = NodeRateLimiter(node_.name, node_.max_bytes_per_second);
  Configure(h, url, rq.phase);

  curl_slist* headers = nullptr;
  auto add = [&](const std::string& line) { headers = curl_slist_append(headers, line.c_str()); };
  for (const auto& line : rq.headers) add(line);
  if (home) {
    for (const auto& [name, value] : node_.headers) add(fmt::format("{}: {}", name, value));
    if (!node_.calling_ae_header.empty()) add(node_.calling_ae_header + ": " + calling_ae_);
    if (!node_.called_ae_header.empty() && !node_.ae_title.empty()) add(node_.called_ae_header + ": " + node_.ae_title);
  }
  add("Expect:");  // never wait for 100-continue (some servers never send it)
  const std::string auth = home ? node_.auth.type : "none";
  std::string token;
  if (auth == "basic") {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl_easy_setopt(c, CURLOPT_USERNAME, node_.auth.username.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, node_.auth.password.c_str());
  } else if (auth == "bearer" || auth == "oauth2") {
    auto got = BearerToken(fresh_token);
    if (!got) {
      curl_slist_free_all(headers);
      return tl::unexpected(got.error());
    }
    token = *got;
    add("Authorization: Bearer " + token);
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);

  if (rq.method == "POST" || rq.method == "PUT") {
    if (rq.method == "PUT")
      curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    else
      curl_easy_setopt(c, CURLOPT_POST, 1L);
    if (rq.read_body) {
      curl_easy_setopt(c, rq.method == "PUT" ? CURLOPT_INFILESIZE_LARGE : CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(rq.body_size));
      curl_easy_setopt(c, CURLOPT_READFUNCTION, OnRead);
      curl_easy_setopt(c, CURLOPT_READDATA, &t);
      curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, OnSeek);
      curl_easy_setopt(c, CURLOPT_SEEKDATA, &t);
    } else {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq.body.c_str());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(rq.body.size()));
    }
  } else if (rq.method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq.method.c_str());
  }
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnWrite);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  if (rq.cancel) {
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, OnProgress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  }

  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  if (t.error) return tl::unexpected(*t.error);
  if (rc == CURLE_ABORTED_BY_CALLBACK && t.canceled) return Fail(Code::kCanceled, "canceled");
  if (rc != CURLE_OK) {
    long os_errno = 0;
    curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
    return tl::unexpected(TransportError(rc, h.errbuf, url, static_cast<int>(os_errno)));
  }
  if (!t.StartBody()) return tl::unexpected(*t.error);
  if (t.response.status == 401 && auth == "oauth2") TokenCache::Instance().Drop(TokenKey(), token);
  t.response.headers.emplace(":reason", t.reason);
  char* location = nullptr;
  if (t.response.status >= 300 && t.response.status < 400 &&
      curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &location) == CURLE_OK && location) {
    redirect_to = location;
  }
  return std::move(t.response);
}

Error HttpClient::TransportError(int curl_code, const std::string& detail, const std::string& url, int os_errno) const {
  UrlParts u;
  ParseUrl(url, u);
  const std::string where = u.host.empty() ? url : fmt::format("{}:{}", u.host, u.port);
  const auto rc = static_cast<CURLcode>(curl_code);
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
      return Err(Code::kUnavailable,
                 fmt::format("host not found: '{}' does not resolve; check the host name in the node's url or use the "
                             "IP address",
                             u.host));
    case CURLE_COULDNT_RESOLVE_PROXY:
      return Err(Code::kUnavailable,
                 fmt::format("the proxy host of '{}' does not resolve; check the node's proxy", node_.proxy));
    case CURLE_COULDNT_CONNECT:
      if (os_errno == EHOSTUNREACH || os_errno == ENETUNREACH) {
        return Err(Code::kUnavailable, fmt::format("{} cannot be reached: {} (check the address and the routes or "
                                                   "firewall between us)",
                                                   where, std::strerror(os_errno)));
      }
      if (os_errno == ECONNREFUSED || os_errno == 0) {
        return Err(Code::kUnavailable, fmt::format("connection refused by {} (is the DICOMweb server running, and is "
                                                   "the port right?)",
                                                   where));
      }
      return Err(Code::kUnavailable, fmt::format("cannot connect to {}: {}", where, Printable(detail)));
    case CURLE_OPERATION_TIMEDOUT:
      if (detail.find("onnect") != std::string::npos && detail.find("after") != std::string::npos &&
          detail.find("Operation too slow") == std::string::npos && detail.find("received") == std::string::npos) {
        return Err(Code::kTimeout, fmt::format("no connection to {} within {} s (timeout_seconds; a firewall "
                                               "dropping packets, or the host is down)",
                                               where, node_.timeout_seconds));
      }
      if (detail.find("Operation too slow") != std::string::npos) {
        return Err(Code::kTimeout, fmt::format("{} stopped sending or receiving: no data moved for {} s "
                                               "(retrieve_timeout_seconds)",
                                               where, node_.retrieve_timeout_seconds));
      }
      return Err(Code::kTimeout, fmt::format("{} did not answer within {} s (query_timeout_seconds)", where,
                                             node_.query_timeout_seconds));
    case CURLE_PEER_FAILED_VERIFICATION: {
      if (detail.find("subject name") != std::string::npos || detail.find("host name") != std::string::npos ||
          detail.find("hostname") != std::string::npos) {
        return Err(Code::kUnavailable,
                   fmt::format("host name does not match the certificate: we connected to '{}' ({}) (fix the host in "
                               "the node's url, or set tls.verify_hostname to false)",
                               u.host, Printable(detail, 160)));
      }
      int port = 443;
      try {
        port = std::stoi(u.port);
      } catch (...) {
      }
      std::string host = u.host;
      if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
      std::string problem = dicom::DescribeCertificateProblem(host, static_cast<uint16_t>(port),
                                                              std::min(10, node_.query_timeout_seconds));
      return Err(Code::kUnavailable, problem);
    }
    case CURLE_SSL_CACERT_BADFILE:
      return Err(Code::kInvalidArgument,
                 fmt::format("tls.ca_file '{}' cannot be read as PEM certificates", node_.tls.ca_file), "tls.ca_file");
    case CURLE_SSL_CERTPROBLEM:
      return Err(Code::kInvalidArgument,
                 fmt::format("the client certificate cannot be used: {} (check tls.cert_file and tls.key_file)",
                             Printable(detail)),
                 "tls.cert_file");
    case CURLE_SSL_CONNECT_ERROR:
      if (detail.find("wrong version number") != std::string::npos ||
          detail.find("packet length") != std::string::npos) {
        return Err(Code::kUnavailable,
                   fmt::format("{} does not speak TLS (use an http:// url, or the server's https port)", where));
      }
      return Err(Code::kUnavailable, fmt::format("TLS handshake with {} failed: {}", where, Printable(detail)));
    case CURLE_GOT_NOTHING:
      return Err(Code::kUnavailable, fmt::format("{} closed the connection without answering", where));
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return Err(Code::kUnavailable, fmt::format("{} closed the connection in the middle of the transfer ({})", where,
                                                 Printable(detail.empty() ? curl_easy_strerror(rc) : detail)));
    case CURLE_UNSUPPORTED_PROTOCOL:
      return Err(Code::kInvalidArgument, "the url must be http:// or https://", "url");
    default:
      return Err(Code::kUnavailable, fmt::format("HTTP request to {} failed: {}", where,
                                                 Printable(detail.empty() ? curl_easy_strerror(rc) : detail)));
  }
}

std::string HttpClient::Explain(const HttpRequest& request, const HttpResponse& r) const {
  std::string reason = r.Header(":reason");
  std::string head = reason.empty() ? fmt::format("HTTP {}", r.status) : fmt::format("HTTP {} {}", r.status, reason);
  std::string msg = ServerMessage(r);
  auto with_message = [&](std::string s) {
    if (!msg.empty()) s += ": " + msg;
    return s;
  };
  if (r.status == 401) {
    std::string challenge = r.Header("www-authenticate");
    std::string realm = RealmOf(challenge);
    std::string realm_text = realm.empty() ? "" : fmt::format(" (realm \"{}\")", realm);
    if (node_.auth.type == "none") {
      std::string scheme = challenge.substr(0, challenge.find(' '));
      return fmt::format("{}: the server wants authentication{}{}; set the node's auth", head,
                         scheme.empty() ? "" : " (" + Printable(scheme, 20) + ")", realm_text);
    }
    std::string again = node_.auth.type == "oauth2" ? ", even with a newly fetched token" : "";
    return fmt::format("{}: the server refused {}{}{}", head, AuthDescription(), realm_text, again);
  }
  if (r.status == 403) {
    return with_message(fmt::format("{}: the server does not allow {} to do this", head, AuthDescription()));
  }
  if (r.status == 404) {
    // Without the query string: a search's holds patient data.
    return fmt::format(
        "{} at {}: the node's url is probably not the DICOMweb root (examples: "
        "http://host:8042/dicom-web/ for Orthanc, "
        "http://host:8080/dcm4chee-arc/aets/DCM4CHEE/rs/ for dcm4chee, https://host/dicomweb/)",
        head, request.url.substr(0, request.url.find('?')));
  }
  return with_message(head);
}

}  // namespace pb::dicomweb
