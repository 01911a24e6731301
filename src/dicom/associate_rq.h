#pragma once
// A first look at an A-ASSOCIATE-RQ PDU (PS3.8 9.3.2) before DCMTK parses it, so that a request
// whose items do not fit together is refused with a precise reason and never reaches DCMTK's
// parser: DCMTK 3.6.7 leaks a malformed presentation context's transfer syntax list (about
// 150 bytes per request), which a hostile peer could repeat without end.
//
// Refused: what DCMTK would refuse too, item by item as its parser reads them (an item or
// sub-item running past the one around it, a UID over 64 bytes, a presentation context without
// a transfer syntax, the fields inside a role selection or extended negotiation sub-item), and
// what PS3.8 9.3.2 forbids where DCMTK would take it and leak: an A-ASSOCIATE-AC's presentation
// context item (0x21), a second user information item, a second user identity sub-item.
// Anything else (unknown item types, the values) is left to DCMTK.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace pb::dicom {

// `pdu`: the whole PDU, from its type byte. Empty: nothing wrong at this level; else why not,
// naming the item and its byte offset in the PDU.
std::string AssociateRequestFault(std::span<const uint8_t> pdu);

}  // namespace pb::dicom
