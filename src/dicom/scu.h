#pragma once
// An association we open as an SCU, with a diagnosis a person can act on when it cannot be
// opened. Internal to src/dicom (it exposes DCMTK types). Not thread-safe: one user at a time.
#include <memory>
#include <string>
#include <vector>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmtls/tlslayer.h>

#include "core/result.h"
#include "dicom/peer.h"

namespace pb::dicom {

struct ProposedContext {
  const char* abstract_syntax;
  std::vector<const char*> transfer_syntaxes;
  T_ASC_SC_ROLE role = ASC_SC_ROLE_DEFAULT;  // ASC_SC_ROLE_SCP: we take C-STOREs (C-GET)
};

class ScuAssociation {
 public:
  ~ScuAssociation();  // aborts what is still open
  ScuAssociation(const ScuAssociation&) = delete;
  ScuAssociation& operator=(const ScuAssociation&) = delete;

  T_ASC_Association* get() { return assoc_; }
  // The accepted context for an abstract syntax, or 0.
  T_ASC_PresentationContextID ContextFor(const char* abstract_syntax) const;
  void Release();
  void Abort();
  const std::string& where() const { return where_; }
  // Our own address on this association's connection, as the peer sees it ("" if unknown).
  std::string LocalAddress() const;

 private:
  friend Result<std::unique_ptr<ScuAssociation>> Associate(const PeerRequest&, const std::vector<ProposedContext>&);
  ScuAssociation() = default;
  std::unique_ptr<DcmTLSTransportLayer> tls_;  // outlives the network (members go last)
  std::unique_ptr<DcmTransportLayer> paced_;   // the throttled plain layer, when limited
  T_ASC_Network* net_ = nullptr;
  T_ASC_Parameters* params_ = nullptr;  // owned by assoc_ once requested
  T_ASC_Association* assoc_ = nullptr;
  bool open_ = false;
  std::string where_;
  std::string address_;  // the resolved peer address
  uint16_t port_ = 0;
};

// Opens an association proposing `contexts` (IDs 1, 3, 5, ...). The error message is the reason
// without a prefix ("connection refused by ...", "association rejected: ...", ...); it fails too
// when the peer accepts none of the contexts.
[[nodiscard]] Result<std::unique_ptr<ScuAssociation>> Associate(const PeerRequest& rq,
                                                                const std::vector<ProposedContext>& contexts);

}  // namespace pb::dicom
