#include "transport/dicomweb_transport.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "dicom/dataset.h"
#include "dicom/header.h"
#include "dicom/retrieve.h"
#include "dicomweb/http_client.h"
#include "dicomweb/multipart.h"
#include "dicomweb/qido.h"
#include "dicomweb/stow.h"

namespace pb {
namespace {

using Clock = std::chrono::steady_clock;
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

int64_t MsSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

bool IsHtml(const HttpResponse& r) {
  std::string type = r.content_type();
  for (auto& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return type.find("html") != std::string::npos;
}

// Code for an HTTP status that is an error.
Code CodeFor(long status) {
  if (status == 401 || status == 403) return Code::kPermissionDenied;
  if (status == 408 || status == 504) return Code::kTimeout;
  return Code::kUnavailable;
}

// A WADO-RS answer's multipart body, written part by part into temp files, each handed to the
// one ingest path as soon as it is complete.
class PartWriter {
 public:
  struct Scope {
    std::string study, series, sop;  // what the request asked for (empty: any)
  };
  PartWriter(dicom::StoreSink& sink, const Node& node, Scope scope, const FetchHooks& hooks)
      : sink_(sink), node_(node), scope_(std::move(scope)), hooks_(hooks) {}
  ~PartWriter() { Discard(); }

  Result<void> Begin(const std::string& content_type) {
    auto boundary = dicomweb::MultipartBoundary(content_type);
    if (!boundary) {
      return Fail(Code::kUnavailable, fmt::format("the WADO-RS answer is not a usable multipart body: {}",
                                                  boundary.error().message));
    }
    dicomweb::MultipartParser::Handlers h;
    h.on_part = [this](int index, const dicomweb::MultipartParser::Headers& headers) { return OnPart(index, headers); };
    h.on_data = [this](std::string_view data) { return OnData(data); };
    h.on_part_end = [this]() { return OnPartEnd(); };
    parser_.emplace(*boundary, std::move(h));
    return {};
  }
  Result<void> Feed(std::string_view chunk) {
    if (!parser_) return Fail(Code::kUnavailable, "the WADO-RS answer has no multipart body");
    return parser_->Feed(chunk);
  }
  Result<void> Finish() {
    if (!parser_) return Fail(Code::kUnavailable, "the WADO-RS answer has no multipart body");
    return parser_->Finish();
  }
  // What went wrong with single parts (the transfer went on).
  const std::vector<std::string>& problems() const { return problems_; }
  const std::vector<std::string>& refused_uids() const { return refused_; }
  int stored() const { return stored_; }

 private:
  Result<void> OnPart(int index, const dicomweb::MultipartParser::Headers& headers) {
    index_ = index;
    skip_ = false;
    auto it = headers.find("content-type");
    if (it != headers.end()) {
      std::string type = it->second.substr(0, it->second.find(';'));
      for (auto& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      while (!type.empty() && type.back() == ' ') type.pop_back();
      if (type != "application/dicom") {
        problems_.push_back(fmt::format("part {} is {}, not application/dicom; it was skipped", index,
                                        it->second.substr(0, 60)));
        skip_ = true;
        return {};
      }
    }
    path_ = sink_.NewTempPath();
    file_ = std::fopen(path_.c_str(), "wb");
    if (!file_) return Fail(Code::kIoError, fmt::format("cannot create a temp file: {}", std::strerror(errno)));
    std::setvbuf(file_, nullptr, _IOFBF, 256 * 1024);
    bytes_ = 0;
    return {};
  }

  Result<void> OnData(std::string_view data) {
    if (skip_) return {};
    if (std::fwrite(data.data(), 1, data.size(), file_) != data.size()) {
      return Fail(errno == ENOSPC ? Code::kOutOfSpace : Code::kIoError,
                  fmt::format("cannot write the retrieved data to disk: {}", std::strerror(errno)));
    }
    bytes_ += static_cast<int64_t>(data.size());
    if (bytes_ - polled_at_ >= (4 << 20)) {
      polled_at_ = bytes_;
      if (hooks_.cancel_requested && hooks_.cancel_requested()) return Fail(Code::kConflict, "canceled");
    }
    return {};
  }

  Result<void> OnPartEnd() {
    if (skip_) return {};
    polled_at_ = 0;
    const bool written = std::fflush(file_) == 0;
    const int err = errno;
    std::fclose(file_);
    file_ = nullptr;
    const std::filesystem::path path = std::move(path_);
    path_.clear();
    if (!written) {
      std::error_code ec;
      std::filesystem::remove(path, ec);
      return Fail(err == ENOSPC ? Code::kOutOfSpace : Code::kIoError,
                  fmt::format("cannot write the retrieved data to disk: {}", std::strerror(err)));
    }
    auto drop = [&](std::string why) {
      std::error_code ec;
      std::filesystem::remove(path, ec);
      problems_.push_back(std::move(why));
    };
    auto header = dicom::ReadHeader(path);
    if (!header) return drop(fmt::format("part {} is not a DICOM file ({}); it was skipped", index_, header.error().message)), Ok();
    const InstanceRecord& h = *header;
    const bool asked = (scope_.study.empty() || h.study_uid == scope_.study) &&
                       (scope_.series.empty() || h.series_uid == scope_.series) &&
                       (scope_.sop.empty() || h.sop_uid == scope_.sop);
    if (!asked) {
      refused_.push_back(h.sop_uid);
      return drop(fmt::format("part {} holds instance {}, which was not asked for; it was discarded", index_,
                              h.sop_uid)),
             Ok();
    }
    dicom::IncomingInstance in;
    in.temp_file = path;
    in.sop_class_uid = h.sop_class_uid;
    in.sop_instance_uid = h.sop_uid;
    in.transfer_syntax_uid = h.transfer_syntax_uid;
    in.calling_ae = node_.ae_title;
    in.peer_address = dicomweb::OriginOf(node_.url);
    in.file_size = bytes_;
    in.header = h;
    dicom::StoreAnswer answer;
    if (sink_.WantsDataset()) {
      auto data = dicom::Dataset::Read(path);
      std::error_code ec;
      std::filesystem::remove(path, ec);
      if (!data) return drop(fmt::format("part {} cannot be read: {}", index_, data.error().message)), Ok();
      in.temp_file.clear();
      answer = sink_.StoreDataset(in, **data);
    } else {
      answer = sink_.Store(in);  // owns the temp file from here
    }
    if (answer.status == 0 || (answer.status & 0xF000) == 0xB000) {
      ++stored_;
    } else {
      refused_.push_back(h.sop_uid);
      problems_.push_back(fmt::format("instance {} was not stored: {}", h.sop_uid,
                                      answer.error_comment.empty() ? dicom::StoreStatusText(answer.status)
                                                                   : answer.error_comment));
      if (answer.status == 0xA700) return Fail(Code::kOutOfSpace, "the archive is out of space");
    }
    if (hooks_.cancel_requested && hooks_.cancel_requested()) return Fail(Code::kConflict, "canceled");
    return {};
  }

  static Result<void> Ok() { return {}; }

  void Discard() {
    if (file_) std::fclose(file_);
    file_ = nullptr;
    if (!path_.empty()) {
      std::error_code ec;
      std::filesystem::remove(path_, ec);
      path_.clear();
    }
  }

  dicom::StoreSink& sink_;
  const Node& node_;
  Scope scope_;
  const FetchHooks& hooks_;
  std::optional<dicomweb::MultipartParser> parser_;
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
  int index_ = 0;
  bool skip_ = false;
  int64_t bytes_ = 0, polled_at_ = 0;
  int stored_ = 0;
  std::vector<std::string> problems_, refused_;
};

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
    auto start = Clock::now();
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

  Result<FindAnswer> Find(const FindQuery& q) override {
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
    auto studies = Search("PATIENT", q.keys, std::min(kMaxPatientStudies, limit * kPatientStudiesPerPatient), &truncated);
    if (!studies) return tl::unexpected(studies.error());
    auto patients = dicomweb::GroupByPatient(*studies);
    FindAnswer out{std::move(patients), truncated};
    if (out.rows.size() > limit) {
      out.rows.resize(limit);
      out.truncated = true;
    }
    return out;
  }

  Result<RetrievePlan> PlanCounts(const RetrieveParams& params) override {
    if (auto off = NeedQido("retrieved from"); !off) return tl::unexpected(off.error());
    return pb::PlanCounts(PlanQuery(), Where(), params);
  }
  Result<void> ListInstances(const RetrieveParams& params, RetrievePlan& plan) override {
    return pb::ListInstances(PlanQuery(), Where(), params, plan);
  }

  FetchResult Fetch(const FetchRequest& request, const FetchHooks& hooks) override {
    FetchResult out;
    if (!hooks.sink) {
      out.error = "no ingest path for the retrieved data";
      return out;
    }
    out.method_used = "wado-rs";
    std::vector<std::string> problems;
    for (const auto& target : request.targets) {
      for (const auto& uid : target.uids) {
        if (hooks.cancel_requested && hooks.cancel_requested()) {
          out.error = "canceled";
          return out;
        }
        PartWriter::Scope scope;
        std::string path;
        if (target.level == "STUDY") {
          scope.study = uid;
          path = "studies/" + uid;
        } else if (target.level == "SERIES") {
          scope = {target.study_uid, uid, ""};
          path = "studies/" + target.study_uid + "/series/" + uid;
        } else {
          scope = {target.study_uid, target.series_uid, uid};
          path = "studies/" + target.study_uid + "/series/" + target.series_uid + "/instances/" + uid;
        }
        auto r = FetchOne(path, scope, hooks, out);
        if (!r) {
          problems.push_back(r.error().message);
          if (r.error().code == Code::kOutOfSpace || r.error().message == "canceled") break;
        }
      }
    }
    if (!problems.empty()) {
      out.error = problems.front();
      if (problems.size() > 1) out.error += fmt::format(" (and {} more problem(s))", problems.size() - 1);
    }
    return out;
  }

  Result<std::vector<dicom::SendOutcome>> Send(const std::vector<dicom::SendItem>& items,
                                               const dicom::SendHooks& hooks) override {
    std::vector<dicom::SendOutcome> outcomes(items.size());
    if (!node_.stow) {
      return Fail(Code::kUnsupported, fmt::format("node '{}' cannot take a send: its stow capability is off", node_.name));
    }
    const int64_t max_bytes = static_cast<int64_t>(node_.stow_batch_mb) << 20;
    const size_t max_count = node_.stow_multipart ? static_cast<size_t>(std::max(1, node_.stow_batch_instances)) : 1;
    bool any_answer = false;
    std::optional<Error> first_error;
    for (size_t begin = 0; begin < items.size();) {
      if (hooks.cancel_requested && hooks.cancel_requested()) break;
      size_t end = begin;
      int64_t bytes = 0;
      while (end < items.size() && end - begin < max_count && (end == begin || bytes + items[end].bytes <= max_bytes)) {
        bytes += items[end].bytes;
        ++end;
      }
      auto r = SendBatch(items, begin, end, outcomes, hooks);
      if (r) {
        any_answer = true;
      } else if (!first_error) {
        first_error = r.error();
        if (!any_answer && r.error().code != Code::kOutOfSpace) return tl::unexpected(r.error());
      }
      begin = end;
    }
    return outcomes;
  }

 private:
  std::string QidoRoot() const { return WithSlash(node_.qido_root.empty() ? node_.url : node_.qido_root); }
  std::string WadoRoot() const { return WithSlash(node_.wado_root.empty() ? node_.url : node_.wado_root); }
  std::string StowRoot() const { return WithSlash(node_.stow_root.empty() ? node_.url : node_.stow_root); }
  std::string Where() const { return fmt::format("node '{}'", node_.name); }

  Result<void> NeedQido(const char* what) const {
    if (node_.qido) return {};
    return Fail(Code::kUnsupported, fmt::format("node '{}' cannot be {}: its qido capability is off", node_.name, what));
  }

  Error Wrap(Code code, const std::string& message, const std::string& what) const {
    return Wrap(Error{code, message, {}}, what);
  }
  Error Wrap(const Error& e, const std::string& what) const {
    return Error{e.code, fmt::format("node '{}': {}: {}", node_.name, what, e.message), e.field};
  }

  // One QIDO-RS request: its rows, a 204 as none. Errors say why (Wrap adds the node and request).
  Result<std::vector<dicomweb::Row>> Get(const std::string& url, const std::string& what,
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
      return Fail(Code::kUnavailable, "the server answered with an HTML page where DICOM JSON was expected: a "
                                      "login page or a proxy is in the way");
    }
    auto rows = dicomweb::RowsFromDicomJson(r->body);
    if (!rows) return tl::unexpected(rows.error());
    if (head) *head = std::move(*r);
    return rows;
  }

  // A search at a level, paged with limit/offset while the server says more results exist
  // (a 299 Warning, PS3.18 8.3.4.1). `limit` 0: everything.
  Result<std::vector<dicomweb::Row>> Search(const std::string& level,
                                            const std::vector<std::pair<std::string, std::string>>& keys,
                                            size_t limit, bool* truncated) {
    auto search = dicomweb::BuildSearch(level, keys);
    if (!search) return tl::unexpected(search.error());
    const std::string what = "QIDO-RS " + search->path.substr(search->path.rfind('/') + 1);
    std::vector<dicomweb::Row> rows;
    const size_t want = limit == kUnlimited ? 0 : limit + 1;  // one more tells that more exist
    for (int page = 0; page < 1000; ++page) {
      size_t ask = want == 0 ? 0 : want - rows.size();
      HttpResponse head;
      auto got = Get(dicomweb::SearchUrl(QidoRoot(), *search, ask, rows.size()), what, &head);
      if (!got) return tl::unexpected(Wrap(got.error(), what));
      const bool more = head.Header("warning").find("299") != std::string::npos;
      const bool empty = got->empty();
      for (auto& row : *got) rows.push_back(std::move(row));
      if (empty || !more || (want != 0 && rows.size() >= want)) break;
    }
    if (truncated) *truncated = want != 0 && rows.size() > limit;
    if (want != 0 && rows.size() > limit) rows.resize(limit);
    return rows;
  }

  pb::PlanQuery PlanQuery() {
    return [this](const std::string& level, const std::vector<std::pair<std::string, std::string>>& keys) {
      return Search(level, keys, kUnlimited, nullptr);
    };
  }

  // A server that does not search (STOW-only): any HTTP answer shows it is there.
  ConnectionCheck Reachability() {
    auto start = Clock::now();
    HttpRequest rq;
    rq.method = "OPTIONS";
    rq.url = StowRoot() + "studies";
    rq.what = "OPTIONS";
    auto r = client_.Perform(rq);
    int64_t ms = MsSince(start);
    if (!r) return {"http", "failed", r.error().message, ms};
    if (r->status == 401 || r->status == 403 || r->status == 404) return {"http", "failed", client_.Explain(rq, *r), ms};
    return {"http", "ok", fmt::format("the server answered in {} ms (qido is off: searches are not tried)", ms), ms};
  }

  Result<void> FetchOne(const std::string& path, const PartWriter::Scope& scope, const FetchHooks& hooks,
                        FetchResult& out) {
    PartWriter writer(*hooks.sink, node_, scope, hooks);
    HttpRequest rq;
    rq.url = WadoRoot() + path;
    rq.what = std::string("WADO-RS of ") + (scope.sop.empty() ? (scope.series.empty() ? "study " + scope.study : "series " + scope.series)
                                                              : "instance " + scope.sop);
    rq.phase = dicomweb::Phase::kTransfer;
    std::string syntax = node_.preferred_transfer_syntax.empty() ? "*" : dicom::TransferSyntaxUid(node_.preferred_transfer_syntax);
    rq.headers = {fmt::format("Accept: multipart/related; type=\"application/dicom\"; transfer-syntax={}", syntax)};
    rq.on_head = [&](long status, const std::map<std::string, std::string>& headers) -> Result<void> {
      if (status == 204) return {};
      auto it = headers.find("content-type");
      return writer.Begin(it == headers.end() ? "" : it->second);
    };
    rq.on_body = [&](std::string_view chunk) { return writer.Feed(chunk); };
    auto r = client_.Perform(rq);
    for (const auto& uid : writer.refused_uids()) out.failed_uids.push_back(uid);
    auto problems = [&]() {
      std::string s;
      for (const auto& p : writer.problems()) s += "; " + p;
      return s;
    };
    if (!r) {
      std::string msg = r.error().message;
      if (writer.stored() > 0) msg += fmt::format(" after {} instance(s) had arrived", writer.stored());
      return tl::unexpected(Wrap(r.error().code, msg + problems(), rq.what));
    }
    if (r->status == 204) return {};
    if (r->status == 404) {
      return tl::unexpected(Wrap(Code::kNotFound, "the server has none of it (HTTP 404)", rq.what));
    }
    if (r->status != 200 && r->status != 206) {
      return tl::unexpected(Wrap(CodeFor(r->status), client_.Explain(rq, *r), rq.what));
    }
    if (auto f = writer.Finish(); !f) {
      std::string msg = f.error().message;
      if (writer.stored() > 0) msg += fmt::format(" ({} instance(s) had arrived before)", writer.stored());
      return tl::unexpected(Wrap(Code::kUnavailable, msg + problems(), rq.what));
    }
    if (!writer.problems().empty()) {
      return tl::unexpected(Wrap(Code::kUnavailable, problems().substr(2), rq.what));
    }
    return {};
  }

  // One STOW-RS request for items [begin, end); a 413 halves it. Outcomes are set for each item.
  Result<void> SendBatch(const std::vector<dicom::SendItem>& items, size_t begin, size_t end,
                         std::vector<dicom::SendOutcome>& outcomes, const dicom::SendHooks& hooks) {
    std::vector<std::string> paths;
    for (size_t i = begin; i < end; ++i) paths.push_back(items[i].path);
    auto settle = [&](size_t i, dicom::SendOutcome o) {
      outcomes[i] = o;
      if (hooks.on_instance) hooks.on_instance(i, o);
    };
    auto settle_all = [&](dicom::SendStatus status, const std::string& reason) {
      for (size_t i = begin; i < end; ++i) settle(i, {status, -1, reason});
    };
    HttpRequest rq;
    rq.method = "POST";
    rq.url = StowRoot() + "studies";
    rq.phase = dicomweb::Phase::kTransfer;
    rq.what = end - begin == 1 ? "STOW-RS of 1 instance" : fmt::format("STOW-RS of {} instances", end - begin);
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
      settle_all(dicom::SendStatus::kNotConfirmed, e.message);
      return tl::unexpected(e);
    }
    if (r->status == 413) {
      if (end - begin > 1) {
        const size_t mid = begin + (end - begin) / 2;
        spdlog::info("node '{}': the server refused a STOW-RS request of {} instances as too large (413); sending "
                     "halves",
                     node_.name, end - begin);
        auto a = SendBatch(items, begin, mid, outcomes, hooks);
        auto b = SendBatch(items, mid, end, outcomes, hooks);
        if (!a) return a;
        return b;
      }
      settle_all(dicom::SendStatus::kFailed,
                 fmt::format("the server refuses this instance as too large (HTTP 413, {} MB)", items[begin].bytes >> 20));
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
                 Wrap(CodeFor(r->status), client_.Explain(rq, *r), rq.what).message);
      return {};
    }
    for (size_t i = begin; i < end; ++i) {
      auto it = named.find(items[i].sop_uid);
      if (it != named.end()) {
        settle(i, it->second);
      } else if (success && !parsed) {
        // A 200 without a readable answer: HTTP says stored.
        settle(i, {dicom::SendStatus::kSuccess, 0, ""});
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
};

}  // namespace

std::unique_ptr<Transport> MakeDicomWebTransport(const Node& node, const TransportContext& context) {
  return std::make_unique<DicomWebTransport>(node, context);
}

}  // namespace pb
