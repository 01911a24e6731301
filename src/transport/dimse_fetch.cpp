#include "transport/dimse_fetch.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/validate.h"
#include "dicom/retrieve.h"
#include "transport/move_diagnosis.h"

namespace pb {
namespace {

// A final answer that refused the request before anything was sent.
bool Refusal(const dicom::RetrieveAnswer& a) {
  return !a.success() && !a.warning() && a.status != 0xFE00 && a.counts.completed <= 0 && a.stores_received == 0;
}

class DimseFetcher {
 public:
  DimseFetcher(const Node& node, const dicom::PeerRequest& peer, const TransportContext& context,
               const FetchRequest& request, const FetchHooks& hooks)
      : node_(node), peer_(peer), context_(context), rq_(request), hooks_(hooks) {
    inactivity_ = std::max(60, node.timeout_seconds * 6);
    dimse_hooks_.on_sent = hooks.on_sent;
    dimse_hooks_.on_pending = hooks.on_pending;
    dimse_hooks_.cancel_requested = hooks.cancel_requested;
  }

  FetchResult Run() {
    // "auto" tries C-GET first unless C-MOVE is known to be what works with this node.
    std::vector<std::string> methods;
    if (rq_.params.method == "auto") {
      methods = node_.retrieve_method_learned == "c-move" ? std::vector<std::string>{"c-move"}
                                                          : std::vector<std::string>{"c-get", "c-move"};
    } else {
      methods = {rq_.params.method};
    }
    FetchResult out;
    int failures = 0;       // out.transient: every failure so far may pass
    std::string get_error;  // why C-GET was not used, when "auto" fell back to C-MOVE
    for (size_t mi = 0; mi < methods.size(); ++mi) {
      const bool more = mi + 1 < methods.size();
      bool fall_back = false;
      for (const auto& t : rq_.targets) {
        if (hooks_.cancel_requested && hooks_.cancel_requested()) break;
        Result<dicom::RetrieveAnswer> a = methods[mi] == "c-get" ? Get(t) : Move(t);
        const size_t arrived_now = hooks_.arrived ? hooks_.arrived() : 0;
        if (!a) {
          // No C-GET here: no accepted context, or a peer that aborts a C-GET it does not take.
          const bool refused = a.error().code == Code::kUnsupported || a.error().code == Code::kAborted;
          if (more && refused && arrived_now == 0) {
            fall_back = true;
            get_error = a.error().message;
            out.error_reason = NodeErrorReason(a.error().code);
          } else {
            out.error = a.error().message;
            out.error_reason = NodeErrorReason(a.error().code);
            out.transient = (failures++ == 0 || out.transient) && IsTransient(a.error().code);
          }
          break;
        }
        if (more && Refusal(*a) && arrived_now == 0) {
          fall_back = true;
          get_error = fmt::format("refused with status {}{}{}", a->StatusText(), a->error_comment.empty() ? "" : ": ",
                                  a->error_comment);
          out.error_reason = "failure_status";
          break;
        }
        out.method_used = methods[mi];
        if (hooks_.on_finished) hooks_.on_finished(a->counts);
        out.failed_uids.insert(out.failed_uids.end(), a->failed_uids.begin(), a->failed_uids.end());
        if (!a->success() && !a->warning() && !a->canceled) {
          out.error = fmt::format("{} ended with status {}{}{}", methods[mi] == "c-get" ? "C-GET" : "C-MOVE",
                                  a->StatusText(), a->error_comment.empty() ? "" : ": ", a->error_comment);
          out.error_reason = "failure_status";
          // Out of resources (A7xx) passes; an unknown destination (A801), an identifier the
          // PACS cannot use (A9xx, AAxx) or "unable to process" (Cxxx) will not.
          out.transient = (failures++ == 0 || out.transient) && (a->status & 0xFF00) == 0xA700;
        }
      }
      if (!fall_back) break;
      spdlog::info("{}: C-GET not possible ({}); trying C-MOVE", rq_.job, get_error);
    }
    if (out.method_used == "c-move") out.fallback_reason = get_error;
    if (!get_error.empty() && out.method_used != "c-move") {
      out.error = fmt::format("C-GET: {}; C-MOVE: {}", get_error, out.error.empty() ? "nothing arrived" : out.error);
    }
    return out;
  }

