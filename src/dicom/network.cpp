#include "dicom/network.h"

#include <cstdlib>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmnet/dul.h>
#include <dcmtk/oflog/oflog.h>

namespace pb::dicom {

void InitializeDicomNetwork(const std::string& log_level) {
  // DCMTK decides about Nagle per connection from this variable; Debian's build leaves Nagle on
  // by default, which costs ~40 ms per DIMSE round trip.
  ::setenv("TCP_NODELAY", "1", 1);
  dcmDisableGethostbyaddr.set(OFTrue);
  // Failures are reported through our own log with context; DCMTK's own messages only on request.
  OFLogger::LogLevel level = OFLogger::FATAL_LOG_LEVEL;
  if (log_level == "debug") level = OFLogger::INFO_LOG_LEVEL;
  if (log_level == "trace") level = OFLogger::DEBUG_LOG_LEVEL;
  OFLog::configure(level);
  // Reading a header stops at the pixel data on purpose; at debug level DCMTK's data dictionary
  // would warn about that once per instance, so its messages start at trace.
  if (log_level != "trace") OFLog::getLogger("dcmtk.dcmdata").setLogLevel(OFLogger::ERROR_LOG_LEVEL);
}

bool LoadDataDictionary() {
  return dcmDataDict.isDictionaryLoaded() != OFFalse;  // its first use loads it
}

}  // namespace pb::dicom
