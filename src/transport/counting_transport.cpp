// Every transport comes wrapped in CountingTransport (TransportFor): what fails on a node is
// counted for GET /metrics as pacsbridge_node_errors_total{node, operation, reason}, one count per
// failed operation (a find, a retrieve's plan or fetch, one association or connection of a send).
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/metrics.h"
#include "transport/transport.h"

namespace pb {

const char* NodeErrorReason(Code code) {
  switch (code) {
    case Code::kUnavailable:
      return "unreachable";
    case Code::kTimeout:
      return "timeout";
    case Code::kAborted:
      return "aborted";
    case Code::kPermissionDenied:
      return "refused";
    case Code::kUnsupported:
      return "unsupported";
    case Code::kInvalidArgument:
    case Code::kNotFound:
    case Code::kCanceled:
      return nullptr;
    case Code::kAlreadyExists:
    case Code::kLocked:
    case Code::kIoError:
    case Code::kOutOfSpace:
    case Code::kConflict:
    case Code::kInternal:
      return "other";
  }
  return "other";
}

namespace {

metrics::Family<metrics::Counter>& NodeErrors() {
  static auto& family = metrics::Default().CounterFamily(
      "pacsbridge_node_errors_total",
      "Operations on a node that failed, by operation (find, retrieve, send) and reason (unreachable, timeout, "
      "aborted, refused, unsupported, failure_status, not_confirmed, other).",
      {"node", "operation", "reason"});
  return family;
}

class CountingTransport final : public Transport {
 public:
  CountingTransport(std::unique_ptr<Transport> inner, std::string node)
      : inner_(std::move(inner)), node_(std::move(node)) {}

  ConnectionTest TestConnection(bool echo_only) override { return inner_->TestConnection(echo_only); }

  [[nodiscard]] Result<FindAnswer> Find(const FindQuery& query) override {
    auto r = inner_->Find(query);
    if (!r) Count("find", NodeErrorReason(r.error().code));
    return r;
  }

  [[nodiscard]] Result<RetrievePlan> PlanCounts(const RetrieveParams& params) override {
    auto r = inner_->PlanCounts(params);
    if (!r) Count("retrieve", NodeErrorReason(r.error().code));
    return r;
  }

  [[nodiscard]] Result<void> ListInstances(const RetrieveParams& params, RetrievePlan& plan) override {
    auto r = inner_->ListInstances(params, plan);
    if (!r) Count("retrieve", NodeErrorReason(r.error().code));
    return r;
  }

  FetchResult Fetch(const FetchRequest& request, const FetchHooks& hooks) override {
    FetchResult r = inner_->Fetch(request, hooks);
    if (!r.error.empty()) Count("retrieve", r.error_reason);
    return r;
  }

  bool FetchNeedsSopClasses(const RetrieveParams& params) const override {
    return inner_->FetchNeedsSopClasses(params);
  }
  bool ListingIsCheap() const override { return inner_->ListingIsCheap(); }

  [[nodiscard]] Result<std::vector<dicom::SendOutcome>> Send(const std::vector<dicom::SendItem>& items,
                                                             const dicom::SendHooks& hooks) override {
    auto r = inner_->Send(items, hooks);
    if (!r) {
      Count("send", NodeErrorReason(r.error().code));
      return r;
    }
    // One count for the association: the node refusing an instance (a failure status; without
    // one, the instance could not be offered: no accepted context, an unreadable file) says more
    // than an instance left unconfirmed after that.
    const char* reason = nullptr;
    for (const auto& o : *r) {
      if (o.status == dicom::SendStatus::kFailed) {
        reason = o.dimse_status >= 0 ? "failure_status" : "other";
        break;
      }
      if (o.status == dicom::SendStatus::kNotConfirmed && !reason) reason = "not_confirmed";
    }
    Count("send", reason);
    return r;
  }

 private:
  void Count(const char* operation, const char* reason) {
    if (reason) NodeErrors().With({node_, operation, reason}).Add();
  }

  std::unique_ptr<Transport> inner_;
  std::string node_;
};

}  // namespace

std::unique_ptr<Transport> CountErrors(std::unique_ptr<Transport> inner, const std::string& node) {
  return std::make_unique<CountingTransport>(std::move(inner), node);
}

}  // namespace pb
