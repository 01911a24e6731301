#include "dicom/negotiation.h"

#include <algorithm>
#include <set>
#include <vector>

#include <dcmtk/dcmdata/dcuid.h>

namespace pb::dicom {
namespace {

// Transfer syntaxes we accept, compressed ones first so data arrives as the sender has it.
const char* const kTransferSyntaxes[] = {UID_JPEGProcess14SV1TransferSyntax,
                                         UID_JPEGProcess1TransferSyntax,
                                         UID_JPEGProcess2_4TransferSyntax,
                                         UID_JPEGProcess14TransferSyntax,
                                         UID_JPEGLSLosslessTransferSyntax,
                                         UID_JPEGLSLossyTransferSyntax,
                                         UID_JPEG2000LosslessOnlyTransferSyntax,
                                         UID_JPEG2000TransferSyntax,
                                         UID_RLELosslessTransferSyntax,
                                         UID_DeflatedExplicitVRLittleEndianTransferSyntax,
                                         UID_MPEG2MainProfileAtMainLevelTransferSyntax,
                                         UID_MPEG4HighProfileLevel4_1TransferSyntax,
                                         UID_HEVCMainProfileLevel5_1TransferSyntax,
                                         UID_LittleEndianExplicitTransferSyntax,
                                         UID_LittleEndianImplicitTransferSyntax,
                                         UID_BigEndianExplicitTransferSyntax};
constexpr int kTransferSyntaxCount = sizeof(kTransferSyntaxes) / sizeof(kTransferSyntaxes[0]);

// When a sender offers a SOP class on several contexts, one of them in the preferred syntax,
// only that one is accepted: the sender then sends (converting if it must) in that syntax.
void RefuseAllButPreferred(T_ASC_Parameters* params, const std::string& preferred) {
  std::set<std::string> classes_with_preferred;
  const int n = ASC_countPresentationContexts(params);
  for (int i = 0; i < n; ++i) {
    T_ASC_PresentationContext pc;
    if (ASC_getPresentationContext(params, i, &pc).good() && pc.resultReason == ASC_P_ACCEPTANCE &&
        preferred == pc.acceptedTransferSyntax) {
      classes_with_preferred.insert(pc.abstractSyntax);
    }
  }
  for (int i = 0; i < n; ++i) {
    T_ASC_PresentationContext pc;
    if (ASC_getPresentationContext(params, i, &pc).good() && pc.resultReason == ASC_P_ACCEPTANCE &&
        preferred != pc.acceptedTransferSyntax && classes_with_preferred.count(pc.abstractSyntax)) {
      ASC_refusePresentationContext(params, pc.presentationContextID, ASC_P_TRANSFERSYNTAXESNOTSUPPORTED);
    }
  }
}

// For Query/Retrieve: storage contexts a C-GET caller proposes with the SCP role (it receives,
// we send) are accepted in that role, each in the first syntax the caller proposed that we know
// (its preference), so instances stored in it go unchanged.
void AcceptStorageAsSender(T_ASC_Parameters* params) {
  const int n = ASC_countPresentationContexts(params);
  for (int i = 0; i < n; ++i) {
    T_ASC_PresentationContext pc;
    if (ASC_getPresentationContext(params, i, &pc).bad()) continue;
    if (pc.proposedRole != ASC_SC_ROLE_SCP && pc.proposedRole != ASC_SC_ROLE_SCUSCP) continue;
    // Storage classes (and those the dictionary does not know, taken as private storage); a
    // context the preferred syntax refused for sending to us is still one to send on.
    if (!dcmIsaStorageSOPClassUID(pc.abstractSyntax) && dcmFindNameOfUID(pc.abstractSyntax) != nullptr) continue;
    for (int t = 0; t < pc.transferSyntaxCount; ++t) {
      const char* ts = pc.proposedTransferSyntaxes[t];
      if (std::any_of(kTransferSyntaxes, kTransferSyntaxes + kTransferSyntaxCount,
                      [&](const char* known) { return std::string(known) == ts; })) {
        ASC_acceptPresentationContext(params, pc.presentationContextID, ts, pc.proposedRole);
        break;
      }
    }
  }
}

}  // namespace

void AcceptContexts(T_ASC_Parameters* params, const std::string& preferred, bool mpps, bool query) {
  const char* verification[] = {UID_VerificationSOPClass};
  const char* echo_ts[] = {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax,
                           UID_BigEndianExplicitTransferSyntax};
  ASC_acceptContextsWithPreferredTransferSyntaxes(params, verification, 1, echo_ts, 3);
  if (mpps) {
    const char* step[] = {UID_ModalityPerformedProcedureStepSOPClass};
    ASC_acceptContextsWithPreferredTransferSyntaxes(params, step, 1, echo_ts, 3);
  }
  if (query) {
    const char* models[] = {
        UID_FINDPatientRootQueryRetrieveInformationModel, UID_FINDStudyRootQueryRetrieveInformationModel,
        UID_GETPatientRootQueryRetrieveInformationModel,  UID_GETStudyRootQueryRetrieveInformationModel,
        UID_MOVEPatientRootQueryRetrieveInformationModel, UID_MOVEStudyRootQueryRetrieveInformationModel};
    ASC_acceptContextsWithPreferredTransferSyntaxes(params, models, 6, echo_ts, 3);
  }
  std::vector<const char*> syntaxes(kTransferSyntaxes, kTransferSyntaxes + kTransferSyntaxCount);
  if (!preferred.empty()) {
    auto it = std::find(syntaxes.begin(), syntaxes.end(), preferred);
    if (it != syntaxes.end()) syntaxes.erase(it);
    syntaxes.insert(syntaxes.begin(), preferred.c_str());
  }
  const int syntax_count = static_cast<int>(syntaxes.size());
  ASC_acceptContextsWithPreferredTransferSyntaxes(params, dcmAllStorageSOPClassUIDs, numberOfDcmAllStorageSOPClassUIDs,
                                                  syntaxes.data(), syntax_count);
  // SOP classes DCMTK does not know (private or newer than its dictionary) are taken as storage
  // classes: a vendor's private objects must not be refused. Known non-storage classes (query,
  // worklist, ...) stay refused.
  std::vector<std::string> unknown;
  for (int i = 0; i < ASC_countPresentationContexts(params); ++i) {
    T_ASC_PresentationContext pc;
    if (ASC_getPresentationContext(params, i, &pc).bad()) continue;
    if (pc.resultReason != ASC_P_ACCEPTANCE && dcmFindNameOfUID(pc.abstractSyntax) == nullptr) {
      unknown.emplace_back(pc.abstractSyntax);
    }
  }
  if (!unknown.empty()) {
    std::vector<const char*> uids;
    for (const auto& u : unknown) uids.push_back(u.c_str());
    ASC_acceptContextsWithPreferredTransferSyntaxes(params, uids.data(), static_cast<int>(uids.size()), syntaxes.data(),
                                                    syntax_count);
  }
  if (!preferred.empty()) RefuseAllButPreferred(params, preferred);
  if (query) AcceptStorageAsSender(params);
}

}  // namespace pb::dicom
