#include "transport/move_diagnosis.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

namespace pb {
namespace {

bool SameIgnoringCase(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::toupper(x) == std::toupper(y);
         });
}

// An association from the PACS: its sub-operations call us with its AE title, from its host
// (an IPv6 listener sees IPv4 peers as ::ffff:a.b.c.d).
bool FromThePacs(const MoveEvidence& e, const AssociationAttempt& a) {
  std::string peer = a.peer_address;
  if (peer.rfind("::ffff:", 0) == 0) peer = peer.substr(7);
  return a.calling_ae == e.pacs_ae || peer == e.pacs_host;
}

const AssociationAttempt* Refused(const MoveEvidence& e, AssociationAttempt::Outcome outcome, bool on_our_port) {
  for (const auto& a : e.seen) {
    if (a.outcome != outcome || !FromThePacs(e, a)) continue;
    if (on_our_port ? a.port == e.our_port : (a.port != e.our_port && SameIgnoringCase(a.called_ae, e.our_ae))) {
      return &a;
    }
  }
  return nullptr;
}

}  // namespace

bool RefusedByUs(const MoveEvidence& e) {
  using Outcome = AssociationAttempt::Outcome;
  return Refused(e, Outcome::kUnknownCalledAe, true) || Refused(e, Outcome::kUnknownCalledAe, false) ||
         Refused(e, Outcome::kCallingAeNotAllowed, true);
}

std::string ExplainEmptyMove(const MoveEvidence& e) {
  using Outcome = AssociationAttempt::Outcome;
  const std::string address = e.our_address.empty() ? "this machine's address" : e.our_address;
  const std::string register_us =
      fmt::format("Ask the PACS administrator to register: AE title {}, host {}, port {} (our receiver)", e.destination,
                  address, e.our_port);
  if (const AssociationAttempt* a = Refused(e, Outcome::kUnknownCalledAe, true)) {
    if (SameIgnoringCase(a->called_ae, e.our_ae)) {
      return fmt::format(
          "{}: the PACS tried to send to AE title '{}' at our port {}; our receiver is '{}' (case "
          "matters): correct it on the PACS",
          e.where, a->called_ae, e.our_port, e.our_ae);
    }
    return fmt::format(
        "{}: the PACS tried to send to AE title '{}' at our port {}, which no receiver of ours has; "
        "our receiver there is '{}': correct the AE title the PACS has for us",
        e.where, a->called_ae, e.our_port, e.our_ae);
  }
  if (const AssociationAttempt* a = Refused(e, Outcome::kUnknownCalledAe, false)) {
    return fmt::format(
        "{}: the PACS tried to send to AE title '{}' at our port {}; our receiver '{}' listens on "
        "port {}: correct the port on the PACS",
        e.where, a->called_ae, a->port, e.our_ae, e.our_port);
  }
  if (const AssociationAttempt* a = Refused(e, Outcome::kCallingAeNotAllowed, true)) {
    return fmt::format(
        "{}: the PACS connected to our receiver '{}' at port {} as '{}' from {}, and the receiver's "
        "whitelist refused it: add it to the whitelist",
        e.where, e.our_ae, e.our_port, a->calling_ae, a->peer_address);
  }
  const bool reached_us = std::any_of(e.seen.begin(), e.seen.end(), [&](const AssociationAttempt& a) {
    return a.port == e.our_port && FromThePacs(e, a);
  });
  const std::string comment = e.error_comment.empty() ? "" : ": " + e.error_comment;
  if (e.status == 0xA801) {
    return fmt::format("{} does not know the move destination '{}' (status 0xA801). {}", e.where, e.destination,
                       register_us);
  }
  if (!reached_us) {
    // Many PACS (Orthanc among them) answer a plain failure both when they do not know the
    // destination and when they cannot connect to it; failed sub-operations mean they tried.
    return fmt::format(
        "{}: the PACS did not connect to {}:{}: check the address and port it has for us, and "
        "firewalls{} (C-MOVE {}{}{}). {}",
        e.where, address, e.our_port,
        e.failed_suboperations > 0 ? ""
                                   : fmt::format("; or it does not know '{}' as a move destination", e.destination),
        e.status_text, comment,
        e.failed_suboperations > 0 ? fmt::format(", {} sub-operation(s) failed", e.failed_suboperations) : "",
        register_us);
  }
  if (e.failed_suboperations > 0) {
    return fmt::format(
        "{} could not send to us: C-MOVE {}, {} sub-operation(s) failed{}. {}, and check that it can "
        "reach that address and port (firewall)",
        e.where, e.status_text, e.failed_suboperations, comment, register_us);
  }
  return fmt::format(
      "{} refused the C-MOVE to '{}' with status {}{} and sent nothing; it most likely does not know "
      "'{}' as a move destination. {}",
      e.where, e.destination, e.status_text, comment, e.destination, register_us);
}

}  // namespace pb
