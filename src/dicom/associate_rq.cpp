#include "dicom/associate_rq.h"

#include <fmt/format.h>

namespace pb::dicom {
namespace {

constexpr size_t kFixed = 6 + 68;     // PDU header; protocol version, reserved, AE titles, reserved
constexpr size_t kMaxUidLength = 64;  // abstract and transfer syntax sub-items (PS3.8 9.3.2.2.1-2)

// A big-endian 16-bit field at `at` (an item's length is the one at item + 2).
uint16_t Short(std::span<const uint8_t> b, size_t at) { return static_cast<uint16_t>((b[at] << 8) | b[at + 1]); }

// The sub-items of the presentation context item at `at` (its header already checked).
std::string ContextFault(std::span<const uint8_t> pdu, size_t at, size_t length) {
  size_t p = at + 8;
  const size_t end = at + 4 + length;
  int transfer_syntaxes = 0;
  while (p < end) {
    if (end - p < 4)
      return fmt::format("a sub-item at byte {} of the presentation context at byte {} is cut short", p, at);
    const uint8_t type = pdu[p];
    const size_t sub = Short(pdu, p + 2);
    if (sub > end - p - 4) {
      return fmt::format("sub-item 0x{:02x} at byte {} claims {} bytes, its presentation context has {} left", type, p,
                         sub, end - p - 4);
    }
    if ((type == 0x30 || type == 0x40) && sub > kMaxUidLength) {
      return fmt::format("the {} syntax at byte {} is {} bytes long (a UID has at most 64)",
                         type == 0x30 ? "abstract" : "transfer", p, sub);
    }
    transfer_syntaxes += type == 0x40 ? 1 : 0;
    p += 4 + sub;
  }
  if (transfer_syntaxes == 0) {
    return fmt::format("presentation context {} at byte {} proposes no transfer syntax", static_cast<int>(pdu[at + 4]),
                       at);
  }
  return {};
}

// The sub-items of the user information item at `at` (PS3.7 D.3.3, PS3.8 D.1), each as DCMTK
// reads it: the fields inside a sub-item must fit in it too.
std::string UserInfoFault(std::span<const uint8_t> pdu, size_t at, size_t length) {
  size_t p = at + 4;
  const size_t end = at + 4 + length;
  int identities = 0;
  while (p < end) {
    const size_t avail = end - p;
    if (avail < 4) return fmt::format("a user information sub-item at byte {} is cut short", p);
    const uint8_t type = pdu[p];
    const size_t sub = Short(pdu, p + 2);
    if (sub > avail - 4) {
      return fmt::format("user information sub-item 0x{:02x} at byte {} claims {} bytes, {} are left", type, p, sub,
                         avail - 4);
    }
    switch (type) {
      case 0x51:  // maximum length: DCMTK reads its 4 bytes whatever the length says
        if (avail < 8) return fmt::format("the maximum length sub-item at byte {} is cut short", p);
        break;
      case 0x52:  // implementation class UID
      case 0x55:  // implementation version name
        if (sub > kMaxUidLength)
          return fmt::format("sub-item 0x{:02x} at byte {} is {} bytes long (at most 64)", type, p, sub);
        break;
      case 0x54:  // SCP/SCU role selection: UID length, UID, two role bytes
        if (avail < 8 || sub < 4 || Short(pdu, p + 4) > sub - 4) {
          return fmt::format("the SCP/SCU role selection sub-item at byte {} does not hold its UID and roles", p);
        }
        break;
      case 0x56:  // SOP class extended negotiation: UID length, UID, application information
        if (avail < 6 || sub < 2 || Short(pdu, p + 4) > sub - 2) {
          return fmt::format("the extended negotiation sub-item at byte {} does not hold its SOP class UID", p);
        }
        break;
      case 0x58:  // user identity (request; 0x59 is the answer's)
      case 0x59:
        if (++identities > 1) return fmt::format("a second user identity sub-item at byte {}", p);
        break;
      default:
        break;
    }
    p += 4 + sub;
  }
  return {};
}

}  // namespace

std::string AssociateRequestFault(std::span<const uint8_t> pdu) {
  if (pdu.size() < kFixed) return fmt::format("{} bytes, fewer than the 74 of its fixed fields", pdu.size());
  size_t p = kFixed;
  int user_infos = 0;
  while (p < pdu.size()) {
    const size_t left = pdu.size() - p;
    if (left < 4) return fmt::format("an item at byte {} is cut short ({} bytes left)", p, left);
    const uint8_t type = pdu[p];
    const size_t length = Short(pdu, p + 2);
    if (length > left - 4) {
      return fmt::format("item 0x{:02x} at byte {} claims {} bytes, the PDU has {} left", type, p, length, left - 4);
    }
    if (type == 0x21) return fmt::format("an answer's presentation context item (0x21) at byte {}", p);
    if (type == 0x50) {
      if (++user_infos > 1) return fmt::format("a second user information item at byte {}", p);
      if (auto fault = UserInfoFault(pdu, p, length); !fault.empty()) return fault;
    }
    if (type == 0x20) {
      if (length < 4)
        return fmt::format("the presentation context at byte {} is {} bytes long, fewer than 4", p, length);
      if (auto fault = ContextFault(pdu, p, length); !fault.empty()) return fault;
    }
    p += 4 + length;
  }
  return {};
}

}  // namespace pb::dicom
