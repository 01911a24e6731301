// Routing rules an administrator writes, run on header values a peer sends: parsing any text
// and matching any value (RE2) must neither throw nor run long.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdlib>
#include <string>

#include "ingest/routing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string rules_text = in.ConsumeRandomLengthString(2048);
  const std::string value = in.ConsumeRemainingBytesAsString();
  auto parsed = pb::ParseRoutingRules(rules_text, "routing.project");
  if (!parsed) {
    if (parsed.error().message.empty()) std::abort();  // a refusal always says why
    return 0;
  }
  pb::RoutingRules rules;
  rules.project = *parsed;
  rules.subject = *parsed;
  pb::AttributeLookup get = [&](uint32_t) -> std::optional<std::string> { return value; };
  const pb::Labels l = pb::Route(&rules, nullptr, "", get);
  for (const std::string* label : {&l.project, &l.subject, &l.session}) {
    if (label->size() > 64) std::abort();  // labels are cleaned and bounded
  }
  return 0;
}
