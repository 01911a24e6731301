#pragma once
// The HTTP side of a DICOMweb node, on libcurl: one client per node and operation, holding the
// node's settings (TLS, proxy, extra headers, authentication, timeouts, redirect policy) and a
// small pool of connections that stay open between requests (keep-alive; HTTP/2 where an https
// server offers it). Bodies stream both ways: an upload is read from a callback, a 2xx answer's
// body is handed on in chunks as it arrives; other answers are kept (bounded) for the error
// message. Failures are errors a person can act on, naming the node and the request: host not
// found, refused, timed out, TLS (not trusted, expired, wrong host name, worded as for DIMSE),
// 401/403 with the authentication tried and the server's realm, redirects to another host.
// Thread-safe: requests may run on several threads at once (each takes its own connection).
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "core/thread_annotations.h"
#include "nodes/node.h"

namespace pb::dicomweb {

// Which timeout applies: a query must be answered whole within query_timeout_seconds; a
// transfer (WADO-RS, STOW-RS) may take as long as it needs while bytes keep moving, and fails
// after retrieve_timeout_seconds without any.
enum class Phase { kQuery, kTransfer };

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  Phase phase = Phase::kQuery;
  std::string what;  // "QIDO-RS studies", for messages
  // The body: `body` when small; else `body_size` bytes from `read_body` (false: stop with an
  // error), started again from the beginning by `rewind_body` (a retry after 401, a redirect).
  std::string body;
  int64_t body_size = -1;
  std::function<Result<size_t>(char* buffer, size_t size)> read_body;
  std::function<Result<void>()> rewind_body;
  // A 2xx answer: `on_head` once its headers are in (an error aborts the transfer), then
  // `on_body` for each chunk. Without on_body the body is kept in the response (bounded).
  std::function<Result<void>(long status, const std::map<std::string, std::string>& headers)> on_head;
  std::function<Result<void>(std::string_view chunk)> on_body;
  // Polled about once a second while the request runs (also while nothing moves): true stops
  // it with Code::kCanceled.
  std::function<bool()> cancel;
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;                            // unless streamed; at most kMaxKeptBody bytes of a non-2xx answer
  std::string content_type() const;
  std::string Header(const std::string& lower_name) const;
};

// OAuth2 tokens live beyond a client: cached per token endpoint, client and scope until they
// expire (less a margin), shared by every request of the process.
class TokenCache {
 public:
  static TokenCache& Instance();
  struct Token {
    std::string value;
    std::chrono::steady_clock::time_point expires;
  };
  // The cached token, or an empty one.
  Token Get(const std::string& key);
  void Put(const std::string& key, Token token);
  void Drop(const std::string& key, const std::string& value);

 private:
  Mutex mu_;
  std::map<std::string, Token> tokens_;
};

class HttpClient {
 public:
  static constexpr size_t kMaxKeptBody = 256 * 1024;

  // `calling_ae`: our calling AE title (sent in the node's calling_ae_header when it has one).
  HttpClient(Node node, std::string calling_ae);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Performs the request, adding authentication and the node's headers; follows redirects on
  // the same host (and to other hosts only when the node allows it); after a 401 with OAuth2
  // fetches a new token and tries once more. An error only when no HTTP answer came (or the
  // answer was refused by on_head/on_body); any HTTP status is a response, see Explain().
  [[nodiscard]] Result<HttpResponse> Perform(HttpRequest& request);

  // Why a non-2xx response is a failure, for people: "HTTP 401 Unauthorized: the server refused
  // basic authentication as 'alice' (realm "Orthanc Secure Area")", "HTTP 404 Not Found at
  // <url>: ...", the server's own message for 4xx/5xx (from a JSON error document or plain
  // text; an HTML page is named as such).
  std::string Explain(const HttpRequest& request, const HttpResponse& response) const;

  // "the node's basic authentication as 'alice'", "no authentication" (for messages).
  std::string AuthDescription() const;

  const Node& node() const { return node_; }

 private:
  struct Handle;
  std::unique_ptr<Handle> Acquire();
  void Release(std::unique_ptr<Handle> handle);
  void Configure(Handle& h, const std::string& url, Phase phase) const;  // options every request shares
  // `home`: the URL is on the node's own origin (only then credentials and headers go along).
  [[nodiscard]] Result<HttpResponse> PerformOnce(Handle& h, HttpRequest& request, const std::string& url,
                                                 bool fresh_token, bool home, std::string& redirect_to);
  [[nodiscard]] Result<std::string> BearerToken(bool fresh);
  std::string TokenKey() const;
  Error TransportError(int curl_code, const std::string& detail, const std::string& url, int os_errno) const;

  Node node_;
  std::string calling_ae_;
  Mutex mu_;
  std::vector<std::unique_ptr<Handle>> idle_ GUARDED_BY(mu_);
};

// "scheme://host:port" of a URL (lower case), for comparing origins; empty when unparsable.
std::string OriginOf(const std::string& url);

}  // namespace pb::dicomweb
