#pragma once
// C-FIND as a service class provider (PS3.4 C.4.1): what a receiver with Query/Retrieve on
// answers on the Patient Root and Study Root information models. The association side (the
// identifier in its character set, the answers, pending and final statuses, C-CANCEL) is here;
// what matches is the QuerySink's (the archive's index).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"

namespace pb::dicom {

// Patient Root / Study Root Query/Retrieve - FIND.
extern const char* const kPatientRootFind;
extern const char* const kStudyRootFind;

struct FindQuery {
  bool patient_root = false;  // the information model: Patient Root, else Study Root
  std::string level;          // QueryRetrieveLevel: PATIENT, STUDY, SERIES or IMAGE
  // The identifier's keys in order, by DICOM keyword ("(gggg,eeee)" for one the dictionary
  // does not name), values decoded to UTF-8; sequences come with an empty value.
  std::vector<std::pair<std::string, std::string>> keys;
  std::string calling_ae, called_ae, peer;
};

struct FindPage {
  std::vector<std::map<std::string, std::string>> answers;  // keyword → UTF-8 value
  bool more = false;                                        // another page may follow
  bool unsupported = false;  // some keys asked for are not supported (pending status 0xFF01)
};

// Decides what matches; called from association threads concurrently.
class QuerySink {
 public:
  virtual ~QuerySink() = default;
  // The answers from `offset` on (at most a page). Errors: kInvalidArgument (the identifier
  // does not fit the model: 0xA900 with the message as Error Comment), kUnavailable / kIoError
  // (0xA700, out of resources), anything else 0xC000 (unable to process).
  [[nodiscard]] virtual Result<FindPage> Find(const FindQuery& request, size_t offset) = 0;
};

}  // namespace pb::dicom
