#pragma once
// C-STORE as an SCU: many instances over one association. Each SOP class is proposed with the
// transfer syntaxes its instances are stored in, the node's preferred syntax, then what we can
// convert to (uncompressed, lossless compressed, lossy only when allowed), one syntax per
// presentation context. An instance goes on the context of its own syntax when the peer
// accepted it, its data set read from the file and sent byte for byte as stored (undefined
// lengths, group lengths and all; DCMTK's own file send parses and re-encodes); otherwise it is
// converted in memory with DCMTK's codecs (dicom/transcode), or fails alone with the reason
// (e.g. JPEG 2000, which this build cannot decode). Thread-safe: each call opens its own
// association.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/result.h"
#include "dicom/peer.h"

namespace pb::dicom {

struct SendItem {
  std::string path;  // a DICOM file with meta header
  std::string sop_class_uid, sop_uid, transfer_syntax_uid;
  int64_t bytes = 0;
};

enum class SendStatus { kNotConfirmed, kSuccess, kWarning, kFailed };

struct SendOutcome {
  SendStatus status = SendStatus::kNotConfirmed;
  int dimse_status = -1;  // the peer's C-STORE-RSP status; -1: none
  std::string reason;     // why it failed or was not confirmed; the warning's meaning
  // Not confirmed for a reason that may pass (the connection broke, a timeout, a 5xx), so that
  // sending it again later is worth it; false when the peer refused us (401, 403).
  bool transient = true;
  int retry_after_seconds = 0;  // the peer asked us to wait at least this long (HTTP 429 Retry-After)
  // Not confirmed because the transfer had ended before this instance was sent (`reason`
  // then says why it ended), not because of anything about the instance.
  bool never_sent = false;
  // The association broke while this instance was on the wire: its `reason` tells why.
  bool broke_here = false;
};

struct SendHooks {
  std::function<void(size_t index, const SendOutcome&)> on_instance;  // each confirmed or failed
  std::function<bool()> cancel_requested;                             // checked between instances
};

struct SendRequest {
  PeerRequest peer;
  std::vector<SendItem> items;
  std::string preferred_transfer_syntax;  // UID; empty: none
  bool allow_lossy = false;               // may compress lossily when the peer wants it
  // Sub-operations of a C-MOVE carry who asked for them (the caller's AE title and message ID).
  std::string move_originator_ae;
  uint16_t move_originator_id = 0;
};

// One outcome per item, in order. Items never sent or never answered stay kNotConfirmed (with
// the reason when the association broke). An error only when no association could be opened.
[[nodiscard]] Result<std::vector<SendOutcome>> SendInstances(const SendRequest& request, const SendHooks& hooks);

// "0xA900 (Error: Data Set Does Not Match SOP Class)" and the like.
std::string StoreStatusText(int status);

}  // namespace pb::dicom
