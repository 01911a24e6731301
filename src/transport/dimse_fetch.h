#pragma once
// The DIMSE transport's fetch: C-GET (the data comes on our association, into the hooks' sink)
// or C-MOVE (the node sends to one of our receivers), "auto" trying C-GET first and falling back
// to C-MOVE when the node refuses it (a node known to need C-MOVE goes straight to it). A C-MOVE
// that brings nothing is explained from what our receivers saw (move_diagnosis.h).
#include "dicom/peer.h"
#include "nodes/node.h"
#include "transport/transport.h"

namespace pb {

FetchResult DimseFetch(const Node& node, const dicom::PeerRequest& peer, const TransportContext& context,
                       const FetchRequest& request, const FetchHooks& hooks);

}  // namespace pb
