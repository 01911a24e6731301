#include "http/api.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <limits>
#include <random>
#include <string_view>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/validate.h"
#include "http/auth.h"
#include "http/errors.h"
#include "http/plain_server.h"
#include "http/router.h"
#include "os/port_owner.h"

namespace pb::http {

std::string NewRequestId() {
  static const uint32_t base = [] {
    try {
      return std::random_device{}();
    } catch (...) {  // no entropy source: the clock will do for telling requests apart
      return static_cast<uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    }
  }();
  static std::atomic<uint32_t> next{0};
  return fmt::format("{:08x}", base + next.fetch_add(1) * 2654435761u);
}

void AnswerException(const httplib::Request& req, httplib::Response& res, const std::exception_ptr& ep) {
  std::string what = "unknown error";
  try {
    std::rethrow_exception(ep);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  // The exception's text may carry paths, SQL or patient data: the log gets it, under an id
  // the client is given to quote.
  const std::string id = CurrentRequestId().empty() ? NewRequestId() : CurrentRequestId();
  spdlog::error("http: request {} ({} {}) failed: {}", id, req.method, req.path, what);
  res.headers.clear();  // e.g. a download's file name, set before the fault
  res.set_header("X-Request-Id", id);
  SendError(res, 500, fmt::format("internal error (request {}; the server log has the details)", id));
}

HttpApi::HttpApi() : server_(std::make_unique<PlainServer>()) {}

HttpApi::~HttpApi() { Stop(); }

Result<void> HttpApi::UseHttps(const std::string& cert_file, const std::string& key_file) {
  auto ssl = std::make_unique<httplib::SSLServer>(cert_file.c_str(), key_file.c_str());
  if (!ssl->is_valid()) {
    return Fail(Code::kInvalidArgument,
                fmt::format("cannot serve HTTPS with server.https_cert_file = {} and server.https_key_file = {}: a "
                            "file is missing or unreadable, not PEM, or the key does not match the certificate",
                            cert_file, key_file),
                "server.https_cert_file");
  }
  server_ = std::move(ssl);
  return {};
}

Result<int> HttpApi::Bind(const std::string& host, int port) {
  httplib::Server& srv = *server_;
  // cpp-httplib's default also sets SO_REUSEPORT, which lets a second process bind the same
  // port and take half of the requests. SO_REUSEADDR alone allows a restart while old
  // connections linger in TIME_WAIT, never two listeners.
  srv.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  int bound = port;
  if (port == 0) {
    bound = srv.bind_to_any_port(host);
  } else if (!srv.bind_to_port(host, port)) {
    bound = -1;
  }
  if (bound <= 0) {
    return Fail(Code::kUnavailable,
                fmt::format("cannot listen for HTTP on {}:{}: the port is in use {}, or the address is not one of "
                            "this machine's",
                            host, port, DescribePortOwner(port)),
                "server.http_listen");
  }
  return bound;
}

namespace {

constexpr size_t kDrainBytes = 64 * 1024;

// Requests whose body goes to disk as it arrives, whatever its size: STOW-RS.
bool StreamsBody(const httplib::Request& req) {
  // /dicom-web/studies, optionally followed by /{study}, optionally ending in '/'.
  constexpr std::string_view kStudies = "/dicom-web/studies";
  if (req.method != "POST" || req.path.rfind(kStudies, 0) != 0) return false;
  std::string_view rest = std::string_view(req.path).substr(kStudies.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  return rest.empty() || (rest.size() > 1 && rest[0] == '/' && rest.find('/', 1) == std::string_view::npos);
}

// Whether the request's body may be read; else it has answered (before any of it is read, so a
// hostile Content-Length or endless chunks cost nothing) and the connection closes after the
// answer. POST and PUT routes read their bodies themselves, capped (or streamed); DELETE takes
// a small one (cpp-httplib reads it whole); GET, HEAD and OPTIONS take none (cpp-httplib would
// not read it, and would parse it as the next request); other methods are not served. How a
// body ends must be unambiguous: one Content-Length, or Transfer-Encoding exactly "chunked"
// without one (else a proxy in front and this server could see different requests).
bool AcceptableBody(const httplib::Request& req, httplib::Response& res) {
  const std::string& m = req.method;
  auto refuse = [&](int status, const std::string& why) {
    SendError(res, status, why);
    CloseAfterAnswer(res);
    return false;
  };
  if (m != "GET" && m != "HEAD" && m != "OPTIONS" && m != "POST" && m != "PUT" && m != "DELETE") {
    return refuse(405, fmt::format("{} is not served here", m));
  }
  const bool has_length = req.has_header("Content-Length");
  const bool has_te = req.has_header("Transfer-Encoding");
  if (req.get_header_value_count("Content-Length") > 1 || req.get_header_value_count("Transfer-Encoding") > 1 ||
      (has_length && has_te)) {
    return refuse(400,
                  "the request's length is ambiguous (several Content-Length or Transfer-Encoding headers, or both)");
  }
  std::string te = req.get_header_value("Transfer-Encoding");
  for (char& c : te) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (has_te && te != "chunked")
    return refuse(501, fmt::format("Transfer-Encoding '{}' is not served: only chunked", te));
  size_t length = 0;
  if (has_length) {
    const std::string cl = req.get_header_value("Content-Length");
    auto [end, ec] = std::from_chars(cl.data(), cl.data() + cl.size(), length);
    if (cl.empty() || ec != std::errc() || end != cl.data() + cl.size())
      return refuse(400, "Content-Length is not a number");
  }
  if (m == "GET" || m == "HEAD" || m == "OPTIONS") {
    if (has_te || length > 0) return refuse(400, "this request takes no body");
    return true;
  }
  if (StreamsBody(req)) return true;
  if (m == "DELETE" && (has_te || length > kDrainBytes)) return refuse(413, "this request takes no body");
  if (length > kMaxBody) return refuse(413, "the request body is larger than 16 MB");
  return true;
}

// A Host header that is a host name or address with an optional port (RFC 7230 5.4: anything
// else is 400): answers build URLs from it (RetrieveURL, BulkDataURI).
bool ValidHost(const httplib::Request& req, httplib::Response& res) {
  const std::string host = req.get_header_value("Host");
  const bool ok = host.size() <= 300 && host.find_first_not_of(
                                            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                            "0123456789.-_:[]") == std::string::npos;
  if (!ok) {
    SendError(res, 400, "the Host header is not a host name or address with an optional port", "Host");
    CloseAfterAnswer(res);
  }
  return ok;
}

// CORS for the DICOMweb server ([dicomweb] cors_origins), so browser viewers on another origin
// can use it: an allowed Origin gets Access-Control-Allow-Origin on every /dicom-web answer, and
// its preflight (OPTIONS) is answered here, before authentication (browsers send none with it).
// True when the request was answered (a preflight).
bool Cors(const std::vector<std::string>& allowed, const httplib::Request& req, httplib::Response& res) {
  if (req.path.rfind("/dicom-web/", 0) != 0 && req.path != "/dicom-web") return false;
  const std::string origin = req.get_header_value("Origin");
  const bool any = std::find(allowed.begin(), allowed.end(), "*") != allowed.end();
  const bool ok = !origin.empty() && (any || std::find(allowed.begin(), allowed.end(), origin) != allowed.end());
  if (ok) {
    res.set_header("Access-Control-Allow-Origin", any ? "*" : origin);
    if (!any) res.set_header("Vary", "Origin");
    res.set_header("Access-Control-Expose-Headers",
                   "Warning, Content-Type, Content-Length, Content-Encoding, Content-Location");
  }
  if (req.method != "OPTIONS" || !req.has_header("Access-Control-Request-Method")) return false;
  if (!ok) {
    SendError(res, 403,
              origin.empty() ? "a CORS preflight needs an Origin"
                             : fmt::format("origin {} may not call /dicom-web (see [dicomweb] cors_origins)", origin),
              "Origin");
    return true;
  }
  res.status = 204;
  res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
  res.set_header("Access-Control-Allow-Headers", "Authorization, Accept, Accept-Encoding, Content-Type");
  res.set_header("Access-Control-Max-Age", "600");
  return true;
}

}  // namespace

Result<void> HttpApi::Start(Services services) {
  s_.emplace(services);
  httplib::Server& srv = *server_;
  // Bodies are limited per route instead: 16 MB for those read whole (Reading in errors.cpp),
  // none for STOW-RS, which streams them to disk (StreamsBody); everything else is refused
  // before a byte of its body is read (below).
  srv.set_payload_max_length(std::numeric_limits<size_t>::max());
  // Threads for the requests that wait (GET /api/jobs/{id}?wait=, the jobs event streams), each
  // capped by JobService, and the usual eight for everything else.
  srv.new_task_queue = [] { return new httplib::ThreadPool(8 + JobService::kMaxWaiters + JobService::kMaxStreams); };
  // Every request gets its id first; each route's gate then decides who may call it (Router).
  srv.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    BeginRequest(res);
    // Nothing of ours is to be sniffed into another type, framed by another site, or told
    // where it was linked from.
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("X-Frame-Options", "DENY");
    res.set_header("Referrer-Policy", "no-referrer");
    if (!ValidHost(req, res)) return httplib::Server::HandlerResponse::Handled;
    if (!AcceptableBody(req, res)) return httplib::Server::HandlerResponse::Handled;
    if (Cors(s_->settings.dicomweb_cors_origins, req, res)) return httplib::Server::HandlerResponse::Handled;
    return httplib::Server::HandlerResponse::Unhandled;
  });
  srv.set_exception_handler(AnswerException);
  srv.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404 && res.body.empty())
      SendError(res, 404, fmt::format("no such resource: {} {}", req.method, req.path));
  });
  Router router(srv, [this](const httplib::Request& req, httplib::Response& res, Access access) {
    return CheckAccess(*s_, req, res, access);
  });
  AddSystemRoutes(router, *s_);
  AddAuthRoutes(router, *s_);
  AddNodeRoutes(router, *s_);
  AddFindRoute(router, *s_);
  AddArchiveRoutes(router, *s_);
  AddDicomwebRoutes(router, *s_);
  AddWadoRoutes(router, *s_);
  AddStowRoutes(router, *s_);
  AddJobRoutes(router, *s_);
  AddImportRoutes(router, *s_);
  AddReceiverRoutes(router, *s_);
  AddMppsRoutes(router, *s_);
  AddRoutingTryRoute(router, *s_);
  // A POST or PUT no route takes: its body is not read (httplib would read it whole first).
  auto nowhere = [](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
    const bool whole = DrainBody(req, reader, kDrainBytes);
    SendError(res, 404, fmt::format("no such resource: {} {}", req.method, req.path));
    if (!whole) CloseAfterAnswer(res);
  };
  srv.Post(".*", nowhere);
  srv.Put(".*", nowhere);
  AddUiRoutes(srv);
  // A route without its documentation, or documentation without its route, is a build that
  // must not ship: every test that starts the server fails on it.
  if (auto same = CheckRoutes(router.routes(), OpenApiDocument()); !same) return same;
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  for (int i = 0; i < 1000 && !server_->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!server_->is_running()) return Fail(Code::kUnavailable, "the HTTP server did not start");
  return {};
}

void HttpApi::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace pb::http
