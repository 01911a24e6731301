// DICOM JSON from peers: QIDO-RS answers, STOW-RS responses, MPPS data sets flattened.
#include <string_view>

#include <nlohmann/json.hpp>

#include "dicomweb/qido.h"
#include "dicomweb/stow.h"
#include "mpps/mpps_steps.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)pb::dicomweb::RowsFromDicomJson(text);
  (void)pb::dicomweb::ParseStowResponse(text);
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_discarded()) (void)pb::FlatJsonFromDicomJson(j);
  return 0;
}
