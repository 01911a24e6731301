#pragma once
// The DICOMweb transport: test connection by a QIDO-RS search with limit=1, find by QIDO-RS
// (PATIENT level from studies grouped by patient), retrieve planned by QIDO-RS (the shared
// planner of retrieve_plan.h) and fetched by WADO-RS, the multipart answer streamed part by
// part into temp files and the one ingest path; send by STOW-RS in batches. HTTP through
// dicomweb/http_client (libcurl).
#include <memory>

#include "transport/transport.h"

namespace pb {

std::unique_ptr<Transport> MakeDicomWebTransport(const Node& node, const TransportContext& context);

}  // namespace pb
