#include "http/dicomweb_common.h"

#include <zlib.h>

#include <cctype>

#include <fmt/format.h>

#include "http/auth.h"

namespace pb::http {
namespace {

bool AcceptsGzip(const httplib::Request& req) {
  std::string v = req.get_header_value("Accept-Encoding");
  for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t at = v.find("gzip");
  if (at == std::string::npos) return false;
  // "gzip;q=0" refuses it.
  size_t end = v.find(',', at);
  std::string params = v.substr(at, end == std::string::npos ? std::string::npos : end - at);
  size_t q = params.find("q=");
  return q == std::string::npos || params.substr(q + 2).find_first_not_of("0. ") != std::string::npos;
}

// gzip (RFC 1952) at zlib's fastest level: the answers are large and compress well.
bool Gzip(const std::string& in, std::string& out) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return false;
  out.resize(deflateBound(&zs, static_cast<uLong>(in.size())) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return rc == Z_STREAM_END;
}

}  // namespace

std::vector<std::string> VisibleProjects() {
  const auth::Principal* p = CurrentPrincipal();
  // No account (a route that forgot its gate): nothing is visible, rather than everything. The
  // name cannot be a project label (labels have no spaces).
  if (!p) return {"no account"};
  return p->projects;
}

std::string UrlSegment(const std::string& v) {
  if (IsUid(v)) return v;
  std::string out;
  for (unsigned char c : v) {
    if (std::isalnum(c) || c == '.' || c == '-' || c == '_' || c == '~')
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

bool IsUid(const std::string& v) {
  return !v.empty() && v.size() <= 64 && v.find_first_not_of("0123456789.") == std::string::npos;
}

std::string DicomwebRoot(const Services& s, const httplib::Request& req) {
  if (!s.settings.dicomweb_public_root.empty()) return s.settings.dicomweb_public_root;
  std::string host = req.get_header_value("Host");
  if (host.empty()) host = "localhost";
  return fmt::format("{}://{}/dicom-web", req.ssl ? "https" : "http", host);
}

void SendDicomJson(const httplib::Request& req, httplib::Response& res, int status, std::string body) {
  res.status = status;
  res.set_header("Vary", "Accept-Encoding");
  std::string packed;
  // Bodies under a few KB gain nothing worth the work.
  // Moved into the response (cpp-httplib's set_content copies: megabytes of metadata).
  res.set_header("Content-Type", "application/dicom+json");
  if (body.size() > 4096 && body.size() < (1ull << 31) && AcceptsGzip(req) && Gzip(body, packed)) {
    res.set_header("Content-Encoding", "gzip");
    res.body = std::move(packed);
    return;
  }
  res.body = std::move(body);
}

}  // namespace pb::http
