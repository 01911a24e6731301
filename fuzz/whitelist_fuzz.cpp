// A receiver's whitelist text (AE titles, addresses, CIDR blocks) and the calling AE title and
// address a peer presents.
#include <fuzzer/FuzzedDataProvider.h>

#include <string>

#include "receivers/whitelist.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string text = in.ConsumeRandomLengthString(1024);
  const std::string ae = in.ConsumeRandomLengthString(64);
  const std::string address = in.ConsumeRemainingBytesAsString();
  auto list = pb::Whitelist::Parse(text);
  if (list) (void)list->Allows(ae, address);
  return 0;
}
