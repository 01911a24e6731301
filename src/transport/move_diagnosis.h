#pragma once
// Why a C-MOVE brought nothing, told from what our receivers saw while it ran (the evidence of
// receivers/association_log.h), so the message blames the right thing:
//   - the PACS connected with the wrong called AE title (often only its case) or to the wrong
//     one of our ports: say which, and what to correct on the PACS;
//   - our receiver's whitelist refused it: say so;
//   - it reported failed sub-operations and no connection arrived: it has a wrong address or
//     port for us, or a firewall is in the way;
//   - it refused outright (0xA801, or a failure with nothing attempted): it does not know the
//     destination; say what to register.
// Pure functions; thread-safe.
#include <cstdint>
#include <string>
#include <vector>

#include "receivers/association_log.h"

namespace pb {

struct MoveEvidence {
  std::string where;    // "node 'pacs' (10.0.0.5:104)"
  std::string pacs_ae;  // the PACS's AE title and host: only associations from it count
  std::string pacs_host;
  std::string destination;  // the AE title the C-MOVE asked the PACS to send to
  std::string our_ae;       // the receiver that should take the data
  uint16_t our_port = 0;
  std::string our_address;  // ours as the PACS sees it; empty when unknown
  uint16_t status = 0;      // the final C-MOVE status
  std::string status_text;  // "0xC000 (failure)"
  std::string error_comment;
  int failed_suboperations = 0;
  std::vector<AssociationAttempt> seen;  // on our receivers while the C-MOVE ran (anyone's)
};

std::string ExplainEmptyMove(const MoveEvidence& e);

// Whether our receivers refused an association from the PACS (an AE title or port that is not
// ours, a whitelist): ExplainEmptyMove then says which.
bool RefusedByUs(const MoveEvidence& e);

}  // namespace pb
