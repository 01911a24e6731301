#pragma once
// What our receivers accept in an A-ASSOCIATE-RQ: Verification, every storage SOP class (and
// SOP classes DCMTK does not know, taken as private storage classes), compressed transfer
// syntaxes first so data arrives as the sender has it, or the sender's node's preferred syntax
// first. Internal to src/dicom.
#include <string>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>

namespace pb::dicom {

// `preferred`: a transfer syntax UID chosen before all others; when a SOP class is offered on
// several contexts and one of them is in this syntax, only that one is accepted.
// `mpps`: Modality Performed Procedure Step is accepted too (the receiver's setting).
// `query`: C-FIND, C-GET and C-MOVE on the Patient Root and Study Root models are accepted too,
// and storage contexts a C-GET caller proposes in the SCP role are accepted in that role.
void AcceptContexts(T_ASC_Parameters* params, const std::string& preferred, bool mpps = false, bool query = false);

}  // namespace pb::dicom
