#include "dicom/network.h"

#include <cstdio>
#include <cstdlib>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmnet/dul.h>
#include <dcmtk/oflog/appender.h>
#include <dcmtk/oflog/logger.h>
#include <dcmtk/oflog/oflog.h>
#include <dcmtk/oflog/spi/logevent.h>
#include <spdlog/spdlog.h>

namespace pb::dicom {
namespace {

namespace l4c = dcmtk::log4cplus;

// DCMTK's messages go to our "dcmtk" logger (set up by the server, same sink and format as ours),
// so a JSON log stays JSON; without one, to stderr. DCMTK's errors are about
// what it was given (a character set it cannot convert, an element it cannot parse), which our own
// log reports with context where it matters: they are warnings to us. Its info is our debug.
class SpdlogAppender final : public l4c::Appender {
 public:
  ~SpdlogAppender() override { destructorImpl(); }
  void close() override { closed = true; }

 protected:
  void append(const l4c::spi::InternalLoggingEvent& event) override {
    const l4c::LogLevel ll = event.getLogLevel();
    spdlog::level::level_enum level = spdlog::level::trace;
    if (ll >= l4c::FATAL_LOG_LEVEL)
      level = spdlog::level::err;
    else if (ll >= l4c::WARN_LOG_LEVEL)
      level = spdlog::level::warn;
    else if (ll >= l4c::INFO_LOG_LEVEL)
      level = spdlog::level::debug;
    if (auto logger = spdlog::get("dcmtk")) {
      logger->log(level, "{}", event.getMessage().c_str());
      return;
    }
    // No server logging (a CLI command): stderr as DCMTK writes it, stdout stays the command's.
    const spdlog::string_view_t name = spdlog::level::to_short_c_str(level);
    std::fprintf(stderr, "%s: %s\n", name.data(), event.getMessage().c_str());
  }
};

}  // namespace

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
  l4c::Logger root = l4c::Logger::getRoot();
  root.removeAllAppenders();
  root.addAppender(l4c::SharedAppenderPtr(new SpdlogAppender));
}

bool LoadDataDictionary() {
  return dcmDataDict.isDictionaryLoaded() != OFFalse;  // its first use loads it
}

}  // namespace pb::dicom
