#pragma once
// Writing P-DATA-TF PDUs (PS3.8 9.3.5) of one PDV each, and command sets, on an association
// in the data transfer state. A PDU goes out in one write of the connection (plain or TLS),
// its 12 header bytes and its value together, where DCMTK's upper layer writes the header and
// the value separately: two system calls (two TLS records), and two segments for the peer to
// wake up to, per PDU. A PDV longer than the peer takes in one PDU is left to DCMTK's upper
// layer, which cuts it. Internal to src/dicom.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dul.h>

namespace pb::dicom {

// Room before a PDV's value for its PDU and PDV headers.
constexpr unsigned long kPduHead = 12;

// One PDV: `pdu` holds kPduHead free bytes, then the `length` bytes of the value.
OFCondition WritePdv(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, DUL_DATAPDV type, unsigned char* pdu,
                     unsigned long length, bool last);

// A command set, encoded as every command is (Implicit VR Little Endian, with its group
// length), in one PDV.
OFCondition WriteCommand(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, DcmDataset& command);

}  // namespace pb::dicom
