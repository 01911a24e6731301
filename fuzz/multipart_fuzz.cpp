// The multipart/related parser (STOW-RS bodies, WADO-RS answers): the body cut into chunks of
// sizes the input chooses, as the network would deliver it. Parts and their data must come in
// order and within the body; nothing may throw or read out of bounds.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdlib>
#include <string>

#include "dicomweb/multipart.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string boundary = in.ConsumeBool() ? "pb-fuzz-boundary" : in.ConsumeRandomLengthString(80);
  size_t delivered = 0, seen = 0;
  int last_part = 0;
  bool in_part = false;
  pb::dicomweb::MultipartParser parser(
      boundary, {[&](int index, const pb::dicomweb::MultipartParser::Headers&) -> pb::Result<void> {
                   if (index != last_part + 1 || in_part) std::abort();  // parts in order, one at a time
                   last_part = index;
                   in_part = true;
                   return {};
                 },
                 [&](std::string_view bytes) -> pb::Result<void> {
                   if (!in_part) std::abort();
                   seen += bytes.size();
                   if (seen > delivered) std::abort();  // never more data than was fed
                   return {};
                 },
                 [&]() -> pb::Result<void> {
                   if (!in_part) std::abort();
                   in_part = false;
                   return {};
                 }});
  while (in.remaining_bytes() > 0) {
    const size_t n = in.ConsumeIntegralInRange<size_t>(1, 4096);
    const std::string chunk = in.ConsumeBytesAsString(n);
    delivered += chunk.size();
    if (!parser.Feed(chunk)) return 0;
  }
  (void)parser.Finish();
  return 0;
}
