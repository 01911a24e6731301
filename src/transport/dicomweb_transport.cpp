#include "transport/dicomweb_transport.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/validate.h"
#include "dicom/dataset.h"
#include "dicom/header.h"
#include "dicom/retrieve.h"
#include "dicomweb/http_client.h"
#include "dicomweb/multipart.h"
#include "dicomweb/qido.h"
#include "dicomweb/stow.h"
#include "transport/wado_parts.h"

namespace pb {
namespace {

using Steady = std::chrono::steady_clock;
using dicomweb::HttpClient;
using dicomweb::HttpRequest;
using dicomweb::HttpResponse;

constexpr size_t kUnlimited = 0;
constexpr size_t kPatientStudiesPerPatient = 10;  // studies fetched per patient asked for
constexpr size_t kMaxPatientStudies = 10000;

std::string WithSlash(std::string url) {
  if (!url.empty() && url.back() != '/') url += '/';
  return url;
}

int64_t MsSince(Steady::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - start).count();
}

bool IsHtml(const HttpResponse& r) {
  std::string type = r.content_type();
  for (auto& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return type.find("html") != std::string::npos;
}

// What tells a QIDO-RS row apart from the others of a search.
std::string Fingerprint(const dicomweb::Row& row) {
  std::string out;
  for (const auto& [k, v] : row) out.append(k).append(1, '=').append(v).append(1, '\x1f');
  return out;
}

// Code for an HTTP status that is an error.
// Answers that may differ when asked again later: server errors, a timeout, a rate limit.
bool TransientStatus(long status) { return status >= 500 || status == 408 || status == 429; }

// Retry-After in seconds (its HTTP-date form counts as a minute); 0 when absent.
int RetryAfterSeconds(const std::string& value) {
  if (value.empty()) return 0;
  if (value.find_first_not_of("0123456789") == std::string::npos && value.size() < 7) return std::stoi(value);
  return 60;
}

Code CodeFor(long status) {
  if (status == 408 || status == 504) return Code::kTimeout;
  if (TransientStatus(status)) return Code::kUnavailable;
  // 401, 403, and the other 4xx (400, 404, 405, ...): the node refuses the request as it is.
  return Code::kPermissionDenied;
}

class DicomWebTransport : public Transport {
 public:
  DicomWebTransport(Node node, TransportContext context)
      : node_(std::move(node)),
        context_(std::move(context)),
        client_(node_, node_.calling_ae_title.empty() ? context_.our_ae_title : node_.calling_ae_title) {}

  ConnectionTest TestConnection(bool /*echo_only*/) override {
    // DICOMweb has no echo: a search with limit=1 is the smallest request that proves the
    // root, the authentication and the answer's format at once.
    ConnectionTest t;
    if (!node_.qido) {
      t.checks.push_back(Reachability());
      return t;
    }
    auto start = Steady::now();
    dicomweb::QidoSearch search{"studies", {{"includefield", "StudyInstanceUID"}}};
    std::string url = dicomweb::SearchUrl(QidoRoot(), search, 1, 0);
    auto rows = Get(url, "QIDO-RS studies");
    int64_t ms = MsSince(start);
    if (!rows) {
      t.checks.push_back({"qido", "failed", rows.error().message, ms});
      return t;
    }
    t.checks.push_back({"qido", "ok",
                        rows->empty() ? fmt::format("QIDO-RS answered in {} ms; the server holds no studies", ms)
                                      : fmt::format("QIDO-RS answered in {} ms", ms),
                        ms});
    return t;
  }

  [[nodiscard]] Result<FindAnswer> Find(const FindQuery& q) override {
    std::string level = q.level;
    for (auto& c : level) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    size_t limit = static_cast<size_t>(node_.max_results);
    if (q.limit > 0) limit = std::min(limit, q.limit);
    if (auto off = NeedQido("queried"); !off) return tl::unexpected(off.error());
    if (level != "PATIENT") {
      bool truncated = false;
      auto rows = Search(level, q.keys, limit, &truncated);
      if (!rows) return tl::unexpected(rows.error());
      return FindAnswer{std::move(*rows), truncated};
    }
    bool truncated = false;
    auto studies =
        Search("PATIENT", q.keys, std::min(kMaxPatientStudies, limit * kPatientStudiesPerPatient), &truncated);
    if (!studies) return tl::unexpected(studies.error());
    auto patients = dicomweb::GroupByPatient(*studies);
    FindAnswer out{std::move(patients), truncated};
    if (out.rows.size() > limit) {
      out.rows.resize(limit);
      out.truncated = true;
    }
    return out;
  }

  [[nodiscard]] Result<RetrievePlan> PlanCounts(const RetrieveParams& params) override {
    if (auto off = NeedQido("retrieved from"); !off) return tl::unexpected(off.error());
    return pb::PlanCounts(PlanQuery(), Where(), params);
  }
  [[nodiscard]] Result<void> ListInstances(const RetrieveParams& params, RetrievePlan& plan) override {
    return pb::ListInstances(PlanQuery(), Where(), params, plan);
  }

  bool FetchNeedsSopClasses(const RetrieveParams&) const override { return false; }  // WADO-RS asks by UID only
  bool ListingIsCheap() const override { return false; }  // QIDO-RS answers are built per instance

  FetchResult Fetch(const FetchRequest& request, const FetchHooks& hooks) override {
    FetchResult out;
    if (!hooks.sink) {
      out.error = "no ingest path for the retrieved data";
      return out;
    }
    out.method_used = "wado-rs";
    std::vector<std::string> problems;
    bool out_of_space = false;
    for (const auto& target : request.targets) {
      for (const auto& uid : target.uids) {
        if (hooks.cancel_requested && hooks.cancel_requested()) {
          out.error = "canceled";
          out.error_reason = nullptr;
          return out;
        }
        WadoParts::Scope scope;
        if (target.level == "STUDY") {
          scope.study = uid;
        } else if (target.level == "SERIES") {
          scope = {target.study_uid, uid, ""};
        } else {
          scope = {target.study_uid, target.series_uid, uid};
        }
        // UIDs come from the node's own answers: only well-formed ones go into a path.
        if (!IsValidUid(scope.study) || (!scope.series.empty() && !IsValidUid(scope.series)) ||
            (!scope.sop.empty() && !IsValidUid(scope.sop))) {
          problems.push_back(
              fmt::format("node '{}': a UID of the plan is not a valid UID; it was not asked for", node_.name));
          continue;
        }
        std::string path = "studies/" + scope.study;
        if (!scope.series.empty()) path += "/series/" + scope.series;
        if (!scope.sop.empty()) path += "/instances/" + scope.sop;
        last_status_ = 0;
        auto r = FetchOne(path, scope, hooks, out);
        if (r) continue;
        if (r.error().code == Code::kCanceled) {
          out.error = "canceled";
          out.error_reason = nullptr;
          return out;
        }
        if (problems.empty()) {
          const bool refused = last_status_ == 401 || last_status_ == 403;
          out.error_reason = last_status_ ? (refused ? "refused" : "failure_status") : NodeErrorReason(r.error().code);
        }
        problems.push_back(r.error().message);
        // Worth another attempt only when every problem may pass: an answer's status says so
        // (5xx, 408, 429), else the kind of fault (refused, timed out, cut).
        const bool passes = last_status_ ? TransientStatus(last_status_) : IsTransient(r.error().code);
        out.transient = (problems.size() == 1 || out.transient) && passes;
        out.retry_after_seconds = std::max(out.retry_after_seconds, last_retry_after_);
        if (r.error().code == Code::kOutOfSpace) {
          out_of_space = true;
          break;
        }
      }
      if (out_of_space) break;
    }
    if (!problems.empty()) {
      out.error = problems.front();
      if (problems.size() > 1) out.error += fmt::format(" (and {} more problem(s))", problems.size() - 1);
    }
    return out;
  }

  [[nodiscard]] Result<std::vector<dicom::SendOutcome>> Send(const std::vector<dicom::SendItem>& items,
                                                             const dicom::SendHooks& hooks) override {
    std::vector<dicom::SendOutcome> outcomes(items.size());
    if (!node_.stow) {
      return Fail(Code::kUnsupported,
                  fmt::format("node '{}' cannot take a send: its stow capability is off", node_.name));
    }
    const int64_t max_bytes = static_cast<int64_t>(node_.stow_batch_mb) << 20;
    const size_t max_count = node_.stow_multipart ? static_cast<size_t>(std::max(1, node_.stow_batch_instances)) : 1;
    bool any_answer = false;
    for (size_t begin = 0; begin < items.size();) {
      if (hooks.cancel_requested && hooks.cancel_requested()) break;
      size_t end = begin;
      int64_t bytes = 0;
      while (end < items.size() && end - begin < max_count && (end == begin || bytes + items[end].bytes <= max_bytes)) {
        bytes += items[end].bytes;
        ++end;
      }
      auto r = SendBatch(items, begin, end, outcomes, hooks);
      if (r && outcomes[begin].retry_after_seconds > 0) {
        // 429: the server asked us to slow down; the rest waits for the job's next attempt
        // rather than meeting the same answer batch after batch.
        const int wait = outcomes[begin].retry_after_seconds;
        for (size_t i = end; i < items.size(); ++i) {
          outcomes[i].reason =
              fmt::format("not sent: the server answered 429 (Too Many Requests; Retry-After {} s)", wait);
          outcomes[i].retry_after_seconds = wait;
          outcomes[i].never_sent = true;
        }
        break;
      }
      if (r) {
        any_answer = true;
        begin = end;
        continue;
      }
      // No HTTP answer (the server is gone, stalls, or we stopped): the rest is not sent now;
      // a retry sends it.
      if (!any_answer && r.error().code != Code::kCanceled) return tl::unexpected(r.error());
      for (size_t i = end; i < items.size(); ++i) {
        outcomes[i].reason = "not sent: " + r.error().message;
        outcomes[i].never_sent = true;
      }
      break;
    }
    return outcomes;
  }

 private:
  std::string QidoRoot() const { return WithSlash(node_.qido_root.empty() ? node_.url : node_.qido_root); }
  std::string WadoRoot() const { return WithSlash(node_.wado_root.empty() ? node_.url : node_.wado_root); }
  std::string StowRoot() const { return WithSlash(node_.stow_root.empty() ? node_.url : node_.stow_root); }
  std::string Where() const { return fmt::format("node '{}'", node_.name); }

  [[nodiscard]] Result<void> NeedQido(const char* what) const {
    if (node_.qido) return {};
    return Fail(Code::kUnsupported,
                fmt::format("node '{}' cannot be {}: its qido capability is off", node_.name, what));
  }

  Error Wrap(Code code, const std::string& message, const std::string& what) const {
    return Wrap(Error{code, message, {}}, what);
  }
  Error Wrap(const Error& e, const std::string& what) const {
    return Error{e.code, fmt::format("node '{}': {}: {}", node_.name, what, e.message), e.field};
  }

  // One QIDO-RS request: its rows, a 204 as none. Errors say why (Wrap adds the node and request).
  [[nodiscard]] Result<std::vector<dicomweb::Row>> Get(const std::string& url, const std::string& what,
                                                       HttpResponse* head = nullptr) {
    HttpRequest rq;
    rq.url = url;
    rq.what = what;
    rq.phase = dicomweb::Phase::kQuery;
    rq.headers = {"Accept: application/dicom+json"};
    auto r = client_.Perform(rq);
    if (!r) return tl::unexpected(r.error());
    if (r->status == 204) return std::vector<dicomweb::Row>{};
    if (r->status != 200) {
      return Fail(CodeFor(r->status), client_.Explain(rq, *r));
    }
    if (IsHtml(*r)) {
      return Fail(Code::kUnavailable,
                  "the server answered with an HTML page where DICOM JSON was expected: a "
                  "login page or a proxy is in the way");
    }
    auto rows = dicomweb::RowsFromDicomJson(r->body);
    if (!rows) return tl::unexpected(rows.error());
    if (head) *head = std::move(*r);
    return rows;
  }

  // A search at a level, paged with limit/offset while the server says more results exist
  // (a 299 Warning, PS3.18 8.3.4.1). `limit` 0: everything.
  [[nodiscard]] Result<std::vector<dicomweb::Row>> Search(const std::string& level,
                                                          const std::vector<std::pair<std::string, std::string>>& keys,
                                                          size_t limit, bool* truncated, bool minimal = false) {
    auto search = dicomweb::BuildSearch(level, keys, minimal);
    if (!search) return tl::unexpected(search.error());
    const std::string what = "QIDO-RS " + search->path.substr(search->path.rfind('/') + 1);
    std::vector<dicomweb::Row> rows;
    std::set<std::string> seen;
    const size_t want = limit == kUnlimited ? 0 : limit + 1;  // one more tells that more exist
    for (int page = 0; page < 1000; ++page) {
      size_t ask = want == 0 ? 0 : want - rows.size();
      HttpResponse head;
      auto got = Get(dicomweb::SearchUrl(QidoRoot(), *search, ask, rows.size()), what, &head);
      if (!got) return tl::unexpected(Wrap(got.error(), what));
      const bool more = head.Header("warning").find("299") != std::string::npos;
      // A server that ignores offset (or warns about something else) sends the same page
      // again: a page without a new row ends the search.
      bool fresh = false;
      for (auto& row : *got) {
        if (seen.insert(Fingerprint(row)).second) {
          fresh = true;
          rows.push_back(std::move(row));
        }
      }
      if (!fresh || !more || (want != 0 && rows.size() >= want)) break;
    }
    if (truncated) *truncated = want != 0 && rows.size() > limit;
    if (want != 0 && rows.size() > limit) rows.resize(limit);
    return rows;
  }

  pb::PlanQuery PlanQuery() {
    // The plan asks for UIDs and counts; the SOP classes only matter to C-GET, and asking for
    // them makes some servers read every file (Orthanc keeps them out of its index).
    return [this](const std::string& level, const std::vector<std::pair<std::string, std::string>>& keys) {
      std::vector<std::pair<std::string, std::string>> wanted;
      for (const auto& [k, v] : keys) {
        if (!(v.empty() && k == "SOPClassUID")) wanted.emplace_back(k, v);
      }
      if (level == "STUDY") wanted.emplace_back("NumberOfStudyRelatedInstances", "");
      if (level == "SERIES") wanted.emplace_back("NumberOfSeriesRelatedInstances", "");
      return Search(level, wanted, kUnlimited, nullptr, /*minimal=*/true);
    };
  }

  // A server that does not search (STOW-only): any HTTP answer shows it is there.
  ConnectionCheck Reachability() {
    auto start = Steady::now();
    HttpRequest rq;
    rq.method = "OPTIONS";
    rq.url = StowRoot() + "studies";
    rq.what = "OPTIONS";
    auto r = client_.Perform(rq);
    int64_t ms = MsSince(start);
    if (!r) return {"http", "failed", r.error().message, ms};
    if (r->status == 401 || r->status == 403 || r->status == 404)
      return {"http", "failed", client_.Explain(rq, *r), ms};
    return {"http", "ok", fmt::format("the server answered in {} ms (qido is off: searches are not tried)", ms), ms};
  }

  [[nodiscard]] Result<void> FetchOne(const std::string& path, const WadoParts::Scope& scope, const FetchHooks& hooks,
                                      FetchResult& out) {
    WadoParts writer(*hooks.sink, node_, scope, hooks);
    HttpRequest rq;
    rq.url = WadoRoot() + path;
    rq.what = std::string("WADO-RS of ") +
              (scope.sop.empty() ? (scope.series.empty() ? "study " + scope.study : "series " + scope.series)
                                 : "instance " + scope.sop);
    rq.phase = dicomweb::Phase::kTransfer;
    std::string syntax =
        node_.preferred_transfer_syntax.empty() ? "*" : dicom::TransferSyntaxUid(node_.preferred_transfer_syntax);
    rq.headers = {fmt::format("Accept: multipart/related; type=\"application/dicom\"; transfer-syntax={}", syntax)};
    rq.on_head = [&](long status, const std::map<std::string, std::string>& headers) -> Result<void> {
      if (status == 204) return {};
      auto it = headers.find("content-type");
      return writer.Begin(it == headers.end() ? "" : it->second);
    };
    rq.on_body = [&](std::string_view chunk) { return writer.Feed(chunk); };
    rq.cancel = hooks.cancel_requested;
    auto r = client_.Perform(rq);
    const bool body_expected = r && (r->status == 200 || r->status == 206);
    // The closing delimiter is checked before the last parts are counted: a truncated body
    // keeps its complete parts, never the one cut.
    Result<void> finished = body_expected ? writer.Finish() : Result<void>{};
    writer.Drain();
    for (const auto& uid : writer.refused_uids()) out.failed_uids.push_back(uid);
    for (const auto& uid : writer.discarded_uids()) out.discarded_uids.push_back(uid);
    std::string problems;
    for (const auto& p : writer.problems()) problems += "; " + p;
    if (!r) {
      std::string msg = r.error().message;
      if (writer.stored() > 0) msg += fmt::format(" after {} instance(s) had arrived", writer.stored());
      return tl::unexpected(Wrap(r.error().code, msg + problems, rq.what));
    }
    if (r->status == 204) return {};
    if (r->status == 404) {
      return tl::unexpected(Wrap(Code::kNotFound, "the server has none of it (HTTP 404)", rq.what));
    }
    if (!body_expected) {
      last_status_ = r->status;
      last_retry_after_ = r->status == 429 ? RetryAfterSeconds(r->Header("retry-after")) : 0;
      return tl::unexpected(Wrap(CodeFor(r->status), client_.Explain(rq, *r), rq.what));
    }
    // The HTTP answer came whole: a body that is not the multipart it should be, or parts that
    // are not what was asked for, are what this server sends; asking again will not change
    // them (a transfer cut on the way is an error of the request itself, above).
    if (!finished) {
      std::string msg = finished.error().message;
      if (writer.stored() > 0) msg += fmt::format(" ({} instance(s) had arrived before)", writer.stored());
      return tl::unexpected(Wrap(Code::kUnsupported, msg + problems, rq.what));
    }
    if (!problems.empty()) return tl::unexpected(Wrap(Code::kUnsupported, problems.substr(2), rq.what));
    return {};
  }

  // One STOW-RS request for items [begin, end); a 413 halves it. Outcomes are set for each item.
  [[nodiscard]] Result<void> SendBatch(const std::vector<dicom::SendItem>& items, size_t begin, size_t end,
                                       std::vector<dicom::SendOutcome>& outcomes, const dicom::SendHooks& hooks) {
    std::vector<std::string> paths;
    for (size_t i = begin; i < end; ++i) paths.push_back(items[i].path);
    auto settle = [&](size_t i, const dicom::SendOutcome& o) {
      outcomes[i] = o;
      if (hooks.on_instance) hooks.on_instance(i, o);
    };
    auto settle_all = [&](dicom::SendStatus status, const std::string& reason, bool transient = true) {
      for (size_t i = begin; i < end; ++i) settle(i, {status, -1, reason, transient});
    };
    HttpRequest rq;
    rq.method = "POST";
    rq.url = StowRoot() + "studies";
    rq.phase = dicomweb::Phase::kTransfer;
    rq.what = end - begin == 1 ? "STOW-RS of 1 instance" : fmt::format("STOW-RS of {} instances", end - begin);
    rq.cancel = hooks.cancel_requested;
    std::optional<dicomweb::StowBody> body;
    std::FILE* single = nullptr;
    if (node_.stow_multipart) {
      body.emplace(paths, dicomweb::NewBoundary());
      if (auto o = body->Open(); !o) {
        settle_all(dicom::SendStatus::kNotConfirmed, o.error().message);
        return {};
      }
      rq.headers = {"Content-Type: " + body->content_type(), "Accept: application/dicom+json"};
      rq.body_size = body->size();
      rq.read_body = [&](char* buf, size_t n) { return body->Read(buf, n); };
      rq.rewind_body = [&]() { return body->Rewind(); };
    } else {
      single = std::fopen(paths[0].c_str(), "rb");
      if (!single) {
        settle_all(dicom::SendStatus::kNotConfirmed, fmt::format("cannot open {}", paths[0]));
        return {};
      }
      rq.headers = {"Content-Type: application/dicom", "Accept: application/dicom+json"};
      rq.body_size = items[begin].bytes;
      std::error_code ec;
      auto size = std::filesystem::file_size(paths[0], ec);
      if (!ec) rq.body_size = static_cast<int64_t>(size);
      rq.read_body = [&](char* buf, size_t n) -> Result<size_t> { return std::fread(buf, 1, n, single); };
      rq.rewind_body = [&]() -> Result<void> {
        std::rewind(single);
        return {};
      };
    }
    auto r = client_.Perform(rq);
    if (single) std::fclose(single);
    if (!r) {
      Error e = Wrap(r.error(), rq.what);
      settle_all(dicom::SendStatus::kNotConfirmed, e.message, IsTransient(e.code));
      return tl::unexpected(e);
    }
    if (r->status == 413) {
      if (end - begin > 1) {
        const size_t mid = begin + (end - begin) / 2;
        spdlog::info(
            "node '{}': the server refused a STOW-RS request of {} instances as too large (413); sending "
            "halves",
            node_.name, end - begin);
        auto a = SendBatch(items, begin, mid, outcomes, hooks);
        auto b = SendBatch(items, mid, end, outcomes, hooks);
        if (!a) return a;
        return b;
      }
      settle_all(dicom::SendStatus::kFailed,
                 fmt::format("node '{}': the server refuses this instance as too large (HTTP 413 to a STOW-RS of "
                             "{} KB)",
                             node_.name, (items[begin].bytes + 1023) / 1024));
      return {};
    }
    std::map<std::string, dicom::SendOutcome> named;
    bool parsed = false;
    if (!r->body.empty() && !IsHtml(*r)) {
      auto p = dicomweb::ParseStowResponse(r->body);
      if (p) {
        named = std::move(*p);
        parsed = true;
      }
    }
    const bool success = r->status >= 200 && r->status < 300;
    if (!success && named.empty()) {
      // A 4xx refuses the request as it is (415 single part, 400, 409, 422): sending it again
      // will not help. Authentication, timeouts, rate limits and 5xx may pass on a retry.
      const bool refused = r->status >= 400 && r->status < 500 && r->status != 401 && r->status != 403 &&
                           r->status != 408 && r->status != 429;
      settle_all(refused ? dicom::SendStatus::kFailed : dicom::SendStatus::kNotConfirmed,
                 Wrap(CodeFor(r->status), client_.Explain(rq, *r), rq.what).message, TransientStatus(r->status));
      if (r->status == 429) {
        const int wait = RetryAfterSeconds(r->Header("retry-after"));
        for (size_t i = begin; i < end; ++i) outcomes[i].retry_after_seconds = wait;
      }
      return {};
    }
    for (size_t i = begin; i < end; ++i) {
      auto it = named.find(items[i].sop_uid);
      if (it != named.end()) {
        settle(i, it->second);
      } else if (success && !parsed) {
        // Stored only when the store response says so: a login page or an unreadable answer
        // with a 2xx proves nothing, and a retry sends these again.
        settle(i, {dicom::SendStatus::kNotConfirmed, -1,
                   fmt::format("node '{}': the server answered HTTP {} without a readable store response ({}); "
                               "not confirmed",
                               node_.name, r->status,
                               IsHtml(*r)        ? "an HTML page: a login page or a proxy is in the way"
                               : r->body.empty() ? "an empty body"
                                                 : "not DICOM JSON")});
      } else {
        settle(i, {dicom::SendStatus::kNotConfirmed, -1,
                   fmt::format("the server's answer (HTTP {}) does not mention this instance", r->status)});
      }
    }
    return {};
  }

  Node node_;
  TransportContext context_;
  HttpClient client_;
  long last_status_ = 0;      // the HTTP status of the last failed WADO-RS request (0: none)
  int last_retry_after_ = 0;  // its Retry-After, in seconds
};

}  // namespace

std::unique_ptr<Transport> MakeDicomWebTransport(const Node& node, const TransportContext& context) {
  return std::make_unique<DicomWebTransport>(node, context);
}

}  // namespace pb
