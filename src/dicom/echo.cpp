#include "dicom/echo.h"

#include <chrono>

#include <dcmtk/dcmnet/dimse.h>
#include <fmt/format.h>

#include "dicom/condition.h"
#include "dicom/scu.h"

namespace pb::dicom {

namespace {

EchoResult Failed(const std::string& reason, int64_t latency_ms) {
  return EchoResult{false, "Connection failed: " + reason, latency_ms, reason};
}

}  // namespace

EchoResult Echo(const EchoRequest& rq) {
  auto start = std::chrono::steady_clock::now();
  auto a = Associate(rq, {{UID_VerificationSOPClass,
                           {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax}}});
  if (!a) return Failed(a.error().message, 0);
  DIC_US status = 0;
  DcmDataset* detail = nullptr;
  OFCondition cond =
      DIMSE_echoUser((*a)->get(), (*a)->get()->nextMsgID++, DIMSE_NONBLOCKING, rq.timeout_seconds, &status, &detail);
  std::unique_ptr<DcmDataset> owned_detail(detail);  // the status detail is not needed
  auto latency =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  if (cond.bad()) {
    (*a)->Abort();
    if (cond == DIMSE_NODATAAVAILABLE) {
      return Failed(fmt::format("no answer to the echo within {} s", rq.timeout_seconds), latency);
    }
    return Failed(fmt::format("no answer to the echo: {}", ConditionText(cond)), latency);
  }
  (*a)->Release();
  if (status != 0) {
    return Failed(fmt::format("the echo was answered with status 0x{:04X}", status), latency);
  }
  return EchoResult{true, "Connection established", latency, ""};
}

}  // namespace pb::dicom
