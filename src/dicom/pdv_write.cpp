#include "dicom/pdv_write.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include <dcmtk/dcmdata/dcostrmb.h>
#include <dcmtk/dcmnet/cond.h>
#include <dcmtk/dcmnet/dcmtrans.h>

namespace pb::dicom {
namespace {

void PutBig32(unsigned char* p, uint32_t v) {
  p[0] = static_cast<unsigned char>(v >> 24);
  p[1] = static_cast<unsigned char>(v >> 16);
  p[2] = static_cast<unsigned char>(v >> 8);
  p[3] = static_cast<unsigned char>(v);
}

}  // namespace

OFCondition WritePdv(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, DUL_DATAPDV type, unsigned char* pdu,
                     unsigned long length, bool last) {
  DcmTransportConnection* conn = DUL_getTransportConnection(assoc->DULassociation);
  // The peer's maximum PDU length bounds the PDU's variable part (PS3.8 9.3.5, D.1): here one
  // PDV item, its 4-byte length field included.
  const long max_pdu = assoc->params->theirMaxPDUReceiveSize;
  if (conn && (max_pdu <= 0 || length + 6 <= static_cast<unsigned long>(max_pdu)) && length <= 0xFFFF0000UL) {
    pdu[0] = 0x04;  // P-DATA-TF
    pdu[1] = 0;
    PutBig32(pdu + 2, static_cast<uint32_t>(length + 6));  // the PDV item
    PutBig32(pdu + 6, static_cast<uint32_t>(length + 2));  // context ID, control header, value
    pdu[10] = pres;
    // Message control header (PS3.8 E.2): bit 0 a command, bit 1 its last fragment.
    pdu[11] = static_cast<unsigned char>((type == DUL_COMMANDPDV ? 0x01 : 0x00) | (last ? 0x02 : 0x00));
    const size_t total = kPduHead + length;
    // A blocking connection writes all of it or fails (TLS: SSL_write without partial writes),
    // as DCMTK's upper layer takes it.
    ssize_t n = 0;
    do {
      n = conn->write(pdu, total);
    } while (n < 0 && errno == EINTR);
    if (n < 0 || static_cast<size_t>(n) != total) {
      const std::string why = n < 0 ? std::strerror(errno) : "a partial write";
      return makeDcmnetCondition(DULC_TCPIOERROR, OF_error, ("sending a P-DATA-TF PDU failed: " + why).c_str());
    }
    return EC_Normal;
  }
  DUL_PDV pdv{};
  pdv.fragmentLength = length;
  pdv.presentationContextID = pres;
  pdv.pdvType = type;
  pdv.lastPDV = last ? OFTrue : OFFalse;
  pdv.data = pdu + kPduHead;
  DUL_PDVLIST list{};
  list.count = 1;
  list.pdv = &pdv;
  return DUL_WritePDVs(&assoc->DULassociation, &list);
}

OFCondition WriteCommand(T_ASC_Association* assoc, T_ASC_PresentationContextID pres, DcmDataset& command) {
  unsigned char buf[2048];  // a C-STORE-RQ or -RSP is ~200 bytes; an error comment adds 64
  DcmOutputBufferStream out(buf + kPduHead, sizeof buf - kPduHead);
  command.transferInit();
  OFCondition c =
      command.write(out, EXS_LittleEndianImplicit, EET_ExplicitLength, nullptr, EGL_withGL, EPD_withoutPadding);
  command.transferEnd();
  if (c.bad()) return c;
  void* data = nullptr;
  offile_off_t length = 0;
  out.flushBuffer(data, length);
  return WritePdv(assoc, pres, DUL_COMMANDPDV, buf, static_cast<unsigned long>(length), true);
}

}  // namespace pb::dicom
