// REST request bodies: a node, a receiver, site routing, a job's target, read from any JSON.
#include <string_view>

#include <nlohmann/json.hpp>

#include "jobs/job_request.h"
#include "nodes/node.h"
#include "receivers/receiver.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto j = nlohmann::json::parse(std::string_view(reinterpret_cast<const char*>(data), size), nullptr, false);
  if (j.is_discarded()) return 0;
  (void)pb::NodeFromJson(j);
  (void)pb::ReceiverFromJson(j, pb::ReceiverOrigin::kApi);
  (void)pb::ParseSiteRouting(j);
  (void)pb::ParseTarget(j);
  if (j.is_object()) {
    auto r = pb::ReceiverFromJson(nlohmann::json{{"ae_title", "FUZZ"}, {"port", 11112}});
    if (r) (void)pb::PatchReceiver(*r, j);
  }
  return 0;
}