 private:
  [[nodiscard]] Result<dicom::RetrieveAnswer> Get(const dicom::RetrieveTarget& t) {
    if (!hooks_.sink) return Fail(Code::kInternal, "C-GET needs a sink for what arrives");
    return dicom::Get({peer_,
                       t,
                       {rq_.sop_classes.begin(), rq_.sop_classes.end()},
                       dicom::TransferSyntaxUid(node_.preferred_transfer_syntax),
                       inactivity_},
                      *hooks_.sink, dimse_hooks_);
  }

  [[nodiscard]] Result<dicom::RetrieveAnswer> Move(const dicom::RetrieveTarget& t) {
    const std::string destination = EffectiveMoveDestination(node_, context_.our_ae_title);
    std::vector<Receiver> ours = context_.receivers ? context_.receivers() : std::vector<Receiver>{};
    auto rec = std::find_if(ours.begin(), ours.end(), [&](const Receiver& r) {
      return r.enabled && (node_.listen_port > 0 ? r.port == node_.listen_port : r.ae_title == destination);
    });
    if (rec != ours.end() && !rq_.anonymizing_project.empty() && !rec->anonymize) {
      return Fail(Code::kInvalidArgument,
                  fmt::format("project '{}' has its own anonymization options, and C-MOVE would deliver through "
                              "receiver '{}', which keeps data as sent: retrieve by C-GET, or make the node's move "
                              "destination an anonymizing receiver",
                              rq_.anonymizing_project, rec->ae_title));
    }
    if (rec == ours.end()) {
      return Fail(
          Code::kInvalidArgument,
          fmt::format("C-MOVE needs one of our receivers to take the data, and none has AE title '{}' (the "
                      "node's move destination){}; add such a receiver or set move_destination",
                      destination, node_.listen_port > 0 ? fmt::format(" and port {}", node_.listen_port) : ""));
    }
    const auto started = std::chrono::steady_clock::now();
    auto a = dicom::Move({peer_, t, destination, inactivity_}, dimse_hooks_);
    if (!a) return a;
    if (a->success() || a->warning() || a->canceled || (hooks_.arrived && hooks_.arrived() > 0)) return a;
    // Refused and nothing came: say why from what our receivers saw meanwhile.
    MoveEvidence e;
    e.where = fmt::format("node '{}' ({})", node_.name, JoinHostPort(node_.host, node_.port));
    e.pacs_ae = node_.ae_title;
    e.pacs_host = node_.host;
    e.destination = destination;
    e.our_ae = rec->ae_title;
    e.our_port = rec->port;
    e.our_address = a->local_address;
    e.status = a->status;
    e.status_text = a->StatusText();
    e.error_comment = a->error_comment;
    e.failed_suboperations = a->counts.failed;
    if (context_.seen_since) e.seen = context_.seen_since(started);
    // Refused with nothing sent: the PACS lacks our registration or cannot use the request
    // (A801, A9xx, Cxxx: asking again changes nothing), unless it was out of resources (A7xx).
    return Fail((a->status & 0xFF00) == 0xA700 ? Code::kUnavailable : Code::kPermissionDenied, ExplainEmptyMove(e));
  }

  const Node& node_;
  const dicom::PeerRequest& peer_;
  const TransportContext& context_;
  const FetchRequest& rq_;
  const FetchHooks& hooks_;
  dicom::RetrieveHooks dimse_hooks_;
  int inactivity_ = 60;
};

}  // namespace

FetchResult DimseFetch(const Node& node, const dicom::PeerRequest& peer, const TransportContext& context,
                       const FetchRequest& request, const FetchHooks& hooks) {
  return DimseFetcher(node, peer, context, request, hooks).Run();
}

}  // namespace pb
